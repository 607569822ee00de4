/**
 * Condition: waiting for a notification while giving up a Mutex or RLock, across threads
 * and processes. Waiters and notifications are counted in shared memory (native/sync.cc):
 * notify(n) wakes n of the parties waiting at that moment (fewer if fewer wait), in no
 * particular order; a party that starts waiting later does not take their notification.
 */
import { ForkwiseError, invalidArgType } from '../posix/errors';
import { native } from '../posix/native';
import { validateInteger } from '../posix/validate';
import { heldCount, lockFromHandle, Mutex, RLock, type Lock } from './locks';
import { checkHandle, fromHandle, segmentFor, type PrimitiveHandle } from './primitive';
import type { SharedMemory } from './shared_memory';
import {
  asyncWaitOptions,
  validateTimeout,
  waitAsync,
  type AcquireOptions,
  type AsyncWaitOptions,
} from './waiting';

export interface ConditionHandle extends PrimitiveHandle<'Condition'> {
  lock: PrimitiveHandle;
}

/** What a Condition needs of its lock (a Mutex or RLock, or the platform fallback's). */
export interface ConditionLock {
  acquire(options?: AcquireOptions | null): boolean;
  acquireAsync(options?: AsyncWaitOptions | null): Promise<boolean>;
  release(): void;
  locked(): boolean;
  withLock<T>(fn: () => T | Promise<T>): Promise<T>;
  readonly [heldCount]: number;
}

/**
 * What every Condition does around its waits, whatever keeps its waiters: the lock's
 * methods, the predicate loops, and giving up the lock for a wait.
 */
export abstract class ConditionBase<L extends ConditionLock> {
  /** The lock that `wait` gives up while waiting. */
  readonly lock: L;

  protected constructor(lock: L) {
    this.lock = lock;
  }

  acquire(options?: AcquireOptions | null): boolean {
    return this.lock.acquire(options);
  }

  acquireAsync(options?: AsyncWaitOptions | null): Promise<boolean> {
    return this.lock.acquireAsync(options);
  }

  release(): void {
    this.lock.release();
  }

  locked(): boolean {
    return this.lock.locked();
  }

  withLock<T>(fn: () => T | Promise<T>): Promise<T> {
    return this.lock.withLock(fn);
  }

  [Symbol.dispose](): void {
    this.lock.release();
  }

  /**
   * Releases the lock, blocks the calling thread until notified (or `timeout` ms), then takes
   * the lock back (with `lock.recovered` set if its owner died meanwhile). Returns false on
   * timeout.
   */
  abstract wait(timeout?: number | null): boolean;

  /** As `wait`, without blocking the event loop. */
  abstract waitAsync(options?: number | AsyncWaitOptions | null): Promise<boolean>;

  /** Waits until `predicate()` is truthy (checked with the lock held); returns its last value. */
  waitFor<T>(predicate: () => T, timeout?: number | null): T {
    const deadline = deadlineOf(timeout);
    let result = predicate();
    while (!result) {
      const left = deadline - performance.now();
      if (left <= 0) break;
      this.wait(left === Infinity ? undefined : left);
      result = predicate();
    }
    return result;
  }

  /** As `waitFor`, without blocking the event loop. */
  async waitForAsync<T>(predicate: () => T, timeout?: number | null): Promise<T> {
    const deadline = deadlineOf(timeout);
    let result = predicate();
    while (!result) {
      const left = deadline - performance.now();
      if (left <= 0) break;
      await this.waitAsync(left === Infinity ? undefined : left);
      result = predicate();
    }
    return result;
  }

  protected checkHeld(): void {
    if (this.lock[heldCount] === 0) {
      throw new ForkwiseError('ERR_LOCK_NOT_OWNED', 'The condition\'s lock is not held by this thread');
    }
  }

  // Counted as a waiter (`prepare` gives its ticket) while still holding the lock, so a
  // notify cannot slip in between.
  protected giveUpLock(prepare: () => number): [held: number, ticket: number] {
    this.checkHeld();
    const ticket = prepare();
    const held = this.lock[heldCount];
    for (let i = 0; i < held; i++) this.lock.release();
    return [held, ticket];
  }
}

function deadlineOf(timeout: number | undefined | null): number {
  const ms = validateTimeout(timeout, 'timeout');
  return ms < 0 ? Infinity : performance.now() + ms;
}

/**
 * @example
 * import { Condition } from 'forkwise/sync';
 * const cond = new Condition();
 * await cond.withLock(() => cond.waitForAsync(() => queue.length > 0));
 */
export class Condition extends ConditionBase<Lock> {
  private readonly segment: SharedMemory;

  /**
   * `lock` defaults to a new Mutex (CPython's default is an RLock): an RLock belongs to a
   * thread, so the async tasks of one thread would all hold it at once.
   */
  constructor(lock?: Lock) {
    if (lock !== undefined && !(lock instanceof Mutex) && !(lock instanceof RLock)) {
      throw invalidArgType('lock', 'an instance of Mutex or RLock', lock);
    }
    const segment = segmentFor('Condition');
    super(lock ?? new Mutex());
    this.segment = segment;
  }

  wait(timeout?: number | null): boolean {
    const ms = validateTimeout(timeout, 'timeout');
    const [held, ticket] = this.giveUpLock(() => native.condPrepare(this.segment.buffer));
    let notified = false;
    try {
      notified = native.condWait(this.segment.buffer, ticket, ms);
    } finally {
      for (let i = 0; i < held; i++) this.lock.acquire();
      if (!notified) notified = native.condGiveUp(this.segment.buffer, ticket);
    }
    return notified;
  }

  async waitAsync(options?: number | AsyncWaitOptions | null): Promise<boolean> {
    const buffer = this.segment.buffer;
    const [held, firstTicket] = this.giveUpLock(() => native.condPrepare(buffer));
    let ticket = firstTicket;
    let notified = false;
    let failed = false;
    try {
      const claim = (): true | null => (native.condWait(buffer, ticket, 0) ? true : null);
      // A forked child that inherits the wait is one more waiter, counted from then on.
      const inForkedChild = (): void => {
        ticket = native.condPrepare(buffer);
      };
      notified = (await waitAsync(buffer, claim, asyncWaitOptions(options), { inForkedChild })) ?? false;
    } catch (error) {
      failed = true;
      throw error;
    } finally {
      try {
        for (let i = 0; i < held; i++) await this.lock.acquireAsync();
      } finally {
        if (!notified) notified = native.condGiveUp(buffer, ticket);
        // Aborted, but a notification was ours meanwhile: pass it on rather than lose it.
        if (failed && notified) native.condNotify(buffer, 1);
      }
    }
    return notified;
  }

  /** Wakes up to `n` waiters (the lock must be held). */
  notify(n = 1): void {
    validateInteger(n, 'n', 0, Number.MAX_SAFE_INTEGER);
    this.checkHeld();
    native.condNotify(this.segment.buffer, n);
  }

  notifyAll(): void {
    this.checkHeld();
    native.condNotify(this.segment.buffer, 2 ** 32);
  }

  get handle(): ConditionHandle {
    return { kind: 'Condition', name: this.segment.name, lock: this.lock.handle };
  }

  static fromHandle(handle: ConditionHandle): Condition {
    checkHandle(handle, 'Condition');
    const lock = lockFromHandle(handle.lock);
    return fromHandle(handle, 'Condition', 'Condition', () => new Condition(lock));
  }
}
