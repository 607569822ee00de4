/**
 * `Thread`: a target run on a `worker_threads` Worker, as CPython's `threading.Thread`.
 *
 * A Worker shares no JavaScript values with the thread that starts it, so the target
 * crosses as in the `spawn` start method (a TaskRef, or a self-contained function sent by
 * its source, task.ts), and the arguments through `workerData`: forkwise objects by handle
 * (the same lock, queue, Value in the thread), `SharedArrayBuffer`s and typed arrays over
 * them shared as `postMessage` shares them, the rest copied by structured clone.
 *
 * Each thread has a control word in a SharedArrayBuffer (set once its target is over, so
 * that `isAlive()` and `joinSync()` need no turn of the event loop) and a MessagePort on
 * which it leaves its outcome before it ends; the outcome is read with
 * `receiveMessageOnPort`, synchronously, by whichever of `join` / `joinSync` sees the end
 * first. The thread ends (`process.exit` in the Worker) as soon as its target is over, as
 * a CPython thread does when `run()` returns: whatever the target left pending (a timer, an
 * attached queue's watcher) does not keep it running.
 */
import { join as joinPath } from 'node:path';
import { MessageChannel, receiveMessageOnPort, threadId, Worker, type MessagePort } from 'node:worker_threads';
import { ForkwiseError, invalidArgType, invalidArgValue } from '../posix/errors';
import { validateBoolean, validateObject } from '../posix/validate';
import type { TaskRef, TaskSpec } from '../messaging/task';
import { reportThreadError } from './excepthook';
import { failure, rebuild, type Outcome } from './outcome';

export interface ThreadOptions {
  /** What the thread runs: a self-contained function or a TaskRef (default: nothing, or the subclass's `run()`). */
  target?: Function | TaskRef;
  args?: unknown[];
  /** Default: `Thread-N (target's name)`. */
  name?: string;
  /** A daemon thread does not keep the process alive, and is ended when the process exits. */
  daemon?: boolean;
}

/** Indexes of the control words. */
export const DONE = 0;
export const CANCELLED = 1;

/** What a Worker is given (thread_main.ts). */
export interface ThreadData {
  name: string;
  daemon: boolean;
  target: TaskSpec | null;
  /** `[thisArg, args]`, forkwise objects as handles. */
  call: unknown;
  /** Whether `call` holds handles (the thread then loads the serializer to attach them). */
  handles: boolean;
  control: Int32Array;
  outcome: MessagePort;
  counter: Int32Array;
  /** Timer: wait this many ms (unless cancelled) before running the target. */
  delay?: number;
}

/** Timer's delay, passed to the constructor under a key no user option can have. */
export const TIMER_DELAY = Symbol('forkwise.timerDelay');

// One counter of thread names for the whole process, shared with every thread it starts.
let counter: Int32Array = new Int32Array(new SharedArrayBuffer(4));

// Threads started from this thread and not yet seen to end (enumerate()).
const running = new Set<Thread>();

// The identity this thread has (thread_main.ts sets it in a Worker).
let current: Thread | undefined;
let main: Thread | undefined;

// Set while building the Thread objects that stand for the main thread and the current one.
let standIn: { name: string; ident: number; daemon: boolean; alive: boolean } | undefined;

const workerFile = joinPath(__dirname, 'thread_main.js');

/**
 * A target run in a thread of its own (a `worker_threads` Worker): CPython's
 * `threading.Thread`.
 *
 * @example
 * import { Thread, Value } from 'forkwise/threading';
 * const total = new Value('int32', 0);
 * const add = (total, n) => {
 *   const lock = total.getLock();
 *   for (let i = 0; i < n; i++) { lock.acquire(); total.value += 1; lock.release(); }
 * };
 * const threads = [1, 2].map(() => new Thread({ target: add, args: [total, 1000] }));
 * for (const t of threads) t.start();
 * for (const t of threads) await t.join();
 * total.value; // 2000
 */
export class Thread {
  name: string;
  #daemon: boolean;
  readonly #target: Function | TaskRef | undefined;
  readonly #args: unknown[];
  readonly #delay: number | undefined;
  #ident: number | undefined;
  #control: Int32Array | undefined;
  #outcomePort: MessagePort | undefined;
  #error: unknown;
  #started = false;
  #ended = false;
  #exited: Promise<void> | undefined;
  readonly #standIn: boolean;

