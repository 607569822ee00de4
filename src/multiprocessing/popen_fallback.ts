/**
 * The `spawn` start method of the platform fallback: a fresh `node` running
 * fallback_main.js, started with child_process.fork by this thread's service thread
 * (compat/service_main.ts), which is told what to run over the IPC channel and reports a
 * target's error there. The service thread sees the child end, so `waitSync` blocks on it
 * while this thread's loop stands still. There is no sentinel descriptor (-1).
 */
import { join } from 'node:path';
import type { LentHold } from '../compat/connection';
import { theService } from '../compat/service';
import type { ChildEndRecord } from '../compat/service_main';
import { decodeReport, type ChildEnd, type Popen } from './popen';
import { childExecArgv } from './popen_spawn';

const fallbackMain = join(__dirname, 'fallback_main.js');

/**
 * Starts `node fallback_main.js` for `payload` (a serialized ChildPayload); the service
 * thread gives back the `lent` holds of the pipe ends in it when the child ends.
 */
export async function startFallback(payload: Buffer, daemon: boolean, lent: LentHold[]): Promise<Popen> {
  const pid = (await theService().call({ op: 'spawn', module: fallbackMain, payload, execArgv: childExecArgv(), lent })) as number;
  return new ServiceChild(pid, !daemon);
}

class ServiceChild implements Popen {
  readonly sentinel = -1;
  readonly ended: Promise<ChildEnd>;
  #end: ChildEnd | undefined;
  #kept = false;

  constructor(
    readonly pid: number,
    keepAlive: boolean,
  ) {
    this.ended = theService()
      .call({ op: 'join', pid, timeout: -1 }, false)
      .then((record) => this.#finish(record as ChildEndRecord));
    if (keepAlive) this.keepAlive(true);
  }

  wait(): Promise<ChildEnd> {
    this.keepAlive(true);
    return this.ended;
  }

  keepAlive(on: boolean): void {
    if (!on || this.#kept || this.#end) return;
    this.#kept = true;
    // A pending call holds the loop; it is answered when the child ends.
    void theService().call({ op: 'join', pid: this.pid, timeout: -1 }, true);
  }

  waitSync(timeout?: number): ChildEnd | null {
    if (this.#end) return this.#end;
    const record = theService().callSync({ op: 'join', pid: this.pid, timeout: timeout ?? -1 }) as ChildEndRecord | null;
    return record ? this.#finish(record) : null;
  }

  poll(): ChildEnd | null {
    if (this.#end) return this.#end;
    const record = theService().callSync({ op: 'poll', pid: this.pid }) as ChildEndRecord | null;
    return record ? this.#finish(record) : null;
  }

  close(): void {}

  // Through the service thread, which started the child: not once it has ended.
  signal(signal: 'SIGTERM' | 'SIGKILL'): void {
    theService().callSync({ op: 'signal', pid: this.pid, signal });
  }

  #finish(record: ChildEndRecord): ChildEnd {
    if (this.#end) return this.#end;
    const error = record.report ? decodeReport(Buffer.from(record.report)) : undefined;
    this.#end = { exitCode: record.exitCode, ...(error ? { error } : {}) };
    return this.#end;
  }
}
