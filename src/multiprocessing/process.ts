/**
 * `Process`: a child process running a target, as CPython's `multiprocessing.Process`. The
 * start method (context.ts) is a strategy that hands back a Popen (popen.ts); everything
 * here is the same for the three.
 */
import { afterForkInChild } from '../posix/child';
import { ForkwiseError, invalidArgType, invalidArgValue } from '../posix/errors';
import { validateBoolean, validateObject } from '../posix/validate';
import { currentProcess, becomeProcess } from './identity';
import { makePayload } from './payload';
import { describeTarget, loadTarget } from '../messaging/task';
import type { ChildEnd, Popen } from './popen';
import { checkForkSafe, startFork } from './popen_fork';
import { startSpawn } from './popen_spawn';
import { startForkserver } from './popen_forkserver';
import { startFallback } from './popen_fallback';
import { useFallback } from '../compat/platform';
import { collectLent, type Lent } from '../messaging/lending';
import type { LentHold } from '../compat/connection';
import { checkAvailable, getStartMethod, validateStartMethod, type StartMethod } from './start_method';

export interface ProcessOptions {
  /** What the child runs (default: nothing, or the subclass's `run()`). */
  target?: Function | { module: string | URL; name: string };
  args?: unknown[];
  /** Default: `Process-N`. */
  name?: string;
  /** A daemon child does not keep this process alive and is ended when it exits. */
  daemon?: boolean;
  /** Default: the context's, or `getStartMethod()`. */
  startMethod?: StartMethod;
}

// Children started from this process and not yet seen to end (activeChildren()).
const children = new Set<Process>();
let counter = 0;

// A forked child has the parent's Process objects but none of its children.
afterForkInChild((rehearsal) => {
  if (rehearsal) return;
  children.clear();
  counter = 0;
});

// Daemon children end with this process, as in CPython (SIGTERM at exit).
process.on('exit', () => {
  for (const child of children) {
    if (child.daemon && child.isAlive()) child.terminate();
  }
});

/**
 * A child process running `target(...args)` (or a subclass's `run()`).
 *
 * @example
 * import { Process } from 'forkwise/multiprocessing';
 * const p = new Process({ target: (n) => console.log('child got', n), args: [42] });
 * p.start();
 * await p.join();
 * p.exitCode; // 0
 */
export class Process {
  name: string;
  #daemon: boolean;
  readonly #target: ProcessOptions['target'];
  readonly #args: unknown[];
  readonly #method: StartMethod | undefined;
  #popen: Popen | undefined;
  // The holds its arguments' Connection ends lent (lending.ts): the child's once it exists,
  // given back once it has ended.
  #lent: Lent[] = [];
  #starting: Promise<void> | undefined;
  #startError: unknown;
  #end: ChildEnd | undefined;

  constructor(options: ProcessOptions = {}) {
    const { target, args = [], name, daemon = false, startMethod } = validateObject(options, 'options') as ProcessOptions;
    if (target !== undefined && target !== null && typeof target !== 'function' && typeof target !== 'object') {
      throw invalidArgType('options.target', 'a function or a TaskRef { module, name }', target);
    }
    if (!Array.isArray(args)) throw invalidArgType('options.args', 'an array', args);
    if (name !== undefined && typeof name !== 'string') throw invalidArgType('options.name', 'of type string', name);
    this.#target = target ?? undefined;
    this.#args = args;
    this.#daemon = validateBoolean(daemon, 'options.daemon');
    this.#method = startMethod === undefined ? undefined : validateStartMethod(startMethod, 'options.startMethod');
    counter += 1;
    const parentName = currentProcess().name;
    this.name = name ?? (parentName === 'MainProcess' ? `Process-${counter}` : `${parentName}:${counter}`);
  }

