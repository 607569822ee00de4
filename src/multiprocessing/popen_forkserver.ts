/**
 * The `forkserver` start method, this process's side. One server per process: a
 * `node --single-threaded forkserver_main.js` started on first use, which loads the modules
 * of `setForkserverPreload` (never this process's main module) and forks every child from
 * that warmed state. The two talk over a socketpair in frames (frames.ts):
 *   here → server  { id, payload }            run a child
 *   server → here  { id, pid }                 it exists
 *   server → here  { id, exitCode, report }    it ended (the server reaped it)
 *                  { id, error }               it could not be forked
 * The children are the server's, not ours: their ends come from the server, and each one's
 * sentinel is a pipe whose write end is closed here when its end arrives.
 */
import { readSync } from 'node:fs';
import { join } from 'node:path';
import { Socket } from 'node:net';
import { ForkwiseError } from '../posix/errors';
import { close, pipe, setBlocking } from '../posix/fd';
import { socketpair } from '../posix/fd_passing';
import { afterForkInChild } from '../posix/child';
import { posixSpawn } from '../posix/spawn';
import { waitpidAsync } from '../posix/wait';
import { kill } from '../posix/kill';
import { parentDeathFd, releaseParentDeathFd } from './bootstrap';
import { FrameReader, writeFrame } from './frames';
import { decodeReport, sleepSync, type ChildEnd, type Popen } from './popen';

const serverMain = join(__dirname, 'forkserver_main.js');
let preload: string[] = [];

/**
 * Modules the forkserver loads before it forks any child (resolved from the working
 * directory; a bare name is a package). Takes effect for a server started afterwards.
 */
export function setForkserverPreload(modules: string[]): void {
  if (!Array.isArray(modules) || modules.some((m) => typeof m !== 'string')) {
    throw new TypeError('The "modules" argument must be an array of strings');
  }
  preload = [...modules];
}

interface Pending {
  /** Whether this child keeps this process alive (not a daemon, or being joined). */
  keepAlive: boolean;
  /** Whether its pid has come (until then, the request keeps this process alive). */
  started: boolean;
  onPid(pid: number): void;
  onEnd(end: ChildEnd): void;
  onError(error: Error): void;
}

class Forkserver {
  readonly pid: number;
  readonly #fd: number;
  readonly #socket: Socket;
  readonly #reader = new FrameReader();
  readonly #pending = new Map<number, Pending>();
  #nextId = 1;
  #stopped = false;
  #reaped: Promise<void> | undefined;

  constructor() {
    const [here, there] = socketpair();
    const deathFd = parentDeathFd();
    try {
      this.pid = posixSpawn(
        process.execPath,
        [process.execPath, '--single-threaded', serverMain, String(there), String(deathFd), String(process.pid), JSON.stringify(preload)],
        undefined,
        { fileActions: [there, deathFd].map((fd) => ['dup2', fd, fd] as ['dup2', number, number]) },
      );
    } catch (error) {
      close(here);
      close(there);
      releaseParentDeathFd();
      throw error;
    }
    close(there);
    this.#fd = here;
    setBlocking(here, false);
    this.#socket = new Socket({ fd: here, readable: true, writable: true });
    this.#socket.on('data', (chunk: Buffer) => this.#receive(chunk));
    this.#socket.on('error', () => this.#lost());
    this.#socket.on('close', () => this.#lost());
    this.#socket.unref();

  }

