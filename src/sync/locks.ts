/**
 * Mutex and RLock (robust, process-shared pthread mutexes), Semaphore and BoundedSemaphore
 * (process-shared sem_t).
 */
import { ForkwiseError, PosixError } from '../posix/errors';
import { native } from '../posix/native';
import { validateInteger } from '../posix/validate';
import { fromHandle, segmentFor, type PrimitiveHandle } from './primitive';
import type { SharedMemory } from './shared_memory';
import { acquireTimeout, processId, runHolding, waitAsync, type AcquireOptions, type AsyncWaitOptions } from './waiting';

/** How often an asynchronous acquire looks for a dead owner, who never signals a release. */
const OWNER_DEATH_POLL_MS = 100;

/** How many times this object's thread holds the lock (the Condition's business). */
export const heldCount = Symbol('forkwise.heldCount');

abstract class RobustLock {
  /** The shared memory holding the lock. */
  protected readonly segment: SharedMemory;
  readonly #buffer: ArrayBuffer;
  // What this thread holds, and in which process: a forked child inherits these fields but
  // not the parent's hold (nor its recovery), as CPython resets its locks after a fork.
  #held = 0;
  #recovered = false;
  #pid = 0;

  protected constructor(private readonly kind: 'Mutex' | 'RLock') {
    this.segment = segmentFor(kind);
    this.#buffer = this.segment.buffer;
  }

  /**
   * Takes the lock, blocking the calling thread (at most `timeout` ms). Returns false if it
   * was not taken. When the previous owner died holding it, the lock is taken and
   * `recovered` is true.
   */
  acquire(options?: AcquireOptions | null): boolean {
    return this.took(this.attempt(acquireTimeout(options)));
  }

