/**
 * fork() returning into JavaScript, the fork-safety helpers and `_exit`. What the child
 * fixes in itself is in child.ts (JavaScript) and native/fork.cc (V8's regions, the loop).
 */
import { inspect } from 'node:util';
import { isMainThread } from 'node:worker_threads';
import { becomeChild, rehearseChild, runAfterForkInParent, runBeforeFork } from './child';
import { ForkwiseError } from './errors';
import { native, supported } from './native';
import { validateInteger } from './validate';
import { execv } from './exec';
import { emptyYoungGeneration } from './heap';

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

// _exit() is what nearly every forked child calls, and the parent never does: each child
// compiled it (a third of a bare child's CPU time in perf). So fork() runs it here first,
// with the addon's _exit swapped for a function that returns.
function rehearseExit(): void {
  const exit = native._exit;
  native._exit = ((code: number) => code) as unknown as typeof native._exit;
  try {
    _exit(0);
  } finally {
    native._exit = exit;
  }
}

let warnedUnsafe = false;
// Node's flags do not change while it runs: read once, not after every fork (whose parent
// then writes to pages it shares with the child, each write a page fault).
const startedForkSafe = isForkSafe();

/**
 * Forks the process: returns 0 in the child and the child's pid in the parent. The child
 * keeps running JavaScript, with its own event loop, `process.pid` and `Math.random`
 * sequence. Every way the child ends (`process.exit`, the loop running dry, an uncaught
 * exception) flushes stdout and stderr, runs `'exit'` listeners, and exits with `_exit`.
 * A child forked inside an `'exit'` listener runs the rest of that emission's listeners
 * and ends the same way, with the code the process was exiting with unless it sets another
 * (its event loop does not run again).
 * Without `node --single-threaded` the first call warns (`FORKWISE_UNSAFE_FORK`). Fork from
 * the main thread only. A parent whose young generation holds more than 1 MB collects it
 * first, once, so that no child inherits that collection (see {@link warmup}). Work that the
 * parent had in flight on the libuv thread pool never completes in the child, and writes
 * queued on the parent's streams are the parent's to finish.
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
  // The child's fix-ups compiled here (child.ts), and no scavenge left for the child (heap.ts).
  if (supported) {
    rehearseChild();
    rehearseExit();
    emptyYoungGeneration();
  }
  runBeforeFork();
  let pid: number;
  try {
    pid = native.fork(startedForkSafe);
  } catch (error) {
    runAfterForkInParent(undefined);
    throw error;
  }
  if (pid !== 0) runAfterForkInParent(pid);
  scheduleRestoreDontFork();
  if (pid === 0) {
    try {
      becomeChild();
    } catch (error) {
      // Never return into the parent's code path in the child.
      process.stderr.write(`forkwise: fork child: ${inspect(error)}\n`);
      native._exit(70);
    }
  } else if (!warnedUnsafe && !startedForkSafe) {
    warnedUnsafe = true;
    process.emitWarning(
      'fork() in a process that was not started with --single-threaded: V8 background ' +
        'threads do not exist in the child, where garbage collection can hang. Start node ' +
        'with --single-threaded or call reexecSingleThreaded() first.',
      { code: 'FORKWISE_UNSAFE_FORK' },
    );
  }
  return pid;
}

// fork() lifts Node's MADV_DONTFORK marks from V8's heap and holds Node's platform worker
// threads, and leaves both so, so that forks made in a row are cheap; on the next turn of the
// event loop the marks are put back, before Node's own child_process forks would copy the
// heap (native/heap_regions.cc), and the threads go back to their queue
// (native/platform_park.cc). The immediate is ref'd: Node waits for every worker task before
// it exits, so the loop must not run dry with the threads held. (Ending the process in the
// same turn releases them too: child.ts.)
let restoreScheduled = false;
function scheduleRestoreDontFork(): void {
  if (restoreScheduled) return;
  restoreScheduled = true;
  setImmediate(() => {
    restoreScheduled = false;
    native.restoreDontFork();
    native.releasePlatformWorkers();
  });
}
