/**
 * `Pool`: worker processes running tasks, as CPython's `multiprocessing.Pool`, without its
 * hangs; `ThreadPool`: the same on worker threads (what differs is in pool_kinds.ts). The
 * parent keeps every decision in one place: which worker holds which tasks
 * (`inflight`, in the order the worker runs them), so a worker's end, a timeout or an abort
 * settles exactly the tasks it concerns.
 *
 * - Each worker has a duplex Pipe. A worker holds chunks estimated at TARGET_MS of work (from
 *   each function's measured time per item), so it never idles between them and many tiny
 *   tasks go in one message; it answers each chunk on its own. The first of a worker's
 *   `inflight` is the one running: its timeout counts from when it became first.
 * - A worker that ends with tasks fails the running one with WorkerDiedError (pid, exit code
 *   or signal) and gives the others back to the queue; it is replaced while the pool runs.
 * - A task's timeout or abort while it runs ends its worker (SIGTERM, then SIGKILL; a thread:
 *   terminate()).
 * - With `fork`, a function is known to the workers forked after it was first handed to the
 *   pool (pool_worker.ts's registry): a task whose function a worker does not know retires
 *   an idle worker and forks a fresh one from the current state, so any closure works, and
 *   the same function submitted again costs nothing more.
 * - Workers are daemons that do not keep this process alive when idle: pending tasks do (a
 *   referenced timer while any is unsettled, so that the end of a worker that is replaced,
 *   recycled or dies is seen).
 */
import { availableParallelism } from 'node:os';
import { Pipe, type Connection } from '../compat/select';
import { useFallback } from '../compat/platform';
import { TimeoutError } from '../messaging/errors';
import { describeTarget, type TaskSpec } from '../messaging/task';
import { abortError, ForkwiseError, invalidArgType, invalidArgValue } from '../posix/errors';
import { validateInteger, validateObject } from '../posix/validate';
import { native } from '../posix/native';
import { checkForkSafe } from './popen_fork';
import { afterForkInChild } from '../posix/child';
import { TaskQueue } from './task_queue';
import { register, registry, type ErrorRecord, type FnRef, type OneTask, type ReplyMessage, type TaskMessage, type WorkerSetup } from './pool_worker';
import { processWorkers, threadWorkers, type PoolWorkerHandle, type WorkerEnd, type WorkerKind } from './pool_kinds';
import { serialize } from '../messaging/serializer';
import { getStartMethod, validateStartMethod, type StartMethod } from './start_method';

// How much a worker holds at once (#pickWorker): chunks estimated at TARGET_MS of work, from
// the time per item each function took so far (UNKNOWN_CHUNK_MS a chunk until measured), so
// that a worker never waits for its next task, many tiny tasks go in one message, and a
// worker never hoards long ones.
const TARGET_MS = 4;
const UNKNOWN_CHUNK_MS = TARGET_MS / 4;
const MAX_INFLIGHT = 4096;
// A worker holding enough work that it will not run dry meanwhile is read on a timer rather
// than waking this thread for each answer (#pollInterval):
// - tiny tasks, POLL_BACKLOG chunks or more: every POLL_EVERY_MS (this thread, which reads
//   and sends for every task, is what limits them);
// - short chunks (SHORT_CHUNK_MS to LONG_CHUNK_MS each): the workers are what limits, and
//   each wake-up here takes a CPU from them and finds this thread's caches cold (10-30 µs
//   per answer read or task sent, against 2-4 in a tight loop), so a worker is read once
//   about half of what it holds is done, every POLL_SHORT_MS at most, and with
//   SHORT_BACKLOG chunks waiting it holds SHORT_TARGET_MS. Two workers busy with 1 ms tasks
//   on 2 vCPUs, paired runs, share of the ideal throughput: 82-83% woken per answer, 90-92%
//   read every 3 ms with 8 ms held, 92-94% every 25 ms with 64 ms held: a pool's first
//   map; once V8 has compiled the pool's code, 94-96% with the former and 96-97% with the
//   latter. A short map, or the end of one, is read sooner as what is held shrinks;
// - longer ones: every POLL_LONG_MS, with two chunks held.
const POLL_BACKLOG = 8;
const POLL_EVERY_MS = 1;
const SHORT_CHUNK_MS = 0.25;
const LONG_CHUNK_MS = 2;
const SHORT_TARGET_MS = 64;
const POLL_SHORT_MS = 25;
const SHORT_BACKLOG = 64;
const POLL_LONG_MS = 2;
// The longest the forks after a pool's first wait for it to answer its first tasks.
const FORK_SPACING_MS = 30;
// imap's look-ahead, in chunks per worker.
const PREFETCH = 4;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const isShort = (chunkMs: number): boolean => chunkMs >= SHORT_CHUNK_MS && chunkMs <= LONG_CHUNK_MS;

// Pools of this process. A forked child (a worker, or any child) has copies of them that
// are not its own: they must not act there (dispatch, replace workers, time tasks out).
const pools = new Set<{ forget(): void }>();
afterForkInChild((rehearsal) => {
  if (rehearsal) return;
  for (const pool of pools) pool.forget();
  pools.clear();
});

export interface PoolOptions {
  processes?: number;
  initializer?: Function | { module: string | URL; name: string };
  initArgs?: unknown[];
  maxTasksPerChild?: number;
  /** Bytes of resident memory after a task above which a worker is replaced. */
  maxMemoryPerChild?: number;
  startMethod?: StartMethod;
  /** Tasks waiting for a worker above which `apply`/`map` wait for room (back-pressure). */
  maxQueued?: number;
  /** Default per-task timeout in ms, counted from when the task starts running. */
  timeout?: number;
}

