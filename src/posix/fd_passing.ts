/** Descriptor passing: a Unix socket pair, and descriptors sent across it with SCM_RIGHTS. */
import { ForkwiseError, invalidArgValue } from './errors';
import { native } from './native';
import { validateBytes, validateFd, validateFdArray, validateInteger } from './validate';

/** The most descriptors one message can carry on Linux (the kernel's SCM_MAX_FD). */
const SCM_MAX_FD = 253;
/** Linux never returns more than about 2 GiB from one recvmsg, so a larger maxLen is useless. */
const MAX_LEN = 2 ** 31 - 1;

/**
 * `socketpair(2)`: two connected `AF_UNIX` stream sockets, both close-on-exec. Made before a
 * `fork()`, one end for the parent and one for the child, it carries descriptors between
 * them with {@link sendFds} and {@link recvFds}.
 *
 * @example
 * import { socketpair, close } from 'forkwise';
 * const [a, b] = socketpair();
 * close(a); close(b);
 */
export function socketpair(): [number, number] {
  return native.socketpair();
}

/**
 * `sendmsg(2)` with `SCM_RIGHTS`: sends `data` and, with its first byte, duplicates of `fds`
 * (at most 253) to the process at the other end of the Unix socket `sock`. Returns the number
 * of bytes sent, as `send(2)` does. `data` must not be empty: Linux needs at least one byte
 * to carry descriptors. Blocks while the socket's buffer is full, unless `sock` is
 * non-blocking (then `EAGAIN`). The sender keeps its own descriptors: close them when done.
 *
 * @example
 * import fs from 'node:fs';
 * import { sendFds, close } from 'forkwise';
 * const fd = fs.openSync('/etc/hostname', 'r');
 * sendFds(sock, Buffer.from('hostname'), [fd]);
 * close(fd); // the receiver has its own descriptor for the file
 */
export function sendFds(sock: number, data: NodeJS.ArrayBufferView, fds: number[]): number {
  validateFd(sock, 'sock');
  const bytes = validateBytes(data, 'data');
  if (bytes.byteLength === 0) {
    throw invalidArgValue('data', data, 'must not be empty (descriptors travel with at least one byte)');
  }
  return native.sendFds(sock, bytes, validateFdArray(fds, 'fds', SCM_MAX_FD));
}

/**
 * `recvmsg(2)`: receives up to `maxLen` bytes and up to `maxFds` descriptors (0..253) from
 * the Unix socket `sock`. The descriptors that arrive are new numbers in this process,
 * close-on-exec (`MSG_CMSG_CLOEXEC`); the caller owns and closes them. Blocks until data
 * arrives, unless `sock` is non-blocking (then `EAGAIN`). When the peer has closed its end,
 * returns `{ data: <empty Buffer>, fds: [] }`.
 *
 * A message with more descriptors than `maxFds` is not cut silently: the descriptors that
 * did arrive are closed, the message's bytes are consumed, and an error with code
 * `ERR_FORKWISE_FDS_TRUNCATED` is thrown.
 *
 * @example
 * import fs from 'node:fs';
 * import { recvFds, close } from 'forkwise';
 * const { data, fds } = recvFds(sock, 64, 1);
 * console.log(data.toString(), fs.readFileSync(fds[0], 'utf8'));
 * close(fds[0]);
 */
export function recvFds(sock: number, maxLen: number, maxFds: number): { data: Buffer; fds: number[] } {
  validateFd(sock, 'sock');
  validateInteger(maxLen, 'maxLen', 1, MAX_LEN);
  validateInteger(maxFds, 'maxFds', 0, SCM_MAX_FD);
  const buffer = Buffer.allocUnsafe(maxLen);
  const [received, fds, truncated] = native.recvFds(sock, buffer, maxFds);
  if (truncated) {
    const arrived = fds.length === 1 ? '1 descriptor arrived and was' : `${fds.length} descriptors arrived and were`;
    throw new ForkwiseError(
      'ERR_FORKWISE_FDS_TRUNCATED',
      `recvFds: maxFds (${maxFds}) was too small for the descriptors sent; ${arrived} closed, ` +
        `the kernel dropped the rest. Pass a larger maxFds (at most ${SCM_MAX_FD}).`,
    );
  }
  // A copy of the bytes received, so that the result holds neither maxLen bytes nor the
  // uninitialised rest of the buffer.
  return { data: Buffer.from(buffer.subarray(0, received)), fds };
}
