/**
 * The JavaScript half of a forked child's fix-ups (DESIGN.md facts 4-6 and 14): its pid,
 * its own Math.random, the parent's worker threads and pending writes let go, and every exit
 * path ended with _exit. The native half (V8's regions, the event loop) is native/fork.cc.
 */
import { randomFillSync } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { inspect } from 'node:util';
import { isMainThread, type Worker } from 'node:worker_threads';
import { native, supported } from './native';
import { flushStdio } from './stdio';
import { forgetInheritedWatches } from './wait';

// Workers alive in this process. A forked child has copies of their handles but not their
// threads, so it unreferences them: they must not keep the child alive (DESIGN.md fact 14).
const liveWorkers = new Set<Worker>();
process.on('worker', (worker: Worker) => {
  liveWorkers.add(worker);
  worker.once('exit', () => liveWorkers.delete(worker));
});

// What the layers above must redo in a forked child (src/sync re-arms its pending waits,
// whose helper threads did not cross the fork). A hook called with `rehearsal` true is being
// run in the parent by rehearseChild(), to be compiled there: it must return at once.
const childHooks: Array<(rehearsal: boolean) => void> = [];

export function afterForkInChild(hook: (rehearsal: boolean) => void): void {
  childHooks.push(hook);
}

// What the layers above do in the parent around fork(): `before` just before it, `after` with
// the child's pid once it returned (undefined if it failed). src/messaging counts the child
// among the holders of open connections there, so that no instant exists where they seem
// held by nobody.
const forkHooks: Array<{ before: () => void; after: (pid: number | undefined) => void }> = [];

export function aroundFork(before: () => void, after: (pid: number | undefined) => void): void {
  forkHooks.push({ before, after });
}

export function runBeforeFork(): void {
  for (const { before } of forkHooks) before();
}

export function runAfterForkInParent(pid: number | undefined): void {
  for (const { after } of forkHooks) after(pid);
}

// What the fix-ups act on. becomeChild() passes the real ones; rehearseChild() passes
// stand-ins, so that the parent runs the same code without effect.
interface FixUpTargets {
  process: { pid: number };
  math: { random: () => number };
  workers: Set<{ unref(): void }>;
  watches: Set<{ cancel(): void }> | undefined;
  handles: unknown[];
  exit: ExitTarget;
}

export function becomeChild(targets: FixUpTargets = childTargets()): void {
  const rehearsal = targets === standIns;
  fixUp(targets);
  for (const hook of childHooks) hook(rehearsal);
}

function childTargets(): FixUpTargets {
  // A stream with writes queued has an active handle, stdout and stderr included. (Reading
  // process.stdout here would create the stream in every child that never used it.)
  const getHandles = (process as unknown as { _getActiveHandles?: () => unknown[] })._getActiveHandles;
  return {
    process,
    math: Math,
    workers: liveWorkers,
    watches: undefined,
    handles: getHandles?.call(process) ?? [],
    exit: process as unknown as ExitTarget,
  };
}

/**
 * Runs the child's fix-ups in this process on stand-ins, so that their code is compiled
 * (and kept from being flushed) here rather than in every child: a child compiled them
 * afresh each time, milliseconds of work with copy-on-write of every page it wrote. fork()
 * calls it before forking; it costs a few microseconds once compiled.
 */
export function rehearseChild(): void {
  childTargets(); // only reads
  becomeChild(standIns);
}

const standIns: FixUpTargets = {
  process: { pid: 0 },
  math: { random: Math.random },
  workers: new Set(),
  watches: new Set(),
  handles: [],
  exit: Object.assign(new EventEmitter(), { hasUncaughtExceptionCaptureCallback: () => false }) as unknown as ExitTarget,
};

function fixUp(targets: FixUpTargets): void {
  // process.pid is cached at start-up (DESIGN.md fact 5).
  Object.defineProperty(targets.process, 'pid', {
    value: native.getpid(),
    configurable: true,
    enumerable: true,
    writable: true,
  });
  targets.math.random = childRandom();
  if (targets.workers.size !== 0) {
    for (const worker of targets.workers) worker.unref();
    targets.workers.clear();
  }
  forgetInheritedWatches(targets.watches);
  forgetInheritedChunks(targets.handles);
  becomeExitingChild(targets.exit);
}

// Chunks that a stream of the parent still held in its JavaScript buffer at the instant of
// fork are the parent's to write (the request that libuv was writing is completed without
// writing in native/loop_fork.cc). Dropped here, the child writes only its own data. Done
// through the Writable's state, checked for the shape it has in Node 20 to 24; a stream
// whose state looks different is left alone.
interface WritableStateShape {
  buffered: Array<{ chunk: { length: number }; callback: (error?: Error | null) => void }>;
  bufferedIndex: number;
  length: number;
  pendingcb: number;
  objectMode: boolean;
}

function forgetInheritedChunks(handles: unknown[]): void {
  for (const stream of handles) {
    const state = (stream as { _writableState?: WritableStateShape } | null)?._writableState;
    if (!state || !Array.isArray(state.buffered) || typeof state.bufferedIndex !== 'number') continue;
    if (typeof state.length !== 'number' || typeof state.pendingcb !== 'number') continue;
    const inherited = state.buffered.slice(state.bufferedIndex);
    if (inherited.length === 0) continue;
    state.buffered = [];
    state.bufferedIndex = 0;
    for (const { chunk } of inherited) state.length -= state.objectMode ? 1 : chunk.length;
    // Their callbacks would have run once written: they run, as for a completed write.
    state.pendingcb -= inherited.length;
    for (const { callback } of inherited) process.nextTick(callback, null);
  }
}

