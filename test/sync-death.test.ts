import assert from 'node:assert/strict';
import { Barrier, BrokenBarrierError, Condition, Mutex, RLock, SharedMemory } from 'forkwise/sync';
import { orphanedSegments, runNode } from './helpers';
import { Children, codeOf, elapsedMs, runWorker, sleep, sleepSync, until } from './sync-helpers';

type Robust = Mutex | RLock;

describe('forkwise/sync owner death (kill -9)', function () {
  this.timeout(30000);
  const children = new Children();
  const segments: SharedMemory[] = [];
  afterEach(() => children.cleanup());
  after(async function () {
    this.timeout(5000);
    await sleep(1100); // apart from any rate limit on sweeping
    for (const s of segments) {
      s.unlink();
      s.close();
    }
    const probe = new SharedMemory({ size: 8 }); // sweeps what the killed children created
    probe.unlink();
    probe.close();
    assert.deepEqual(orphanedSegments(), [], 'segments of dead creators left behind');
  });

  function flags(): Int32Array {
    const shm = new SharedMemory({ size: 64 });
    segments.push(shm);
    return new Int32Array(shm.buffer);
  }

  /** Forks a child that takes `lock` `times` times, says so in v[0], and sleeps until killed. */
  async function ownerDies(lock: Robust, times = 1, killNow = true): Promise<{ pid: number; v: Int32Array }> {
    const v = flags();
    const pid = children.fork(() => {
      for (let i = 0; i < times; i++) if (!lock.acquire({ timeout: 5000 })) return 3;
      Atomics.store(v, 0, 1);
      sleepSync(30000);
      return 4;
    });
    await until(() => Atomics.load(v, 0) === 1, 5000, 'the child to take the lock');
    if (killNow) {
      const r = children.killAndReap(pid);
      assert.equal(r?.kind, 'signaled');
    }
    return { pid, v };
  }

  /** A forked child: acquire within 1 s; exit code 0 if it got the lock, not recovered, and released. */
  async function usableFromChild(lock: Robust): Promise<void> {
    const pid = children.fork(() => {
      if (!lock.acquire({ timeout: 1000 })) return 2;
      if (lock.recovered) return 3;
      lock.release();
      return 0;
    });
    await children.ok(pid);
  }

  for (const [kind, make] of [['Mutex', () => new Mutex()], ['RLock', () => new RLock()]] as Array<[string, () => Robust]>) {
    describe(kind, () => {
      it('the next acquire() succeeds within a second with recovered === true; after markConsistent() it works normally', async () => {
        const lock = make();
        await ownerDies(lock, kind === 'RLock' ? 2 : 1);
        assert.equal(lock.recovered, false);
        const start = process.hrtime.bigint();
        assert.equal(lock.acquire({ timeout: 2000 }), true);
        assert.ok(elapsedMs(start) < 1000, `took ${elapsedMs(start)} ms`);
        assert.equal(lock.recovered, true);
        lock.markConsistent();
        lock.release();
        // the dead owner's recursion count (RLock) does not linger: free after one release
        await usableFromChild(lock);
        assert.equal(lock.acquire({ timeout: 1000 }), true);
        assert.equal(lock.recovered, false);
        lock.release();
        assert.equal(lock.locked(), false);
      });

      it('locked() stays true after the holder died (killed, or _exit holding it) until the next acquire recovers it', async () => {
        const lock = make();
        await ownerDies(lock, kind === 'RLock' ? 2 : 1); // reaped: killAndReap waited for it
        assert.equal(lock.locked(), true, 'a dead holder leaves the lock taken, as in CPython');
        assert.equal(lock.locked(), true, 'reading it does not take it over');
        assert.equal(lock.acquire({ timeout: 2000 }), true);
        assert.equal(lock.recovered, true);
        assert.equal(lock.locked(), true);
        lock.markConsistent();
        lock.release();
        assert.equal(lock.locked(), false);

        const pid = children.fork(() => {
          lock.acquire();
          return 0; // _exit(0) still holding it
        });
        assert.deepEqual(await children.wait(pid).then((r) => [r.kind, r.kind === 'exited' && r.exitCode]), ['exited', 0]);
        assert.equal(lock.locked(), true);
        assert.equal(lock.acquire({ blocking: false }), true);
        assert.equal(lock.recovered, true);
        lock.markConsistent();
        lock.release();
        assert.equal(lock.locked(), false);
      });

      it('locked() stays true after a worker thread ended holding it, seen from another process too', async () => {
        const lock = make();
        await runWorker(`sync.${kind}.fromHandle(workerData.h).acquire(); return 0;`, { h: lock.handle });
        assert.equal(lock.locked(), true);
        const pid = children.fork(() => (lock.locked() ? 0 : 2));
        await children.ok(pid);
        assert.equal(await lock.acquireAsync({ timeout: 2000 }), true);
        assert.equal(lock.recovered, true);
        lock.markConsistent();
        lock.release();
        assert.equal(lock.locked(), false);
      });

      it('the next acquireAsync() resolves true within a second with recovered === true', async () => {
        const lock = make();
        await ownerDies(lock);
        const start = process.hrtime.bigint();
        assert.equal(await lock.acquireAsync({ timeout: 2000 }), true);
        assert.ok(elapsedMs(start) < 1000, `took ${elapsedMs(start)} ms`);
        assert.equal(lock.recovered, true);
        lock.markConsistent();
        lock.release();
        await usableFromChild(lock);
      });

      it('an acquireAsync already pending when the owner is killed resolves within a second, recovered', async () => {
        const lock = make();
        const { pid } = await ownerDies(lock, 1, false);
        const pending = lock.acquireAsync({ timeout: 10000 });
        await sleep(100);
        children.killAndReap(pid);
        const start = process.hrtime.bigint();
        assert.equal(await pending, true);
        assert.ok(elapsedMs(start) < 1000, `took ${elapsedMs(start)} ms after the kill`);
        assert.equal(lock.recovered, true);
        lock.markConsistent();
        lock.release();
      });

      it('a worker blocked in acquire() when the owner is killed gets it, recovered', async () => {
        const lock = make();
        const { pid } = await ownerDies(lock, 1, false);
        const w = runWorker<{ got: boolean; recovered: boolean; ms: number }>(
          `const lock = sync.${kind}.fromHandle(workerData.h);
           const t0 = Date.now();
           const got = lock.acquire({ timeout: 10000 });
           const r = { got, recovered: lock.recovered, ms: Date.now() - t0 };
           if (got) { lock.markConsistent(); lock.release(); }
           return r;`,
          { h: lock.handle },
        );
        await sleep(200);
        children.killAndReap(pid);
        const r = await w;
        assert.equal(r.got, true);
        assert.equal(r.recovered, true);
        assert.ok(r.ms < 200 + 1000, `worker waited ${r.ms} ms`);
        await usableFromChild(lock);
      });

      it('released without markConsistent(): later acquires (sync, async, other process, worker) throw ERR_LOCK_NOT_RECOVERABLE', async () => {
        const lock = make();
        await ownerDies(lock);
        assert.equal(lock.acquire({ timeout: 2000 }), true);
        assert.equal(lock.recovered, true);
        lock.release();
        assert.throws(() => lock.acquire({ timeout: 100 }), { code: 'ERR_LOCK_NOT_RECOVERABLE' });
        assert.throws(() => lock.acquire({ blocking: false }), { code: 'ERR_LOCK_NOT_RECOVERABLE' });
        await assert.rejects(async () => lock.acquireAsync({ timeout: 100 }), { code: 'ERR_LOCK_NOT_RECOVERABLE' });
        const pid = children.fork(() => {
          try {
            lock.acquire({ timeout: 100 });
            return 2;
          } catch (e) {
            return codeOf(e) === 'ERR_LOCK_NOT_RECOVERABLE' ? 0 : 3;
          }
        });
        await children.ok(pid);
        const code = await runWorker<string>(
          `try { sync.${kind}.fromHandle(workerData.h).acquire({ timeout: 100 }); return 'acquired'; } catch (e) { return e.code; }`,
          { h: lock.handle },
        );
        assert.equal(code, 'ERR_LOCK_NOT_RECOVERABLE');
      });
    });
  }

  it('markConsistent() on a healthy lock does not break it (it may throw, or do nothing)', async () => {
    const m = new Mutex();
    m.acquire();
    try {
      m.markConsistent();
    } catch (e) {
      assert.ok(e instanceof Error && typeof codeOf(e) === 'string', `an unclear error: ${e}`);
    }
    m.release();
    await usableFromChild(m);
    assert.equal(m.acquire({ blocking: false }), true);
    m.release();
  });

  it('recovery also works when the dead owner held several locks, one only through a collected object, and had forked', async () => {
    const out = await runNode('sync-robust-list.js', [], { nodeArgs: ['--single-threaded', '--expose-gc'], timeoutMs: 15000 });
    assert.equal(out.code, 0, out.stderr);
    const r = JSON.parse(out.stdout);
    for (const key of ['a', 'b', 'c']) {
      assert.equal(r[key].got, true, `lock ${key}: ${JSON.stringify(r[key])}`);
      assert.equal(r[key].recovered, true, `lock ${key}: ${JSON.stringify(r[key])}`);
    }
  });

  describe('Barrier', () => {
    it('a party that dies while waiting: abort() breaks it, the other waiter and the aborter see BrokenBarrierError; reset() makes it usable', async () => {
      const b = new Barrier(3);
      const v = flags();
      const survivor = children.fork(() => {
        try {
          b.wait(10000);
          return 2;
        } catch (e) {
          return e instanceof BrokenBarrierError && codeOf(e) === 'ERR_BARRIER_BROKEN' ? 0 : 3;
        }
      });
      const doomed = children.fork(() => {
        Atomics.store(v, 0, 1);
        b.wait(30000);
        return 4;
      });
      await until(() => b.nWaiting === 2, 5000, 'two waiting');
      children.killAndReap(doomed);
      b.abort();
      assert.equal(b.broken, true);
      await children.ok(survivor, 3000);
      assert.throws(() => b.wait(1000), (e: unknown) => e instanceof BrokenBarrierError && codeOf(e) === 'ERR_BARRIER_BROKEN');
      b.reset();
      assert.equal(b.broken, false);
      assert.equal(b.nWaiting, 0, 'the dead party is not counted after reset()');
      // a fresh round of three
      const pids = [0, 1].map(() => children.fork(() => (b.wait(10000) >= 0 ? 0 : 1)));
      assert.ok(b.wait(10000) >= 0);
      await Promise.all(pids.map((p) => children.ok(p)));
    });

    it('a party killed before it arrives: a waiter with a timeout gets BrokenBarrierError instead of hanging', async () => {
      const b = new Barrier(2);
      const pid = children.fork(() => {
        sleepSync(30000);
      });
      children.killAndReap(pid);
      const start = process.hrtime.bigint();
      await assert.rejects(b.waitAsync(200), BrokenBarrierError);
      assert.ok(elapsedMs(start) < 1000);
      assert.equal(b.broken, true);
    });
  });

  describe('Condition', () => {
    it('a notified waiter whose lock owner then died wakes with the lock recovered', async () => {
      const cond = new Condition(new Mutex());
      const v = flags();
      // v[0] waiter waiting, v[1] owner holds after notify, v[2] waiter's wait result, v[3] recovered
      const waiter = children.fork(() => {
        cond.acquire();
        Atomics.store(v, 0, 1);
        const ok = cond.wait(10000);
        Atomics.store(v, 2, ok ? 1 : 2);
        Atomics.store(v, 3, (cond.lock as Mutex).recovered ? 1 : 2);
        if (cond.lock.recovered) cond.lock.markConsistent();
        cond.release();
        return 0;
      });
      await until(() => Atomics.load(v, 0) === 1, 5000, 'waiter');
      const owner = children.fork(() => {
        cond.acquire({ timeout: 5000 });
        cond.notify();
        Atomics.store(v, 1, 1);
        sleepSync(30000);
        return 4;
      });
      await until(() => Atomics.load(v, 1) === 1, 5000, 'owner notified');
      await sleep(50);
      children.killAndReap(owner);
      const start = process.hrtime.bigint();
      await children.ok(waiter, 5000);
      assert.ok(elapsedMs(start) < 1000, `the waiter took ${elapsedMs(start)} ms after the kill`);
      assert.equal(v[2], 1, 'wait() returned true (notified)');
      assert.equal(v[3], 1, 'cond.lock.recovered === true');
      assert.equal(cond.acquire({ timeout: 1000 }), true);
      assert.equal(cond.lock.recovered, false);
      cond.release();
    });

    it('a waiter that times out while the owner is dead returns with the lock recovered', async () => {
      const cond = new Condition(new RLock());
      const v = flags();
      const waiter = children.fork(() => {
        cond.acquire();
        Atomics.store(v, 0, 1);
        const ok = cond.wait(400);
        Atomics.store(v, 2, ok ? 1 : 2);
        Atomics.store(v, 3, cond.lock.recovered ? 1 : 2);
        if (cond.lock.recovered) cond.lock.markConsistent();
        cond.release();
        return 0;
      });
      await until(() => Atomics.load(v, 0) === 1, 5000, 'waiter');
      await sleep(20);
      const owner = children.fork(() => {
        cond.acquire({ timeout: 5000 });
        Atomics.store(v, 1, 1);
        sleepSync(30000);
        return 4;
      });
      await until(() => Atomics.load(v, 1) === 1, 5000, 'owner holds');
      children.killAndReap(owner);
      await children.ok(waiter, 3000);
      assert.equal(v[2], 2, 'wait() returned false (timeout)');
      assert.equal(v[3], 1, 'cond.lock.recovered === true');
    });

    it('waitAsync in the parent, owner killed after notify: resolves with the lock recovered', async () => {
      const cond = new Condition(new Mutex());
      const v = flags();
      await cond.acquireAsync();
      const owner = children.fork(() => {
        cond.acquire({ timeout: 5000 });
        cond.notify();
        Atomics.store(v, 1, 1);
        sleepSync(30000);
        return 4;
      });
      const waiting = cond.waitAsync(10000);
      await until(() => Atomics.load(v, 1) === 1, 5000, 'owner notified');
      children.killAndReap(owner);
      const start = process.hrtime.bigint();
      assert.equal(await waiting, true);
      assert.ok(elapsedMs(start) < 1000);
      assert.equal(cond.lock.recovered, true);
      cond.lock.markConsistent();
      cond.release();
    });
  });
});
