import assert from 'node:assert/strict';
import { join } from 'node:path';
import { readdirSync } from 'node:fs';
import { Pool, WorkerDiedError, stopForkserver, type StartMethod } from 'forkwise/multiprocessing';
import { fixtures, runNode } from './helpers';

const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));
const tasks = join(fixtures, 'mp-tasks.js');

describe('multiprocessing: Pool', function () {
  this.timeout(60000);

  after(() => stopForkserver());

  for (const method of ['fork', 'forkserver', 'spawn'] as StartMethod[]) {
    it(`map, starmap, apply and imap in order, under '${method}'`, async () => {
      await using pool = new Pool({ processes: 2, startMethod: method });
      const items = Array.from({ length: 500 }, (_, i) => i);
      assert.deepEqual(await pool.map((x: number) => x * 2, items), items.map((x) => x * 2));
      assert.deepEqual(await pool.map((x: number) => x + 1, items, { chunksize: 7 }), items.map((x) => x + 1));
      assert.deepEqual(await pool.starmap((a: number, b: number) => a * b, [[2, 3], [4, 5]]), [6, 20]);
      assert.equal(await pool.apply(async (a: number, b: number) => a + b, [2, 3]), 5);
      const seen: number[] = [];
      for await (const v of pool.imap((x: number) => x * x, [1, 2, 3, 4])) seen.push(v as number);
      assert.deepEqual(seen, [1, 4, 9, 16]);
    });

    it(`a worker killed mid-task fails exactly that task with WorkerDiedError; the others complete ('${method}')`, async () => {
      await using pool = new Pool({ processes: 2, startMethod: method });
      const others = pool.map(async (x: number) => {
        await new Promise((resolve) => setTimeout(resolve, 20));
        return x;
      }, Array.from({ length: 20 }, (_, i) => i), { chunksize: 1 });
      const dying = pool.apply(() => process.kill(process.pid, 'SIGKILL'));
      await assert.rejects(dying, (error: WorkerDiedError) => {
        assert.equal(error.name, 'WorkerDiedError');
        assert.equal(error.code, 'ERR_FORKWISE_WORKER_DIED');
        assert.equal(error.signal, 'SIGKILL');
        assert.ok(error.pid > 0);
        return true;
      });
      assert.deepEqual(await others, Array.from({ length: 20 }, (_, i) => i));
      assert.equal(await pool.apply((x: number) => x + 1, [1]), 2);
      // Replaced: back to its size once the retired ones have exited.
      for (let i = 0; i < 100 && pool.stats.workers !== 2; i++) await sleep(50);
      assert.equal(pool.stats.workers, 2);
    });
  }

  it("with 'fork', fn may be any closure, created before or after the pool", async () => {
    const table = new Map([[1, 10], [2, 20], [3, 30]]);
    await using pool = new Pool({ processes: 2, startMethod: 'fork' });
    const run = (k: number) => pool.map((x: number) => table.get(x)! * k, [1, 2, 3]);
    assert.deepEqual(await run(2), [20, 40, 60]);
    assert.deepEqual(await run(3), [30, 60, 90]);
    const late = new Map([[1, 'late']]);
    assert.equal(await pool.apply(() => late.get(1)), 'late');
  });

  it('a timeout counts from when the task starts; an overrun ends its worker and fails only that task', async () => {
    await using pool = new Pool({ processes: 1, startMethod: 'fork' });
    const slowButFine = pool.apply(() => new Promise((resolve) => setTimeout(() => resolve('slow'), 300)));
    // Queued behind 300 ms of work, with 250 ms of its own: it must not time out.
    const queued = pool.apply(() => 'queued', [], { timeout: 250 });
    const overrun = pool.apply(() => new Promise((resolve) => setTimeout(resolve, 60000)), [], { timeout: 200 });
    const after = pool.apply(() => 'after');
    assert.equal(await slowButFine, 'slow');
    assert.equal(await queued, 'queued');
    await assert.rejects(overrun, { name: 'TimeoutError' });
    assert.equal(await after, 'after');
  });

  it('an aborted signal removes a queued task and ends a running one', async () => {
    await using pool = new Pool({ processes: 1, startMethod: 'fork' });
    const running = new AbortController();
    const queued = new AbortController();
    const a = pool.apply(() => new Promise((resolve) => setTimeout(resolve, 60000)), [], { signal: running.signal });
    const b = pool.apply(() => 'never', [], { signal: queued.signal });
    await sleep(100);
    queued.abort();
    await assert.rejects(b, { name: 'AbortError' });
    running.abort();
    await assert.rejects(a, { name: 'AbortError' });
    assert.equal(await pool.apply(() => 'next'), 'next');
    assert.equal(pool.stats.workers, 1);
  });

  it('never hangs: a 200 MB result, join() before results are read, maxTasksPerChild: 1', async () => {
    const pool = new Pool({ processes: 2, startMethod: 'fork', maxTasksPerChild: 1 });
    const big = pool.apply(() => Buffer.alloc(200 * 1024 * 1024, 7));
    const pids = pool.map(() => process.pid, [1, 2, 3, 4, 5, 6], { chunksize: 1 });
    pool.close();
    await pool.join();
    const buffer = (await big) as Buffer;
    assert.equal(buffer.length, 200 * 1024 * 1024);
    assert.equal(buffer[buffer.length - 1], 7);
    assert.equal(new Set(await pids).size, 6, 'each task in a worker of its own');
  });

  it('an error that cannot be cloned and a result that cannot be cloned fail their task clearly', async () => {
    await using pool = new Pool({ processes: 1, startMethod: 'fork' });
    await assert.rejects(
      pool.apply(() => {
        const error = new RangeError('odd') as RangeError & { extra: unknown };
        error.extra = () => 1;
        throw error;
      }),
      { name: 'RangeError', message: 'odd' },
    );
    await assert.rejects(pool.apply(() => () => 1), { code: 'ERR_FORKWISE_NOT_CLONEABLE' });
    // Sent in one message with the others: it fails alone, naming the argument, and the others run.
    const seen: number[] = [];
    await assert.rejects(
      pool.map((x: number) => x, [1, (() => 2) as never, 3], { chunksize: 1, onProgress: (done) => seen.push(done) }),
      { code: 'ERR_FORKWISE_NOT_CLONEABLE', message: /args\[0\]/ },
    );
    for (let i = 0; i < 100 && seen.length < 2; i++) await sleep(20);
    assert.deepEqual(seen, [1, 2]);
    const failed = await pool.apply(() => {
      throw new TypeError('bad');
    }).catch((e: Error) => e);
    assert.match((failed as Error).stack ?? '', /bad/);
    assert.equal(await pool.apply(() => 1), 1);
  });

  it('terminate() during map rejects what is pending, and join() follows', async () => {
    const pool = new Pool({ processes: 2, startMethod: 'fork' });
    const mapping = pool.map(() => new Promise((resolve) => setTimeout(resolve, 60000)), [1, 2, 3, 4]);
    await sleep(200);
    pool.terminate();
    await assert.rejects(mapping, { code: 'ERR_FORKWISE_POOL_TERMINATED' });
    await pool.join();
    await assert.rejects(pool.apply(() => 1), { code: 'ERR_FORKWISE_POOL_CLOSED' });
  });

  it('an initializer that throws fails the tasks clearly instead of restarting for ever', async () => {
    const pool = new Pool({
      processes: 2,
      startMethod: 'fork',
      initializer: () => {
        throw new Error('no database');
      },
    });
    await assert.rejects(pool.map((x: number) => x, [1, 2, 3]), { code: 'ERR_FORKWISE_POOL_INITIALIZER', message: /no database/ });
    await assert.rejects(pool.apply(() => 1), { code: 'ERR_FORKWISE_POOL_INITIALIZER' });
    pool.terminate();
    await pool.join();
  });

  it('initializer and initArgs run once per worker; TaskRef functions work with spawn', async () => {
    await using pool = new Pool({ processes: 1, startMethod: 'spawn', initializer: (x: number) => ((globalThis as any).seed = x), initArgs: [41] });
    assert.equal(await pool.apply(() => (globalThis as any).seed + 1), 42);
    await assert.rejects(pool.apply({ module: tasks, name: 'fail' } as never), { name: 'RangeError', message: 'out of cheese' });
  });

  it('maxMemoryPerChild replaces a worker that grew, losing no task', async () => {
    await using pool = new Pool({ processes: 1, startMethod: 'fork', maxMemoryPerChild: 1 });
    const pids = await pool.map(() => process.pid, [1, 2, 3, 4], { chunksize: 1 });
    assert.equal(pids.length, 4);
    assert.equal(new Set(pids).size, 4);
  });

  it('a task that exits with code 0 fails with WorkerDiedError (it is not run again)', async () => {
    await using pool = new Pool({ processes: 1, startMethod: 'fork' });
    await assert.rejects(pool.apply(() => process.exit(0)), { name: 'WorkerDiedError', exitCode: 0 });
    assert.equal(await pool.apply(() => 'next'), 'next');
  });

  it('pending tasks keep the process alive while workers are replaced; an idle pool does not', async () => {
    for (const method of ['fork', 'forkserver']) {
      const outcome = await runNode('pool-lifetime.js', [method], { timeoutMs: 30000 });
      assert.equal(outcome.code, 0, outcome.stderr);
      assert.equal(outcome.stdout, 'sum 1560\n', method);
    }
  });

  it("recycled workers leave no pipe segment behind in /dev/shm", async () => {
    const mine = (): number => readdirSync('/dev/shm').filter((name) => name.startsWith(`forkwise-${process.pid}-`)).length;
    const before = mine();
    await using pool = new Pool({ processes: 2, startMethod: 'fork', maxTasksPerChild: 1 });
    await pool.map((x: number) => x, Array.from({ length: 20 }, (_, i) => i), { chunksize: 1 });
    assert.ok(mine() - before <= 2, `${mine() - before} segments left for 20 workers`);
  });

  it('maxQueued holds submitters back; imap reads its input lazily', async () => {
    await using pool = new Pool({ processes: 1, startMethod: 'fork', maxQueued: 2 });
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

  it('applyAsync gives an AsyncResult with callbacks', async () => {
    await using pool = new Pool({ processes: 1, startMethod: 'fork' });
    let called: unknown;
    const result = pool.applyAsync((x: number) => x * 3, [3], { callback: (v) => (called = v) });
    assert.equal(result.ready(), false);
    assert.throws(() => result.successful(), { code: 'ERR_FORKWISE_RESULT_NOT_READY' });
    assert.equal(await result.get(10000), 9);
    assert.equal(result.ready(), true);
    assert.equal(result.successful(), true);
    assert.equal(called, 9);
    const slow = pool.applyAsync(() => new Promise((resolve) => setTimeout(resolve, 500)));
    await assert.rejects(slow.get(10), { name: 'TimeoutError' });
    await slow.wait();
    assert.equal(pool.stats.done >= 2, true);
  });

  it('stats.runMs is each task\'s time in its worker, also when answers are read in batches', async () => {
    await using pool = new Pool({ processes: 2, startMethod: 'fork' });
    const busy = (x: number): number => {
      const end = performance.now() + 1;
      while (performance.now() < end);
      return x;
    };
    // 1 ms tasks: the pool reads each worker's answers a few at once, on a timer.
    assert.deepEqual(await pool.map(busy, Array.from({ length: 300 }, (_, i) => i), { chunksize: 1 }), Array.from({ length: 300 }, (_, i) => i));
    const { runMs } = pool.stats;
    assert.ok(runMs.p50 >= 0.9 && runMs.p50 < 5, `median run time ${runMs.p50} ms`);
  });

  it('bad input: options, functions, arguments', async () => {
    assert.throws(() => new Pool({ processes: 0 }), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => new Pool({ processes: 1.5 }), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => new Pool({ initializer: 3 as never }), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => new Pool({ startMethod: 'x' as never }), { code: 'ERR_INVALID_ARG_VALUE' });
    await using pool = new Pool({ processes: 1, startMethod: 'spawn' });
    await assert.rejects(pool.apply(3 as never), { code: 'ERR_INVALID_ARG_TYPE' });
    await assert.rejects(pool.apply((x: unknown) => x, 'no' as never), { code: 'ERR_INVALID_ARG_TYPE' });
    const outer = 5;
    await assert.rejects(pool.apply(() => outer), { code: 'ERR_FORKWISE_NOT_SELF_CONTAINED', message: /'outer'/ });
    await assert.rejects(pool.apply((x: unknown) => x, [() => 1]), { code: 'ERR_FORKWISE_NOT_CLONEABLE' });
    await assert.rejects(pool.apply(() => 1, [], { timeout: -1 }), { code: 'ERR_INVALID_ARG_VALUE' });
  });
});