export interface TaskOptions {
  signal?: AbortSignal;
  timeout?: number;
}

export interface MapOptions extends TaskOptions {
  chunksize?: number;
  /** Called after each chunk with the tasks done and the total (when known). */
  onProgress?: (done: number, total: number | undefined) => void;
}

/**
 * A pool worker ended while it ran the task: `pid` is the worker process's, or for a
 * ThreadPool this process's, with the thread's `threadId` (and its uncaught error as `cause`).
 */
export class WorkerDiedError extends ForkwiseError {
  constructor(
    readonly pid: number,
    readonly exitCode: number | null,
    readonly signal: NodeJS.Signals | null,
    readonly threadId?: number,
    cause?: Error,
  ) {
    const how = signal ? `signal ${signal}` : `exit code ${exitCode}${cause ? `, ${cause.name}: ${cause.message}` : ''}`;
    const who = threadId === undefined ? `pool worker ${pid}` : `pool worker thread ${threadId} (pid ${pid})`;
    super('ERR_FORKWISE_WORKER_DIED', `forkwise: the ${who} died while running the task (${how})`);
    this.name = 'WorkerDiedError';
    if (cause) (this as Error & { cause?: unknown }).cause = cause;
  }
}

// What the chunks of one call share (a map's thousands of chunks point to one).
interface Call {
  ref: FnRef;
  /** The index of its function in the registry (fork), else -1. */
  index: number;
  /** Each element of a chunk's list an args array (spread), or the one argument of a task. */
  spread: boolean;
  limit: number | undefined;
  signal: AbortSignal | undefined;
  /** The measured cost of its function. */
  cost: Cost;
  done(chunk: Chunk, results: unknown[]): void;
  fail(chunk: Chunk, error: Error): void;
}

// ms per item of a function, as measured (#handleReply); undefined until then.
interface Cost {
  perItem: number | undefined;
}

interface Chunk {
  call: Call;
  list: unknown[];
  /** Where its results go in the call's (map). */
  at: number;
  queuedAt: number;
  startedAt?: number;
  /** Its estimated ms of work, while a worker holds it. */
  estimate: number;
  settled?: boolean;
  onAbort?: () => void;
}

interface Worker {
  handle: PoolWorkerHandle;
  conn: Connection;
  /** The child's end, held here until the child has answered once (spawned ones attach). */
  childEnd: Connection | undefined;
  /** Registry entries it knows (fork): those that existed when it was forked (-1 before). */
  knows: number;
  inflight: Chunk[];
  /** The estimated ms of work of its inflight. */
  loadMs: number;
  sent: number;
  retiring: boolean;
  /** It said it exits between tasks (maxMemoryPerChild): what it holds was not started. */
  recycling: boolean;
  readerActive: boolean;
  /** Called at its first answer (or end): the next fork may be made. */
  settledIn: () => void;
  timer?: NodeJS.Timeout;
}

function rebuildError(record: ErrorRecord): Error {
  const error = new Error(record.message);
  error.name = record.name;
  if (record.stack) error.stack = record.stack;
  if (record.code !== undefined) (error as { code?: unknown }).code = record.code;
  return error;
}

/**
 * A pool of worker processes.
 *
 * @example
 * import { Pool } from 'forkwise/multiprocessing';
 * const table = new Map([[1, 10], [2, 20]]);
 * await using pool = new Pool({ processes: 2 });
 * await pool.map((x) => table.get(x) * 2, [1, 2]); // [20, 40]
 */
export class Pool {
  readonly #size: number;
  readonly #kind: WorkerKind;
  readonly #setup: WorkerSetup;
  readonly #maxTasksPerChild: number | undefined;
  readonly #maxQueued: number;
  readonly #timeout: number | undefined;
  readonly #workers = new Set<Worker>();
  readonly #queue = new TaskQueue<Chunk>();
  #state: 'running' | 'closed' | 'terminated' | 'inherited' = 'running';
  #broken: Error | undefined;
  #roomWaiters: Array<() => void> = [];
  #idleWaiters: Array<() => void> = [];
  readonly #stats = { done: 0, failed: 0, runMs: [] as number[], waitMs: [] as number[] };
  #pending = 0;
  // What the forks after the first wait for (#startWorker).
  #forkGate: Promise<void> = Promise.resolve();
  // ms per item of each function, as measured (#handleReply).
  readonly #costs = new WeakMap<object, Cost>();
  #keepAlive: NodeJS.Timeout | undefined;

