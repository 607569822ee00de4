/**
 * What a start method hands back for a running child (CPython's `Popen` of
 * `popen_fork.py` and its siblings): its pid, a sentinel descriptor, and how it ended. The
 * three methods live in popen_fork.ts, popen_spawn.ts and popen_forkserver.ts; Process knows
 * only this interface.
 *
 * How a child reports: it writes one small JSON record (the error its target threw, if any)
 * to a pipe whose write end only it holds, then exits. The read end is the sentinel: it
 * reaches end-of-file when the child is gone, however it went, and what the child wrote is
 * in the pipe by then.
 */
import { readSync } from 'node:fs';
import { Socket } from 'node:net';
import { afterForkInChild } from '../posix/child';
import { close, dup, setBlocking } from '../posix/fd';
import { kill } from '../posix/kill';
import { waitpid, waitpidAsync, WNOHANG, waitstatusToExitcode } from '../posix/wait';

/** How a child ended: CPython's exit code (`-signo` for a signal) and its target's error. */
export interface ChildEnd {
  exitCode: number;
  error?: Error;
}

export interface Popen {
  readonly pid: number;
  /** Readable (end-of-file) once the child has ended; open until `close()`. */
  readonly sentinel: number;
  /** Settles once the child has ended and been reaped (without keeping this process alive). */
  readonly ended: Promise<ChildEnd>;
  /** As `ended`, and keeps this process alive until then. */
  wait(): Promise<ChildEnd>;
  /** Blocks up to `timeout` ms (for ever without one); null if the child still runs. */
  waitSync(timeout?: number): ChildEnd | null;
  /** The end without waiting; null while the child runs. */
  poll(): ChildEnd | null;
  /** Whether a running child keeps this process's event loop alive. */
  keepAlive(on: boolean): void;
  /** Closes the sentinel (once the child has ended). */
  close(): void;
  /** Sends `signal` to the child (ESRCH when it is gone). */
  signal(signal: 'SIGTERM' | 'SIGKILL'): void;
}

// Report records are small (the stack is cut): a child writes one into an empty pipe and
// never blocks on it.
const MAX_REPORT = 48 * 1024;

/** What the child writes before it exits: its target's error, if any. */
export function encodeReport(error: unknown): Buffer {
  const e = error instanceof Error ? error : new Error(`non-error thrown: ${String(error)}`);
  const record = {
    name: e.name,
    message: e.message,
    stack: e.stack?.slice(0, MAX_REPORT / 2),
    code: (e as { code?: unknown }).code,
  };
  let text = JSON.stringify(record, (_key, value: unknown) => (typeof value === 'bigint' ? String(value) : value));
  if (text.length > MAX_REPORT) text = JSON.stringify({ name: record.name, message: record.message.slice(0, 4096) });
  return Buffer.from(text);
}

export function decodeReport(bytes: Buffer): Error | undefined {
  if (bytes.length === 0) return undefined;
  try {
    const record = JSON.parse(bytes.toString()) as { name?: string; message?: string; stack?: string; code?: unknown };
    const error = new Error(record.message ?? '');
    error.name = record.name ?? 'Error';
    if (record.stack !== undefined) error.stack = record.stack;
    if (record.code !== undefined) (error as { code?: unknown }).code = record.code;
    return error;
  } catch {
    return undefined;
  }
}

