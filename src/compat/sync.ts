/**
 * The synchronization primitives of `forkwise/sync` on the platform fallback: the same
 * classes and methods, over objects kept by the hub of the thread that created them
 * (hub_sync.ts), so they work between threads and processes alike. A lock belongs to the
 * thread that took it; one that ends holding it leaves it recovered for the next acquirer.
 * (`RWLock`, `Value`, `SharedArray` and `SharedMemory` need shared memory: not here.)
 */
import { abortError, invalidArgType, invalidArgValue } from '../posix/errors';
import { validateInteger, validateOptions } from '../posix/validate';
import { heldCount } from '../sync/locks';
import { ConditionBase, type Ticket } from '../sync/condition';
import {
  acquireTimeout,
  asyncWaitOptions,
  FOREVER,
  runHolding,
  validateSignal,
  validateTimeout,
  type AcquireOptions,
  type AsyncWaitOptions,
} from '../sync/waiting';
import { registerByHandle } from '../messaging/serializer';
import type { CreateOptions, ObjectKind } from './hub';
import { ObjectUse, refOf, type ObjectHandle } from './object';
import { theService } from './service';
import type { ObjectRef } from './service_main';

type Kind = Exclude<ObjectKind, 'queue' | 'pipe'>;

export interface FallbackPrimitiveHandle extends ObjectHandle {
  kind: `Fallback${Kind | 'BoundedSemaphore'}`;
}

let adopted: ObjectRef | undefined;

// A new object in this thread's hub, or the one a handle names (fromHandle).
function useOf(kind: Kind, options: CreateOptions = {}): ObjectUse {
  const ref = adopted ?? (theService().callSync({ op: 'create', kind, ...options }) as ObjectRef);
  adopted = undefined;
  return new ObjectUse(ref, kind);
}

function adopt<T>(handle: unknown, kind: Kind | 'BoundedSemaphore', build: () => T): T {
  if (handle === null || typeof handle !== 'object') throw invalidArgType('handle', 'an object', handle);
  const ref = (handle as { kind?: unknown }).kind === `Fallback${kind}` ? refOf(handle) : undefined;
  if (!ref) throw invalidArgValue('handle', handle, `is not the handle of a ${kind}`);
  adopted = ref;
  try {
    return build();
  } finally {
    adopted = undefined;
  }
}

function waitOptions(options: number | AsyncWaitOptions | null | undefined): { timeout: number; signal: AbortSignal | undefined } {
  const { timeout, signal } = (validateOptions(asyncWaitOptions(options)) ?? {}) as AsyncWaitOptions;
  validateSignal(signal);
  return { timeout: validateTimeout(timeout, 'options.timeout'), signal: signal ?? undefined };
}

abstract class HubLockUser {
  readonly #use: ObjectUse;
  #held = 0;
  #recovered = false;

  protected constructor(readonly kind: 'Mutex' | 'RLock') {
    this.#use = useOf(kind);
  }

  acquire(options?: AcquireOptions | null): boolean {
    return this.#took(this.#use.callSync('acquire', { timeout: acquireTimeout(options) }) as number);
  }

  async acquireAsync(options: AsyncWaitOptions | null = {}): Promise<boolean> {
    const { timeout, signal } = waitOptions(options);
    // `queued`: held by another task of this thread is busy, not a deadlock.
    return this.#took((await this.#use.call('acquire', { timeout, queued: true }, signal)) as number);
  }

  release(): void {
    this.#use.callSync('release', {});
    if (this.#held > 0) this.#held--;
    this.#recovered = false;
  }

  get [heldCount](): number {
    return this.#held;
  }

  locked(): boolean {
    return this.#use.callSync('locked', {}) as boolean;
  }

  withLock<T>(fn: () => T | Promise<T>): Promise<T> {
    return runHolding(() => this.acquireAsync(), () => this.release(), fn);
  }

  [Symbol.dispose](): void {
    this.release();
  }

  get recovered(): boolean {
    return this.#recovered;
  }

  markConsistent(): void {
    this.#use.callSync('markConsistent', {});
    this.#recovered = false;
  }

  get handle(): FallbackPrimitiveHandle {
    return { kind: `Fallback${this.kind}`, ...this.#use.ref };
  }

  #took(outcome: number): boolean {
    if (outcome < 0) return false;
    this.#held++;
    this.#recovered = outcome === 1;
    return true;
  }
}

export class Mutex extends HubLockUser {
  constructor() {
    super('Mutex');
  }

