/**
 * What a spawned or forkserver child is told to run: its identity, the target (a TaskSpec,
 * or nothing), `this` for a subclass's `run()` (its own fields), and the arguments.
 */
import { describeTarget, loadTarget, type TaskSpec } from '../messaging/task';
import { deserialize, serialize } from '../messaging/serializer';
import { withoutLending } from '../messaging/lending';
import { becomeProcess } from './identity';
// The kinds that cross by handle register with the serializer when their modules load.
import '../messaging/index';

export interface ChildPayload {
  name: string;
  daemon: boolean;
  parentPid: number;
  parentName: string;
  target: TaskSpec | null;
  /** Serialized `[thisArg, args]`. */
  call: Buffer;
}

/** The payload for a Process, or a TypeError naming what cannot cross. */
export function makePayload(
  identity: { name: string; daemon: boolean; parentPid: number; parentName: string },
  target: unknown,
  thisArg: Record<string, unknown> | undefined,
  args: unknown[],
): Buffer {
  const spec = target === undefined ? null : describeTarget(target, thisArg ? 'run()' : 'options.target');
  withoutLending(() => serialize(args, 'args')); // names the path of what cannot cross
  const call = serialize([thisArg, args], 'this');
  return serialize({ ...identity, target: spec, call } satisfies ChildPayload, 'payload');
}

/** In the child: takes on the identity, and returns what `run` does. */
export function preparePayload(bytes: Uint8Array): { name: string; parentPid: number; run: () => Promise<unknown> } {
  const payload = deserialize(bytes) as ChildPayload;
  becomeProcess(payload.name, payload.daemon, payload.parentPid, payload.parentName);
  return {
    name: payload.name,
    parentPid: payload.parentPid,
    run: async () => {
      if (payload.target === null) return undefined;
      const fn = await loadTarget(payload.target);
      const [thisArg, args] = deserialize(payload.call) as [unknown, unknown[]];
      return fn.apply(thisArg, args);
    },
  };
}