  /**
   * Takes the lock without blocking the event loop; resolves false after `timeout` ms. The
   * lock is owned by this JavaScript thread, as with `acquire()`.
   */
  acquireAsync(options: AsyncWaitOptions | null = {}): Promise<boolean> {
    const attempt = (): true | null => (this.took(this.attempt(0, true)) ? true : null);
    return waitAsync(this.#buffer, attempt, options, { sliceMs: OWNER_DEATH_POLL_MS }).then((taken) => taken === true);
  }

  /** Releases the lock. Throws EPERM when this thread does not hold it. */
  release(): void {
    native.mutexRelease(this.#buffer);
    if (this[heldCount] > 0) this.#held--;
    this.#recovered = false;
  }

  /** How many times this thread holds the lock through this object. */
  get [heldCount](): number {
    return this.#pid === processId ? this.#held : 0;
  }

  /**
   * Whether some thread (of any process) holds the lock. A holder that died leaves it taken
   * until the next acquire recovers it (as CPython's lock stays taken).
   */
  locked(): boolean {
    return native.mutexLocked(this.#buffer);
  }

  /** Runs `fn` holding the lock (taken with `acquireAsync`), and releases it even on throw. */
  withLock<T>(fn: () => T | Promise<T>): Promise<T> {
    return runHolding(() => this.acquireAsync(), () => this.release(), fn);
  }

  [Symbol.dispose](): void {
    this.release();
  }

  /** True when the last acquire found the previous owner dead; see `markConsistent()`. */
  get recovered(): boolean {
    return this.#recovered && this.#pid === processId;
  }

  /**
   * After repairing what the dead owner left half-done: makes the lock normal again.
   * Releasing a recovered lock without this makes it unusable for everyone.
   */
  markConsistent(): void {
    native.mutexConsistent(this.#buffer);
    this.#recovered = false;
  }

  get handle(): PrimitiveHandle<'Mutex' | 'RLock'> {
    return { kind: this.kind, name: this.segment.name };
  }

  // `queued`: an asynchronous attempt, for which a Mutex this thread holds already is busy
  // (another task of this thread holds it), not a deadlock.
  private attempt(timeout: number, queued = false): number {
    try {
      return native.mutexAcquire(this.#buffer, timeout);
    } catch (error) {
      if (queued && (error as PosixError).code === 'EDEADLK') return -1;
      if ((error as PosixError).code !== 'ENOTRECOVERABLE') throw error;
      throw new ForkwiseError(
        'ERR_LOCK_NOT_RECOVERABLE',
        `This ${this.kind}'s owner died and it was released without markConsistent(): it cannot be used any more`,
      );
    }
  }

  private took(outcome: number): boolean {
    if (outcome < 0) return false;
    if (this.#pid !== processId) {
      this.#pid = processId;
      this.#held = 0;
    }
    this.#held++;
    this.#recovered = outcome === 1;
    return true;
  }
}

/**
 * A process-shared, robust, error-checking mutex: acquiring it twice in one thread throws
 * EDEADLK, releasing it without holding it throws EPERM.
 *
 * @example
 * import { Mutex } from 'forkwise/sync';
 * const mutex = new Mutex();
 * mutex.acquire();
 * try { counter[0]++; } finally { mutex.release(); }
 */
export class Mutex extends RobustLock {
  constructor() {
    super('Mutex');
  }

  /** The Mutex that `handle` (from `.handle`, in any thread or process) describes. */
  static fromHandle(handle: PrimitiveHandle): Mutex {
    return fromHandle(handle, 'Mutex', 'Mutex', () => new Mutex());
  }
}

/**
 * A process-shared, robust, recursive mutex: the owning thread may take it again, and must
 * release it as many times.
 *
 * @example
 * import { RLock } from 'forkwise/sync';
 * const lock = new RLock();
 * lock.acquire(); lock.acquire(); lock.release(); lock.release();
 */
export class RLock extends RobustLock {
  constructor() {
    super('RLock');
  }

  /** The RLock that `handle` describes. */
  static fromHandle(handle: PrimitiveHandle): RLock {
    return fromHandle(handle, 'RLock', 'RLock', () => new RLock());
  }
}

export type Lock = Mutex | RLock;

/** The lock a handle describes, Mutex or RLock. */
export function lockFromHandle(handle: PrimitiveHandle): Lock {
  return (handle as PrimitiveHandle | undefined)?.kind === 'Mutex' ? Mutex.fromHandle(handle) : RLock.fromHandle(handle);
}

const SEM_VALUE_MAX = 2 ** 31 - 1;

/**
 * A process-shared counting semaphore (sem_t).
 *
 * @example
 * import { Semaphore } from 'forkwise/sync';
 * const slots = new Semaphore(2);
 * await slots.withLock(async () => { await download(); });
 */
export class Semaphore {
  protected readonly segment: SharedMemory;

  constructor(value = 1) {
    validateInteger(value, 'value', 0, SEM_VALUE_MAX);
    this.segment = segmentFor('Semaphore', value, this.bound(value));
  }

  /** Decrements the value, blocking the calling thread while it is 0 (at most `timeout` ms). */
  acquire(options?: AcquireOptions | null): boolean {
    return native.semAcquire(this.segment.buffer, acquireTimeout(options)) === 0;
  }

  /** Decrements the value without blocking the event loop; false after `timeout` ms. */
  acquireAsync(options: AsyncWaitOptions | null = {}): Promise<boolean> {
    const buffer = this.segment.buffer;
    return waitAsync(buffer, () => (native.semAcquire(buffer, 0) === 0 ? true : null), options).then(
      (taken) => taken === true,
    );
  }

  /** Increments the value by `n`, waking waiters. */
  release(n = 1): void {
    validateInteger(n, 'n', 1, SEM_VALUE_MAX);
    if (!native.semRelease(this.segment.buffer, n)) {
      throw new ForkwiseError('ERR_SEMAPHORE_RELEASED_TOO_MANY_TIMES', 'Semaphore released too many times');
    }
  }

  /** The current value. */
  getValue(): number {
    return native.semValue(this.segment.buffer);
  }

  /** Whether an acquire would have to wait (the value is 0). */
  locked(): boolean {
    return this.getValue() === 0;
  }

  /** Runs `fn` between `acquireAsync()` and `release()`, releasing even on throw. */
  withLock<T>(fn: () => T | Promise<T>): Promise<T> {
    return runHolding(() => this.acquireAsync(), () => this.release(), fn);
  }

  [Symbol.dispose](): void {
    this.release();
  }

  get handle(): PrimitiveHandle<'Semaphore' | 'BoundedSemaphore'> {
    return { kind: this instanceof BoundedSemaphore ? 'BoundedSemaphore' : 'Semaphore', name: this.segment.name };
  }

  /** The semaphore that `handle` describes (a BoundedSemaphore's with that class). */
  static fromHandle<S extends typeof Semaphore>(this: S, handle: PrimitiveHandle): InstanceType<S> {
    const kind = (this as typeof Semaphore) === BoundedSemaphore ? 'BoundedSemaphore' : 'Semaphore';
    return fromHandle(handle, kind, 'Semaphore', () => new this() as InstanceType<S>);
  }

  /** The value that release() must not pass (-1: none). */
  protected bound(_initial: number): number {
    return -1;
  }
}

/**
 * A Semaphore that may not be released above its initial value (throws
 * ERR_SEMAPHORE_RELEASED_TOO_MANY_TIMES).
 */
export class BoundedSemaphore extends Semaphore {
  protected override bound(initial: number): number {
    return initial;
  }
}

