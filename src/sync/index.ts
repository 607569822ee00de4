/**
 * `forkwise/sync`: shared memory and process-shared synchronisation primitives. Each works
 * across forked children, worker threads and spawned processes (`.handle` / `fromHandle`).
 */
export { SharedMemory, type SharedMemoryOptions } from './shared_memory';
export { Mutex, RLock, Semaphore, BoundedSemaphore, type Lock } from './locks';
export { RWLock } from './rwlock';
export { Condition, type ConditionHandle } from './condition';
export { Event } from './event';
export { Barrier, BrokenBarrierError, type BarrierHandle } from './barrier';
export { Value, SharedArray, type ElementType, type ValueHandle, type ValueOptions, type SharedArrayExtras } from './values';
export type { PrimitiveHandle } from './primitive';
export type { AcquireOptions, AsyncWaitOptions } from './waiting';
