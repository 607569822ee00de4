/**
 * `forkwise/multiprocessing`: Process, Pool, Queue and Pipe arrive with the high-level
 * layer. For now: the helpers that need nothing more than the raw layer.
 */
import { availableParallelism } from 'node:os';

export * from '../sync/index';
export * from '../messaging/index';

/** The number of CPUs this process may use (`os.availableParallelism()`). */
export function cpuCount(): number {
  return availableParallelism();
}
