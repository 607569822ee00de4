/**
 * The messaging layer: Pipe/Connection and the queues, over shared memory rings, and the
 * serializer that carries forkwise objects by handle. Re-exported by
 * `forkwise/multiprocessing` (and the queues by `forkwise/threading`).
 */
export { Pipe, Connection, type ConnectionHandle, type PipeOptions } from './connection';
export {
  Queue,
  SimpleQueue,
  JoinableQueue,
  type QueueHandle,
  type QueueOptions,
  type QueueWaitOptions,
  type QueueSyncOptions,
} from './queue';
export { EOFError, QueueEmpty, QueueFull, TimeoutError } from './errors';
export { serialize, deserialize, registerByHandle } from './serializer';