// Math.random would continue the parent's exact sequence (DESIGN.md fact 6), and V8 offers
// no way to reseed it. The child gets its own generator: 53 random bits per number, from the
// system's CSPRNG, drawn in blocks. (A reference to the old Math.random taken before fork
// still follows the parent's sequence.) The block is made on the first call: a child that
// never calls Math.random allocates nothing for it.
function childRandom(): () => number {
  let block: Uint32Array | undefined;
  let next = 0;
  return function random(): number {
    if (block === undefined || next === block.length) {
      block ??= new Uint32Array(2048);
      randomFillSync(block);
      next = 0;
    }
    const high = block[next++]! >>> 5; // 27 bits
    const low = block[next++]! >>> 6; // 26 bits
    return (high * 67108864 + low) / 9007199254740992;
  };
}

// The process, or the stand-in that rehearseChild() passes.
type ExitTarget = Pick<NodeJS.Process, 'on' | 'listenerCount' | 'hasUncaughtExceptionCaptureCallback'> & {
  reallyExit: (code: unknown) => never;
};

let inForkedChild = false;
let fatalError: { error: unknown } | undefined;

// How deep this process is in emitting 'exit'. A listener may fork: the child returns into
// the same emission, its event loop will not run again, and after the emission Node's
// shutdown would crash it (DESIGN.md fact 4). So the wrapper is in place in every process,
// forked or not, and a child ends when the outermost 'exit' emission returns.
let exitDepth = 0;
const emit = process.emit as (this: NodeJS.Process, ...args: unknown[]) => boolean;
process.emit = function emitThenEndChild(this: NodeJS.Process, event: string | symbol) {
  // `arguments`, not a rest parameter: no array built for every event of the process.
  if (event !== 'exit') return emit.apply(this, arguments as unknown as unknown[]);
  let result = false;
  exitDepth++;
  try {
    result = emit.apply(this, arguments as unknown as unknown[]);
  } catch (error) {
    // Node would print it and end with the exit code (1 if none); in a child its shutdown
    // would crash, so the child does it.
    if (!inForkedChild || exitDepth > 1) throw error;
    fatalError = { error };
    if (!process.exitCode) process.exitCode = 1;
  } finally {
    exitDepth--;
    // Node's shutdown waits for the platform's worker threads, which a fork() made before or
    // during the emission may still hold.
    if (supported && !inForkedChild && isMainThread && exitDepth === 0) native.releasePlatformWorkers();
  }
  if (inForkedChild && exitDepth === 0) endChild(arguments[1]);
  return result;
} as typeof process.emit;

// Every way a Node process ends emits 'exit' first and then runs Node's shutdown, which in a
// forked child joins threads that do not exist (DESIGN.md fact 4). So the child ends itself
// right after the last 'exit' listener has run. On an uncaught exception Node emits 'exit'
// before printing the error, so the child prints it (seen by 'uncaughtExceptionMonitor').
// process.exit() while 'exit' is being emitted (in a listener, or in a child forked there)
// goes straight to process.reallyExit, Node's shutdown: the child ends there too.
// The listener and the reallyExit wrapper are put in place here, in every process, and act
// only once inForkedChild is set: a child then makes one write where it installed them
// (a listener added, the process object written twice: copy-on-write page faults, each
// tens of microseconds in a child). The rehearsal installs them on its stand-in, never
// touching inForkedChild or the process.
function installChildExit(target: ExitTarget, active: () => boolean): void {
  target.on('uncaughtExceptionMonitor', (error) => {
    if (!active()) return;
    const handled =
      target.listenerCount('uncaughtException') > 0 || target.hasUncaughtExceptionCaptureCallback();
    if (!handled) fatalError = { error };
  });
  const reallyExit = target.reallyExit;
  target.reallyExit = function reallyExitOrEndChild(this: unknown, code: unknown): never {
    if (active()) endChild(code);
    if (supported && isMainThread && target === (process as unknown as ExitTarget)) native.releasePlatformWorkers();
    return reallyExit.call(this, code);
  };
}

installChildExit(process as unknown as ExitTarget, () => inForkedChild);

// A child whose loop runs dry ends here, not in Node's loop end, which would wait for ever
// for the worker tasks of a platform that has no threads in the child
// (native/child_loop_end.cc): 'beforeExit' first, as Node emits it (its listeners may give
// the loop more to do, and then this runs again when it is dry again), then 'exit'.
function childLoopRanDry(stage: 0 | 1): void {
  const code = process.exitCode ?? 0;
  if (stage === 0) {
    process.emit('beforeExit', code as number);
    return;
  }
  (process as unknown as { _exiting: boolean })._exiting = true;
  process.emit('exit', code as number);
}

if (supported && isMainThread) native.setChildLoopEnd(childLoopRanDry);

function becomeExitingChild(target: ExitTarget): void {
  if (target === (process as unknown as ExitTarget)) {
    fatalError = undefined;
    inForkedChild = true;
    return;
  }
  if (target.listenerCount('uncaughtExceptionMonitor') === 0) installChildExit(target, () => false);
}

function endChild(emittedCode: unknown): never {
  const exitCode = process.exitCode ?? emittedCode ?? 0;
  let code = Number(exitCode);
  if (!Number.isInteger(code)) code = 1;
  if (fatalError !== undefined) {
    const { error } = fatalError;
    const text = error instanceof Error ? inspect(error) : `Uncaught ${inspect(error)}`;
    process.stderr.write(`${text}\n\nNode.js ${process.version}\n`);
  }
  try {
    flushStdio();
  } finally {
    native._exit(code & 0xff);
  }
}
