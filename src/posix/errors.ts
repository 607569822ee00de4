/**
 * Errors shaped like Node's own: system errors (`code`, negative `errno`, `syscall`,
 * optional `path`) and argument errors (`TypeError`/`RangeError` with Node's codes).
 */
import { constants } from 'node:os';
import { getSystemErrorMap, inspect } from 'node:util';

const errnoNames = new Map<number, string>(
  Object.entries(constants.errno).map(([name, value]) => [value, name]),
);

/** A failed system call, as Node reports one (`err.code === 'ENOENT'`). */
export class PosixError extends Error {
  readonly code: string;
  /** The negated errno value, as in Node's own system errors. */
  readonly errno: number;
  readonly syscall: string;
  readonly path?: string;

  constructor(errno: number, syscall: string, path?: string, description?: string, errnoName?: string) {
    // Name and text as Node gives them (libuv's: EAGAIN, not its alias EWOULDBLOCK). libuv
    // has no entry for several POSIX errors (ECHILD among them): then the name comes from
    // os.constants.errno, or from glibc for the few that it lacks too (ENOTRECOVERABLE), and
    // the text from strerror.
    const known = getSystemErrorMap().get(-errno);
    const code = known?.[0] ?? errnoNames.get(errno) ?? errnoName ?? `E${errno}`;
    const text = known?.[1] ?? lowerFirst(description) ?? 'unknown error';
    super(`${code}: ${text}, ${syscall}${path === undefined ? '' : ` '${path}'`}`);
    this.name = 'Error';
    this.code = code;
    this.errno = -errno;
    this.syscall = syscall;
    if (path !== undefined) this.path = path;
  }
}

function lowerFirst(s: string | undefined): string | undefined {
  return s === undefined || s === '' ? undefined : s[0]!.toLowerCase() + s.slice(1);
}

/** An error of forkwise itself, with a stable `code` (`ERR_FORKWISE_...`). */
export class ForkwiseError extends Error {
  readonly code: string;
  constructor(code: string, message: string) {
    super(message);
    this.code = code;
  }
}

/** What an aborted operation rejects with, as Node's own APIs do. */
export function abortError(signal: AbortSignal): Error {
  const error = new ForkwiseError('ABORT_ERR', 'The operation was aborted');
  error.name = 'AbortError';
  (error as Error & { cause?: unknown }).cause = signal.reason;
  return error;
}

type ErrorClass = typeof TypeError | typeof RangeError;

function withCode<E extends Error>(error: E, code: string): E {
  Object.defineProperty(error, 'code', { value: code, enumerable: false, writable: true, configurable: true });
  // Node prints codes in the name: "TypeError [ERR_INVALID_ARG_TYPE]: ..." in stacks.
  return error;
}

export function argError(cls: ErrorClass, code: string, message: string): Error {
  return withCode(new cls(message), code);
}

/** Describes a received value as Node's argument errors do. */
export function describeReceived(value: unknown): string {
  if (value === null || value === undefined) return `Received ${String(value)}`;
  if (typeof value === 'function') return `Received function ${value.name || '<anonymous>'}`;
  if (typeof value === 'object') {
    // Read defensively: the value may be a proxy or have a hostile constructor.
    let name: unknown;
    try {
      name = (value as { constructor?: { name?: unknown } }).constructor?.name;
    } catch {
      name = undefined;
    }
    if (typeof name === 'string' && name !== '') return `Received an instance of ${name}`;
    return `Received ${inspect(value, { depth: -1, customInspect: false })}`;
  }
  let shown = inspect(value, { colors: false });
  if (shown.length > 28) shown = `${shown.slice(0, 25)}...`;
  return `Received type ${typeof value} (${shown})`;
}

export function invalidArgType(name: string, expected: string, value: unknown): Error {
  return argError(
    TypeError,
    'ERR_INVALID_ARG_TYPE',
    `The "${name}" argument must be ${expected}. ${describeReceived(value)}`,
  );
}

export function invalidArgValue(name: string, value: unknown, reason: string): Error {
  return argError(
    TypeError,
    'ERR_INVALID_ARG_VALUE',
    `The argument '${name}' ${reason}. Received ${inspect(value)}`,
  );
}

export function outOfRange(name: string, range: string, value: unknown): Error {
  return argError(
    RangeError,
    'ERR_OUT_OF_RANGE',
    `The value of "${name}" is out of range. It must be ${range}. Received ${inspect(value)}`,
  );
}
