/**
 * The queues of CPython's `queue` module for threads. They are the messaging layer's shared
 * memory queues (queue.ts there), so the same queue also works between processes, and a
 * thread blocks in `getSync` / `putSync` while the main thread awaits `get` / `put`:
 *
 * - `Queue`: FIFO with `maxsize`, and `taskDone()` / `join()` counting unfinished items
 *   (CPython's `queue.Queue`; the messaging layer's `JoinableQueue`);
 * - `SimpleQueue`: unbounded FIFO without task counting (CPython's `queue.SimpleQueue`).
 */
export { JoinableQueue as Queue, SimpleQueue } from '../compat/select';
export type { QueueHandle, QueueOptions, QueueWaitOptions, QueueSyncOptions } from '../messaging/queue';
export { QueueEmpty, QueueFull } from '../messaging/errors';
