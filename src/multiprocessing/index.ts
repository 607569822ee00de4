/**
 * `forkwise/multiprocessing`: Process and the start methods, the messaging classes, and the
 * synchronisation primitives of `forkwise/sync`, in the shape of CPython's `multiprocessing`.
 */
import { availableParallelism } from 'node:os';

export * from '../sync/index';
export * from '../messaging/index';
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

export { Pipe, Connection, Queue, SimpleQueue, JoinableQueue } from '../compat/select';
