/**
 * `forkwise/sync`: shared memory and process-shared synchronisation primitives. Each works
 * across forked children, worker threads and spawned processes (`.handle` / `fromHandle`).
 * On the platform fallback (Windows, or FORKWISE_FORCE_FALLBACK=1) the locks, semaphores,
 * Event, Condition and Barrier are kept by their creator's service thread instead
 * (compat/sync.ts), with the same methods; what needs shared memory throws there.
 */
import * as locks from './locks';
import * as conditions from './condition';
import * as events from './event';
import * as barriers from './barrier';
import * as onFallback from '../compat/sync';
import { useFallback } from '../compat/platform';

export { SharedMemory, type SharedMemoryOptions } from './shared_memory';
export { type Lock } from './locks';
export { RWLock } from './rwlock';
export { type ConditionHandle } from './condition';
export { BrokenBarrierError, type BarrierHandle } from './barrier';
export { Value, SharedArray, type ElementType, type ValueHandle, type ValueOptions, type SharedArrayExtras } from './values';
export type { PrimitiveHandle } from './primitive';
export type { AcquireOptions, AsyncWaitOptions } from './waiting';

// Typed as the shared-memory classes, whose methods the fallback's have.
const pick = <T>(shm: T, fallback: unknown): T => (useFallback ? (fallback as T) : shm);
export const Mutex = pick(locks.Mutex, onFallback.Mutex);
export type Mutex = locks.Mutex;
export const RLock = pick(locks.RLock, onFallback.RLock);
export type RLock = locks.RLock;
export const Semaphore = pick(locks.Semaphore, onFallback.Semaphore);
export type Semaphore = locks.Semaphore;
export const BoundedSemaphore = pick(locks.BoundedSemaphore, onFallback.BoundedSemaphore);
export type BoundedSemaphore = locks.BoundedSemaphore;
export const Condition = pick(conditions.Condition, onFallback.Condition);
export type Condition = conditions.Condition;
export const Event = pick(events.Event, onFallback.Event);
export type Event = events.Event;
export const Barrier = pick(barriers.Barrier, onFallback.Barrier);
export type Barrier = barriers.Barrier;