  constructor(options: ThreadOptions = {}) {
    const given = standIn;
    standIn = undefined;
    if (given) {
      this.name = given.name;
      this.#daemon = given.daemon;
      this.#ident = given.ident;
      this.#target = undefined;
      this.#args = [];
      this.#delay = undefined;
      this.#started = true;
      this.#ended = !given.alive;
      this.#standIn = true;
      return;
    }
    this.#standIn = false;
    const { target, args = [], name, daemon = false } = validateObject(options, 'options') as ThreadOptions;
    if (target !== undefined && target !== null && typeof target !== 'function' && typeof target !== 'object') {
      throw invalidArgType('options.target', 'a function or a TaskRef { module, name }', target);
    }
    if (!Array.isArray(args)) throw invalidArgType('options.args', 'an array', args);
    if (name !== undefined && name !== null && typeof name !== 'string') throw invalidArgType('options.name', 'of type string', name);
    this.#target = target ?? undefined;
    this.#args = args;
    this.#daemon = validateBoolean(daemon ?? false, 'options.daemon');
    this.#delay = (options as { [TIMER_DELAY]?: number })[TIMER_DELAY];
    const n = Atomics.add(counter, 0, 1) + 1;
    const targetName = typeof target === 'function' ? target.name : (target as TaskRef | undefined)?.name;
    this.name = name ?? (targetName ? `Thread-${n} (${targetName})` : `Thread-${n}`);
  }

  /** What the thread runs: `target(...args)`. Override it in a subclass (sent by its source, `this` as its own fields). */
  run(): unknown {
    return undefined;
  }

  get daemon(): boolean {
    return this.#daemon;
  }

