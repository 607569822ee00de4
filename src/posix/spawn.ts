/**
 * `posix_spawn` and `posix_spawnp`, as CPython's `os.posix_spawn` / `os.posix_spawnp`: a new
 * process runs a program without JavaScript ever running in a forked child, so they are safe
 * whatever the process's threads do. The program starts as from a shell: fds 0-2 inheritable,
 * SIGPIPE and SIGXFSZ (ignored by Node) at their default, and an empty signal mask unless
 * `setsigmask` says otherwise.
 */
import { constants } from 'node:os';
import { invalidArgType, invalidArgValue } from './errors';
import { native, type NativeFileAction } from './native';
import { validateSignalSet, type Signal } from './signals';
import {
  validateArgv,
  validateBoolean,
  validateCString,
  validateEnv,
  validateFd,
  validateInt32,
  validateInteger,
  validateOptions,
} from './validate';

/**
 * One step run in the child before the program starts, in list order:
 * `['open', fd, path, flags, mode]` opens `path` onto `fd` (flags as for `fs.openSync`'s
 * numeric flags, e.g. `fs.constants.O_WRONLY | fs.constants.O_CREAT`), `['close', fd]`,
 * `['dup2', fd, newFd]` (`newFd` is inheritable afterwards).
 */
export type SpawnFileAction =
  | readonly ['open', fd: number, path: string, flags: number, mode: number]
  | readonly ['close', fd: number]
  | readonly ['dup2', fd: number, newFd: number];

export interface PosixSpawnOptions {
  /** Run in order in the child, after the stdio fix-up and `cwd`. */
  fileActions?: readonly SpawnFileAction[] | null;
  /** Puts the child in process group `setpgroup` (`0`: a new group led by the child). */
  setpgroup?: number | null;
  /** Makes the child the leader of a new session (`setsid(2)`). */
  setsid?: boolean | null;
  /** The child's signal mask. Default: empty. */
  setsigmask?: readonly Signal[] | null;
  /** Signals reset to their default action in the child (SIGPIPE and SIGXFSZ always are). */
  setsigdef?: readonly Signal[] | null;
  /** Sets the child's effective user and group ids to the real ones (POSIX_SPAWN_RESETIDS). */
  resetids?: boolean | null;
  /** The child's working directory; relative paths (the program's, `open` actions') resolve in it. */
  cwd?: string | null;
}

const ACTION_SHAPES: Record<string, string> = {
  open: "['open', fd, path, flags, mode]",
  close: "['close', fd]",
  dup2: "['dup2', fd, newFd]",
};

// Node ignores these; a program started from a shell has them at default.
const ALWAYS_DEFAULT = [constants.signals.SIGPIPE, constants.signals.SIGXFSZ];

function validateFileAction(value: unknown, name: string): NativeFileAction {
  if (!Array.isArray(value)) throw invalidArgType(name, 'an instance of Array', value);
  const tag: unknown = value[0];
  if (typeof tag !== 'string' || !Object.hasOwn(ACTION_SHAPES, tag)) {
    throw invalidArgValue(`${name}[0]`, tag, "must be one of 'open', 'close', 'dup2'");
  }
  const length = tag === 'open' ? 5 : tag === 'close' ? 2 : 3;
  if (value.length !== length) throw invalidArgValue(name, value, `must be ${ACTION_SHAPES[tag]}`);
  const fd = validateFd(value[1], `${name}[1]`);
  if (tag === 'close') return ['close', fd];
  if (tag === 'dup2') return ['dup2', fd, validateFd(value[2], `${name}[2]`)];
  return [
    'open',
    fd,
    validateCString(value[2], `${name}[2]`),
    validateInt32(value[3], `${name}[3]`),
    validateInteger(value[4], `${name}[4]`, 0, 0o7777),
  ];
}

function validateFileActions(value: unknown, name: string): NativeFileAction[] {
  if (!Array.isArray(value)) throw invalidArgType(name, 'an instance of Array', value);
  // A plain loop, not map(): map skips the holes of a sparse array.
  const actions: NativeFileAction[] = [];
  for (let i = 0; i < value.length; i++) actions.push(validateFileAction(value[i], `${name}[${i}]`));
  return actions;
}

