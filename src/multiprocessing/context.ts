/**
 * Contexts, as CPython's `multiprocessing.get_context`: the same classes, bound to one start
 * method.
 */
import { Process, type ProcessOptions } from './process';
import { checkAvailable, validateStartMethod, type StartMethod } from './start_method';

export interface Context {
  readonly startMethod: StartMethod;
  /** `Process` whose `startMethod` defaults to this context's. */
  readonly Process: typeof Process;
  getStartMethod(): StartMethod;
}

const contexts = new Map<StartMethod, Context>();

/**
 * The context of `method`.
 *
 * @example
 * import { getContext } from 'forkwise/multiprocessing';
 * const ctx = getContext('spawn');
 * const p = new ctx.Process({ target: { module: './work.js', name: 'main' } });
 */
export function getContext(method: StartMethod): Context {
  const startMethod = checkAvailable(validateStartMethod(method, 'method'));
  let context = contexts.get(startMethod);
  if (!context) {
    class BoundProcess extends Process {
      constructor(options: ProcessOptions = {}) {
        super({ startMethod, ...options });
      }
    }
    Object.defineProperty(BoundProcess, 'name', { value: 'Process' });
    context = { startMethod, Process: BoundProcess, getStartMethod: () => startMethod };
    contexts.set(startMethod, context);
  }
  return context;
}
