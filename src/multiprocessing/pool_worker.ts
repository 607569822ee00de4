/**
 * A pool worker's loop (pool.ts is the parent's side). It reads tasks from its Connection,
 * blocking between them (a worker has nothing else to do), runs each and answers on the same
 * Connection, in order:
 *   parent → worker   ['task', seq, fn, list, spread] run fn(...args) for each args array of
 *                                                   the list (spread), or fn(item) for each item
 *                     ['tasks', [task, ...]]          several at once
 *                     ['stop']                        finish and exit
 *   worker → parent   ['done', seq, results, ms]      ms: how long the chunk ran here
 *                     ['fail', seq, error, ms]        a plain { name, message, stack, code }
 *                     ['init-failed', error]          the initializer threw; the worker exits
                     ['recycle']                     grown past maxMemoryPerChild: it exits
                                                     (cleanly) without starting the rest
 * A worker answers each task as soon as it is done, so that the parent always knows which
 * one runs (a death or a timeout concerns exactly that one).
 * `fn` is an index into the function registry that a forked worker inherited, or a TaskSpec
 * (spawn, forkserver, threads), loaded once per worker. The same loop runs in a worker process
 * (a Process's target) and in a ThreadPool's worker thread (pool_thread_main.ts).
 */
import type { Connection } from '../messaging/connection';
import { loadTarget, type TaskSpec } from '../messaging/task';

export type FnRef = number | TaskSpec;
export type OneTask = ['task', number, FnRef, unknown[], boolean];
export type TaskMessage = OneTask | ['tasks', OneTask[]] | ['stop'];
export type ErrorRecord = { name: string; message: string; stack?: string; code?: unknown };
export type TaskReply = ['done', number, unknown[], number] | ['fail', number, ErrorRecord, number];
export type ReplyMessage = TaskReply | ['init-failed', ErrorRecord] | ['recycle'];

/**
 * Functions the parent has handed to a pool, by index. A forked worker has the entries that
 * existed when it was forked.
 */
export const registry: Function[] = [];
const indexOf = new Map<Function, number>();

export function register(fn: Function): number {
  let index = indexOf.get(fn);
  if (index === undefined) {
    index = registry.push(fn) - 1;
    indexOf.set(fn, index);
  }
  return index;
}

export function errorRecord(error: unknown): ErrorRecord {
  if (!(error instanceof Error)) return { name: 'Error', message: `non-error thrown: ${String(error)}` };
  const code = (error as { code?: unknown }).code;
  return {
    name: error.name,
    message: error.message,
    stack: error.stack,
    ...(typeof code === 'string' || typeof code === 'number' ? { code } : {}),
  };
}

export interface WorkerSetup {
  initializer?: FnRef;
  initArgs: unknown[];
  maxMemoryPerChild?: number;
}

const isThenable = (value: unknown): value is PromiseLike<unknown> =>
  value !== null && (typeof value === 'object' || typeof value === 'function') && typeof (value as PromiseLike<unknown>).then === 'function';

/** Runs tasks until told to stop or the parent is gone; resolves when the worker should exit. */
export async function workerLoop(conn: Connection, setup: WorkerSetup): Promise<void> {
  const loaded = new Map<string, Function>();
  const resolveFn = async (ref: FnRef): Promise<Function> => {
    if (typeof ref === 'number') return registry[ref]!;
    const key = ref.kind === 'ref' ? `${ref.module}#${ref.name}` : ref.source;
    let fn = loaded.get(key);
    if (!fn) loaded.set(key, (fn = await loadTarget(ref)));
    return fn;
  };
  if (setup.initializer !== undefined) {
    try {
      const init = await resolveFn(setup.initializer);
      const result = init(...setup.initArgs);
      if (isThenable(result)) await result;
    } catch (error) {
      conn.send(['init-failed', errorRecord(error)] satisfies ReplyMessage);
      return;
    }
  }
  const run = async ([, seq, ref, list, spread]: OneTask): Promise<void> => {
    const results: unknown[] = [];
    const started = performance.now();
    let reply: TaskReply;
    try {
      const fn = typeof ref === 'number' ? registry[ref]! : await resolveFn(ref);
      for (const item of list) {
        const result = spread ? fn(...(item as unknown[])) : fn(item);
        results.push(isThenable(result) ? await result : result);
      }
      reply = ['done', seq, results, performance.now() - started];
    } catch (error) {
      reply = ['fail', seq, errorRecord(error), performance.now() - started];
    }
    try {
      conn.send(reply);
    } catch (error) {
      // A result that cannot be cloned fails its task, as a thrown error would.
      conn.send(['fail', seq, errorRecord(error), reply[3]] satisfies ReplyMessage);
    }
  };
  // Recycled by memory: said before the exit, so that the parent gives what this worker had
  // not started to another (an exit without it, even with code 0, is a death mid-task).
  const tooBig = (): boolean => setup.maxMemoryPerChild !== undefined && process.memoryUsage.rss() > setup.maxMemoryPerChild;
  for (;;) {
    let message: TaskMessage;
    try {
      message = conn.recvSync() as TaskMessage;
    } catch {
      return; // the parent is gone (EOFError)
    }
    if (message[0] === 'stop') return;
    for (const task of message[0] === 'tasks' ? message[1] : [message]) {
      await run(task);
      if (tooBig()) {
        conn.send(['recycle'] satisfies ReplyMessage);
        return;
      }
    }
  }
}

/** The entry of a spawned or forkserver worker (a TaskRef target of the pool's Process). */
export async function runWorker(conn: Connection, setup: WorkerSetup): Promise<void> {
  await workerLoop(conn, setup);
  conn.close();
}
