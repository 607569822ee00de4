/** Process identity: pid, parent, process group, session. */
import { native } from './native';
import { validatePid } from './validate';

/** `getpid(2)`, asked of the kernel (process.pid is cached; forkwise fixes it in children). */
export function getpid(): number {
  return native.getpid();
}

export function getppid(): number {
  return native.getppid();
}

/** `getpgid(2)`: the process group of `pid` (0: this process). */
export function getpgid(pid: number = 0): number {
  return native.getpgid(validatePid(pid));
}

/** `setpgid(2)`: moves `pid` (0: this process) into group `pgid` (0: a group named after it). */
export function setpgid(pid: number, pgid: number): void {
  native.setpgid(validatePid(pid), validatePid(pgid, 'pgid'));
}

/** `getsid(2)`: the session of `pid` (0: this process). */
export function getsid(pid: number = 0): number {
  return native.getsid(validatePid(pid));
}

/** `setsid(2)`: a new session and process group led by this process; returns its id. */
export function setsid(): number {
  return native.setsid();
}
