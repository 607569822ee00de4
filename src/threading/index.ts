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
export { type OrderedQueueOptions, type OrderedQueueHandle } from './ordered_queue';
import * as onShm from './ordered_queue';
import * as onFallback from '../compat/messaging';
import { useFallback } from '../compat/platform';

// On the platform fallback (Windows, or FORKWISE_FORCE_FALLBACK=1), the hub's ordered queues.
export const PriorityQueue = (useFallback ? onFallback.PriorityQueue : onShm.PriorityQueue) as unknown as typeof onShm.PriorityQueue;
export type PriorityQueue<T extends readonly [number, ...unknown[]] = [number, unknown]> = onShm.PriorityQueue<T>;
export const LifoQueue = (useFallback ? onFallback.LifoQueue : onShm.LifoQueue) as unknown as typeof onShm.LifoQueue;
export type LifoQueue<T = unknown> = onShm.LifoQueue<T>;
export { Queue, SimpleQueue, QueueEmpty, QueueFull, type QueueHandle, type QueueOptions, type QueueWaitOptions, type QueueSyncOptions } from './queue';
