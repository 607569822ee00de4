/**
 * The exec family, as CPython's `os.exec*`: `args[0]` is the new program's `argv[0]`, `env`
 * replaces the environment, the `p` variants search PATH (the new environment's PATH when
 * `env` is given). Success never returns; failure throws and leaves the process as it was.
 * Before exec, stdout and stderr are flushed, fds 0-2 are made inheritable and blocking,
 * SIGPIPE and SIGXFSZ (ignored by Node) go back to default and the signal mask is emptied.
 */
import { native } from './native';
import { flushStdio } from './stdio';
import { invalidArgType } from './errors';
import { validateArgv, validateCString, validateEnv } from './validate';

const INHERIT = Symbol('inherit the environment');

function run(syscall: string, file: unknown, args: unknown, env: unknown, searchPath: boolean): never {
  const path = validateCString(file, searchPath ? 'file' : 'path');
  const argv = validateArgv(args, 'args');
  const envStrings = env === INHERIT ? null : validateEnv(env);
  flushStdio();
  return native.exec(path, argv, envStrings, searchPath, syscall);
}

function splitEnv(rest: unknown[]): [unknown[], unknown] {
  if (rest.length === 0) throw invalidArgType('env', 'of type object', undefined);
  return [rest.slice(0, -1), rest[rest.length - 1]];
}

/**
 * Replaces the process with the program at `path`.
 *
 * @example
 * import { execv } from 'forkwise';
 * execv('/bin/echo', ['echo', 'hello']);
 */
export function execv(path: string, args: readonly string[]): never {
  return run('execv', path, args, INHERIT, false);
}

/** As {@link execv}, with `env` as the new program's whole environment. */
export function execve(path: string, args: readonly string[], env: Record<string, string>): never {
  return run('execve', path, args, env, false);
}

/**
 * As {@link execv}, searching PATH for `file` when it has no slash.
 *
 * @example
 * import { execvp } from 'forkwise';
 * execvp('sh', ['sh', '-c', 'echo $0']);
 */
export function execvp(file: string, args: readonly string[]): never {
  return run('execvp', file, args, INHERIT, true);
}

/** As {@link execvp}, with `env` as the new environment (and its PATH used for the search). */
export function execvpe(file: string, args: readonly string[], env: Record<string, string>): never {
  return run('execvpe', file, args, env, true);
}

/** `execl(path, arg0, arg1, ...)`: {@link execv} with the arguments spread. */
export function execl(path: string, ...args: string[]): never {
  return run('execl', path, args, INHERIT, false);
}

/** `execle(path, arg0, ..., env)`. */
export function execle(path: string, ...rest: [...string[], Record<string, string>]): never {
  const [args, env] = splitEnv(rest);
  return run('execle', path, args, env, false);
}

/** `execlp(file, arg0, arg1, ...)`. */
export function execlp(file: string, ...args: string[]): never {
  return run('execlp', file, args, INHERIT, true);
}

/** `execlpe(file, arg0, ..., env)`. */
export function execlpe(file: string, ...rest: [...string[], Record<string, string>]): never {
  const [args, env] = splitEnv(rest);
  return run('execlpe', file, args, env, true);
}