  constructor(options: PoolOptions = {}) {
    const o = validateObject(options, 'options') as PoolOptions;
    this.#size = o.processes === undefined ? availableParallelism() : validateInteger(o.processes, 'options.processes', 1, 4096);
    if (this instanceof ThreadPool) {
      // Threads share this process: neither a start method nor a memory of their own.
      if (o.startMethod !== undefined) throw invalidArgValue('options.startMethod', o.startMethod, 'is not an option of ThreadPool, whose workers are threads');
      if (o.maxMemoryPerChild !== undefined) {
        throw invalidArgValue('options.maxMemoryPerChild', o.maxMemoryPerChild, "is not an option of ThreadPool: its threads share this process's memory (use maxTasksPerChild)");
      }
      this.#kind = threadWorkers;
    } else {
      const method = o.startMethod === undefined ? getStartMethod() : validateStartMethod(o.startMethod, 'options.startMethod');
      if (method === 'fork') checkForkSafe();
      this.#kind = processWorkers(method);
    }
    if (o.initializer !== undefined && typeof o.initializer !== 'function' && (typeof o.initializer !== 'object' || o.initializer === null)) {
      throw invalidArgType('options.initializer', 'a function or a TaskRef { module, name }', o.initializer);
    }
    if (o.initArgs !== undefined && !Array.isArray(o.initArgs)) throw invalidArgType('options.initArgs', 'an array', o.initArgs);
    this.#maxTasksPerChild = o.maxTasksPerChild === undefined ? undefined : validateInteger(o.maxTasksPerChild, 'options.maxTasksPerChild', 1, Number.MAX_SAFE_INTEGER);
    const maxMemory = o.maxMemoryPerChild === undefined ? undefined : validateInteger(o.maxMemoryPerChild, 'options.maxMemoryPerChild', 1, Number.MAX_SAFE_INTEGER);
    this.#maxQueued = o.maxQueued === undefined ? Infinity : validateInteger(o.maxQueued, 'options.maxQueued', 1, Number.MAX_SAFE_INTEGER);
    this.#timeout = o.timeout === undefined ? undefined : validateTimeout(o.timeout, 'options.timeout');
    this.#setup = {
      initializer: o.initializer === undefined ? undefined : this.#fnRef(o.initializer, 'options.initializer').fn,
      initArgs: o.initArgs ?? [],
      ...(maxMemory === undefined ? {} : { maxMemoryPerChild: maxMemory }),
    };
    pools.add(this);
    for (let i = 0; i < this.#size; i++) this.#startWorker();
  }

