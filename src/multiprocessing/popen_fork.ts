/**
 * The `fork` start method: the child is a fork of this process, so its target is any
 * function (closures included) and its arguments are not copied but inherited.
 *
 * The fork is made on the next turn of the event loop, from a clean stack (a setImmediate
 * callback), not inside `start()`: a child forked inside `start()` would return into the
 * caller's code, and an async target needs the event loop, which a child can only reach by
 * returning. So the child runs the target and nothing of the code that called `start()`;
 * what the parent had scheduled on its loop (timers, servers) is still there in the child,
 * as after any fork, and the child exits once the target has settled.
 */
import { ForkwiseError } from '../posix/errors';
import { fork, isForkSafe } from '../posix/fork';
import { close, pipe } from '../posix/fd';
import { guardParentDeath, parentDeathFd, releaseParentDeathFd, runAndExit, takeInheritedDeathFd } from './bootstrap';
import { DirectChild, type Popen } from './popen';

export interface ForkRequest {
  daemon: boolean;
  /** Called in the child, on a clean stack, before the target runs. */
  becomeChild(): void;
  run(): unknown;
}

/** Throws the error that says how to make the fork method usable, when it is not. */
export function checkForkSafe(): void {
  if (isForkSafe()) return;
  throw new ForkwiseError(
    'ERR_FORKWISE_FORK_UNSAFE',
    "forkwise: the 'fork' start method needs a process without V8 background threads: start node " +
      "with --single-threaded, call reexecSingleThreaded() first, or use the 'forkserver' start method",
  );
}

const queued: Array<() => void> = [];

function forkQueued(): void {
  while (queued.length > 0) queued.shift()!();
}

/** Forks a child for `request` on the next turn of the loop; resolves with its Popen. */
export function startFork(request: ForkRequest): Promise<Popen> {
  return new Promise((resolve, reject) => {
    queued.push(() => {
      try {
        const popen = forkNow(request);
        if (popen) resolve(popen);
      } catch (error) {
        reject(error);
      }
    });
    if (queued.length === 1) setImmediate(forkQueued);
  });
}

function forkNow(request: ForkRequest): Popen | undefined {
  const parentPid = process.pid;
  parentDeathFd(); // the child inherits its read end
  const [reportRead, reportWrite] = pipe({ cloexec: true });
  let pid: number;
  try {
    pid = fork();
  } catch (error) {
    close(reportRead);
    close(reportWrite);
    releaseParentDeathFd();
    throw error;
  }
  if (pid === 0) {
    // The forks still queued are the parent's to make.
    queued.length = 0;
    close(reportRead);
    guardParentDeath(parentPid, takeInheritedDeathFd());
    request.becomeChild();
    void runAndExit(() => request.run(), reportWrite);
    return undefined;
  }
  close(reportWrite);
  return new DirectChild(pid, reportRead, !request.daemon, releaseParentDeathFd);
}
