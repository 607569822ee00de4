/**
 * What happens to an error that escapes a thread's target, as CPython's
 * `threading.excepthook`: by default it is printed to stderr under
 * `Exception in thread NAME:`; `setExcepthook` replaces that. The hook runs in the thread
 * that started the failed one, when its end is seen; `join()` never throws it, the
 * `Thread`'s `.error` keeps it.
 */
import { inspect } from 'node:util';
import { invalidArgType } from '../posix/errors';

/** What the hook is given (CPython's `ExceptHookArgs`). */
export interface ExceptHookArgs {
  /** The error's `name` (`'TypeError'`), or the type of a thrown non-Error value. */
  excType: string;
  /** What the target threw (an Error rebuilt here, or the thrown value). */
  excValue: unknown;
  /** The stack as the thread saw it. */
  excTraceback: string | undefined;
  /** The thread that failed (`name`, `ident`, ...). */
  thread: { readonly name: string; readonly ident: number | undefined } | null;
}

export type ExceptHook = (args: ExceptHookArgs) => void;

/**
 * The default hook (CPython's `threading.__excepthook__`): prints
 * `Exception in thread NAME:` and the error's stack to stderr.
 *
 * @example
 * setExcepthook((args) => log.error(args.excValue));
 * setExcepthook(null); // back to excepthook
 */
export function excepthook(args: ExceptHookArgs): void {
  const { excValue, excTraceback, thread } = args;
  const body = excTraceback ?? (excValue instanceof Error ? String(excValue) : inspect(excValue));
  process.stderr.write(`Exception in thread ${thread?.name ?? 'unknown'}:\n${body}\n`);
}

let hook: ExceptHook = excepthook;

/** Replaces the hook (`null` or `undefined`: back to the default `excepthook`). */
export function setExcepthook(replacement: ExceptHook | null | undefined): void {
  if (replacement === null || replacement === undefined) {
    hook = excepthook;
    return;
  }
  if (typeof replacement !== 'function') throw invalidArgType('hook', 'a function', replacement);
  hook = replacement;
}

/** The hook in use. */
export function getExcepthook(): ExceptHook {
  return hook;
}

/** Runs the hook; an error thrown by a replaced hook is printed too, as CPython does. */
export function reportThreadError(args: ExceptHookArgs): void {
  try {
    hook(args);
  } catch (error) {
    const body = error instanceof Error ? (error.stack ?? String(error)) : inspect(error);
    process.stderr.write(`Exception in threading.excepthook:\n${body}\n`);
  }
}
