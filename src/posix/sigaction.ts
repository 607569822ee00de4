/**
 * Signal dispositions, the signal mask and pending signals. A JavaScript handler runs on the
 * event loop, never inside the signal handler: native/signal.cc describes how a delivery gets
 * there, and what happens across fork and exec.
 */
import { constants } from 'node:os';
import { isMainThread } from 'node:worker_threads';
import { ForkwiseError, invalidArgType, invalidArgValue, outOfRange } from './errors';
import { native, supported } from './native';
import { signalName, signalNumber, validateSignalSet, type Signal } from './signals';
import { validateBoolean, validateObject } from './validate';

/** What a JavaScript signal handler learns about one delivery. */
export interface SigInfo {
  /** The signal number. */
  signo: number;
  /** `si_code`: why it was sent (`SI_USER` 0 for kill, `SI_TKILL` -6 for raise, …). */
  code: number;
  /** The sender's pid (for SIGCHLD: the child's), 0 when the kernel sent it. */
  pid: number;
  /** The sender's real uid. */
  uid: number;
  /** SIGCHLD only: the exit code, or the signal that ended or stopped the child. */
  status?: number;
  /**
   * Deliveries of this signal lost since the handler last ran, because too many signals
   * arrived while the event loop was busy (normally 0).
   */
  missed: number;
}

/** A JavaScript signal handler. */
export type SigHandler = (signal: NodeJS.Signals, info: SigInfo) => void;

/** `sigaction` flags, as the `SA_*` flags of C. */
export interface SigActionFlags {
  /** SA_RESTART: system calls interrupted by the signal restart. */
  restart?: boolean;
  /** SA_RESETHAND: the disposition goes back to default once the signal is delivered. */
  resetHand?: boolean;
  /** SA_NODEFER: the signal is not blocked while its handler runs. */
  nodefer?: boolean;
  /** SA_NOCLDSTOP (SIGCHLD): no signal when a child stops or continues. */
  noCldStop?: boolean;
  /** SA_NOCLDWAIT (SIGCHLD): children that end are not left as zombies. */
  noCldWait?: boolean;
}

/**
 * A signal disposition. `handler` is `'default'`, `'ignore'`, a JavaScript function, or
 * `'node'`: a handler that forkwise did not install, in practice Node's own (a signal with
 * `process.on` listeners, SIGUSR1 for the inspector, SIGCHLD once `child_process` has been
 * used). Setting `'node'` gives back the handler that forkwise replaced, or default if there
 * was none.
 */
export interface SigAction {
  handler: 'default' | 'ignore' | 'node' | SigHandler;
  flags?: SigActionFlags | null;
  mask?: Signal[] | null;
}

/** A disposition as read back: every flag present, the mask as names. */
export interface CurrentSigAction extends SigAction {
  flags: Required<SigActionFlags>;
  mask: NodeJS.Signals[];
}

const FLAG_NAMES = ['restart', 'resetHand', 'nodefer', 'noCldStop', 'noCldWait'] as const;
function flagBits(): Record<(typeof FLAG_NAMES)[number], number> {
  return {
    restart: native.SA_RESTART,
    resetHand: native.SA_RESETHAND,
    nodefer: native.SA_NODEFER,
    noCldStop: native.SA_NOCLDSTOP,
    noCldWait: native.SA_NOCLDWAIT,
  };
}

// Native dispositions: what to set, and what was read back.
const enum Kind {
  Read = -1,
  Default = 0,
  Ignore = 1,
  Catch = 2,
  Foreign = 3,
}

const SIGCHLD = constants.signals.SIGCHLD;
// The handler for each signal number, looked up when a delivery is dispatched: a delivery
// still in the pipe when its handler is replaced goes to the new one, or nowhere.
const handlers = new Map<number, SigHandler>();

function dispatch(signo: number, code: number, pid: number, uid: number, status: number, missed: number): void {
  const handler = handlers.get(signo);
  if (handler === undefined) return;
  const info: SigInfo = { signo, code, pid, uid, missed };
  if (signo === SIGCHLD) info.status = status;
  try {
    handler(signalName(signo), info);
  } catch (error) {
    // An uncaught exception, as if thrown from a process.on('SIGx') listener.
    process.nextTick(() => {
      throw error;
    });
  }
}

if (supported && isMainThread) native.setSignalDispatcher(dispatch);

function validateAction(value: unknown): { kind: Kind; handler?: SigHandler; flags: number; mask: number[] } {
  const action = validateObject(value, 'action');
  const { handler } = action;
  let kind: Kind;
  if (typeof handler === 'function') kind = Kind.Catch;
  else if (handler === 'default') kind = Kind.Default;
  else if (handler === 'ignore') kind = Kind.Ignore;
  else if (handler === 'node') kind = Kind.Foreign;
  else if (typeof handler === 'string') {
    throw invalidArgValue('action.handler', handler, "must be 'default', 'ignore', 'node' or a function");
  } else throw invalidArgType('action.handler', "of type function or one of 'default', 'ignore', 'node'", handler);

  let flags = 0;
  if (action.flags != null) {
    const given = validateObject(action.flags, 'action.flags');
    const bits = flagBits();
    for (const [name, on] of Object.entries(given)) {
      if (!(FLAG_NAMES as readonly string[]).includes(name)) {
        throw invalidArgValue('action.flags', name, `has an unknown flag; known: ${FLAG_NAMES.join(', ')}`);
      }
      if (on == null) continue;
      if (validateBoolean(on, `action.flags.${name}`)) flags |= bits[name as (typeof FLAG_NAMES)[number]];
    }
  }
  const mask = action.mask == null ? [] : validateSignalSet(action.mask, 'action.mask');
  return { kind, handler: kind === Kind.Catch ? (handler as SigHandler) : undefined, flags, mask };
}

