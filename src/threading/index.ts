/**
 * `forkwise/threading`: CPython's `threading` on `worker_threads` — Thread, Timer,
 * currentThread, mainThread, enumerate, activeCount, excepthook — and the queues of
 * CPython's `queue` module; the synchronisation primitives are re-exported from
 * `forkwise/sync`. (Never imports the multiprocessing layer.)
 */
export * from '../sync/index';
export { Thread, currentThread, mainThread, enumerate, activeCount, type ThreadOptions } from './thread';
export { Timer, type TimerOptions } from './timer';
export { excepthook, setExcepthook, getExcepthook, type ExceptHook, type ExceptHookArgs } from './excepthook';
export { PriorityQueue, LifoQueue, type OrderedQueueOptions, type OrderedQueueHandle } from './ordered_queue';
export { Queue, SimpleQueue, QueueEmpty, QueueFull, type QueueHandle, type QueueOptions, type QueueWaitOptions, type QueueSyncOptions } from './queue';