  static fromHandle(handle: FallbackPrimitiveHandle): Mutex {
    return adopt(handle, 'Mutex', () => new Mutex());
  }
}

export class RLock extends HubLockUser {
  constructor() {
    super('RLock');
  }

  static fromHandle(handle: FallbackPrimitiveHandle): RLock {
    return adopt(handle, 'RLock', () => new RLock());
  }
}

type Lock = Mutex | RLock;

const SEM_VALUE_MAX = 2 ** 31 - 1;

export class Semaphore {
  readonly #use: ObjectUse;

  constructor(value = 1) {
    validateInteger(value, 'value', 0, SEM_VALUE_MAX);
    this.#use = useOf('Semaphore', { value, bound: this.bound(value) });
  }

  acquire(options?: AcquireOptions | null): boolean {
    return this.#use.callSync('acquire', { timeout: acquireTimeout(options) }) === 0;
  }

  async acquireAsync(options: AsyncWaitOptions | null = {}): Promise<boolean> {
    const { timeout, signal } = waitOptions(options);
    return (await this.#use.call('acquire', { timeout }, signal)) === 0;
  }

  release(n = 1): void {
    validateInteger(n, 'n', 1, SEM_VALUE_MAX);
    this.#use.callSync('release', { n });
  }

  getValue(): number {
    return this.#use.callSync('value', {}) as number;
  }

  locked(): boolean {
    return this.getValue() === 0;
  }

  withLock<T>(fn: () => T | Promise<T>): Promise<T> {
    return runHolding(() => this.acquireAsync(), () => this.release(), fn);
  }

  [Symbol.dispose](): void {
    this.release();
  }

  get handle(): FallbackPrimitiveHandle {
    return { kind: this instanceof BoundedSemaphore ? 'FallbackBoundedSemaphore' : 'FallbackSemaphore', ...this.#use.ref };
  }

  static fromHandle<S extends typeof Semaphore>(this: S, handle: FallbackPrimitiveHandle): InstanceType<S> {
    const kind = (this as typeof Semaphore) === BoundedSemaphore ? 'BoundedSemaphore' : 'Semaphore';
    return adopt(handle, kind, () => new this() as InstanceType<S>);
  }

  protected bound(_initial: number): number {
    return -1;
  }
}

export class BoundedSemaphore extends Semaphore {
  protected override bound(initial: number): number {
    return initial;
  }
}

export class Event {
  readonly #use = useOf('Event');

  set(): void {
    this.#use.callSync('set', {});
  }

  clear(): void {
    this.#use.callSync('clear', {});
  }

  isSet(): boolean {
    return this.#use.callSync('isSet', {}) as boolean;
  }

  wait(timeout?: number | null): boolean {
    return this.#use.callSync('wait', { timeout: validateTimeout(timeout, 'timeout') }) as boolean;
  }

  async waitAsync(options?: number | AsyncWaitOptions | null): Promise<boolean> {
    const { timeout, signal } = waitOptions(options);
    return (await this.#use.call('wait', { timeout }, signal)) as boolean;
  }

  get handle(): FallbackPrimitiveHandle {
    return { kind: 'FallbackEvent', ...this.#use.ref };
  }

  static fromHandle(handle: FallbackPrimitiveHandle): Event {
    return adopt(handle, 'Event', () => new Event());
  }
}

export interface FallbackConditionHandle extends FallbackPrimitiveHandle {
  lock: FallbackPrimitiveHandle;
}

export class Condition extends ConditionBase<Lock> {
  readonly #use: ObjectUse;

  constructor(lock?: Lock) {
    if (lock !== undefined && !(lock instanceof Mutex) && !(lock instanceof RLock)) {
      throw invalidArgType('lock', 'an instance of Mutex or RLock', lock);
    }
    const use = useOf('Condition');
    super(lock ?? new Mutex());
    this.#use = use;
  }

  protected prepareWait(): number {
    return this.#use.callSync('prepare', {}) as number;
  }

  protected waitTicket(ticket: number, ms: number): boolean {
    return this.#use.callSync('wait', { ticket, timeout: ms }) as boolean;
  }

  protected asyncTicketWait(options?: number | AsyncWaitOptions | null): (ticket: Ticket) => Promise<boolean> {
    const { timeout, signal } = waitOptions(options);
    if (signal?.aborted) throw abortError(signal);
    return async (ticket) => (await this.#use.call('wait', { ticket: ticket.value, timeout }, signal)) as boolean;
  }

  protected giveUpWait(ticket: number): boolean {
    return this.#use.callSync('giveUp', { ticket }) as boolean;
  }

  protected notifyWaiters(n: number): void {
    this.#use.callSync('notify', { n });
  }

  notifyAll(): void {
    this.checkHeld();
    this.notifyWaiters(Number.MAX_SAFE_INTEGER);
  }

  get handle(): FallbackConditionHandle {
    return { kind: 'FallbackCondition', ...this.#use.ref, lock: this.lock.handle };
  }

  static fromHandle(handle: FallbackConditionHandle): Condition {
    const lockHandle = (handle as Partial<FallbackConditionHandle> | null)?.lock;
    const lock = lockHandle?.kind === 'FallbackMutex' ? Mutex.fromHandle(lockHandle) : RLock.fromHandle(lockHandle as FallbackPrimitiveHandle);
    return adopt(handle, 'Condition', () => new Condition(lock));
  }
}

export interface FallbackBarrierHandle extends FallbackPrimitiveHandle {
  parties: number;
  timeout: number | null;
}

export class Barrier {
  readonly #use: ObjectUse;
  readonly #timeout: number;
  readonly #parties: number;

  constructor(parties: number, options: { timeout?: number | null } | null = {}) {
    validateInteger(parties, 'parties', 1, 2 ** 31 - 1);
    const { timeout } = validateOptions(options) ?? {};
    this.#timeout = validateTimeout(timeout, 'options.timeout');
    this.#parties = parties;
    this.#use = useOf('Barrier', { value: parties });
  }

  wait(timeout?: number | null): number {
    const ms = timeout == null ? this.#timeout : validateTimeout(timeout, 'timeout');
    return this.#use.callSync('wait', { timeout: ms }) as number;
  }

  async waitAsync(options?: number | AsyncWaitOptions | null): Promise<number> {
    const { timeout: given, signal } = (validateOptions(asyncWaitOptions(options)) ?? {}) as AsyncWaitOptions;
    const timeout = given == null ? this.#timeout : validateTimeout(given, 'options.timeout');
    validateSignal(signal); // before arriving: a bad argument must not break the barrier
    return (await this.#use.call('wait', { timeout }, signal ?? undefined)) as number;
  }

  reset(): void {
    this.#use.callSync('reset', {});
  }

  abort(): void {
    this.#use.callSync('abort', {});
  }

  get parties(): number {
    return this.#parties;
  }

  get nWaiting(): number {
    return (this.#use.callSync('state', {}) as [number, number, boolean])[1];
  }

  get broken(): boolean {
    return (this.#use.callSync('state', {}) as [number, number, boolean])[2];
  }

  get handle(): FallbackBarrierHandle {
    return { kind: 'FallbackBarrier', ...this.#use.ref, parties: this.#parties, timeout: this.#timeout === FOREVER ? null : this.#timeout };
  }

  static fromHandle(handle: FallbackBarrierHandle): Barrier {
    const { parties, timeout } = (handle ?? {}) as Partial<FallbackBarrierHandle>;
    if (!Number.isInteger(parties)) throw invalidArgValue('handle', handle, 'is not the handle of a Barrier');
    return adopt(handle, 'Barrier', () => new Barrier(parties!, { timeout }));
  }
}

registerByHandle(Mutex, ['FallbackMutex'], (h: FallbackPrimitiveHandle) => Mutex.fromHandle(h));
registerByHandle(RLock, ['FallbackRLock'], (h: FallbackPrimitiveHandle) => RLock.fromHandle(h));
registerByHandle(Semaphore, ['FallbackSemaphore'], (h: FallbackPrimitiveHandle) => Semaphore.fromHandle(h));
registerByHandle(BoundedSemaphore, ['FallbackBoundedSemaphore'], (h: FallbackPrimitiveHandle) => BoundedSemaphore.fromHandle(h));
registerByHandle(Event, ['FallbackEvent'], (h: FallbackPrimitiveHandle) => Event.fromHandle(h));
registerByHandle(Condition, ['FallbackCondition'], (h: FallbackConditionHandle) => Condition.fromHandle(h));
registerByHandle(Barrier, ['FallbackBarrier'], (h: FallbackBarrierHandle) => Barrier.fromHandle(h));
