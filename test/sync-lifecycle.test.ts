/**
 * Asynchronous waits across the lifecycle of threads and processes: a wait pending at fork()
 * goes on in the child, and a worker that ends mid-wait leaves nothing broken behind.
 */
import assert from 'node:assert/strict';
import { Worker } from 'node:worker_threads';
import { _exit, fork } from 'forkwise';
import { Event, Mutex } from 'forkwise/sync';
import { runNode } from './helpers';
import { Children, syncPath } from './sync-helpers';

describe('forkwise/sync waits across fork and worker exit', function () {
  this.timeout(20000);
  const children = new Children();
  afterEach(() => children.cleanup());

  it('an acquireAsync pending at fork() completes in the child too, which then exits', async () => {
    const lock = new Mutex();
    const held = new Event();
    const letGo = new Event();
    const holder = children.fork(() => {
      lock.acquire();
      held.set();
      letGo.wait(10000);
      lock.release();
    });
    assert.equal(await held.waitAsync(5000), true);
    const pending = lock.acquireAsync({ timeout: 8000 });
    const pid = children.track(fork());
    if (pid === 0) {
      // The parent's helper thread did not cross the fork: without a new one the promise
      // never settles. The child stays in this test (mocha must not go on in it) and ends
      // itself with 3 if nothing happened in time.
      pending.then(
        (taken) => {
          if (taken) lock.release();
          _exit(taken ? 0 : 1);
        },
        () => _exit(2),
      );
      setTimeout(() => _exit(3), 8000);
      return new Promise(() => {});
    }
    letGo.set();
    await children.ok(holder);
    assert.equal(await pending, true, 'the parent gets it as well');
    lock.release();
    assert.deepEqual(await children.wait(pid), { pid, status: 0, kind: 'exited', exitCode: 0 });
  });

  it('a mutex taken by acquireAsync after waiting is owned by the JS thread: its death is seen (recovered)', async () => {
    const lock = new Mutex();
    const took = new Event();
    lock.acquire();
    const pid = children.track(fork());
    if (pid === 0) {
      // Busy at first: the attempt that succeeds runs in the helper's callback on the loop.
      lock.acquireAsync({ timeout: 5000 }).then((taken) => (taken ? took.set() : _exit(1)));
      setTimeout(() => _exit(3), 8000);
      return new Promise(() => {});
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
    lock.release();
    assert.equal(await took.waitAsync(5000), true);
    // Held by the child's main thread, alive: a helper thread would have ended (owner died).
    assert.equal(lock.acquire({ timeout: 100 }), false);
    children.killAndReap(pid);
    assert.equal(lock.acquire({ timeout: 1000 }), true);
    assert.equal(lock.recovered, true);
    lock.markConsistent();
    lock.release();
  });

  it('a worker terminated while its acquireAsync waits: no crash, the lock still works', async () => {
    const lock = new Mutex();
    lock.acquire();
    const worker = new Worker(
      `const { parentPort, workerData } = require('node:worker_threads');
       const lock = require(${JSON.stringify(syncPath)}).Mutex.fromHandle(workerData);
       lock.acquireAsync();
       parentPort.postMessage('waiting');`,
      { eval: true, workerData: lock.handle },
    );
    await new Promise((resolve) => worker.once('message', resolve));
    await new Promise((resolve) => setTimeout(resolve, 50)); // its helper thread sleeps now
    await worker.terminate();
    lock.release();
    assert.equal(await lock.acquireAsync({ timeout: 1000 }), true);
    lock.release();
  });
});

describe('workers ended while their asynchronous waits are being woken', () => {
  for (const how of ['terminate', 'exit']) {
    it(`${how === 'exit' ? 'process.exit() in the worker' : 'worker.terminate()'}: the process survives`, async () => {
      const outcome = await runNode('sync-terminate-busy-workers.js', [how], { timeoutMs: 60000 });
      assert.deepEqual({ ...outcome, stderr: outcome.stderr.slice(0, 500) }, {
        code: 0,
        signal: null,
        stdout: 'survived\n',
        stderr: '',
      });
    }).timeout(70000);
  }
});

describe('helper threads outliving a worker that alone loaded the addon', () => {
  for (const mode of ['sync', 'waitpid']) {
    it(`${mode === 'sync' ? 'an acquireAsync' : "waitpidAsync's thread fallback"}: the process survives the thread's wake-up`, async () => {
      const outcome = await runNode('worker-only-waits.js', [mode]);
      assert.deepEqual({ ...outcome, stderr: outcome.stderr.slice(0, 500) }, {
        code: 0,
        signal: null,
        stdout: 'survived\n',
        stderr: '',
      });
    });
  }
});
