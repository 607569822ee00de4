/**
 * What a pool's worker is: the one seam between the pool's bookkeeping (pool.ts, the same
 * for `Pool` and `ThreadPool`) and how a worker starts, ends and is told to have ended.
 *
 * - A process (`Pool`, per start method): a daemon `Process` whose target is the worker
 *   loop (pool_worker.ts). It is ended with SIGTERM, then SIGKILL after a grace period, and
 *   its end is an exit code or a signal.
 * - A thread (`ThreadPool`): a `worker_threads` Worker running the same loop
 *   (pool_thread_main.ts), its Connection and setup sent by handle. It is ended with
 *   `Worker.terminate()`; its end is an exit code (`process.exit(n)` in it, 1 for an
 *   uncaught error, which comes with it).
 * Either way, once a worker has ended the pool takes the answers already in its pipe.
 */
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import type { Connection } from '../messaging/connection';
import { serialize } from '../messaging/serializer';
import { Process } from './process';
import { workerLoop, type WorkerSetup } from './pool_worker';
import type { StartMethod } from './start_method';

const KILL_GRACE_MS = 1000;
const workerModule = join(__dirname, 'pool_worker.js');
const threadMain = join(__dirname, 'pool_thread_main.js');

/** How a worker ended. */
export interface WorkerEnd {
  exitCode: number | null;
  signal: NodeJS.Signals | null;
  /** A thread's uncaught error. */
  error?: Error;
}

/** One worker, seen from the pool. */
export interface PoolWorkerHandle {
  /** Resolves once the worker exists (a fork: it knows the functions registered until then). */
  readonly started: Promise<void>;
  /** Resolves once it has ended. */
  readonly ended: Promise<WorkerEnd>;
  readonly pid: number | undefined;
  /** A thread's id; undefined for a process. */
  readonly threadId: number | undefined;
  /** Ends it now. */
  stop(): void;
  /** Keeps this process alive until the worker has ended (the pool's join()). */
  keepAlive(): void;

  /** Releases what this side holds of it, once it has ended. */
  release(): void;
}

export interface WorkerKind {
  /** A start method, or 'thread'. */
  readonly name: StartMethod | 'thread';
  /** Workers inherit the parent's functions (fork) instead of getting them by source. */
  readonly inherits: boolean;
  /**
   * `inChild`: run first in a forked worker (it closes what is not that worker's). A fork
   * is made once `after` has resolved (forks block this thread: the pool spaces them).
   */
  start(childEnd: Connection, setup: WorkerSetup, inChild: () => void, after: Promise<void>): PoolWorkerHandle;
}

const signalOf = (code: number | null): NodeJS.Signals | null => {
  if (code === null || code >= 0) return null;
  const { signals } = require('node:os').constants as { signals: Record<string, number> };
  return (Object.keys(signals).find((name) => signals[name] === -code) as NodeJS.Signals | undefined) ?? null;
};

/** Worker processes started with `method`. */
export function processWorkers(method: StartMethod): WorkerKind {
  return {
    name: method,
    inherits: method === 'fork',
    start(childEnd, setup, inChild, after) {
      const proc =
        method === 'fork'
          ? new Process({
              startMethod: 'fork',
              daemon: true,
              target: async () => {
                inChild();
                await workerLoop(childEnd, setup);
              },
            })
          : new Process({ startMethod: method, daemon: true, target: { module: workerModule, name: 'runWorker' }, args: [childEnd, setup] });
      let stopped = false;
      const begin = (): Promise<void> => (stopped ? Promise.reject(new Error('stopped before it started')) : proc.start());
      let started: Promise<void>;
      if (method === 'fork') {
        started = after.then(begin);
      } else {
        started = begin();
      }
      const settled = (): WorkerEnd => {
        const code = proc.exitCode;
        return { exitCode: code !== null && code >= 0 ? code : null, signal: signalOf(code) };
      };
      return {
        started,
        ended: started.then(() => Process.ended(proc)).then(settled, settled),
        get pid() {
          return proc.pid;
        },
        threadId: undefined,
        stop() {
          stopped = true;
          try {
            proc.terminate();
          } catch {
            // already gone
          }
          setTimeout(() => {
            if (proc.isAlive()) proc.kill();
          }, KILL_GRACE_MS).unref();
        },
        keepAlive() {
          proc.join().catch(() => {});
        },
        release() {
          proc.close();
        },
      };
    },
  };
}

/** Worker threads of this process (ThreadPool). */
export const threadWorkers: WorkerKind = {
  name: 'thread',
  inherits: false,
  start(childEnd, setup) {
    // The Connection by handle, and the initializer's arguments as any task's (forkwise
    // objects by handle): serialized here, so that what cannot cross fails here.
    const worker = new Worker(threadMain, { workerData: serialize([childEnd, setup], 'setup') });
    // Daemon, as the pool's processes: an idle pool does not keep this process alive.
    worker.unref();
    let uncaught: Error | undefined;
    worker.on('error', (error) => {
      uncaught = error;
    });
    return {
      started: Promise.resolve(),
      ended: new Promise<WorkerEnd>((resolve) => {
        worker.once('exit', (exitCode) => resolve({ exitCode, signal: null, ...(uncaught ? { error: uncaught } : {}) }));
      }),
      pid: process.pid,
      threadId: worker.threadId,
      stop() {
        void worker.terminate();
      },
      keepAlive() {
        worker.ref();
      },
      release() {},
    };
  },
};
