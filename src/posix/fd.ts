/** Descriptors: pipes, duplication, close-on-exec and blocking flags. */
import { native } from './native';
import { validateBoolean, validateFd, validateOptions } from './validate';

/**
 * `pipe2(2)`: returns `[readFd, writeFd]`, close-on-exec unless `cloexec: false`.
 *
 * @example
 * import { pipe, close } from 'forkwise';
 * const [r, w] = pipe();
 * close(r); close(w);
 */
export function pipe(
  options: { cloexec?: boolean | null; nonblock?: boolean | null } | null = {},
): [readFd: number, writeFd: number] {
  const given = validateOptions(options);
  const cloexec = validateBoolean(given.cloexec ?? true, 'options.cloexec');
  const nonblock = validateBoolean(given.nonblock ?? false, 'options.nonblock');
  return native.pipe((cloexec ? native.O_CLOEXEC : 0) | (nonblock ? native.O_NONBLOCK : 0));
}

/** `dup(2)`: a new descriptor for the same file, close-on-exec (as CPython's `os.dup`). */
export function dup(fd: number): number {
  return native.dup(validateFd(fd));
}

/**
 * `dup2(2)`: makes `fd2` refer to the file of `fd`; `fd2` is inheritable unless
 * `inheritable: false`. Returns `fd2`.
 *
 * @example
 * import { dup2 } from 'forkwise';
 * dup2(writeFd, 1); // stdout now goes into the pipe
 */
export function dup2(fd: number, fd2: number, options: { inheritable?: boolean | null } | null = {}): number {
  validateFd(fd);
  validateFd(fd2, 'fd2');
  const { inheritable } = validateOptions(options);
  return native.dup2(fd, fd2, validateBoolean(inheritable ?? true, 'options.inheritable'));
}

/** `close(2)`. Closing a descriptor that is not open throws `EBADF`. */
export function close(fd: number): void {
  native.close(validateFd(fd));
}

/** True when `fd` survives exec (close-on-exec is off). */
export function getInheritable(fd: number): boolean {
  return native.getInheritable(validateFd(fd));
}

export function setInheritable(fd: number, inheritable: boolean): void {
  native.setInheritable(validateFd(fd), validateBoolean(inheritable, 'inheritable'));
}

/** True when `fd` is in blocking mode (O_NONBLOCK is off). */
export function getBlocking(fd: number): boolean {
  return native.getBlocking(validateFd(fd));
}

export function setBlocking(fd: number, blocking: boolean): void {
  native.setBlocking(validateFd(fd), validateBoolean(blocking, 'blocking'));
}
