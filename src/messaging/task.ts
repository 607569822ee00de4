/**
 * Targets that cross to a process or thread that does not share this one's memory (the
 * `spawn` and `forkserver` start methods, threads): a `TaskRef` (a named export of a module),
 * or a self-contained function sent by its source. A function that reads a variable of its
 * surroundings cannot be rebuilt from its source alone: it is refused when it is sent, naming
 * the variable (found with acorn-globals, which lists the names a piece of code does not
 * declare).
 */
import { createRequire } from 'node:module';
import { isAbsolute, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { runInThisContext } from 'node:vm';
import detectFreeNames = require('acorn-globals');
import { argError, invalidArgType } from '../posix/errors';

/** A named export of a module: `{ module: './work.js', name: 'crunch' }`. */
export interface TaskRef {
  module: string | URL;
  name: string;
}

/** What crosses: a module and export name, or a function's source. */
export type TaskSpec = { kind: 'ref'; module: string; name: string } | { kind: 'source'; source: string; name: string };

// Names a function may use without declaring them: globals, and `require` (given to it).
const provided = new Set(['require', 'arguments', 'this', 'undefined', 'globalThis']);

function isTaskRef(value: unknown): value is TaskRef {
  return (
    value !== null &&
    typeof value === 'object' &&
    typeof (value as TaskRef).name === 'string' &&
    (typeof (value as TaskRef).module === 'string' || (value as TaskRef).module instanceof URL)
  );
}

// A method's source (`run() { ... }`) is not an expression; `function run() { ... }` is.
function asExpression(source: string): string {
  const attempts = [source, `function ${source}`];
  for (const text of attempts) {
    try {
      detectFreeNames(`(${text})`, { ecmaVersion: 'latest' });
      return text;
    } catch {
      // try the next form
    }
  }
  return source.replace(/^async\s+/, 'async function ');
}

/**
 * Describes `target` for another process or thread. `what` names it in errors
 * (`options.target`). Throws a TypeError when a function reads an outer variable.
 */
export function describeTarget(target: unknown, what: string): TaskSpec {
  if (isTaskRef(target)) {
    const module = target.module instanceof URL ? target.module.href : resolveModule(target.module);
    return { kind: 'ref', module, name: target.name };
  }
  if (typeof target !== 'function') throw invalidArgType(what, 'a function or a TaskRef { module, name }', target);
  const source = Function.prototype.toString.call(target);
  if (/\{\s*\[native code\]\s*\}\s*$/.test(source)) {
    throw argError(TypeError, 'ERR_FORKWISE_NOT_SELF_CONTAINED', `${what} is a built-in or bound function, which cannot be sent by its source; use a TaskRef { module, name }`);
  }
  const expression = asExpression(source);
  let free: string[];
  try {
    free = detectFreeNames(`(${expression})`, { ecmaVersion: 'latest' }).map((n) => n.name);
  } catch (error) {
    throw argError(TypeError, 'ERR_FORKWISE_NOT_SELF_CONTAINED', `${what} cannot be sent by its source (${(error as Error).message}); use a TaskRef { module, name }`);
  }
  const outer = free.filter((name) => !provided.has(name) && !(name in globalThis));
  if (outer.length > 0) {
    throw argError(
      TypeError,
      'ERR_FORKWISE_NOT_SELF_CONTAINED',
      `${what} reads ${outer.map((n) => `'${n}'`).join(', ')} from its surroundings: a function sent to another ` +
        'process or thread goes by its source and must be self-contained (pass the values as arguments, ' +
        'require() what it needs inside, or use a TaskRef { module, name })',
    );
  }
  return { kind: 'source', source: expression, name: target.name };
}

// A relative module is relative to the working directory, as `node ./file.js` takes it.
function resolveModule(module: string): string {
  if (module.startsWith('.') || isAbsolute(module)) return pathToFileURL(resolve(module)).href;
  return module;
}

/** The function a TaskSpec describes, in this process or thread. */
export async function loadTarget(spec: TaskSpec): Promise<Function> {
  if (spec.kind === 'source') {
    const requireHere = createRequire(join(process.cwd(), '[forkwise task]'));
    const build = runInThisContext(`(function (require) { return (${spec.source}); })`, {
      filename: `forkwise-task:${spec.name || 'anonymous'}`,
    }) as (r: NodeJS.Require) => Function;
    return build(requireHere);
  }
  const namespace = (await import(spec.module)) as Record<string, unknown>;
  const found = namespace[spec.name] ?? (namespace.default as Record<string, unknown> | undefined)?.[spec.name];
  if (typeof found !== 'function') {
    throw argError(TypeError, 'ERR_INVALID_ARG_VALUE', `module ${spec.module} has no exported function '${spec.name}'`);
  }
  return found;
}
