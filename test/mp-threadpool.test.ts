import assert from 'node:assert/strict';
import { join } from 'node:path';
import { threadId } from 'node:worker_threads';
import { Pool, ThreadPool, Value, WorkerDiedError } from 'forkwise/multiprocessing';
import { fixtures, runNode } from './helpers';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const tasks = join(fixtures, 'mp-tasks.js');
// The id of the thread a task runs in (0 is the main thread).
const whichThread = (): number => require('node:worker_threads').threadId;

describe('multiprocessing: ThreadPool', function () {
  this.timeout(60000);

  it('is a Pool whose workers are threads of this process', async () => {
    await using pool = new ThreadPool({ processes: 2 });
    assert.ok(pool instanceof Pool);
    const where = await pool.map(() => [process.pid, require('node:worker_threads').threadId], [1, 2, 3, 4], { chunksize: 1 });
    for (const [pid, tid] of where as number[][]) {
      assert.equal(pid, process.pid);
      assert.notEqual(tid, threadId);
    }
    assert.equal(pool.stats.workers, 2);
  });

  it('map, starmap, apply, applyAsync, imap and imapUnordered, with and without chunksize', async () => {
    await using pool = new ThreadPool({ processes: 2 });
    const items = Array.from({ length: 500 }, (_, i) => i);
    assert.deepEqual(await pool.map((x: number) => x * 2, items), items.map((x) => x * 2));
    assert.deepEqual(await pool.map((x: number) => x + 1, items, { chunksize: 7 }), items.map((x) => x + 1));
    assert.deepEqual(await pool.starmap((a: number, b: number) => a * b, [[2, 3], [4, 5]]), [6, 20]);
    assert.equal(await pool.apply(async (a: number, b: number) => a + b, [2, 3]), 5);
    const result = pool.applyAsync((x: number) => x * 3, [3]);
    assert.equal(await result.get(10000), 9);
    assert.equal(result.successful(), true);
    const ordered: number[] = [];
    for await (const v of pool.imap((x: number) => x * x, [1, 2, 3, 4], { chunksize: 2 })) ordered.push(v as number);
    assert.deepEqual(ordered, [1, 4, 9, 16]);
    const unordered: number[] = [];
    for await (const v of pool.imapUnordered(async (ms: number) => {
      await new Promise((resolve) => setTimeout(resolve, ms));
      return ms;
    }, [300, 10])) unordered.push(v as number);
    assert.deepEqual(unordered, [10, 300]);
  });

  it('functions go by source or as a TaskRef: a closure over an outer variable is refused clearly', async () => {
    await using pool = new ThreadPool({ processes: 1 });
    const outer = 5;
    await assert.rejects(pool.apply(() => outer), { code: 'ERR_FORKWISE_NOT_SELF_CONTAINED', message: /'outer'/ });
    await assert.rejects(pool.map((x: number) => x + outer, [1]), { code: 'ERR_FORKWISE_NOT_SELF_CONTAINED' });
    assert.equal(await pool.apply(() => require('node:path').basename('/a/b')), 'b');
    await assert.rejects(pool.apply({ module: tasks, name: 'fail' } as never), { name: 'RangeError', message: 'out of cheese', code: 'ECHEESE' });
  });

  it('forkwise objects in arguments are shared with the threads, not copied', async () => {
    await using pool = new ThreadPool({ processes: 2 });
    const total = new Value('int32', 0);
    await pool.map(
      (v: Value<'int32'>) => {
        const lock = v.getLock();
        for (let i = 0; i < 100; i++) {
          lock.acquire();
          v.value += 1;
          lock.release();
        }
      },
      [total, total, total, total],
      { chunksize: 1 },
    );
    assert.equal(total.value, 400);
  });

  it('initializer and initArgs run once per thread; one that throws fails the tasks clearly', async () => {
    {
      await using pool = new ThreadPool({ processes: 2, initializer: (x: number) => ((globalThis as any).seed = x), initArgs: [41] });
      assert.deepEqual(await pool.map(() => (globalThis as any).seed + 1, [1, 2, 3], { chunksize: 1 }), [42, 42, 42]);
      assert.equal((globalThis as any).seed, undefined, 'not run in this thread');
    }
    const pool = new ThreadPool({
      processes: 2,
      initializer: () => {
        throw new Error('no database');
      },
    });
    await assert.rejects(pool.map((x: number) => x, [1, 2, 3]), { code: 'ERR_FORKWISE_POOL_INITIALIZER', message: /no database/ });
    await assert.rejects(pool.apply(() => 1), { code: 'ERR_FORKWISE_POOL_INITIALIZER' });
    pool.terminate();
    await pool.join();
  });

  it('process.exit() in a task ends only its thread: WorkerDiedError with this pid and the thread id; the others complete', async () => {
    await using pool = new ThreadPool({ processes: 2 });
    const others = pool.map(async (x: number) => {
      await new Promise((resolve) => setTimeout(resolve, 20));
      return x;
    }, Array.from({ length: 20 }, (_, i) => i), { chunksize: 1 });
    const dying = pool.apply(() => process.exit(3));
    await assert.rejects(dying, (error: WorkerDiedError) => {
      assert.ok(error instanceof WorkerDiedError);
      assert.equal(error.code, 'ERR_FORKWISE_WORKER_DIED');
      assert.equal(error.pid, process.pid);
      assert.ok(typeof error.threadId === 'number' && error.threadId > 0);
      assert.equal(error.exitCode, 3);
      assert.equal(error.signal, null);
      assert.match(error.message, /thread \d+ \(pid \d+\).*exit code 3/);
      return true;
    });
    assert.deepEqual(await others, Array.from({ length: 20 }, (_, i) => i));
    assert.equal(await pool.apply((x: number) => x + 1, [1]), 2);
    for (let i = 0; i < 100 && pool.stats.workers !== 2; i++) await sleep(50);
    assert.equal(pool.stats.workers, 2);
  });

  it('an uncaught error in a thread fails its task with WorkerDiedError, the error as its cause', async () => {
    await using pool = new ThreadPool({ processes: 1 });
    const failing = pool.apply(() => {
      setTimeout(() => {
        throw new RangeError('late');
      }, 1);
      return new Promise(() => {});
    });
    await assert.rejects(failing, (error: WorkerDiedError & { cause?: Error }) => {
      assert.equal(error.name, 'WorkerDiedError');
      assert.equal(error.exitCode, 1);
      assert.equal(error.cause?.name, 'RangeError');
      assert.equal(error.cause?.message, 'late');
      return true;
    });
    assert.equal(await pool.apply(() => 'next'), 'next');
  });

  it('a timeout counts from when the task starts; an overrun ends its thread (even in a busy loop) and fails only that task', async () => {
    await using pool = new ThreadPool({ processes: 1 });
    const slowButFine = pool.apply(() => new Promise((resolve) => setTimeout(() => resolve('slow'), 300)));
    const queued = pool.apply(() => 'queued', [], { timeout: 250 });
    const overrun = pool.apply(() => {
      for (;;);
    }, [], { timeout: 200 });
    const after = pool.apply(() => 'after');
    assert.equal(await slowButFine, 'slow');
    assert.equal(await queued, 'queued');
    await assert.rejects(overrun, { name: 'TimeoutError' });
    assert.equal(await after, 'after');
  });

  it('an aborted signal removes a queued task and ends a running one', async () => {
    await using pool = new ThreadPool({ processes: 1 });
    const running = new AbortController();
    const queued = new AbortController();
    const a = pool.apply(() => new Promise((resolve) => setTimeout(resolve, 60000)), [], { signal: running.signal });
    const b = pool.apply(() => 'never', [], { signal: queued.signal });
    await sleep(100);
    queued.abort();
    await assert.rejects(b, { name: 'AbortError' });
    const tid = pool.stats.workers;
    running.abort();
    await assert.rejects(a, { name: 'AbortError' });
    assert.equal(await pool.apply(() => 'next'), 'next');
    assert.equal(pool.stats.workers, tid);
  });

  it('maxTasksPerChild recycles threads; maxQueued holds submitters back; imap reads lazily', async () => {
    {
      await using pool = new ThreadPool({ processes: 2, maxTasksPerChild: 1 });
      const ids = await pool.map(whichThread, [1, 2, 3, 4, 5, 6], { chunksize: 1 });
      assert.equal(new Set(ids).size, 6, 'each task in a thread of its own');
    }
    await using pool = new ThreadPool({ processes: 1, maxQueued: 2 });
    let pulled = 0;
    function* items(): Generator<number> {
      for (let i = 0; i < 1000; i++) {
        pulled++;
        yield i;
      }
    }
    const it = pool.imap((x: number) => x, items())[Symbol.asyncIterator]();
    assert.deepEqual(await it.next(), { value: 0, done: false });
    assert.ok(pulled < 50, `pulled ${pulled} items for one result`);
    await it.return?.();
  });

  it('stats and onProgress', async () => {
    await using pool = new ThreadPool({ processes: 2 });
    const seen: Array<[number, number | undefined]> = [];
    await pool.map((x: number) => x, Array.from({ length: 10 }, (_, i) => i), { chunksize: 5, onProgress: (done, total) => seen.push([done, total]) });
    assert.deepEqual(seen.map(([, total]) => total), [10, 10]);
    assert.deepEqual(seen.map(([done]) => done).sort((a, b) => a - b), [5, 10]);
    const stats = pool.stats;
    assert.equal(stats.done, 10);
    assert.equal(stats.failed, 0);
    assert.equal(stats.queued, 0);
    assert.equal(stats.workers, 2);
    assert.ok(stats.runMs.p50 >= 0 && stats.waitMs.p99 >= stats.waitMs.p50);
  });

  it('errors and results that cannot be cloned fail their task clearly', async () => {
    await using pool = new ThreadPool({ processes: 1 });
    await assert.rejects(pool.apply(() => () => 1), { code: 'ERR_FORKWISE_NOT_CLONEABLE' });
    await assert.rejects(pool.apply((x: unknown) => x, [() => 1]), { code: 'ERR_FORKWISE_NOT_CLONEABLE' });
    const failed = (await pool.apply(() => {
      throw new TypeError('bad');
    }).catch((e: Error) => e)) as Error;
    assert.equal(failed.name, 'TypeError');
    assert.match(failed.stack ?? '', /bad/);
  });

  it('close() lets queued tasks finish; terminate() rejects what is pending; no task after either', async () => {
    const pool = new ThreadPool({ processes: 2 });
    const mapping = pool.map((x: number) => x * 2, [1, 2, 3, 4], { chunksize: 1 });
    pool.close();
    assert.deepEqual(await mapping, [2, 4, 6, 8]);
    await pool.join();
    assert.equal(pool.stats.workers, 0);
    await assert.rejects(pool.apply(() => 1), { code: 'ERR_FORKWISE_POOL_CLOSED' });

    const other = new ThreadPool({ processes: 2 });
    const stuck = other.map(() => new Promise((resolve) => setTimeout(resolve, 60000)), [1, 2, 3, 4]);
    await sleep(200);
    other.terminate();
    await assert.rejects(stuck, { code: 'ERR_FORKWISE_POOL_TERMINATED' });
    await other.join();
    assert.equal(other.stats.workers, 0);
  });

  it('an idle ThreadPool does not keep the process alive; pending tasks do', async () => {
    const outcome = await runNode('threadpool-lifetime.js', [], { nodeArgs: [], timeoutMs: 30000 });
    assert.equal(outcome.code, 0, outcome.stderr);
    assert.equal(outcome.stdout, 'result 42\n');
  });

  it('bad options: maxMemoryPerChild and startMethod are refused', () => {
    assert.throws(() => new ThreadPool({ maxMemoryPerChild: 1 } as never), { code: 'ERR_INVALID_ARG_VALUE', message: /maxMemoryPerChild/ });
    assert.throws(() => new ThreadPool({ startMethod: 'fork' } as never), { code: 'ERR_INVALID_ARG_VALUE', message: /startMethod/ });
    assert.throws(() => new ThreadPool({ processes: 0 }), { code: 'ERR_OUT_OF_RANGE' });
  });
});