  set daemon(value: boolean) {
    if (this.#started) throw new ForkwiseError('ERR_FORKWISE_THREAD_STARTED', 'forkwise: cannot set daemon status of an active thread');
    this.#daemon = validateBoolean(value, 'daemon');
  }

  /** The thread's id (`worker.threadId`; 0 for the main thread), from `start()` on, kept after it ended. */
  get ident(): number | undefined {
    return this.#ident;
  }

  /** The same as `ident` (Node's name). */
  get threadId(): number | undefined {
    return this.#ident;
  }

  /** CPython's `native_id`: the same as `ident` here (Node numbers its threads itself). */
  get nativeId(): number | undefined {
    return this.#ident;
  }

  /** What the target threw (an Error rebuilt here with its name, message, stack and code), once the thread ended. */
  get error(): unknown {
    this.#poll();
    return this.#error;
  }

  /**
   * Starts the thread: the target and arguments are checked here (a function that reads an
   * outer variable, or an argument that cannot cross, throws a TypeError naming it).
   */
  start(): void {
    if (this.#started) throw new ForkwiseError('ERR_FORKWISE_THREAD_STARTED', 'forkwise: threads can only be started once');
    const overridesRun = this.run !== Thread.prototype.run;
    const target = overridesRun ? this.run : this.#target;
    // Loaded on the first start(): a thread that starts no thread does not pay for them.
    const { describeTarget } = require('../messaging/task') as typeof import('../messaging/task');
    const { toHandles } = require('../messaging/serializer') as typeof import('../messaging/serializer');
    const spec = target === undefined ? null : describeTarget(target, overridesRun ? 'run()' : 'options.target');
    const thisArg = overridesRun ? { ...(this as object), name: this.name, daemon: this.#daemon } : undefined;
    toHandles(this.#args, 'args'); // names the path of what cannot cross
    const callValue = [thisArg, overridesRun ? [] : this.#args];
    const call = toHandles(callValue, 'this');
    // A Timer cancelled before start has its control word already.
    const control = this.#control ?? new Int32Array(new SharedArrayBuffer(8));
    const { port1, port2 } = new MessageChannel();
    const data: ThreadData = {
      name: this.name,
      daemon: this.#daemon,
      target: spec,
      call,
      handles: call !== callValue,
      control,
      outcome: port2,
      counter,
    };
    if (this.#delay !== undefined) data.delay = this.#delay;
    let worker: Worker;
    try {
      worker = new Worker(workerFile, { workerData: data, transferList: [port2], stdout: false, stderr: false });
    } catch (error) {
      port1.close();
      port2.close();
      throw error;
    }
    this.#started = true;
    this.#ident = worker.threadId;
    this.#control = control;
    this.#outcomePort = port1;
    if (this.#daemon) worker.unref();
    running.add(this);
    let crash: unknown;
    let crashed = false;
    worker.on('error', (error) => {
      crashed = true;
      crash = error;
    });
    this.#exited = new Promise<void>((resolve) => {
      worker.once('exit', () => {
        // An uncaught error outside the target's own promise (a callback it left) ends the Worker.
        if (!this.#drain() && crashed) this.#settle(failure(crash));
        if (!this.#ended) this.#settle({ ok: true });
        resolve();
      });
    });
  }

  /** Takes the outcome the thread left, if it has; true once known. */
  #drain(): boolean {
    if (this.#ended) return true;
    const port = this.#outcomePort;
    const message = port ? receiveMessageOnPort(port) : undefined;
    if (!message) return false;
    this.#settle(message.message as Outcome);
    return true;
  }

  #settle(outcome: Outcome): void {
    if (this.#ended) return;
    this.#ended = true;
    this.#outcomePort?.close();
    this.#outcomePort = undefined;
    running.delete(this);
    if (!outcome.ok) {
      const { value, type, stack } = rebuild(outcome);
      this.#error = value;
      reportThreadError({ excType: type, excValue: value, excTraceback: stack, thread: this });
    }
  }

  // The control word says the target is over: take the outcome now.
  #poll(): void {
    if (!this.#ended && this.#control && Atomics.load(this.#control, DONE) === 1) this.#drain();
  }

  /** True from `start()` until the target is over. */
  isAlive(): boolean {
    if (this.#standIn) return !this.#ended;
    this.#poll();
    return this.#started && !this.#ended;
  }

  /**
   * Waits for the thread to end, at most `timeout` ms (then returns with `isAlive()` still
   * true, as CPython). Never throws the target's error: see `.error`.
   */
  async join(timeout?: number): Promise<void> {
    this.#checkJoinable(timeout);
    if (this.#ended && !this.#exited) return;
    if (timeout === undefined) {
      await this.#exited;
      return;
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<void>((resolve) => {
      timer = setTimeout(resolve, timeout);
    });
    await Promise.race([this.#exited, timedOut]);
    clearTimeout(timer);
    this.#poll();
  }

  /**
   * `join` blocking the calling thread (a worker with nothing else to do): at most `timeout`
   * ms; true when the thread's target is over.
   */
  joinSync(timeout?: number): boolean {
    this.#checkJoinable(timeout);
    const control = this.#control;
    if (this.#ended || !control) return this.#ended;
    Atomics.wait(control, DONE, 0, timeout ?? Infinity);
    this.#poll();
    return this.#ended;
  }

  #checkJoinable(timeout: number | undefined): void {
    if (timeout !== undefined && timeout !== null && (typeof timeout !== 'number' || Number.isNaN(timeout) || timeout < 0)) {
      throw invalidArgValue('timeout', timeout, 'must be a number >= 0');
    }
    if (!this.#started) throw new ForkwiseError('ERR_FORKWISE_THREAD_NOT_STARTED', 'forkwise: cannot join thread before it is started');
    if (this === currentThread()) throw new ForkwiseError('ERR_FORKWISE_JOIN_SELF', 'forkwise: cannot join current thread');
    if (this.#standIn) {
      throw new ForkwiseError('ERR_FORKWISE_JOIN_FOREIGN', `forkwise: cannot join ${this.name}, a thread that was not started here by Thread`);
    }
  }

  /** Timer: the cancellation word (set before or after start). */
  protected cancelTimer(): void {
    if (!this.#control) this.#control = new Int32Array(new SharedArrayBuffer(8));
    Atomics.store(this.#control, CANCELLED, 1);
    Atomics.notify(this.#control, CANCELLED);
  }

  /** @internal a Thread object standing for a thread forkwise did not start (main, or this Worker). */
  static standIn(name: string, ident: number, daemon: boolean): Thread {
    standIn = { name, ident, daemon, alive: true };
    return new Thread();
  }
}

/**
 * The Thread object of the calling thread (in a Thread's target: that thread's name and
 * ident; in the main thread: `mainThread()`).
 *
 * @example
 * new Thread({ target: () => console.log(require('forkwise/threading').currentThread().name) }).start();
 */
export function currentThread(): Thread {
  return (current ??= Thread.standIn(threadId === 0 ? 'MainThread' : `Worker-${threadId}`, threadId, false));
}

/** The Thread object of the process's main thread (name `'MainThread'`, ident 0). */
export function mainThread(): Thread {
  if (threadId === 0) return currentThread();
  return (main ??= Thread.standIn('MainThread', 0, false));
}

/**
 * The threads alive that this thread knows of: the main thread, the calling thread, and
 * those it started (a Worker sees the threads it started itself, not its siblings').
 */
export function enumerate(): Thread[] {
  const known = new Set<Thread>([mainThread(), currentThread()]);
  for (const thread of running) if (thread.isAlive()) known.add(thread);
  return [...known];
}

/** `enumerate().length`. */
export function activeCount(): number {
  return enumerate().length;
}

/** Called first thing in a Worker started by `Thread` (thread_main.ts). */
export function becomeThread(data: ThreadData): void {
  counter = data.counter;
  current = Thread.standIn(data.name, threadId, data.daemon);
}