  /** In a forked child: this pool is the parent's; it stays still here. */
  forget(): void {
    this.#state = 'inherited';
    clearInterval(this.#keepAlive);
    for (const worker of this.#workers) clearTimeout(worker.timer);
  }

  /** What the pool has done and holds: counts, and run and wait times (ms) at percentiles. */
  get stats(): { done: number; failed: number; queued: number; running: number; workers: number; runMs: Percentiles; waitMs: Percentiles } {
    let running = 0;
    for (const worker of this.#workers) running += worker.inflight.length > 0 ? 1 : 0;
    return {
      done: this.#stats.done,
      failed: this.#stats.failed,
      queued: [...this.#queue].reduce((n, chunk) => n + (chunk.settled ? 0 : chunk.list.length), 0),
      running,
      workers: this.#workers.size,
      runMs: percentiles(this.#stats.runMs),
      waitMs: percentiles(this.#stats.waitMs),
    };
  }

  /** Runs `fn(...args)` in a worker. */
  async apply<R>(fn: (...args: any[]) => R | Promise<R>, args: unknown[] = [], options: TaskOptions = {}): Promise<Awaited<R>> {
    if (!Array.isArray(args)) throw invalidArgType('args', 'an array', args);
    const [result] = await this.#submit(fn, [args], true, options);
    return result as Awaited<R>;
  }

  /** As CPython's `apply_async`: an AsyncResult, with optional callbacks. */
  applyAsync<R>(
    fn: (...args: any[]) => R | Promise<R>,
    args: unknown[] = [],
    options: TaskOptions & { callback?: (value: Awaited<R>) => void; errorCallback?: (error: Error) => void } = {},
  ): AsyncResult<Awaited<R>> {
    const { callback, errorCallback, ...taskOptions } = options;
    const result = new AsyncResult(this.apply(fn, args, taskOptions));
    result.promise.then(callback, errorCallback).catch(() => {});
    return result;
  }

  /** `fn(item)` for every item, in order. Items may be any iterable or async iterable. */
  map<T, R>(fn: (item: T) => R | Promise<R>, items: Iterable<T> | AsyncIterable<T>, options: MapOptions = {}): Promise<Awaited<R>[]> {
    return this.#collect(items, undefined, (all) => this.#mapList(fn, all, false, options)) as Promise<Awaited<R>[]>;
  }

  /** `fn(...args)` for every args array, in order. */
  starmap<R>(fn: (...args: any[]) => R | Promise<R>, items: Iterable<unknown[]> | AsyncIterable<unknown[]>, options: MapOptions = {}): Promise<Awaited<R>[]> {
    const asArgs = (args: unknown): unknown[] => {
      if (!Array.isArray(args)) throw invalidArgType('items[i]', 'an array', args);
      return args;
    };
    return this.#collect(items, asArgs, (all) => this.#mapList(fn, all, true, options)) as Promise<Awaited<R>[]>;
  }

  // A synchronous iterable is read at once, so that its tasks are submitted before the
  // caller goes on (a close() right after map() lets them run, as in CPython).
  async #collect(items: unknown, check: ((item: unknown) => unknown[]) | undefined, then: (all: unknown[]) => Promise<unknown[]>): Promise<unknown[]> {
    if (items !== null && typeof items === 'object' && Symbol.iterator in items) {
      return then(check ? Array.from(items as Iterable<unknown>, check) : Array.isArray(items) ? items : Array.from(items as Iterable<unknown>));
    }
    if (items === null || typeof items !== 'object' || !(Symbol.asyncIterator in items)) {
      throw invalidArgType('items', 'an iterable or async iterable', items);
    }
    const all: unknown[] = [];
    for await (const item of items as AsyncIterable<unknown>) all.push(check ? check(item) : item);
    return then(all);
  }

  // One Promise for the whole map, its chunks queued directly: a map of 100,000 tiny tasks
  // is 100,000 chunks, and their submission is time the workers wait.
  async #mapList(fn: Function, all: unknown[], spread: boolean, options: MapOptions): Promise<unknown[]> {
    const { chunksize, onProgress, ...taskOptions } = validateObject(options, 'options') as MapOptions;
    // CPython's automatic chunksize: about four chunks per worker.
    const size = chunksize === undefined ? Math.max(1, Math.ceil(all.length / (this.#size * 4))) : validateInteger(chunksize, 'options.chunksize', 1, 2 ** 31);
    if (onProgress !== undefined && typeof onProgress !== 'function') throw invalidArgType('options.onProgress', 'a function', onProgress);
    const results = new Array<unknown>(all.length);
    let left = Math.ceil(all.length / size);
    let done = 0;
    let failed = false;
    let settle!: { resolve: (results: unknown[]) => void; reject: (error: Error) => void };
    const whole = new Promise<unknown[]>((resolve, reject) => (settle = { resolve, reject }));
    whole.catch(() => {}); // what the caller awaits, unless the loop below throws first
    const call = this.#prepare(
      fn,
      taskOptions,
      spread,
      (chunk, values) => {
        const at = chunk.at;
        for (let k = 0; k < values.length; k++) results[at + k] = values[k];
        if (onProgress) report(onProgress, (done += chunk.list.length), all.length);
        if (--left === 0 && !failed) settle.resolve(results);
      },
      (_, error) => {
        if (failed) return;
        failed = true;
        settle.reject(error);
      },
    );
    if (left === 0) return results;
    for (let i = 0; i < all.length; i += size) {
      if (this.#queue.length >= this.#maxQueued) await this.#room();
      this.#enqueue(call, all.slice(i, i + size), i);
    }
    return whole;
  }

  /**
   * `fn(item)` for every item, results in order as they come; the items are read lazily,
   * a bounded window ahead of the results.
   */
  imap<T, R>(fn: (item: T) => R | Promise<R>, items: Iterable<T> | AsyncIterable<T>, options: MapOptions = {}): AsyncIterable<Awaited<R>> {
    return this.#lazyMap(fn, items, options, true) as AsyncIterable<Awaited<R>>;
  }

  /** As `imap`, results in the order they complete. */
  imapUnordered<T, R>(fn: (item: T) => R | Promise<R>, items: Iterable<T> | AsyncIterable<T>, options: MapOptions = {}): AsyncIterable<Awaited<R>> {
    return this.#lazyMap(fn, items, options, false) as AsyncIterable<Awaited<R>>;
  }

  async *#lazyMap(fn: Function, items: Iterable<unknown> | AsyncIterable<unknown>, options: MapOptions, ordered: boolean): AsyncGenerator<unknown> {
    const { chunksize = 1, onProgress, ...taskOptions } = validateObject(options, 'options') as MapOptions;
    validateInteger(chunksize, 'options.chunksize', 1, 2 ** 31);
    const window = this.#size * PREFETCH * 2;
    const iterator = (Symbol.asyncIterator in Object(items) ? (items as AsyncIterable<unknown>)[Symbol.asyncIterator]() : (items as Iterable<unknown>)[Symbol.iterator]()) as AsyncIterator<unknown> | Iterator<unknown>;
    type Part = { promise: Promise<unknown[]>; result?: unknown[]; error?: unknown; ready: boolean };
    const parts: Part[] = [];
    let exhausted = false;
    let done = 0;
    const fill = async (): Promise<void> => {
      while (!exhausted && parts.length < window) {
        const chunk: unknown[] = [];
        while (chunk.length < chunksize) {
          const next = await iterator.next();
          if (next.done) {
            exhausted = true;
            break;
          }
          chunk.push(next.value);
        }
        if (chunk.length === 0) break;
        const part: Part = { promise: this.#submit(fn, chunk, false, taskOptions), ready: false };
        part.promise.then(
          (result) => Object.assign(part, { result, ready: true }),
          (error: unknown) => Object.assign(part, { error, ready: true }),
        );
        parts.push(part);
      }
    };
    await fill();
    while (parts.length > 0) {
      let index = 0;
      if (ordered) {
        await parts[0]!.promise.catch(() => {});
      } else {
        await Promise.race(parts.map((p) => p.promise.catch(() => {})));
        index = parts.findIndex((p) => p.ready);
      }
      const [part] = parts.splice(index, 1);
      if (part!.error !== undefined) throw part!.error;
      done += part!.result!.length;
      if (onProgress) report(onProgress, done, undefined);
      await fill();
      yield* part!.result!;
    }
  }

  /** No more tasks; workers exit once the queued and running ones are done. */
  close(): void {
    if (this.#state === 'running') this.#state = 'closed';
    this.#pump();
  }

  /** Ends every worker now; pending tasks reject. */
  terminate(): void {
    if (this.#state === 'terminated' || this.#state === 'inherited') return;
    this.#state = 'terminated';
    pools.delete(this);
    const error = terminatedError();
    for (const chunk of this.#queue.drain()) this.#settle(chunk, error);
    for (const worker of this.#workers) {
      for (const chunk of worker.inflight.splice(0)) this.#settle(chunk, error);
      this.#endWorker(worker);
    }
    this.#wakeRoom();
  }

  /** Waits for every worker to exit (after `close()` or `terminate()`). */
  async join(): Promise<void> {
    if (this.#state === 'running') throw new ForkwiseError('ERR_FORKWISE_POOL_RUNNING', 'forkwise: close() or terminate() the pool before join()');
    while (this.#workers.size > 0) {
      // Joined, the workers keep this process alive until they have ended.
      for (const worker of this.#workers) worker.handle.keepAlive();
      await new Promise<void>((resolve) => this.#idleWaiters.push(resolve));
    }
  }

  async [Symbol.asyncDispose](): Promise<void> {
    this.terminate();
    await this.join();
  }

  // Tasks -------------------------------------------------------------------------------

  #fnRef(fn: unknown, what: string): { fn: FnRef; index: number } {
    if (typeof fn === 'function') {
      if (this.#kind.inherits) {
        const index = register(fn);
        return { fn: index, index };
      }
      // A function's source does not change: parsed once (a map of many tasks submits it
      // once per chunk).
      let spec = described.get(fn);
      if (!spec) described.set(fn, (spec = describeTarget(fn, what)));
      return { fn: spec, index: -1 };
    }
    return { fn: describeTarget(fn, what), index: -1 };
  }

  // What every chunk of one call shares, checked once.
  #prepare(fn: unknown, options: TaskOptions, spread: boolean, done: Call['done'], fail: Call['fail']): Call {
    if (this.#state !== 'running') throw new ForkwiseError('ERR_FORKWISE_POOL_CLOSED', `forkwise: the pool is ${this.#state}`);
    if (this.#broken) throw this.#broken;
    if (typeof fn !== 'function' && (typeof fn !== 'object' || fn === null)) throw invalidArgType('fn', 'a function or a TaskRef { module, name }', fn);
    const { signal, timeout = this.#timeout } = validateObject(options, 'options') as TaskOptions;
    if (signal !== undefined && !(signal instanceof AbortSignal)) throw invalidArgType('options.signal', 'an AbortSignal', signal);
    const limit = timeout === undefined ? undefined : validateTimeout(timeout, 'options.timeout');
    const { fn: ref, index } = this.#fnRef(fn, 'fn');
    if (signal?.aborted) throw abortError(signal);
    let cost = this.#costs.get(fn as object);
    if (!cost) this.#costs.set(fn as object, (cost = { perItem: undefined }));
    return { ref, index, spread, limit, signal, cost, done, fail };
  }

  // Waits while the queue is full (maxQueued); a pool terminated meanwhile takes no more.
  async #room(): Promise<void> {
    while (this.#queue.length >= this.#maxQueued) await new Promise<void>((resolve) => this.#roomWaiters.push(resolve));
    if (this.#state === 'terminated') throw terminatedError();
    if (this.#broken) throw this.#broken;
  }

  #enqueue(call: Call, list: unknown[], at: number): void {
    const chunk: Chunk = { call, list, at, queuedAt: performance.now(), estimate: 0 };
    if (call.signal) {
      chunk.onAbort = () => this.#abort(chunk);
      call.signal.addEventListener('abort', chunk.onAbort, { once: true });
    }
    this.#queue.push(chunk);
    if (this.#pending++ === 0) this.#keepAlive = setInterval(() => {}, 2 ** 31 - 1);
    this.#schedulePump();
  }

  async #submit(fn: Function, list: unknown[], spread: boolean, options: TaskOptions): Promise<unknown[]> {
    let resolve!: (results: unknown[]) => void;
    let reject!: (error: Error) => void;
    const promise = new Promise<unknown[]>((res, rej) => ((resolve = res), (reject = rej)));
    const call = this.#prepare(fn, options, spread, (_, results) => resolve(results), (_, error) => reject(error));
    if (this.#queue.length >= this.#maxQueued) await this.#room();
    this.#enqueue(call, list, 0);
    return promise;
  }

  // `ranMs`: how long it ran, as its worker measured (else as seen from here).
  #settle(chunk: Chunk, error: Error | undefined, results?: unknown[], ranMs?: number): void {
    if (chunk.settled) return;
    chunk.settled = true;
    if (--this.#pending === 0) clearInterval(this.#keepAlive);
    if (chunk.onAbort) chunk.call.signal!.removeEventListener('abort', chunk.onAbort);
    if (ranMs !== undefined) record(this.#stats.runMs, ranMs);
    else if (chunk.startedAt !== undefined) record(this.#stats.runMs, performance.now() - chunk.startedAt);
    if (error) {
      this.#stats.failed += chunk.list.length;
      chunk.call.fail(chunk, error);
    } else {
      this.#stats.done += chunk.list.length;
      chunk.call.done(chunk, results!);
    }
  }

  #abort(chunk: Chunk): void {
    const error = abortError(chunk.call.signal!);
    if ([...this.#queue].includes(chunk)) {
      // Settled, it is skipped when its turn comes.
      this.#settle(chunk, error);
      return this.#wakeRoom();
    }
    for (const worker of this.#workers) {
      const at = worker.inflight.indexOf(chunk);
      if (at === 0) return this.#cutOff(worker, error);
      if (at > 0) return this.#settle(chunk, error); // sent, not started: its result is dropped
    }
  }

  // The running task of `worker` overran or was aborted: it fails, the others go back to
  // the queue, and the worker is ended.
  #cutOff(worker: Worker, error: Error): void {
    const [running, ...rest] = worker.inflight.splice(0);
    this.#settle(running!, error);
    this.#queue.unshift(...rest.filter((c) => !c.settled).map(unstart));
    this.#endWorker(worker);
  }

  // Workers -----------------------------------------------------------------------------

  #startWorker(): void {
    const [conn, childEnd] = Pipe();
    // In a forked child: the other workers' connections are not this worker's to hold.
    const inChild = (): void => {
      for (const other of this.#workers) {
        if (other.conn !== conn) other.conn.close();
        if (other.childEnd && other.childEnd !== childEnd) other.childEnd.close();
      }
      conn.close();
    };
    const handle = this.#kind.start(childEnd, this.#setup, inChild, this.#forkGate);
    const inherits = this.#kind.inherits;
    let settledIn!: () => void;
    const answered = new Promise<void>((resolve) => (settledIn = resolve));
    // The pool's first worker is forked alone; the others once it has answered its first
    // tasks (or had none, or FORK_SPACING_MS passed), together (forks in a row are cheaper).
    // A fork blocks this thread for tens of ms with a large parent: the first result should
    // not wait for the last one.
    if (this.#workers.size === 0 && this.#stats.done === 0) {
      this.#forkGate = handle.started.then(
        () => Promise.race([answered, sleep(FORK_SPACING_MS)]),
        () => {},
      );
    }
    const worker: Worker = { handle, conn, childEnd, knows: inherits ? -1 : Infinity, inflight: [], loadMs: 0, sent: 0, retiring: false, recycling: false, readerActive: false, settledIn };
    this.#workers.add(worker);
    // The fork is made on the next turn of the loop, and this runs right after it: nothing
    // can have been registered in between.
    handle.started.then(
      () => {
        if (inherits) worker.knows = registry.length;
        this.#pump();
        if (worker.inflight.length === 0) settledIn();
      },
      () => {},
    );
    void handle.ended.then((end) => this.#workerEnded(worker, end));
  }

  #endWorker(worker: Worker): void {
    worker.retiring = true;
    clearTimeout(worker.timer);
    worker.handle.stop();
  }

  #workerEnded(worker: Worker, end: WorkerEnd): void {
    worker.settledIn();
    if (this.#state === 'inherited') return;
    clearTimeout(worker.timer);
    if (worker.childEnd) {
      worker.childEnd.close();
      worker.childEnd = undefined;
      forgetName(worker.conn);
    }
    // It has ended: what it answered is in the pipe already (a send blocks until all but the
    // last ring-full is read), so it is taken now, without waiting for an end-of-file that
    // depends on who else holds the pipe (a thread's end is this process's own).
    this.#takeReplies(worker);
    clearTimeout(worker.timer);
    worker.conn.close();
    worker.handle.release();
    this.#workers.delete(worker);
    const [running, ...rest] = worker.inflight.splice(0);
    if (running) {
      // A worker recycled by memory exits between tasks: it ran none of those it held.
      if (worker.recycling && end.exitCode === 0) this.#queue.unshift(unstart(running));
      else this.#settle(running, new WorkerDiedError(worker.handle.pid ?? 0, end.exitCode, end.signal, worker.handle.threadId, end.error));
    }
    this.#queue.unshift(...rest.filter((c) => !c.settled).map(unstart));
    if (this.#state !== 'terminated' && !this.#broken && (this.#state === 'running' || this.#queue.length > 0)) {
      if (this.#workers.size < this.#size) this.#startWorker();
    }
    this.#pump();
    if (this.#workers.size === 0) for (const wake of this.#idleWaiters.splice(0)) wake();
  }

  // Reads a worker's answers while it holds tasks (one reader per worker; a pending read
  // keeps this process alive, so none is left pending on an idle worker). Every answer there
  // is taken before the pool sends more, so that one message carries what the answers made
  // room for. A worker holding a backlog of short tasks is looked at once a millisecond
  // instead of waking this thread for each answer (it then has no one to wake either).
  #read(worker: Worker): void {
    if (!worker.readerActive) {
      worker.readerActive = true;
      void this.#readLoop(worker);
    }
  }

  async #readLoop(worker: Worker): Promise<void> {
    try {
      // It waits first: started from #pump, it must not send (nor retire workers) before
      // the pump that started it is done. recv() is what tells end-of-file (a dead worker):
      // the looks in between only take what is there.
      while (worker.inflight.length > 0) {
        let taken = 0;
        const poll = this.#pollInterval(worker);
        if (poll > 0) {
          await sleep(poll);
          if (worker.conn.closed) break;
          taken = this.#takeReplies(worker);
        }
        if (taken === 0) {
          this.#handleReply(worker, (await worker.conn.recv()) as ReplyMessage);
          this.#takeReplies(worker);
        }
        this.#pump();
      }
    } catch {
      // End-of-file, or closed: the worker ended; #workerEnded settles what it held.
    } finally {
      worker.readerActive = false;
    }
  }

  // How long the reader of `worker` may sleep before it looks (0: wait for an answer).
  #pollInterval(worker: Worker): number {
    const held = worker.inflight.length;
    const load = worker.loadMs;
    let poll = 0;
    if (held >= 2 && isShort(load / held) && load >= 2 * POLL_LONG_MS) poll = Math.min(POLL_SHORT_MS, load / 2);
    else if (held >= POLL_BACKLOG && load >= POLL_EVERY_MS) poll = POLL_EVERY_MS;
    else if (held >= 2 && load > POLL_LONG_MS) poll = POLL_LONG_MS;
    // A timeout's clock starts when its task is seen to start: late by this much at most.
    if (poll > POLL_LONG_MS && worker.inflight.some((chunk) => chunk.call.limit !== undefined)) poll = POLL_LONG_MS;
    return poll;
  }

  // Short chunks with a backlog waiting: the workers are what limits.
  #shortRegime(chunkMs: number): boolean {
    return isShort(chunkMs) && this.#queue.length >= SHORT_BACKLOG;
  }

  // Takes the complete answers there are now (how many). A thread's are taken so when it
  // has ended too (no end-of-file comes, pool_kinds.ts).
  #takeReplies(worker: Worker): number {
    const conn = worker.conn;
    let taken = 0;
    while (worker.inflight.length > 0) {
      let reply: ReplyMessage;
      try {
        if (!conn.pollSync(0)) break;
        reply = conn.recvSync(0) as ReplyMessage;
      } catch {
        break; // a message still arriving, or end-of-file: for recv() to tell
      }
      this.#handleReply(worker, reply);
      taken++;
    }
    return taken;
  }

  #handleReply(worker: Worker, reply: ReplyMessage): void {
    if (this.#state === 'inherited') return;
    if (worker.childEnd) {
      worker.childEnd.close(); // it has attached: its end is its own now
      worker.childEnd = undefined;
      forgetName(worker.conn);
      worker.settledIn();
    }
    if (reply[0] === 'recycle') {
      worker.recycling = worker.retiring = true;
      return;
    }
    if (reply[0] === 'init-failed') {
      // Restarting would fail the same way: the pool is broken, clearly.
      const cause = rebuildError(reply[1]);
      this.#broken = new ForkwiseError('ERR_FORKWISE_POOL_INITIALIZER', `forkwise: the pool's initializer failed: ${cause.message}`);
      (this.#broken as Error & { cause?: unknown }).cause = cause;
      for (const chunk of [...this.#queue.drain(), ...worker.inflight.splice(0)]) this.#settle(chunk, this.#broken);
      this.#wakeRoom();
      return;
    }
    const chunk = worker.inflight.shift();
    clearTimeout(worker.timer);
    if (chunk) {
      worker.loadMs -= chunk.estimate;
      // The time the worker measured: answers read on a timer come several at once, long
      // after some of them started.
      const ranMs = reply[3];
      if (chunk.list.length > 0) {
        const perItem = ranMs / chunk.list.length;
        const cost = chunk.call.cost;
        cost.perItem = cost.perItem === undefined ? perItem : cost.perItem + (perItem - cost.perItem) * 0.2;
      }
      this.#settle(chunk, reply[0] === 'fail' ? rebuildError(reply[2]) : undefined, reply[0] === 'done' ? reply[2] : undefined, ranMs);
    }
    this.#startHead(worker);
  }

  // The first of a worker's inflight is the one it runs: its clock starts now.
  #startHead(worker: Worker): void {
    const head = worker.inflight[0];
    if (!head || head.startedAt !== undefined) return;
    head.startedAt = performance.now();
    record(this.#stats.waitMs, head.startedAt - head.queuedAt);
    const timeout = head.call.limit;
    if (timeout !== undefined) {
      const limit = timeout * head.list.length;
      worker.timer = setTimeout(() => {
        if (worker.inflight[0] === head) this.#cutOff(worker, new TimeoutError(`forkwise: the task ran longer than its timeout (${timeout} ms)`));
      }, limit);
    }
  }

  // Submissions made together are sent together: one pump for them, after the caller's turn.
  #pumpScheduled = false;
  #schedulePump(): void {
    if (this.#pumpScheduled) return;
    this.#pumpScheduled = true;
    queueMicrotask(() => {
      this.#pumpScheduled = false;
      this.#pump();
    });
  }

  #pump(): void {
    if (this.#state === 'inherited') return;
    // What each worker gets now goes in one message: one wake-up for many tiny tasks.
    const outgoing = new Map<Worker, Chunk[]>();
    for (;;) {
      const chunk = this.#queue.first();
      if (!chunk) break;
      if (chunk.settled) {
        this.#queue.shift();
        continue;
      }
      const cost = chunk.call.cost.perItem;
      chunk.estimate = cost === undefined ? UNKNOWN_CHUNK_MS : cost * chunk.list.length;
      const worker = this.#pickWorker(chunk);
      if (!worker) break;
      this.#queue.shift();
      worker.loadMs += chunk.estimate;
      worker.inflight.push(chunk);
      let list = outgoing.get(worker);
      if (!list) outgoing.set(worker, (list = []));
      list.push(chunk);
      this.#startHead(worker);
      if (this.#maxTasksPerChild !== undefined && worker.sent + list.length >= this.#maxTasksPerChild) worker.retiring = true;
    }
    for (const [worker, list] of outgoing) {
      this.#send(worker, list);
      if (worker.retiring) worker.conn.send(['stop'] satisfies TaskMessage);
      this.#read(worker);
    }
    this.#wakeRoom();
    if (this.#state === 'closed' && this.#queue.length === 0) {
      for (const worker of this.#workers) if (!worker.retiring) this.#retire(worker);
    }
  }

  // One message for `chunks` (already in the worker's inflight, last). Arguments are
  // serialized once, with the message. If that fails, each chunk goes alone, and one that
  // cannot (an argument that cannot be cloned, named; a message too large) fails with why.
  #send(worker: Worker, chunks: Chunk[]): void {
    const tasks = chunks.map((chunk): OneTask => ['task', ++worker.sent, chunk.call.ref, chunk.list, chunk.call.spread]);
    const gone = (error: unknown): boolean => (error as { code?: string }).code === 'ERR_EOF';
    try {
      worker.conn.send(tasks.length === 1 ? tasks[0]! : (['tasks', tasks] satisfies TaskMessage));
      return;
    } catch (error) {
      if (gone(error)) return; // the worker is gone: its end gives back what it holds
    }
    for (const [i, chunk] of chunks.entries()) {
      try {
        serialize(chunk.list, 'args');
        worker.conn.send(tasks[i]);
      } catch (error) {
        if (gone(error)) return;
        worker.inflight.splice(worker.inflight.indexOf(chunk), 1);
        worker.loadMs -= chunk.estimate;
        if (chunk.startedAt !== undefined) {
          clearTimeout(worker.timer);
          unstart(chunk);
        }
        this.#settle(chunk, error as Error);
      }
    }
    this.#startHead(worker);
  }

  // Least loaded first. A worker takes chunks while the work it holds is estimated under
  // TARGET_MS, SHORT_TARGET_MS for short chunks (at least two, so that it never waits
  // between them; at most MAX_INFLIGHT).
  #pickWorker(chunk: Chunk): Worker | undefined {
    const target = this.#shortRegime(chunk.estimate) ? SHORT_TARGET_MS : TARGET_MS;
    let unaware: Worker | undefined;
    let best: Worker | undefined;
    for (const worker of this.#workers) {
      const held = worker.inflight.length;
      if (worker.retiring || worker.knows < 0 || held >= MAX_INFLIGHT || (held >= 2 && worker.loadMs >= target)) continue;
      if (chunk.call.index >= worker.knows) {
        if (held === 0) unaware = worker;
        continue;
      }
      if (!best || worker.loadMs < best.loadMs) best = worker;
    }
    // A function newer than an idle worker: fork a fresh one that knows it.
    if (!best && unaware && this.#state !== 'terminated') {
      this.#retire(unaware);
      this.#startWorker();
    }
    return best;
  }

  // Sent 'stop' after what it already has; it exits when done, and is replaced if needed.
  #retire(worker: Worker): void {
    if (worker.retiring) return;
    worker.retiring = true;
    worker.conn.send(['stop'] satisfies TaskMessage);
  }

  #wakeRoom(): void {
    while (this.#roomWaiters.length > 0 && this.#queue.length < this.#maxQueued) this.#roomWaiters.shift()!();
  }
}

export type ThreadPoolOptions = Omit<PoolOptions, 'startMethod' | 'maxMemoryPerChild'>;

/**
 * A pool of worker threads (`worker_threads`) with the API of `Pool`, as CPython's
 * `multiprocessing.pool.ThreadPool`. Functions go to the threads as to `spawn` workers: a
 * `TaskRef` or a self-contained function (sent by its source); arguments and results by
 * structured clone, forkwise objects (locks, `Value`, `SharedArray`, queues) and
 * `SharedArrayBuffer`s shared. A timeout or an abort ends the task's thread
 * (`Worker.terminate()`); `maxMemoryPerChild` is refused (threads share this process's).
 *
 * @example
 * import { ThreadPool } from 'forkwise/multiprocessing';
 * await using pool = new ThreadPool({ processes: 2 });
 * await pool.map((x) => x * x, [1, 2, 3]); // [1, 4, 9]
 */
export class ThreadPool extends Pool {
  constructor(options: ThreadPoolOptions = {}) {
    super(options);
  }
}

/** As CPython's `AsyncResult`, over a Promise. */
export class AsyncResult<T> {
  #settled = false;
  #ok = false;
  constructor(readonly promise: Promise<T>) {
    promise.then(
      () => {
        this.#settled = true;
        this.#ok = true;
      },
      () => {
        this.#settled = true;
      },
    );
  }

  /** The result; rejects with the task's error, or a TimeoutError after `timeout` ms. */
  get(timeout?: number): Promise<T> {
    if (timeout === undefined) return this.promise;
    let timer: NodeJS.Timeout;
    return Promise.race([
      this.promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new TimeoutError('forkwise: the result is not ready')), validateTimeout(timeout, 'timeout'));
      }),
    ]).finally(() => clearTimeout(timer));
  }

  /** Waits until the result is ready, at most `timeout` ms. */
  async wait(timeout?: number): Promise<void> {
    await this.get(timeout).catch(() => {});
  }

  ready(): boolean {
    return this.#settled;
  }

  /** Whether the task succeeded; throws if it is not ready (as CPython's ValueError). */
  successful(): boolean {
    if (!this.#settled) throw new ForkwiseError('ERR_FORKWISE_RESULT_NOT_READY', 'forkwise: the result is not ready');
    return this.#ok;
  }
}

type Percentiles = { p50: number; p90: number; p99: number };

// The last STATS_WINDOW durations, for percentiles (a ring: the oldest is overwritten).
const STATS_WINDOW = 10000;
function record(list: number[] & { next?: number }, value: number): void {
  if (list.length < STATS_WINDOW) return void list.push(value);
  const next = list.next ?? 0;
  list[next] = value;
  list.next = (next + 1) % STATS_WINDOW;
}

function percentiles(list: number[]): Percentiles {
  const sorted = [...list].sort((a, b) => a - b);
  const at = (q: number): number => (sorted.length === 0 ? 0 : sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]!);
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99) };
}

// A worker's pipe is a shared memory segment whose name lives as long as this process
// (shared_memory.ts). Once the worker has mapped it (its first answer) or has ended, nobody
// attaches by name any more: removed, so that recycled workers leave nothing in /dev/shm.
function forgetName(conn: Connection): void {
  if (useFallback) return; // the fallback's pipes are kept by this process, not named
  try {
    native.shmUnlink(`/${conn.handle.name}`);
  } catch {
    // already removed
  }
}

// Functions sent by their source, as described (task.ts) the first time.
const described = new WeakMap<Function, TaskSpec>();

const terminatedError = (): Error => new ForkwiseError('ERR_FORKWISE_POOL_TERMINATED', 'forkwise: the pool was terminated');

// A progress callback runs inside the pool's reply handling: what it throws is thrown on its
// own, as an uncaught exception, not into the pool.
function report(onProgress: NonNullable<MapOptions['onProgress']>, done: number, total: number | undefined): void {
  try {
    onProgress(done, total);
  } catch (error) {
    queueMicrotask(() => {
      throw error;
    });
  }
}

function unstart(chunk: Chunk): Chunk {
  delete chunk.startedAt;
  return chunk;
}

function validateTimeout(value: unknown, name: string): number {
  if (typeof value !== 'number' || Number.isNaN(value) || value < 0) throw invalidArgValue(name, value, 'must be a number >= 0');
  return value;
}