function toSigAction(signo: number, [kind, flags, mask]: [number, number, number[]]): CurrentSigAction {
  let handler: CurrentSigAction['handler'];
  if (kind === Kind.Catch) handler = handlers.get(signo) ?? 'node';
  else if (kind === Kind.Ignore) handler = 'ignore';
  else if (kind === Kind.Foreign) handler = 'node';
  else handler = 'default';
  const bits = flagBits();
  const named = {} as Required<SigActionFlags>;
  for (const name of FLAG_NAMES) named[name] = (flags & bits[name]) !== 0;
  return { handler, flags: named, mask: mask.map(signalName) };
}

function validateSignal(sig: unknown): number {
  const signo = signalNumber(sig);
  if (signo === 0) throw outOfRange('signal', '>= 1 && <= 64', sig);
  return signo;
}

/**
 * `sigaction(2)`: sets the disposition of `sig` and returns the previous one; with no
 * `action`, only reads it. A function handler runs on the event loop, never inside the
 * signal handler, and gets the sender's pid and uid, which `process.on('SIGx')` cannot give.
 * Each delivery the kernel makes reaches it once; a standard signal raised again while it is
 * still pending is delivered once (real-time signals queue). Like `process.on('SIGx')`, a
 * handler does not keep the process alive. Setting `'default'` on a signal that has
 * `process.on` listeners gives it back to Node (as does `'node'`); on SIGCHLD it gives it
 * back to libuv, which `child_process` needs. Across `fork()` the child keeps the handlers
 * and gets its deliveries itself; `exec` resets caught signals to default and keeps ignored
 * ones. SIGKILL and SIGSTOP cannot be changed (`EINVAL`). Only the main thread can set.
 *
 * @example
 * import { sigaction } from 'forkwise';
 * const previous = sigaction('SIGTERM', {
 *   handler: (signal, info) => console.log(`${signal} from pid ${info.pid}`),
 *   flags: { restart: true },
 * });
 * // later: put back what was there
 * sigaction('SIGTERM', previous);
 */
export function sigaction(sig: Signal, action?: SigAction | null): CurrentSigAction {
  const signo = validateSignal(sig);
  if (action == null) return toSigAction(signo, native.sigaction(signo, Kind.Read));
  const { handler, flags, mask, ...checked } = validateAction(action);
  let { kind } = checked;
  if (supported && !isMainThread) {
    throw new ForkwiseError(
      'ERR_FORKWISE_NOT_MAIN_THREAD',
      'forkwise: signal dispositions can only be changed from the main thread',
    );
  }
  if (kind === Kind.Default && process.listenerCount(signalName(signo)) > 0) kind = Kind.Foreign;
  const previous = toSigAction(signo, native.sigaction(signo, kind, flags, mask));
  if (handler === undefined) handlers.delete(signo);
  else handlers.set(signo, handler);
  return previous;
}

/**
 * `signal(2)`: shorthand for `sigaction(sig, { handler })`. Returns the previous handler.
 *
 * @example
 * import { signal } from 'forkwise';
 * signal('SIGHUP', () => reloadConfig());
 * signal('SIGPIPE', 'ignore');
 */
export function signal(sig: Signal, handler: SigAction['handler']): SigAction['handler'] {
  return sigaction(sig, { handler }).handler;
}

const HOW = { block: 0, unblock: 1, setmask: 2 } as const;

/**
 * `pthread_sigmask(3)`: blocks (`'block'`), unblocks (`'unblock'`) or sets (`'setmask'`) the
 * signals blocked on the calling thread, and returns the previous mask. A blocked signal
 * stays pending until it is unblocked, then its handler runs. Signals sent to the process
 * (`kill`) may still be delivered to one of Node's other threads that does not block them.
 *
 * @example
 * import { sigprocmask, raise, sigpending } from 'forkwise';
 * const before = sigprocmask('block', ['SIGUSR2']);
 * raise('SIGUSR2');
 * sigpending(); // ['SIGUSR2']
 * sigprocmask('setmask', before); // the handler runs now
 */
export function sigprocmask(how: 'block' | 'unblock' | 'setmask', signals: Signal[]): NodeJS.Signals[] {
  if (typeof how !== 'string') throw invalidArgType('how', 'of type string', how);
  if (!Object.hasOwn(HOW, how)) throw invalidArgValue('how', how, "must be 'block', 'unblock' or 'setmask'");
  const set = validateSignalSet(signals, 'signals');
  return native.sigprocmask(HOW[how], set).map(signalName);
}

/**
 * `sigpending(2)`: the signals pending for the calling thread or the process (blocked,
 * so not delivered yet).
 *
 * @example
 * import { sigpending } from 'forkwise';
 * if (sigpending().includes('SIGTERM')) console.log('asked to stop');
 */
export function sigpending(): NodeJS.Signals[] {
  return native.sigpending().map(signalName);
}
