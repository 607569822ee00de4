/**
 * The classes of the platform fallback whose handles cross between threads and processes;
 * loaded by the serializer when the first such handle arrives (their modules register them).
 */
export * from './messaging';
export { Mutex, RLock, Semaphore, BoundedSemaphore, Event, Condition, Barrier } from './sync';
