/**
 * fork() returning into JavaScript, and the JavaScript half of the child's fix-ups
 * (DESIGN.md facts 3-6 and 14). The native half (V8's MADV_DONTFORK regions, the event loop)
 * is in native/fork.cc.
 */
import { randomFillSync } from 'node:crypto';
import { isMainThread, type Worker } from 'node:worker_threads';
import { inspect } from 'node:util';
import { ForkwiseError } from './errors';
import { native, supported } from './native';
import { validateInteger } from './validate';
import { execv } from './exec';
import { flushStdio } from './stdio';
import { forgetInheritedWatches } from './wait';

/** True when V8 runs without background threads (`node --single-threaded`). */
export function isForkSafe(): boolean {
  return process.execArgv.some((arg) => arg === '--single-threaded' || arg === '--single_threaded');
}

/**
 * Replaces the process image with the same node, script and arguments plus
 * `--single-threaded` (the pid stays the same). Returns only if the process already was
 * fork-safe; throws if the exec fails.
 *
 * @example
 * import { reexecSingleThreaded, fork } from 'forkwise';
 * reexecSingleThreaded(); // the first line of a script that forks
 * const pid = fork();
 */
export function reexecSingleThreaded(): void {
  if (isForkSafe()) return;
  execv(process.execPath, [
    process.argv0,
    '--single-threaded',
    ...process.execArgv,
    ...process.argv.slice(1),
  ]);
}

/**
 * `_exit(2)`: ends the process at once with `code`, without `'exit'` listeners and without
 * flushing anything.
 *
 * @example
 * import { fork, _exit } from 'forkwise';
 * if (fork() === 0) _exit(3);
 */
export function _exit(code: number = 0): never {
  validateInteger(code, 'code', 0, 255);
  return native._exit(code);
}

// Workers alive in this process. A forked child has copies of their handles but not their
// threads, so it unreferences them: they must not keep the child alive (DESIGN.md fact 14).
const liveWorkers = new Set<Worker>();
process.on('worker', (worker: Worker) => {
  liveWorkers.add(worker);
  worker.once('exit', () => liveWorkers.delete(worker));
});

let warnedUnsafe = false;

/**
 * Forks the process: returns 0 in the child and the child's pid in the parent. The child
 * keeps running JavaScript, with its own event loop, `process.pid` and `Math.random`
 * sequence. Every way the child ends (`process.exit`, the loop running dry, an uncaught
 * exception) flushes stdout and stderr, runs `'exit'` listeners, and exits with `_exit`.
 * Without `node --single-threaded` the first call warns (`FORKWISE_UNSAFE_FORK`). Fork from
 * the main thread only. Work that the parent had in flight on the libuv thread pool never
 * completes in the child, and writes queued on the parent's streams are the parent's to
 * finish.
 *
 * @example
 * import { fork, waitpid } from 'forkwise';
 * const pid = fork();
 * if (pid === 0) {
 *   console.log('child', process.pid);
 *   process.exit(3);
 * }
 * console.log(waitpid(pid)); // { pid, status: 768, kind: 'exited', exitCode: 3 }
 */
export function fork(): number {
  if (supported && !isMainThread) {
    throw new ForkwiseError(
      'ERR_FORKWISE_NOT_MAIN_THREAD',
      'forkwise: fork() is only possible on the main thread; the child would have no main thread',
    );
  }
  const pid = native.fork();
  scheduleRestoreDontFork();
  if (pid === 0) {
    becomeChild();
  } else if (!warnedUnsafe && !isForkSafe()) {
    warnedUnsafe = true;
    process.emitWarning(
      'fork() in a process that was not started with --single-threaded: V8 background ' +
        'threads do not exist in the child, where garbage collection can hang. Start node ' +
        'with --single-threaded, call reexecSingleThreaded(), or use the forkserver start method.',
      { code: 'FORKWISE_UNSAFE_FORK' },
    );
  }
  return pid;
}

// fork() lifts Node's MADV_DONTFORK marks from V8's heap and leaves them lifted, so that
// forks made in a row are cheap; they are put back on the next turn of the event loop, before
// Node's own child_process forks would copy the heap (native/heap_regions.cc).
let restoreScheduled = false;
function scheduleRestoreDontFork(): void {
  if (restoreScheduled) return;
  restoreScheduled = true;
  setImmediate(() => {
    restoreScheduled = false;
    native.restoreDontFork();
  }).unref();
}

function becomeChild(): void {
  // process.pid is cached at start-up (DESIGN.md fact 5).
  Object.defineProperty(process, 'pid', {
    value: native.getpid(),
    configurable: true,
    enumerable: true,
    writable: true,
  });
  reseedMathRandom();
  for (const worker of liveWorkers) worker.unref();
  liveWorkers.clear();
  forgetInheritedWatches();
  forgetInheritedChunks();
  installChildExit();
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

function forgetInheritedChunks(): void {
  const getHandles = (process as unknown as { _getActiveHandles?: () => unknown[] })._getActiveHandles;
  const streams = new Set<unknown>([process.stdout, process.stderr, ...(getHandles?.call(process) ?? [])]);
  for (const stream of streams) {
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
// still follows the parent's sequence.)
function reseedMathRandom(): void {
  const block = new Uint32Array(2048);
  let next = block.length;
  Math.random = function random(): number {
    if (next === block.length) {
      randomFillSync(block);
      next = 0;
    }
    const high = block[next++]! >>> 5; // 27 bits
    const low = block[next++]! >>> 6; // 26 bits
    return (high * 67108864 + low) / 9007199254740992;
  };
}

let childExitInstalled = false;
let fatalError: { error: unknown } | undefined;

// Every way a Node process ends emits 'exit' first and then runs Node's shutdown, which in a
// forked child joins threads that do not exist (DESIGN.md fact 4). So the child ends itself
// right after the last 'exit' listener has run. On an uncaught exception Node emits 'exit'
// before printing the error, so the child prints it (seen by 'uncaughtExceptionMonitor').
function installChildExit(): void {
  fatalError = undefined;
  if (childExitInstalled) return;
  childExitInstalled = true;
  process.on('uncaughtExceptionMonitor', (error) => {
    const handled =
      process.listenerCount('uncaughtException') > 0 || process.hasUncaughtExceptionCaptureCallback();
    if (!handled) fatalError = { error };
  });
  const emit = process.emit;
  process.emit = function emitThenEndChild(this: NodeJS.Process, event: string | symbol, ...args: unknown[]) {
    const result = (emit as (...a: unknown[]) => boolean).call(this, event, ...args);
    if (event === 'exit') endChild(args[0]);
    return result;
  } as typeof process.emit;
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