  /** What the child runs: `target(...args)`. Override it in a subclass. */
  run(): unknown {
    const target = this.#target;
    if (typeof target === 'function') return target(...this.#args);
    if (target) return loadTarget(describeTarget(target, 'options.target')).then((fn) => fn(...this.#args));
    return undefined;
  }

  get daemon(): boolean {
    return this.#daemon;
  }

  set daemon(value: boolean) {
    if (this.#starting) throw new ForkwiseError('ERR_FORKWISE_PROCESS_STARTED', 'forkwise: a process that has started cannot change daemon');
    this.#daemon = validateBoolean(value, 'daemon');
  }

  /** The start method this process uses. */
  get startMethod(): StartMethod {
    return this.#method ?? getStartMethod();
  }

  /** The child's pid, once it exists (`undefined` before). */
  get pid(): number | undefined {
    return this.#popen?.pid;
  }

  /** A descriptor that becomes readable when the child has ended (until `join` returns). */
  get sentinel(): number | undefined {
    return this.#popen?.sentinel;
  }

  /** `null` while running or before `start()`; 0, 1 (target threw), `process.exit(n)`'s n, or -signo. */
  get exitCode(): number | null {
    return this.#end?.exitCode ?? null;
  }

  /** The error the target threw, rebuilt here (name, message, stack, code). */
  get error(): Error | undefined {
    return this.#end?.error;
  }

  /**
   * Starts the child. The returned Promise (which callers may ignore, as in CPython)
   * resolves once it exists, `pid` set; a target or arguments that cannot cross to it
   * throw here.
   */
  start(): Promise<void> {
    if (this.#starting) throw new ForkwiseError('ERR_FORKWISE_PROCESS_STARTED', 'forkwise: a process can only be started once');
    const method = this.startMethod;
    const overridesRun = this.run !== Process.prototype.run;
    const identity = { name: this.name, daemon: this.#daemon, parentPid: process.pid, parentName: currentProcess().name };
    let popen: Popen | Promise<Popen>;
    checkAvailable(method);
    if (method === 'fork') {
      checkForkSafe();
      popen = startFork({
        daemon: this.#daemon,
        becomeChild: () => becomeProcess(identity.name, identity.daemon, identity.parentPid, identity.parentName),
        run: () => this.run(),
      });
    } else {
      const target = overridesRun ? this.run : this.#target;
      const thisArg = overridesRun ? { ...(this as object), name: this.name, daemon: this.#daemon } : undefined;
      // Connection ends among the arguments are held on their way until the child attaches
      // them, and given back once it has ended (lending.ts).
      const [payload, lent] = collectLent(() => makePayload(identity, target, thisArg, overridesRun ? [] : this.#args));
      this.#lent = lent;
      if (useFallback) popen = startFallback(payload, this.#daemon, lent.flatMap((l) => (l.forService ? [l.forService as LentHold] : [])));
      else popen = method === 'spawn' ? startSpawn(payload, this.#daemon) : startForkserver(payload, this.#daemon);
    }
    children.add(this);
    this.#starting = Promise.resolve(popen).then(
      (started) => {
        this.#popen = started;
        for (const l of this.#lent) l.toChild?.(started.pid);
        void started.ended.then((end) => this.#ended(end));
      },
      (error: unknown) => {
        this.#startError = error;
        children.delete(this);
        this.#giveBack();
        throw error;
      },
    );
    // A failure is also what join() rejects with: not an unhandled rejection when ignored.
    this.#starting.catch(() => {});
    return this.#starting;
  }

  /**
   * Settles once `p` has ended (not kept alive by this: a daemon child that nobody waits
   * for does not hold this process). For the pools of this package.
   */
  static ended(p: Process): Promise<void> {
    if (!p.#starting) return Promise.reject(new ForkwiseError('ERR_FORKWISE_PROCESS_NOT_STARTED', 'forkwise: not started'));
    return p.#starting.then(() => p.#popen!.ended).then((end) => p.#ended(end));
  }

  #ended(end: ChildEnd): void {
    this.#end = end;
    children.delete(this);
    this.#giveBack();
  }

  #giveBack(): void {
    for (const l of this.#lent.splice(0)) l.giveBack();
  }

  /**
   * Waits for the child to end, at most `timeout` ms (then returns with `exitCode` still
   * `null`, as CPython). Rejects if the child could not be started.
   */
  async join(timeout?: number): Promise<void> {
    this.#checkJoinable(timeout);
    if (this.#end) return this.#release();
    await this.#starting;
    const popen = this.#popen!;
    if (timeout === undefined) {
      this.#ended(await popen.wait());
      return this.#release();
    }
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), timeout);
    });
    const end = await Promise.race([popen.wait(), timedOut]);
    clearTimeout(timer);
    if (end) {
      this.#ended(end);
      this.#release();
    }
  }

  /** Blocks the thread until the child ends, at most `timeout` ms. */
  joinSync(timeout?: number): void {
    this.#checkJoinable(timeout);
    if (this.#end) return this.#release();
    if (!this.#popen) {
      if (this.#startError !== undefined) throw this.#startError;
      throw new ForkwiseError(
        'ERR_FORKWISE_PROCESS_NOT_STARTED',
        'forkwise: joinSync() before the child exists; await start() first (the fork method forks on the next turn of the event loop)',
      );
    }
    const end = this.#popen.waitSync(timeout);
    if (end) {
      this.#ended(end);
      this.#release();
    }
  }

  #checkJoinable(timeout: number | undefined): void {
    if (timeout !== undefined && (typeof timeout !== 'number' || Number.isNaN(timeout) || timeout < 0)) {
      throw invalidArgValue('timeout', timeout, 'must be a number >= 0');
    }
    if (!this.#starting) throw new ForkwiseError('ERR_FORKWISE_PROCESS_NOT_STARTED', 'forkwise: can only join a started process');
  }

  #release(): void {
    this.#popen?.close();
  }

  /** True from `start()` until the child is seen to have ended. */
  isAlive(): boolean {
    if (!this.#starting || this.#end || this.#startError !== undefined) return false;
    if (!this.#popen) return true;
    const end = this.#popen.poll();
    if (end) this.#ended(end);
    return !end;
  }

  /** SIGTERM to the child. */
  terminate(): void {
    this.#signal('SIGTERM');
  }

  /** SIGKILL to the child. */
  kill(): void {
    this.#signal('SIGKILL');
  }

  #signal(signal: 'SIGTERM' | 'SIGKILL'): void {
    const popen = this.#popen;
    if (!popen || this.#end) {
      if (this.#starting && !this.#end && this.#startError === undefined) {
        // Not forked yet: it is signalled as soon as it exists.
        void this.#starting.then(() => this.#signal(signal), () => {});
      }
      return;
    }
    try {
      popen.signal(signal);
    } catch (error) {
      if ((error as { code?: string }).code !== 'ESRCH') throw error;
    }
  }

  /** Closes the sentinel; the process must have ended. */
  close(): void {
    if (this.#popen && !this.#end && !this.#popen.poll()) {
      throw new ForkwiseError('ERR_FORKWISE_PROCESS_RUNNING', 'forkwise: cannot close a process that is still running');
    }
    this.#release();
  }
}

/** The children started from this process that are still running (ended ones are reaped). */
export function activeChildren(): Process[] {
  return [...children].filter((child) => child.isAlive());
}