/** Everything left in a non-blocking descriptor, up to end-of-file or EAGAIN. */
export function drain(fd: number): Buffer {
  const chunks: Buffer[] = [];
  const chunk = Buffer.allocUnsafe(64 * 1024);
  for (;;) {
    let n: number;
    try {
      n = readSync(fd, chunk, 0, chunk.length, null);
    } catch (error) {
      if ((error as NodeJS.ErrnoException).code === 'EAGAIN') break;
      throw error;
    }
    if (n === 0) break;
    chunks.push(Buffer.from(chunk.subarray(0, n)));
  }
  return Buffer.concat(chunks);
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Blocks the thread for `ms` milliseconds. */
export function sleepSync(ms: number): void {
  Atomics.wait(sleeper, 0, 0, ms);
}

// A forked child has copies of its parent's watches, on children that are not its own.
const sentinelWatches = new Set<Socket>();
afterForkInChild((rehearsal) => {
  if (rehearsal) return;
  for (const watch of sentinelWatches) watch.destroy();
  sentinelWatches.clear();
});

/**
 * A child of this very process (fork and spawn): reaped by pid with waitpidAsync, so
 * nothing else of Node's is disturbed, and kept alive by that watch while it runs.
 */
export class DirectChild implements Popen {
  #end: ChildEnd | undefined;
  #watching = false;
  #closed = false;
  #sentinelWatch: Socket | undefined;
  #reportChunks: Buffer[] = [];
  readonly ended: Promise<ChildEnd>;
  #resolve!: (end: ChildEnd) => void;

  /** `onEnd` runs once the child has been reaped. */
  constructor(
    readonly pid: number,
    readonly sentinel: number,
    keepAlive: boolean,
    onEnd: () => void = () => {},
  ) {
    setBlocking(sentinel, false);
    this.ended = new Promise((resolve) => {
      this.#resolve = resolve;
    });
    void this.ended.then(onEnd);
    if (keepAlive) this.keepAlive(true);
    else this.#watchSentinel();
  }

  // A daemon child's end is seen without keeping this process alive: an unreferenced
  // socket on a copy of the sentinel reaches end-of-file when the child has ended (what it
  // reads is the child's report, kept for #finish).
  #watchSentinel(): void {
    const watch = new Socket({ fd: dup(this.sentinel), readable: true, writable: false });
    this.#sentinelWatch = watch;
    sentinelWatches.add(watch);
    watch.once('close', () => sentinelWatches.delete(watch));
    watch.unref();
    watch.on('data', (chunk: Buffer) => this.#reportChunks.push(chunk));
    watch.on('error', () => watch.destroy());
    watch.once('end', () => this.#reapSoon(0));
  }

  // End-of-file comes as the child exits, a moment before it can be reaped; if it does not
  // come to be (a descendant holding the sentinel), a watch by pid takes over.
  #reapSoon(attempt: number): void {
    if (this.#end || this.poll()) return;
    if (attempt > 20) return this.keepAlive(true);
    setTimeout(() => this.#reapSoon(attempt + 1), 5).unref();
  }

  wait(): Promise<ChildEnd> {
    this.keepAlive(true);
    return this.ended;
  }

  keepAlive(on: boolean): void {
    // A daemon child is watched only while someone waits for it: the watch keeps the loop
    // alive. Its exit is noticed by poll() otherwise (isAlive, activeChildren).
    if (!on || this.#watching || this.#end) return;
    this.#watching = true;
    waitpidAsync(this.pid).then(
      (result) => this.#finish(result.status),
      () => {
        // Reaped by waitSync in the meantime (ECHILD): that call finished it.
        if (this.#end) this.#resolve(this.#end);
      },
    );
  }

  waitSync(timeout?: number): ChildEnd | null {
    if (this.#end) return this.#end;
    if (timeout === undefined) {
      const result = waitpid(this.pid);
      return this.#finish(result!.status);
    }
    // waitpid has no timeout: poll with a growing pause, as CPython's Popen.wait(timeout).
    const deadline = Date.now() + timeout;
    let pause = 1;
    for (;;) {
      const end = this.poll();
      if (end) return end;
      const left = deadline - Date.now();
      if (left <= 0) return null;
      sleepSync(Math.min(pause, left));
      pause = Math.min(pause * 2, 50);
    }
  }

  poll(): ChildEnd | null {
    if (this.#end) return this.#end;
    let result;
    try {
      result = waitpid(this.pid, WNOHANG);
    } catch (error) {
      // Reaped by the other watch in the meantime: that one finishes it.
      if ((error as { code?: string }).code === 'ECHILD') return null;
      throw error;
    }
    return result === null ? null : this.#finish(result.status);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    close(this.sentinel);
  }

  signal(signal: 'SIGTERM' | 'SIGKILL'): void {
    kill(this.pid, signal);
  }

  #finish(status: number): ChildEnd {
    if (this.#end) return this.#end;
    // What the watch has read of the report, and the rest, still in the pipe.
    const error = decodeReport(Buffer.concat([...this.#reportChunks, drain(this.sentinel)]));
    this.#sentinelWatch?.destroy();
    this.#end = { exitCode: waitstatusToExitcode(status), ...(error ? { error } : {}) };
    this.#resolve(this.#end);
    return this.#end;
  }
}
