/**
 * `forkwise/multiprocessing`: Process and the start methods, the messaging classes, and the
 * synchronisation primitives of `forkwise/sync`, in the shape of CPython's `multiprocessing`.
 */
import { availableParallelism } from 'node:os';

export * from '../sync/index';
export * from '../messaging/index';
import * as onShm from '../messaging/index';
import * as onFallback from '../compat/messaging';
import { useFallback } from '../compat/platform';
export { Process, activeChildren, type ProcessOptions } from './process';
export { Pool, ThreadPool, AsyncResult, WorkerDiedError, type PoolOptions, type ThreadPoolOptions, type TaskOptions, type MapOptions } from './pool';
export { currentProcess, parentProcess, ProcessView } from './identity';
export { getContext, type Context } from './context';
export { getStartMethod, setStartMethod, getAllStartMethods, type StartMethod } from './start_method';
export { setForkserverPreload, stopForkserver } from './popen_forkserver';
export type { TaskRef } from '../messaging/task';

/** The number of CPUs this process may use (`os.availableParallelism()`). */
export function cpuCount(): number {
  return availableParallelism();
}
export { Manager, type ManagerOptions, type ManagerAddress } from './manager';
export {
  DictProxy,
  ListProxy,
  NamespaceProxy,
  ValueProxy,
  LockProxy,
  SemaphoreProxy,
  EventProxy,
  ConditionProxy,
  BarrierProxy,
} from './manager_proxy';

// On the platform fallback (Windows, or FORKWISE_FORCE_FALLBACK=1) the messaging classes are
// those of compat/, with the same methods; their types are the shared-memory classes'.
export const Pipe = (useFallback ? onFallback.Pipe : onShm.Pipe) as typeof onShm.Pipe;
export const Connection = (useFallback ? onFallback.Connection : onShm.Connection) as unknown as typeof onShm.Connection;
export type Connection = onShm.Connection;
export const Queue = (useFallback ? onFallback.Queue : onShm.Queue) as unknown as typeof onShm.Queue;
export type Queue<T = unknown> = onShm.Queue<T>;
export const SimpleQueue = (useFallback ? onFallback.SimpleQueue : onShm.SimpleQueue) as unknown as typeof onShm.SimpleQueue;
export type SimpleQueue<T = unknown> = onShm.SimpleQueue<T>;
export const JoinableQueue = (useFallback ? onFallback.JoinableQueue : onShm.JoinableQueue) as unknown as typeof onShm.JoinableQueue;
export type JoinableQueue<T = unknown> = onShm.JoinableQueue<T>;
