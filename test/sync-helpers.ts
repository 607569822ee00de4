/** Helpers shared by the sync-*.test.ts files: forked children that always get reaped, workers with a time limit. */
import { readdirSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { _exit, fork, kill, waitpid, WNOHANG, type WaitResult } from 'forkwise';

/** Absolute path of the compiled forkwise/sync entry point, for workers and fixtures. */
export const syncPath = join(__dirname, '..', 'dist', 'sync', 'index.js');

export const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

/** Blocks the calling thread for `ms` without spinning (works on a main thread). */
export function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

/** Spins (sleeping 1 ms between checks) until `pred()` holds; throws after `ms`. */
export function spinUntil(pred: () => boolean, ms = 10000, what = 'condition'): void {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    sleepSync(1);
  }
}

/** Polls (asynchronously) until `pred()` holds; rejects after `ms`. */
export async function until(pred: () => boolean, ms = 10000, what = 'condition'): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await sleep(2);
  }
}

export function elapsedMs(start: bigint): number {
  return Number(process.hrtime.bigint() - start) / 1e6;
}

/**
 * Tracks forked children of a test: `fork(body)` runs body in a child which ends with _exit
 * (exit code: body's result, 70 + message on stderr when it throws). `cleanup()` SIGKILLs
 * and reaps whatever is left; call it from afterEach.
 */
export class Children {
  private readonly live = new Set<number>();

  fork(body: () => number | void): number {
    const pid = fork();
    if (pid === 0) {
      let code = 70;
      try {
        code = body() ?? 0;
      } catch (error) {
        try {
          writeSync(2, `child ${process.pid} threw: ${(error as Error)?.stack ?? String(error)}\n`);
        } catch {
          // nothing to do
        }
      } finally {
        _exit(code);
      }
    }
    this.live.add(pid);
    return pid;
  }

  /** Adopts a child forked by the caller (so that cleanup() reaps it); returns `pid`. */
  track(pid: number): number {
    if (pid > 0) this.live.add(pid);
    return pid;
  }

  /** Waits (without blocking the loop) for `pid` to end; SIGKILLs it and throws after `ms`. */
  async wait(pid: number, ms = 15000): Promise<WaitResult> {
    const end = Date.now() + ms;
    for (;;) {
      const r = waitpid(pid, WNOHANG);
      if (r !== null) {
        this.live.delete(pid);
        return r;
      }
      if (Date.now() > end) {
        this.killAndReap(pid);
        throw new Error(`child ${pid} did not end within ${ms} ms`);
      }
      await sleep(2);
    }
  }

  /** Waits for `pid` and asserts that it exited with code 0. */
  async ok(pid: number, ms = 15000): Promise<void> {
    const r = await this.wait(pid, ms);
    if (r.kind !== 'exited' || r.exitCode !== 0) throw new Error(`child ${pid} ended with ${JSON.stringify(r)}`);
  }

  killAndReap(pid: number): WaitResult | null {
    try {
      kill(pid, 'SIGKILL');
    } catch {
      // already reaped or gone
    }
    let r: WaitResult | null = null;
    try {
      r = waitpid(pid);
    } catch {
      // not ours any more
    }
    this.live.delete(pid);
    return r;
  }

  cleanup(): void {
    for (const pid of [...this.live]) this.killAndReap(pid);
  }
}

/**
 * Runs `body` (the text of an async function body; `sync`, `workerData` and `parentPort` are
 * in scope) in a worker thread and resolves with what it returns once the worker has exited.
 * Rejects with the worker's error; terminates it after `ms`.
 */
export function runWorker<T = unknown>(body: string, workerData: unknown = {}, ms = 15000): Promise<T> {
  const code = `
    const { parentPort, workerData } = require('node:worker_threads');
    const sync = require(${JSON.stringify(syncPath)});
    (async () => { ${body} })().then(
      (r) => parentPort.postMessage({ ok: true, r }),
      (e) => parentPort.postMessage({ ok: false, e: String((e && e.stack) || e), code: e && e.code }));`;
  return new Promise((resolve, reject) => {
    const worker = new Worker(code, { eval: true, workerData });
    let message: { ok: boolean; r?: T; e?: string; code?: string } | undefined;
    let error: Error | undefined;
    const timer = setTimeout(() => {
      error = new Error(`worker did not finish within ${ms} ms`);
      void worker.terminate();
    }, ms);
    worker.on('message', (m) => (message = m));
    worker.on('error', (e) => (error = e));
    worker.on('exit', () => {
      clearTimeout(timer);
      if (error) reject(error);
      else if (!message) reject(new Error('worker exited without a result'));
      else if (!message.ok) reject(Object.assign(new Error(`worker failed: ${message.e}`), { code: message.code }));
      else resolve(message.r as T);
    });
  });
}

/** Names in /dev/shm. */
export function shmNames(): string[] {
  return readdirSync('/dev/shm');
}

/** A user-given segment name unique to this run. */
export function testName(tag: string): string {
  return `fwtest-${process.pid}-${tag}-${Math.random().toString(16).slice(2, 10)}`;
}

export { type WaitResult };

/** The `code` of an error-like value, or undefined. */
export function codeOf(e: unknown): string | undefined {
  const code = (e as { code?: unknown } | null)?.code;
  return typeof code === 'string' ? code : undefined;
}
