/**
 * The `spawn` start method: a fresh `node` running spawn_main.js, which reads what to run
 * from a pipe (a TaskRef or a function's source, the arguments serialized with forkwise
 * objects by handle), runs it and reports as a forked child does. The descriptors it needs
 * keep their numbers (a `dup2` onto itself clears close-on-exec in the child only) and are
 * named on its command line.
 */
import { join } from 'node:path';
import { Socket } from 'node:net';
import { close, pipe } from '../posix/fd';
import { posixSpawn } from '../posix/spawn';
import { parentDeathFd, releaseParentDeathFd } from './bootstrap';
import { DirectChild, type Popen } from './popen';

const spawnMain = join(__dirname, 'spawn_main.js');

// Options of this node that a child node should share; not those that make it a debugger
// target or run something else than the bootstrap.
export function childExecArgv(): string[] {
  return process.execArgv.filter((arg) => !/^--(inspect|debug|eval|print|input-type|test)/.test(arg) && !/^-[ep]$/.test(arg));
}

/**
 * Starts `node spawn_main.js` for `payload` (a serialized ChildPayload); resolves once the
 * payload is all in the pipe, so that a caller that blocks its thread right after an awaited
 * `start()` (a `recvSync`) does not keep the child from getting it.
 */
export function startSpawn(payload: Buffer, daemon: boolean): Promise<Popen> {
  const deathFd = parentDeathFd();
  const [payloadRead, payloadWrite] = pipe({ cloexec: true });
  const [reportRead, reportWrite] = pipe({ cloexec: true });
  let pid: number;
  try {
    pid = posixSpawn(
      process.execPath,
      [process.execPath, ...childExecArgv(), spawnMain, String(payloadRead), String(reportWrite), String(deathFd), String(process.pid)],
      undefined,
      { fileActions: [payloadRead, reportWrite, deathFd].map((fd) => ['dup2', fd, fd] as ['dup2', number, number]) },
    );
  } catch (error) {
    for (const fd of [payloadRead, payloadWrite, reportRead, reportWrite]) close(fd);
    releaseParentDeathFd();
    throw error;
  }
  close(payloadRead);
  close(reportWrite);
  // The payload may be larger than a pipe holds: written as the child reads it.
  const writer = new Socket({ fd: payloadWrite, readable: false, writable: true });
  const child = new DirectChild(pid, reportRead, !daemon, releaseParentDeathFd);
  return new Promise((resolve) => {
    // A child that dies first closes the pipe: its end is then seen as any other.
    writer.once('close', () => resolve(child));
    writer.on('error', () => writer.destroy());
    writer.end(payload);
  });
}
