/**
 * The two ways to wait, as the primitives share them: arguments (`blocking`, `timeout`,
 * `signal`) turned into one timeout in milliseconds for the native calls, and the
 * asynchronous loop in which the JavaScript thread only makes non-blocking attempts while a
 * helper thread sleeps on the primitive's futex between them (native/sync.cc explains why).
 */
import { abortError, argError, invalidArgType, invalidArgValue, outOfRange } from '../posix/errors';
import { afterForkInChild } from '../posix/child';
import { native, type NativeSeqWatch } from '../posix/native';
import { validateOptions } from '../posix/validate';

/** Native timeout: -1 waits for ever, 0 does not wait. */
export const FOREVER = -1;

/** Options of a blocking acquire; `null` for either means not given. */
export interface AcquireOptions {
  /** false: only try (default true). */
  blocking?: boolean | null;
  /** Give up after this many milliseconds (default: wait for ever). */
  timeout?: number | null;
}

/** Options of an asynchronous wait; `null` for either means not given. */
export interface AsyncWaitOptions {
  /** Give up after this many milliseconds: the promise resolves false. */
  timeout?: number | null;
  /** Aborting rejects the promise with an AbortError. */
  signal?: AbortSignal | null;
}

export function validateTimeout(value: unknown, name: string): number {
  if (value === undefined || value === null || value === Infinity) return FOREVER;
  if (typeof value !== 'number') throw invalidArgType(name, 'of type number', value);
  if (!(value >= 0)) throw outOfRange(name, '>= 0', value);
  return value;
}

export function validateSignal(signal: unknown): void {
  if (signal != null && !(signal instanceof AbortSignal)) {
    throw argError(TypeError, 'ERR_INVALID_ARG_TYPE', 'The "options.signal" property must be an instance of AbortSignal.');
  }
}

/** `{ blocking, timeout }` of a synchronous acquire, as a native timeout. */
export function acquireTimeout(options: AcquireOptions | null | undefined): number {
  if (options == null) return FOREVER; // the common case, on every acquire
  const { blocking: given, timeout } = validateOptions(options) as AcquireOptions;
  const blocking = given ?? true;
  if (typeof blocking !== 'boolean') throw invalidArgType('options.blocking', 'of type boolean', blocking);
  if (!blocking) {
    if (timeout != null) throw invalidArgValue('options.timeout', timeout, 'cannot be given with blocking: false');
    return 0;
  }
  return validateTimeout(timeout, 'options.timeout');
}

/** A wait's `timeout` given as a number or as `{ timeout, signal }`. */
export function asyncWaitOptions(
  value: number | AsyncWaitOptions | null | undefined,
): AsyncWaitOptions | null | undefined {
  return typeof value === 'number' ? { timeout: value } : value;
}

/** This process's pid, kept current across fork(): reading process.pid costs ~20 ns. */
export let processId = process.pid;

// Pending asynchronous waits: in a forked child their helper threads are gone, so each one
// starts a new helper there (and the child's loop is not held by the parent's).
const pending = new Set<() => void>();
afterForkInChild((rehearsal) => {
  if (rehearsal) return;
  processId = process.pid;
  for (const rearm of [...pending]) rearm();
});

/**
 * Resolves with what `attempt` returns once it returns non-null, or null when the timeout
 * passes. `attempt` runs on this thread and must not block; between attempts a helper thread
 * waits (at most `sliceMs`) for the primitive's sequence word to change. `inForkedChild`
 * runs in a forked child that inherited the wait, before it goes on there.
 */
export function waitAsync<T>(
  buffer: ArrayBuffer,
  attempt: () => T | null,
  options: AsyncWaitOptions | null | undefined,
  { sliceMs = FOREVER, inForkedChild }: { sliceMs?: number; inForkedChild?: () => void } = {},
): Promise<T | null> {
  // Everything, bad arguments included, ends as a rejection: the caller awaits.
  return new Promise<T | null>((resolve, reject) => {
    const { signal: givenSignal, timeout: given } = validateOptions(options) as AsyncWaitOptions;
    const timeout = validateTimeout(given, 'options.timeout');
    validateSignal(givenSignal);
    const signal = givenSignal ?? undefined;
    if (signal?.aborted) return reject(abortError(signal));
    const deadline = timeout === FOREVER ? Infinity : performance.now() + timeout;
    let watch: NativeSeqWatch | undefined;
    const settle = (): void => {
      watch?.cancel();
      watch = undefined;
      pending.delete(rearm);
      signal?.removeEventListener('abort', onAbort);
    };
    const onAbort = (): void => {
      settle();
      reject(abortError(signal!));
    };
    const step = (): void => {
      watch = undefined;
      try {
        const seen = native.syncSeq(buffer); // before the attempt: a release after it changes seq
        const outcome = attempt();
        if (outcome !== null) {
          settle();
          return resolve(outcome);
        }
        const left = deadline - performance.now();
        if (left <= 0) {
          settle();
          return resolve(null);
        }
        const slice = sliceMs === FOREVER ? left : Math.min(left, sliceMs);
        watch = new native.SeqWatch(buffer, seen, slice === Infinity ? FOREVER : slice, step);
        pending.add(rearm);
      } catch (error) {
        settle();
        reject(error);
      }
    };
    const rearm = (): void => {
      watch?.cancel();
      inForkedChild?.();
      step();
    };
    signal?.addEventListener('abort', onAbort, { once: true });
    step();
  });
}

/** `withLock`: runs `fn` between an asynchronous acquire and the release, even on throw. */
export async function runHolding<T>(
  acquire: () => Promise<boolean>,
  release: () => void,
  fn: () => T | Promise<T>,
): Promise<T> {
  if (typeof fn !== 'function') throw invalidArgType('fn', 'of type function', fn);
  await acquire();
  try {
    return await fn();
  } finally {
    release();
  }
}