function isOpen(fd: number): boolean {
  try {
    native.getInheritable(fd);
    return true;
  } catch (error) {
    if ((error as { code?: unknown }).code === 'EBADF') return false;
    throw error;
  }
}

/**
 * File actions that make fds 0-2 inheritable in a spawned program. Node makes them
 * close-on-exec (DESIGN.md fact 10); dup2 onto the same fd clears the flag (glibc >= 2.36).
 * Only for open ones: on a closed fd the action would fail.
 */
export function stdioActions(): NativeFileAction[] {
  return [0, 1, 2].filter(isOpen).map((fd) => ['dup2', fd, fd]);
}

function run(
  syscall: 'posix_spawn' | 'posix_spawnp',
  file: unknown,
  args: unknown,
  env: unknown,
  options: unknown,
): number {
  const path = validateCString(file, syscall === 'posix_spawnp' ? 'file' : 'path');
  const argv = validateArgv(args, 'argv');
  const envStrings = env == null ? null : validateEnv(env);
  const { fileActions, setpgroup, setsid, setsigmask, setsigdef, resetids, cwd } = validateOptions(options);
  const userActions = validateFileActions(fileActions ?? [], 'options.fileActions');
  const pgroup = setpgroup == null ? null : validateInteger(setpgroup, 'options.setpgroup', 0, 2 ** 31 - 1);
  const mask = validateSignalSet(setsigmask ?? [], 'options.setsigmask');
  const sigdef = [...new Set([...ALWAYS_DEFAULT, ...validateSignalSet(setsigdef ?? [], 'options.setsigdef')])];
  const newSession = validateBoolean(setsid ?? false, 'options.setsid');
  const resetIds = validateBoolean(resetids ?? false, 'options.resetids');
  const dir = cwd == null ? null : validateCString(cwd, 'options.cwd');

  // They come first so that the user's actions on 0-2 win.
  const actions = stdioActions();
  if (dir !== null) actions.push(['chdir', dir]);
  actions.push(...userActions);
  const searchPath = syscall === 'posix_spawnp';
  return native.spawn(path, argv, envStrings, searchPath, syscall, actions, pgroup, newSession, resetIds, mask, sigdef);
}

/**
 * Starts the program at `path` in a new process and returns its pid; reap it with
 * `waitpid` or `waitpidAsync`. `env` (default, or `null`: this process's environment) is the
 * program's whole environment; an option given as `null` is not given. A failure to start it (ENOENT, EACCES, ENOEXEC, or a failed file
 * action) throws here, with `syscall: 'posix_spawn'` and `path`, and leaves no child behind.
 * Descriptors that are inheritable in this process are inherited, close-on-exec ones are not;
 * O_NONBLOCK belongs to the open file, shared with this process, so it is left as it is.
 *
 * @example
 * import fs from 'node:fs';
 * import { posixSpawn, waitpid } from 'forkwise';
 * const pid = posixSpawn('/bin/sh', ['sh', '-c', 'echo hi'], undefined, {
 *   fileActions: [['open', 1, '/tmp/out.txt', fs.constants.O_WRONLY | fs.constants.O_CREAT, 0o644]],
 *   setpgroup: 0,
 * });
 * waitpid(pid); // { pid, status: 0, kind: 'exited', exitCode: 0 }
 */
export function posixSpawn(
  path: string,
  argv: readonly string[],
  env?: Record<string, string> | null,
  options?: PosixSpawnOptions | null,
): number {
  return run('posix_spawn', path, argv, env, options);
}

/**
 * As {@link posixSpawn}, searching PATH for `file` when it has no slash. The search uses this
 * process's PATH, not `env`'s (as C's `posix_spawnp` does), and a file found but not a
 * valid executable throws ENOEXEC (no retry with `/bin/sh`).
 *
 * @example
 * import { posixSpawnp, waitpidAsync } from 'forkwise';
 * const pid = posixSpawnp('ls', ['ls', '-l'], undefined, { cwd: '/tmp' });
 * await waitpidAsync(pid);
 */
export function posixSpawnp(
  file: string,
  argv: readonly string[],
  env?: Record<string, string> | null,
  options?: PosixSpawnOptions | null,
): number {
  return run('posix_spawnp', file, argv, env, options);
}
