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

/** A waiter's ticket; a forked child that inherits an asynchronous wait takes a new one. */
export interface Ticket {
  value: number;
}

/**
 * What every Condition does around its waits, whatever keeps its waiters: the lock's
 * methods, the predicate loops, and the wait itself (counted as a waiter before the lock is
 * given up, the lock taken back, a notification that came too late for an aborted wait
 * passed on). Subclasses supply the waiters' primitive operations.
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

  /** Counts one more waiter; its ticket. */
  protected abstract prepareWait(): number;
  /** Blocks until `ticket` is notified, or `ms` pass (-1: no limit); whether it was. */
  protected abstract waitTicket(ticket: number, ms: number): boolean;
  /** Takes `options` (before the lock is given up); the wait for a ticket, from the loop. */
  protected abstract asyncTicketWait(options?: number | AsyncWaitOptions | null): (ticket: Ticket) => Promise<boolean>;
  /** Stops counting `ticket` as a waiter; whether a notification was its own meanwhile. */
  protected abstract giveUpWait(ticket: number): boolean;
  /** Wakes up to `n` waiters. */
  protected abstract notifyWaiters(n: number): void;

  /**
   * Releases the lock, blocks the calling thread until notified (or `timeout` ms), then takes
   * the lock back (with `lock.recovered` set if its owner died meanwhile). Returns false on
   * timeout.
   */
  wait(timeout?: number | null): boolean {
    const ms = validateTimeout(timeout, 'timeout');
    const [held, ticket] = this.giveUpLock();
    let notified = false;
    try {
      notified = this.waitTicket(ticket, ms);
    } finally {
      for (let i = 0; i < held; i++) this.lock.acquire();
      if (!notified) notified = this.giveUpWait(ticket);
    }
    return notified;
  }

  /** As `wait`, without blocking the event loop. */
  async waitAsync(options?: number | AsyncWaitOptions | null): Promise<boolean> {
    const waitFor = this.asyncTicketWait(options);
    const [held, first] = this.giveUpLock();
    const ticket = { value: first };
    let notified = false;
    let failed = false;
    try {
      notified = await waitFor(ticket);
    } catch (error) {
      failed = true;
      throw error;
    } finally {
      try {
        for (let i = 0; i < held; i++) await this.lock.acquireAsync();
      } finally {
        if (!notified) notified = this.giveUpWait(ticket.value);
        // Aborted, but a notification was ours meanwhile: pass it on rather than lose it.
        if (failed && notified) this.notifyWaiters(1);
      }
    }
    return notified;
  }

  /** Wakes up to `n` waiters (the lock must be held). */
  notify(n = 1): void {
    validateInteger(n, 'n', 0, Number.MAX_SAFE_INTEGER);
    this.checkHeld();
    this.notifyWaiters(n);
  }

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

  // Counted as a waiter while still holding the lock, so a notify cannot slip in between.
  private giveUpLock(): [held: number, ticket: number] {
    this.checkHeld();
    const ticket = this.prepareWait();
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

  protected prepareWait(): number {
    return native.condPrepare(this.segment.buffer);
  }

  protected waitTicket(ticket: number, ms: number): boolean {
    return native.condWait(this.segment.buffer, ticket, ms);
  }

  protected asyncTicketWait(options?: number | AsyncWaitOptions | null): (ticket: Ticket) => Promise<boolean> {
    const buffer = this.segment.buffer;
    return async (ticket) => {
      const claim = (): true | null => (native.condWait(buffer, ticket.value, 0) ? true : null);
      // A forked child that inherits the wait is one more waiter, counted from then on.
      const inForkedChild = (): void => {
        ticket.value = native.condPrepare(buffer);
      };
      return (await waitAsync(buffer, claim, asyncWaitOptions(options), { inForkedChild })) ?? false;
    };
  }

  protected giveUpWait(ticket: number): boolean {
    return native.condGiveUp(this.segment.buffer, ticket);
  }

  protected notifyWaiters(n: number): void {
    native.condNotify(this.segment.buffer, n);
  }

  notifyAll(): void {
    this.checkHeld();
    this.notifyWaiters(2 ** 32);
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