  request(payload: Buffer, pending: Pending): void {
    if (this.#stopped) throw new ForkwiseError('ERR_FORKWISE_FORKSERVER_GONE', 'forkwise: the forkserver has stopped');
    const id = this.#nextId++;
    this.#pending.set(id, pending);
    this.#updateRef();
    writeFrame(this.#socket, { id, payload });
  }

  #receive(chunk: Buffer): void {
    for (const message of this.#reader.push(chunk)) {
      const { id, pid, exitCode, report, error } = message as {
        id: number;
        pid?: number;
        exitCode?: number;
        report?: Uint8Array;
        error?: string;
      };
      const pending = this.#pending.get(id);
      if (!pending) continue;
      if (pid !== undefined) {
        pending.started = true;
        pending.onPid(pid);
      } else if (exitCode !== undefined) {
        this.#pending.delete(id);
        const failure = report ? decodeReport(Buffer.from(report)) : undefined;
        pending.onEnd({ exitCode, ...(failure ? { error: failure } : {}) });
      } else {
        this.#pending.delete(id);
        pending.onError(new ForkwiseError('ERR_FORKWISE_FORKSERVER', `forkwise: the forkserver could not start the child: ${error}`));
      }
    }
    this.#updateRef();
  }

  /** Reads what the server has sent, blocking up to `ms` (for the synchronous joins). */
  receiveSync(ms: number): void {
    const chunk = Buffer.allocUnsafe(64 * 1024);
    try {
      const n = readSync(this.#fd, chunk, 0, chunk.length, null);
      if (n > 0) return this.#receive(Buffer.from(chunk.subarray(0, n)));
      if (n === 0) return this.#lost();
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code !== 'EAGAIN') throw error;
    }
    sleepSync(ms);
  }

  keepAlive(): void {
    this.#updateRef();
  }

  // A request or a running non-daemon child keeps this process alive; the server alone never does.
  #updateRef(): void {
    if (this.#stopped) return;
    const needed = [...this.#pending.values()].some((p) => p.keepAlive || !p.started);
    if (needed) this.#socket.ref();
    else this.#socket.unref();
  }

  #lost(): void {
    if (this.#stopped) return;
    this.#stopped = true;
    if (server === this) server = undefined;
    const gone = new ForkwiseError('ERR_FORKWISE_FORKSERVER_GONE', 'forkwise: the forkserver ended');
    for (const pending of this.#pending.values()) pending.onError(gone);
    this.#pending.clear();
    this.#socket.destroy();
    this.#reap();
  }

  // Watched only once it is ending: a watch would keep this process alive.
  #reap(): Promise<void> {
    this.#reaped ??= waitpidAsync(this.pid).then(releaseParentDeathFd, releaseParentDeathFd);
    return this.#reaped;
  }

  /** Ends the server (its children die with it) and waits until it is reaped. */
  async stop(): Promise<void> {
    if (!this.#stopped) this.#lost();
    try {
      kill(this.pid, 'SIGTERM');
    } catch {
      // already gone
    }
    await this.#reap();
  }
}

let server: Forkserver | undefined;

// A forked child does not share its parent's server.
afterForkInChild((rehearsal) => {
  if (rehearsal) return;
  server = undefined;
});

/**
 * Stops this process's forkserver, if one runs (children it forked that still run die with
 * it). The next forkserver child starts a new one.
 */
export async function stopForkserver(): Promise<void> {
  const running = server;
  server = undefined;
  await running?.stop();
}

class ForkserverChild implements Popen {
  readonly sentinel: number;
  #sentinelWrite: number | undefined;
  #end: ChildEnd | undefined;
  readonly ended: Promise<ChildEnd>;
  #resolve!: (end: ChildEnd) => void;
  #closed = false;

  constructor(
    private readonly server: Forkserver,
    private readonly pending: Pending,
    readonly pid: number,
  ) {
    [this.sentinel, this.#sentinelWrite] = pipe({ cloexec: true, nonblock: true });
    this.ended = new Promise((resolve) => {
      this.#resolve = resolve;
    });
  }

  finish(end: ChildEnd): void {
    this.#end = end;
    if (this.#sentinelWrite !== undefined) close(this.#sentinelWrite);
    this.#sentinelWrite = undefined;
    this.#resolve(end);
  }

  wait(): Promise<ChildEnd> {
    this.keepAlive(true);
    return this.ended;
  }

  waitSync(timeout?: number): ChildEnd | null {
    const deadline = timeout === undefined ? Infinity : Date.now() + timeout;
    let pause = 1;
    while (!this.#end) {
      const left = deadline - Date.now();
      if (left <= 0) return null;
      this.server.receiveSync(Math.min(pause, left));
      pause = Math.min(pause * 2, 20);
    }
    return this.#end;
  }

  poll(): ChildEnd | null {
    return this.#end ?? null;
  }

  keepAlive(on: boolean): void {
    this.pending.keepAlive = on;
    this.server.keepAlive();
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    close(this.sentinel);
  }

  signal(signal: 'SIGTERM' | 'SIGKILL'): void {
    kill(this.pid, signal);
  }
}

/** Asks this process's forkserver (started now if need be) for a child running `payload`. */
export function startForkserver(payload: Buffer, daemon: boolean): Promise<Popen> {
  server ??= new Forkserver();
  const current = server;
  return new Promise((resolve, reject) => {
    let child: ForkserverChild | undefined;
    const pending: Pending = {
      keepAlive: !daemon,
      started: false,
      onPid: (pid) => {
        child = new ForkserverChild(current, pending, pid);
        resolve(child);
      },
      onEnd: (end) => child?.finish(end),
      // The server died under its children: they died with it (PR_SET_PDEATHSIG).
      onError: (error) => (child ? child.finish({ exitCode: -9 }) : reject(error)),
    };
    current.request(payload, pending);
  });
}
