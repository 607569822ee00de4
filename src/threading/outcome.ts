/**
 * How a thread's end travels back to the thread that started it: nothing, or the error its
 * target threw, described as plain data (Errors keep `name`, `message`, `stack` and `code`,
 * which structured clone alone would lose in part) and rebuilt on arrival.
 */
import { inspect } from 'node:util';

export type Outcome =
  | { ok: true }
  | { ok: false; error: { name: string; message: string; stack?: string; code?: unknown } }
  | { ok: false; value: unknown; text: string };

/** The outcome of a target that threw `thrown`. */
export function failure(thrown: unknown): Outcome {
  if (thrown instanceof Error) {
    const { name, message, stack } = thrown;
    const code = (thrown as { code?: unknown }).code;
    return { ok: false, error: { name, message, stack, ...(typeof code === 'string' || typeof code === 'number' ? { code } : {}) } };
  }
  const text = inspect(thrown);
  try {
    structuredClone(thrown);
    return { ok: false, value: thrown, text };
  } catch {
    return { ok: false, value: text, text };
  }
}

const builtins: Record<string, ErrorConstructor> = {
  Error,
  TypeError,
  RangeError,
  SyntaxError,
  ReferenceError,
  EvalError,
  URIError,
};

/** The error an Outcome describes, as this thread sees it. */
export function rebuild(outcome: Exclude<Outcome, { ok: true }>): { value: unknown; type: string; stack: string | undefined } {
  if ('value' in outcome) return { value: outcome.value, type: typeof outcome.value, stack: undefined };
  const { name, message, stack, code } = outcome.error;
  const error = new (builtins[name] ?? Error)(message);
  if (error.name !== name) Object.defineProperty(error, 'name', { value: name, configurable: true, writable: true });
  if (code !== undefined) (error as { code?: unknown }).code = code;
  if (stack !== undefined) error.stack = stack;
  return { value: error, type: name, stack };
}
