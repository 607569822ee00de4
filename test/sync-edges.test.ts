/**
 * Edge cases of forkwise/sync found in review: a holder that ends without dying, a mapping
 * address used again, the async tasks of one thread, a notification and an abort racing,
 * set() then clear(), barrier generations failing in a row, timeouts too large for time_t,
 * and a child forked while its parent holds a lock.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { fork } from 'forkwise';
import { Barrier, BrokenBarrierError, Condition, Event, Mutex, Semaphore, Value } from 'forkwise/sync';
import { runNode } from './helpers';
import { Children, sleep, syncPath, until } from './sync-helpers';

describe('forkwise/sync edge cases', function () {
  this.timeout(20000);
  const children = new Children();
  afterEach(() => children.cleanup());

  it("a closed segment's buffer, collected, leaves a new mapping at its address alone", async () => {
    const out = await runNode('sync-address-reuse.js', [], { nodeArgs: ['--single-threaded', '--expose-gc'] });
    assert.deepEqual([out.code, out.stdout, out.stderr], [0, 'ok\n', '']);
  });

  for (const how of ['natural', 'exit', 'throw']) {
    it(`a process that ends holding a Mutex (${how}) leaves it recovered, not held`, async () => {
      const lock = new Mutex();
      const out = await runNode('sync-hold-and-end.js', [JSON.stringify(lock.handle), how]);
      assert.equal(out.code, how === 'throw' ? 1 : 0, out.stderr);
      assert.equal(lock.acquire({ timeout: 2000 }), true);
      assert.equal(lock.recovered, true);
      lock.markConsistent();
      lock.release();
    });
  }

  for (const how of ['returns', 'calls process.exit', 'is terminated']) {
    it(`a worker that ${how} holding a Mutex leaves it recovered`, async () => {
      const lock = new Mutex();
      const tail = { returns: '', 'calls process.exit': 'process.exit(0);', 'is terminated': 'setInterval(() => {}, 1000);' }[how];
      const worker = new Worker(
        `const { workerData, parentPort } = require('node:worker_threads');
         require(${JSON.stringify(syncPath)}).Mutex.fromHandle(workerData).acquire();
         parentPort.postMessage('held');
         ${tail}`,
        { eval: true, workerData: lock.handle },
      );
      await new Promise((resolve) => worker.once('message', resolve));
      if (how === 'is terminated') await worker.terminate();
      else await new Promise((resolve) => worker.once('exit', resolve));
      assert.equal(lock.acquire({ timeout: 2000 }), true);
      assert.equal(lock.recovered, true);
      lock.markConsistent();
      lock.release();
    });
  }

  it("the default Condition lock queues the async tasks of one thread (withLock + waitForAsync)", async () => {
    const cond = new Condition();
    const items: number[] = [];
    const consumer = cond.withLock(() => cond.waitForAsync(() => items.length > 0, 5000));
    await sleep(20);
    await cond.withLock(() => {
      items.push(1);
      cond.notify();
    });
    assert.equal(await consumer, true);
    assert.equal(cond.locked(), false);
  });

  it('an aborted waitAsync passes on a notification it had claimed', async () => {
    const cond = new Condition();
    cond.acquire();
    const aborter = new AbortController();
    const first = cond.waitAsync({ signal: aborter.signal });
    await sleep(10);
    // first holds nothing now; take the lock back for the second waiter's start
    cond.acquire();
    const second = cond.waitAsync(3000);
    await sleep(10);
    cond.acquire();
    cond.notify(1);
    aborter.abort();
    cond.release();
    await assert.rejects(first, { name: 'AbortError' });
    cond.release(); // an aborted wait returns with the lock, as any wait does
    const started = performance.now();
    assert.equal(await second, true, 'the notification reached the other waiter');
    assert.ok(performance.now() - started < 1000);
    cond.release();
  });

  it('set() then clear() at once still wakes the waiters (as in CPython)', async () => {
    const event = new Event();
    const waiting = event.waitAsync(2000);
    const pid = children.fork(() => (event.wait(2000) ? 0 : 1));
    // The child must be asleep in wait() before set() (a fork is slow on a loaded machine).
    await until(() => /futex/.test(readFileSync(`/proc/${pid}/wchan`, 'utf8')), 5000, 'the child waiting');
    event.set();
    event.clear();
    assert.equal(await waiting, true);
    await children.ok(pid);
  });

  it('a waiter of an aborted generation stays broken when the next generation fails too', async () => {
    const barrier = new Barrier(2);
    const first = assert.rejects(barrier.waitAsync(), BrokenBarrierError);
    barrier.abort();
    barrier.reset();
    const second = assert.rejects(barrier.waitAsync(), BrokenBarrierError);
    barrier.abort();
    await first;
    await second;
  });

  it("a Barrier attached by handle keeps the creator's default timeout", () => {
    const barrier = new Barrier(2, { timeout: 40 });
    assert.deepEqual(JSON.parse(JSON.stringify(barrier.handle)), barrier.handle);
    const attached = Barrier.fromHandle(barrier.handle);
    const started = performance.now();
    assert.throws(() => attached.wait(), BrokenBarrierError);
    const took = performance.now() - started;
    assert.ok(took >= 39 && took < 1000, `took ${took} ms`);
  });

  it('a bad argument or an aborted signal given to Barrier.waitAsync leaves the barrier alone', async () => {
    const barrier = new Barrier(2);
    await assert.rejects(barrier.waitAsync({ signal: 'no' as never }), { code: 'ERR_INVALID_ARG_TYPE' });
    await assert.rejects(barrier.waitAsync({ signal: AbortSignal.abort() }), { name: 'AbortError' });
    assert.equal(barrier.broken, false);
    assert.equal(barrier.nWaiting, 0);
  });

  it('a Condition.waitAsync pending at fork() waits in the child too: notifyAll wakes both', async () => {
    const cond = new Condition();
    await cond.acquireAsync();
    const waiting = cond.waitAsync(5000);
    const pid = children.track(fork());
    if (pid === 0) {
      waiting.then(
        (notified) => {
          cond.release();
          process.exit(notified ? 0 : 1);
        },
        () => process.exit(2),
      );
      return new Promise(() => {});
    }
    await sleep(100); // the child counts itself as a waiter
    cond.acquire();
    cond.notifyAll();
    cond.release();
    assert.equal(await waiting, true);
    cond.release();
    assert.deepEqual(await children.wait(pid), { pid, status: 0, kind: 'exited', exitCode: 0 });
  });

  it('timeouts too large for time_t wait for ever, without spinning', async () => {
    const event = new Event();
    const pid = children.fork(() => {
      const cpu = process.cpuUsage();
      const set = event.wait(1e300);
      const used = process.cpuUsage(cpu);
      return set && used.user + used.system < 100_000 ? 0 : 1;
    });
    await sleep(300);
    event.set();
    await children.ok(pid);
    assert.equal(new Semaphore(1).acquire({ timeout: 1e300 }), true);
  });

  it('Semaphore.release(n) past the maximum posts nothing', () => {
    const sem = new Semaphore(2 ** 31 - 3);
    assert.throws(() => sem.release(5), { code: 'EOVERFLOW' });
    assert.equal(sem.getValue(), 2 ** 31 - 3);
  });

  it('a child forked while its parent holds a lock does not hold it', async () => {
    const lock = new Mutex();
    const cond = new Condition(lock);
    const value = new Value('int32', 0, { lock });
    lock.acquire();
    const pid = children.track(fork());
    if (pid === 0) {
      let code = 0;
      try {
        cond.notify();
        code = 1; // the parent's hold was taken for the child's
      } catch (error) {
        if ((error as { code?: string }).code !== 'ERR_LOCK_NOT_OWNED') code = 2;
      }
      if (lock.acquire({ timeout: 50 })) code = 3;
      process.exit(code);
    }
    value.value = 1; // the parent still holds it: no wait
    const result = await children.wait(pid);
    lock.release();
    assert.deepEqual(result, { pid, status: 0, kind: 'exited', exitCode: 0 });
  });
});
