/**
 * forkwise: the POSIX process toolbox for Node.js. This entry point is the raw POSIX layer;
 * `forkwise/sync`, `forkwise/multiprocessing` and `forkwise/threading` hold the higher ones.
 */
export * from './posix/index';
export * from './multiprocessing/index';
