/** The messaging classes of the platform fallback (loaded by the serializer for their handles). */
export { Pipe, Connection, type FallbackConnectionHandle } from './connection';
export { Queue, SimpleQueue, JoinableQueue, PriorityQueue, LifoQueue, type FallbackQueueHandle } from './queue';
