/**
 * The child's side of every start method: dying with the parent, running the target, and
 * reporting how it went.
 *
 * No orphans, two ways: PR_SET_PDEATHSIG (SIGKILL when the parent ends: the high level
 * forks from the main thread only), and a parent-death pipe for the cases it misses (a
 * parent that died before the child set it, systems without it, a child busy in a
 * blocking call still gets its signal): each parent keeps the write end of one pipe,
 * its children watch the read end, and end-of-file means the parent is gone.
 */
import { Socket } from 'node:net';
import { inspect } from 'node:util';
import { native } from '../posix/native';
import { close, pipe, setBlocking } from '../posix/fd';
import { afterForkInChild } from '../posix/child';
import { encodeReport } from './popen';
import { currentProcess } from './identity';

let deathPipe: { read: number; write: number; users: number } | undefined;

/**
 * The read end that a new child of this process watches (the pipe is made on first use);
 * every call is paired with a `releaseParentDeathFd()` once that child has ended, and the
 * pipe is closed when no child needs it.
 */
export function parentDeathFd(): number {
  if (!deathPipe) {
    const [read, write] = pipe({ cloexec: true });
    deathPipe = { read, write, users: 0 };
  }
  deathPipe.users += 1;
  return deathPipe.read;
}

export function releaseParentDeathFd(): void {
  if (!deathPipe || --deathPipe.users > 0) return;
  close(deathPipe.read);
  close(deathPipe.write);
  deathPipe = undefined;
}

// A forked child holds its parent's pipe: the write end is the parent's to close, the read
// end is watched by guardParentDeath when the child is a Process; a child that forks
// processes of its own makes its own pipe.
afterForkInChild((rehearsal) => {
  if (rehearsal) return;
  if (!deathPipe) return;
  close(deathPipe.write);
  inheritedDeathFd = deathPipe.read;
  deathPipe = undefined;
});
let inheritedDeathFd: number | undefined;

/** The parent-death read end a forked child inherited, if its parent had made one. */
export function takeInheritedDeathFd(): number | undefined {
  const fd = inheritedDeathFd;
  inheritedDeathFd = undefined;
  return fd;
}

function die(): never {
  native.kill(native.getpid(), 9);
  return native._exit(137);
}

/** Makes this child end when `parentPid` ends. */
export function guardParentDeath(parentPid: number, deathFd: number | undefined): void {
  native.setParentDeathSignal(9);
  // The parent may have died before the line above: then this process was re-parented.
  if (native.getppid() !== parentPid) die();
  if (deathFd === undefined) return;
  setBlocking(deathFd, false);
  const watch = new Socket({ fd: deathFd, readable: true, writable: false });
  watch.on('end', die).on('close', die).on('error', die);
  watch.resume();
  watch.unref();
}

/**
 * Runs a Process's `run` and ends the process: exit code 0 (or `process.exitCode`) when it
 * returned or resolved, 1 when it threw or rejected, after printing the error as CPython
 * does ("Process NAME:") and reporting it on `reportFd`. `process.exit(n)` inside ends the
 * process with `n` at once.
 */
export async function runAndExit(run: () => unknown, reportFd: number): Promise<never> {
  setBlocking(reportFd, true);
  try {
    await run();
  } catch (error) {
    process.stderr.write(`Process ${currentProcess().name}:\n${inspect(error)}\n`);
    try {
      native.writeAll(reportFd, encodeReport(error));
    } catch {
      // A parent that is gone reads nothing.
    }
    process.exit(1);
  }
  process.exit();
}
