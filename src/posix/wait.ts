/** waitpid, wait, waitpidAsync and the W* helpers on raw wait statuses. */
import { abortError, argError } from './errors';
import { native, supported, type NativeExitWatch } from './native';
import { signalName } from './signals';
import { validateInteger, validateOptions, validatePid } from './validate';

export const WNOHANG: number = supported ? native.WNOHANG : 1;
export const WUNTRACED: number = supported ? native.WUNTRACED : 2;
export const WCONTINUED: number = supported ? native.WCONTINUED : 8;

/** What waitpid reports for one child; `status` is the raw wait status. */
export type WaitResult = { pid: number; status: number } & (
  | { kind: 'exited'; exitCode: number }
  | { kind: 'signaled'; signal: NodeJS.Signals; coreDumped: boolean }
  | { kind: 'stopped'; signal: NodeJS.Signals }
  | { kind: 'continued' }
);

function validateStatus(status: unknown): number {
  return validateInteger(status, 'status', 0, 0xffff);
}

export const WIFEXITED = (status: number): boolean => (validateStatus(status) & 0x7f) === 0;
export const WEXITSTATUS = (status: number): number => (validateStatus(status) >> 8) & 0xff;
export const WIFSIGNALED = (status: number): boolean => {
  const low = validateStatus(status) & 0x7f;
  return low !== 0 && low !== 0x7f;
};
export const WTERMSIG = (status: number): number => validateStatus(status) & 0x7f;
export const WIFSTOPPED = (status: number): boolean => (validateStatus(status) & 0xff) === 0x7f;
export const WSTOPSIG = (status: number): number => (validateStatus(status) >> 8) & 0xff;
export const WIFCONTINUED = (status: number): boolean => validateStatus(status) === 0xffff;
export const WCOREDUMP = (status: number): boolean =>
  WIFSIGNALED(status) && (status & 0x80) !== 0;

/**
 * The exit code of a raw wait status, as CPython's `os.waitstatus_to_exitcode`: the exit
 * status if the process exited, `-signo` if a signal killed it.
 *
 * @example
 * waitstatusToExitcode(0x0300); // 3
 * waitstatusToExitcode(9);      // -9
 */
export function waitstatusToExitcode(status: number): number {
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  if (WIFSIGNALED(status)) return -WTERMSIG(status);
  throw argError(RangeError, 'ERR_INVALID_ARG_VALUE', `invalid wait status: ${status}`);
}

export function toWaitResult(pid: number, status: number): WaitResult {
  if (WIFEXITED(status)) return { pid, status, kind: 'exited', exitCode: WEXITSTATUS(status) };
  if (WIFSIGNALED(status)) {
    return { pid, status, kind: 'signaled', signal: signalName(WTERMSIG(status)), coreDumped: WCOREDUMP(status) };
  }
  if (WIFSTOPPED(status)) return { pid, status, kind: 'stopped', signal: signalName(WSTOPSIG(status)) };
  return { pid, status, kind: 'continued' };
}

/**
 * `waitpid(2)`: blocks until the child `pid` (or, as in C, any child for -1, a group for
 * 0 or -pgid) changes state. With `WNOHANG`, returns `null` when none has.
 *
 * @example
 * import { fork, waitpid, WNOHANG } from 'forkwise';
 * const pid = fork();
 * if (pid === 0) process.exit(0);
 * waitpid(pid, WNOHANG); // null while it runs
 * waitpid(pid);          // { kind: 'exited', exitCode: 0, ... }
 */
export function waitpid(pid: number, options: number = 0): WaitResult | null {
  validatePid(pid);
  validateInteger(options, 'options', 0, 0x7fffffff);
  const result = native.waitpid(pid, options);
  return result === null ? null : toWaitResult(result[0], result[1]);
}

/**
 * `wait(2)`: reaps any child. Note that this can reap a child of `child_process`, whose
 * exit Node then never sees: prefer {@link waitpid} with a pid.
 */
export function wait(): WaitResult {
  return waitpid(-1) as WaitResult;
}

// Armed watches of this process. A forked child inherits the parent's: they watch the
// parent's children, not its own, so the child drops them (their promises never settle there).
const armedWatches = new Set<NativeExitWatch>();

export function forgetInheritedWatches(watches: Set<NativeExitWatch> = armedWatches): void {
  if (watches.size === 0) return; // (clear() would allocate a new table in every child)
  for (const watch of watches) watch.cancel();
  watches.clear();
}

// pidfd where the kernel has it; FORKWISE_NO_PIDFD=1 selects the thread fallback (tests).
const usePidfd = process.env.FORKWISE_NO_PIDFD !== '1';

/**
 * Waits for the child `pid` to exit without blocking the event loop, and reaps it (and
 * never any other pid). Rejects with `ECHILD` if `pid` is not a child of this process, or
 * with an `AbortError` when `signal` aborts.
 *
 * @example
 * import { fork, waitpidAsync } from 'forkwise';
 * const pid = fork();
 * if (pid === 0) setTimeout(() => process.exit(2), 100);
 * else console.log(await waitpidAsync(pid)); // { kind: 'exited', exitCode: 2, ... }
 */
export function waitpidAsync(pid: number, options: { signal?: AbortSignal | null } | null = {}): Promise<WaitResult> {
  validateInteger(pid, 'pid', 1, 0x7fffffff);
  const signal = (validateOptions(options).signal ?? undefined) as AbortSignal | undefined;
  if (signal !== undefined && !(signal instanceof AbortSignal)) {
    throw argError(TypeError, 'ERR_INVALID_ARG_TYPE', 'The "options.signal" property must be an instance of AbortSignal.');
  }
  return new Promise<WaitResult>((resolve, reject) => {
    if (signal?.aborted) return reject(abortError(signal));
    let watch: NativeExitWatch | undefined;
    const finish = (): void => {
      if (watch) {
        watch.cancel();
        armedWatches.delete(watch);
        watch = undefined;
      }
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = (): void => {
      finish();
      reject(abortError(signal!));
    };
    const poll = (): void => {
      let result: WaitResult | null;
      try {
        result = waitpid(pid, WNOHANG);
      } catch (error) {
        finish();
        return reject(error);
      }
      if (result !== null) {
        finish();
        return resolve(result);
      }
      if (watch === undefined) {
        watch = new native.ExitWatch(pid, onExit, usePidfd);
        armedWatches.add(watch);
      }
    };
    const onExit = (): void => {
      if (watch) {
        watch.cancel();
        armedWatches.delete(watch);
        watch = undefined;
      }
      poll();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    poll();
  });
}
