/** Sending signals. Signals are names (`'SIGTERM'`) or numbers, as in `process.kill`. */
import { native } from './native';
import { signalNumber, type Signal } from './signals';
import { validatePid } from './validate';

/**
 * `kill(2)`: sends `sig` to `pid` (a group for 0 or a negative pid). Signal 0 only checks
 * that the process exists.
 *
 * @example
 * import { kill } from 'forkwise';
 * kill(pid, 'SIGTERM');
 */
export function kill(pid: number, sig: Signal): void {
  native.kill(validatePid(pid), signalNumber(sig));
}

/** `killpg(3)`: sends `sig` to the process group `pgid`. */
export function killpg(pgid: number, sig: Signal): void {
  native.killpg(validatePid(pgid, 'pgid'), signalNumber(sig));
}

/** `raise(3)`: sends `sig` to the calling thread. */
export function raise(sig: Signal): void {
  native.raise(signalNumber(sig));
}
