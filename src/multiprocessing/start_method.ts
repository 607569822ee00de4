/** The start methods, and the one this process uses by default. */
import { ForkwiseError, invalidArgValue } from '../posix/errors';
import { isForkSafe } from '../posix/fork';
import { fallbackWhere, useFallback } from '../compat/platform';

export type StartMethod = 'fork' | 'forkserver' | 'spawn';
const methods: readonly StartMethod[] = ['fork', 'forkserver', 'spawn'];

let chosen: StartMethod | undefined;

export function validateStartMethod(method: unknown, name: string): StartMethod {
  if (!methods.includes(method as StartMethod)) {
    throw invalidArgValue(name, method, `must be one of ${methods.map((m) => `'${m}'`).join(', ')}`);
  }
  return method as StartMethod;
}

/** The names of the start methods this platform has. */
export function getAllStartMethods(): StartMethod[] {
  return useFallback ? ['spawn'] : [...methods];
}

/**
 * The default start method: the one set with `setStartMethod`, else `fork` in a fork-safe
 * process (`node --single-threaded`), else `forkserver`; `spawn` on the platform fallback
 * (Windows, or FORKWISE_FORCE_FALLBACK=1).
 */
export function getStartMethod(): StartMethod {
  if (chosen) return chosen;
  if (useFallback) return 'spawn';
  return isForkSafe() ? 'fork' : 'forkserver';
}

/** Sets the default start method of this process. */
export function setStartMethod(method: StartMethod): void {
  chosen = checkAvailable(validateStartMethod(method, 'method'));
}

/** `method`, if this platform has it (as CPython: no 'fork' context on Windows). */
export function checkAvailable(method: StartMethod): StartMethod {
  if (!getAllStartMethods().includes(method)) {
    throw new ForkwiseError('ERR_FORKWISE_UNSUPPORTED_PLATFORM', `forkwise: the '${method}' start method is not available ${fallbackWhere()}: use 'spawn'`);
  }
  return method;
}
