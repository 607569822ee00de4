/**
 * `forkwise/threading`: Thread on worker_threads arrives with the high-level layer; the
 * synchronisation primitives are re-exported from `forkwise/sync`.
 */
export * from '../sync/index';
