import assert from 'node:assert/strict';
import { Barrier, BrokenBarrierError, Condition, Event, Mutex, RLock, SharedMemory } from 'forkwise/sync';
import { runNode } from './helpers';
import { Children, codeOf, elapsedMs, runWorker, sleep, sleepSync, spinUntil, until } from './sync-helpers';

function view(size = 256): { v: Int32Array; name: string; done: () => void } {
  const shm = new SharedMemory({ size });
  return {
    v: new Int32Array(shm.buffer),
    name: shm.name,
    done: () => {
      shm.unlink();
      shm.close();
    },
  };
}

const slack = 25;

describe('forkwise/sync waiting primitives', function () {
  this.timeout(30000);
  const children = new Children();
  afterEach(() => children.cleanup());

  describe('Condition', () => {
    it('producer/consumer across two processes and a worker thread: every item consumed once', async () => {
      const cond = new Condition(new Mutex());
      const shm = new SharedMemory({ size: 4096 });
      const v = new Int32Array(shm.buffer);
      const CAP = 8;
      const M = 5000;
      // v[0] head, v[1] tail, v[2] count, v[3] sum, v[4] consumed, v[5] done, v[6] errors, v[16..] ring
      const consumerSrc = `
        for (;;) {
          cond.acquire({ timeout: 10000 });
          try {
            if (!cond.waitFor(() => v[2] > 0 || v[5] === 1, 10000)) { Atomics.add(v, 6, 1); return; }
            if (v[2] === 0) return;
            const item = v[16 + v[0]];
            v[0] = (v[0] + 1) % ${CAP};
            v[2]--;
            v[3] += item;
            v[4]++;
            cond.notifyAll();
          } finally {
            cond.release();
          }
        }`;
      const consume = new Function('cond', 'v', consumerSrc) as (c: Condition, v: Int32Array) => void;
      const producer = children.fork(() => {
        for (let i = 1; i <= M; i++) {
          cond.acquire();
          try {
            if (!cond.waitFor(() => v[2]! < CAP, 10000)) return 2;
            v[16 + v[1]!] = i;
            v[1] = (v[1]! + 1) % CAP;
            v[2]!++;
            cond.notify();
          } finally {
            cond.release();
          }
        }
        cond.acquire();
        v[5] = 1;
        cond.notifyAll();
        cond.release();
        return 0;
      });
      const consumer = children.fork(() => consume(cond, v));
      const worker = runWorker(
        `const cond = sync.Condition.fromHandle(workerData.cond);
         const v = new Int32Array(sync.SharedMemory.attach(workerData.shm).buffer);
         new Function('cond', 'v', workerData.src)(cond, v);`,
        { cond: cond.handle, shm: shm.name, src: consumerSrc },
        30000,
      );
      try {
        const results = await Promise.allSettled([children.ok(producer, 30000), children.ok(consumer, 30000), worker]);
        for (const r of results) if (r.status === 'rejected') throw r.reason;
      } finally {
        children.cleanup();
        await Promise.allSettled([worker]);
      }
      assert.equal(v[6], 0, 'a consumer timed out');
      assert.equal(v[4], M);
      assert.equal(v[3], (M * (M + 1)) / 2);
      assert.equal(v[2], 0);
      shm.unlink();
      shm.close();
    });

    it('notify(n) wakes n waiters in other processes; notifyAll the rest', async () => {
      const cond = new Condition();
      const { v, done } = view();
      // v[0] waiting, v[1] woken
      const waiter = (): number => {
        cond.acquire();
        v[0]!++;
        const ok = cond.wait(10000);
        Atomics.add(v, 1, 1);
        cond.release();
        return ok ? 0 : 2;
      };
      const pids = [children.fork(waiter), children.fork(waiter), children.fork(waiter), children.fork(waiter)];
      await until(() => {
        if (!cond.acquire({ blocking: false })) return false;
        const all = v[0] === 4;
        if (!all) cond.release();
        return all;
      }, 5000, 'four waiters');
      cond.notify();
      cond.release();
      await sleep(150);
      assert.equal(Atomics.load(v, 1), 1, 'notify() wakes exactly one');
      cond.acquire();
      cond.notify(2);
      cond.release();
      await sleep(150);
      assert.equal(Atomics.load(v, 1), 3, 'notify(2) wakes two more');
      cond.acquire();
      cond.notifyAll();
      cond.release();
      await Promise.all(pids.map((p) => children.ok(p)));
      assert.equal(v[1], 4);
      done();
    });

    it('waitAsync keeps the loop running and resolves true when another process notifies', async () => {
      const cond = new Condition(new RLock());
      const { v, done } = view();
      const pid = children.fork(() => {
        spinUntil(() => Atomics.load(v, 0) === 1, 5000, 'parent waiting');
        sleepSync(150);
        cond.acquire();
        v[1] = 7;
        cond.notify();
        cond.release();
      });
      let ticks = 0;
      const timer = setInterval(() => ticks++, 10);
      try {
        await cond.acquireAsync();
        Atomics.store(v, 0, 1);
        const ok = await cond.waitAsync(5000);
        assert.equal(ok, true);
        assert.equal(v[1], 7);
        assert.equal(cond.locked(), true, 'the lock is held again after waitAsync');
        cond.release();
        assert.ok(ticks >= 8, `${ticks} ticks`);
      } finally {
        clearInterval(timer);
      }
      await children.ok(pid);
      done();
    });

    it('waitForAsync resolves with the predicate\'s value once a worker makes it true', async () => {
      const cond = new Condition();
      const { v, name, done } = view();
      const w2 = runWorker(
        `const cond = sync.Condition.fromHandle(workerData.cond);
         const v = new Int32Array(sync.SharedMemory.attach(workerData.shm).buffer);
         for (let i = 0; i < 5; i++) {
           await new Promise((r) => setTimeout(r, 20));
           cond.acquire(); v[0]++; cond.notifyAll(); cond.release();
         }`,
        { cond: cond.handle, shm: name },
      );
      await cond.acquireAsync();
      const got = await cond.waitForAsync(() => (v[0]! >= 5 ? 'five' : false), 5000);
      cond.release();
      assert.equal(got, 'five');
      await w2;
      done();
    });

    it('wait() with an RLock taken twice gives it up entirely, and takes it back twice', async () => {
      const cond = new Condition(new RLock());
      const { v, done } = view();
      cond.acquire();
      cond.acquire();
      const pid = children.fork(() => {
        spinUntil(() => Atomics.load(v, 0) === 1, 5000, 'parent waiting');
        if (!cond.acquire({ timeout: 2000 })) return 2; // free while the parent waits
        cond.release();
        return 0;
      });
      Atomics.store(v, 0, 1);
      assert.equal(cond.wait(400), false);
      await children.ok(pid);
      cond.release();
      assert.equal(cond.locked(), true, 'still held once more');
      cond.release();
      assert.equal(cond.locked(), false);
      assert.throws(() => cond.release(), { code: 'EPERM' });
      done();
    });

    it('wait/waitAsync time out on time, with the lock held again', async () => {
      const cond = new Condition(new Mutex());
      cond.acquire();
      let start = process.hrtime.bigint();
      assert.equal(cond.wait(80), false);
      let took = elapsedMs(start);
      assert.ok(took >= 79 && took < 80 + slack, `wait: ${took}`);
      assert.equal(cond.locked(), true);
      start = process.hrtime.bigint();
      assert.equal(await cond.waitAsync({ timeout: 60 }), false);
      took = elapsedMs(start);
      assert.ok(took >= 59 && took < 60 + slack, `waitAsync: ${took}`);
      start = process.hrtime.bigint();
      assert.equal(cond.waitFor(() => false, 40), false);
      took = elapsedMs(start);
      assert.ok(took >= 39 && took < 40 + slack, `waitFor: ${took}`);
      assert.equal(cond.locked(), true);
      cond.release();
      assert.equal(cond.locked(), false);
    });

    it('waitAsync rejects with AbortError when its signal aborts', async () => {
      const cond = new Condition();
      await cond.acquireAsync();
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 30);
      await assert.rejects(cond.waitAsync({ timeout: 5000, signal: ac.signal }), { name: 'AbortError' });
      cond.release();
    });

    it('wait/notify without holding the lock -> ERR_LOCK_NOT_OWNED', async () => {
      const cond = new Condition();
      assert.throws(() => cond.wait(10), { code: 'ERR_LOCK_NOT_OWNED' });
      assert.throws(() => cond.notify(), { code: 'ERR_LOCK_NOT_OWNED' });
      assert.throws(() => cond.notifyAll(), { code: 'ERR_LOCK_NOT_OWNED' });
      await assert.rejects(async () => cond.waitAsync(10), { code: 'ERR_LOCK_NOT_OWNED' });
      // held by another process is not held by us
      const pid = children.fork(() => {
        cond.acquire();
        sleepSync(300);
        cond.release();
      });
      await until(() => cond.locked(), 5000, 'child holds');
      assert.throws(() => cond.notify(), { code: 'ERR_LOCK_NOT_OWNED' });
      await children.ok(pid);
    });

    it('lock, handle and default lock', () => {
      const m = new Mutex();
      const c = new Condition(m);
      assert.equal(c.lock, m);
      assert.deepEqual(c.handle, { kind: 'Condition', name: c.handle.name, lock: m.handle });
      assert.deepEqual(JSON.parse(JSON.stringify(c.handle)), c.handle);
      const d = new Condition();
      assert.ok(d.lock instanceof Mutex, 'a Mutex, so that async tasks of one thread queue on it');
      d.acquire();
      assert.throws(() => d.acquire(), { code: 'EDEADLK' });
      d.release();
      const r = new Condition(new RLock());
      r.acquire();
      r.acquire(); // an RLock: recursion is fine
      r.release();
      r.release();
      assert.throws(() => new Condition({} as any), TypeError);
      assert.throws(() => Condition.fromHandle(m.handle as any), (e: unknown) => e instanceof TypeError && codeOf(e) === 'ERR_INVALID_ARG_VALUE');
    });
  });

  describe('Event', () => {
    it('set() in the parent wakes waiters blocked in other processes', async () => {
      const ev = new Event();
      const { v, done } = view();
      const waiter = (): number => {
        Atomics.add(v, 0, 1);
        const start = Date.now();
        const ok = ev.wait(10000);
        Atomics.store(v, 2 + (Atomics.add(v, 1, 1)), Date.now() - start);
        return ok ? 0 : 2;
      };
      const pids = [children.fork(waiter), children.fork(waiter)];
      await until(() => Atomics.load(v, 0) === 2, 5000, 'waiters');
      await sleep(100);
      assert.equal(Atomics.load(v, 1), 0, 'nobody woke before set()');
      ev.set();
      await Promise.all(pids.map((p) => children.ok(p, 5000)));
      assert.equal(ev.isSet(), true);
      assert.ok(v[2]! < 5000 && v[3]! < 5000);
      done();
    });

    it('waitAsync in the parent resolves when a forked child sets it, timers running meanwhile', async () => {
      const ev = new Event();
      const pid = children.fork(() => {
        sleepSync(200);
        ev.set();
      });
      let ticks = 0;
      const timer = setInterval(() => ticks++, 10);
      try {
        assert.equal(await ev.waitAsync(5000), true);
        assert.ok(ticks >= 8, `${ticks} ticks`);
      } finally {
        clearInterval(timer);
      }
      await children.ok(pid);
    });

    it('a worker thread waits via its handle', async () => {
      const ev = new Event();
      const w = runWorker<boolean>(`const ev = sync.Event.fromHandle(workerData.h); return ev.wait(5000);`, { h: ev.handle });
      await sleep(50);
      ev.set();
      assert.equal(await w, true);
    });

    it('isSet/clear/wait semantics and timeouts', async () => {
      const ev = new Event();
      assert.equal(ev.isSet(), false);
      let start = process.hrtime.bigint();
      assert.equal(ev.wait(70), false);
      let took = elapsedMs(start);
      assert.ok(took >= 69 && took < 70 + slack, `wait: ${took}`);
      start = process.hrtime.bigint();
      assert.equal(await ev.waitAsync({ timeout: 50 }), false);
      took = elapsedMs(start);
      assert.ok(took >= 49 && took < 50 + slack, `waitAsync: ${took}`);
      ev.set();
      ev.set();
      assert.equal(ev.isSet(), true);
      assert.equal(ev.wait(), true);
      assert.equal(ev.wait(0), true);
      assert.equal(await ev.waitAsync(), true);
      ev.clear();
      assert.equal(ev.isSet(), false);
      assert.equal(ev.wait(0), false);
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 20);
      await assert.rejects(ev.waitAsync({ signal: ac.signal }), { name: 'AbortError' });
      assert.equal(Event.fromHandle(ev.handle).isSet(), false);
      ev.set();
      assert.equal(Event.fromHandle(JSON.parse(JSON.stringify(ev.handle))).isSet(), true);
    });

    it('bad timeouts -> argument errors', async () => {
      const ev = new Event();
      for (const t of ['1', -1, NaN, {}]) {
        assert.throws(() => ev.wait(t as any), (e: unknown) => (e instanceof TypeError || e instanceof RangeError) && /^ERR_/.test(codeOf(e) ?? ''));
      }
      await assert.rejects(async () => ev.waitAsync('x' as any), (e: unknown) => e instanceof TypeError || e instanceof RangeError);
    });
  });

  describe('Barrier', () => {
    it('three processes pass 50 rounds together; arrival indices are 0..2 each round', async () => {
      const b = new Barrier(3);
      const ROUNDS = 50;
      const { v, done } = view(4096);
      // v[p] = round reached by participant p; v[8 + round*3 + p] = index returned
      const run = (p: number): number => {
        for (let r = 1; r <= ROUNDS; r++) {
          Atomics.store(v, p, r);
          const idx = b.wait(10000);
          for (let q = 0; q < 3; q++) if (Atomics.load(v, q) < r) return 10 + q; // passed before q arrived
          v[8 + r * 3 + p] = idx;
        }
        return 0;
      };
      const pids = [children.fork(() => run(1)), children.fork(() => run(2))];
      let mine = -1;
      try {
        mine = run(0);
      } finally {
        if (mine !== 0) children.cleanup();
      }
      assert.equal(mine, 0);
      await Promise.all(pids.map((p) => children.ok(p)));
      for (let r = 1; r <= ROUNDS; r++) {
        assert.deepEqual([v[8 + r * 3]!, v[9 + r * 3]!, v[10 + r * 3]!].sort(), [0, 1, 2], `round ${r}`);
      }
      assert.equal(b.nWaiting, 0);
      assert.equal(b.broken, false);
      done();
    });

    it('a process, a worker and waitAsync in the main thread meet', async () => {
      const b = new Barrier(3);
      const pid = children.fork(() => {
        b.wait(10000);
      });
      const w = runWorker<number>(`return sync.Barrier.fromHandle(workerData.h).wait(10000);`, { h: b.handle });
      let ticks = 0;
      const timer = setInterval(() => ticks++, 5);
      let idx: number;
      try {
        await sleep(100);
        idx = await b.waitAsync(10000);
      } finally {
        clearInterval(timer);
      }
      const widx = await w;
      await children.ok(pid);
      assert.ok(idx >= 0 && idx <= 2);
      assert.ok(widx >= 0 && widx <= 2 && widx !== idx);
      assert.ok(ticks >= 10);
    });

    it('a timeout in wait breaks it (BrokenBarrierError), other waiters too; reset() repairs it', async () => {
      const b = new Barrier(3);
      const pid = children.fork(() => {
        try {
          b.wait(10000);
          return 2;
        } catch (e) {
          return e instanceof BrokenBarrierError && codeOf(e) === 'ERR_BARRIER_BROKEN' ? 0 : 3;
        }
      });
      await until(() => b.nWaiting === 1, 5000, 'child waiting');
      const start = process.hrtime.bigint();
      assert.throws(() => b.wait(60), (e: unknown) => e instanceof BrokenBarrierError && codeOf(e) === 'ERR_BARRIER_BROKEN');
      const took = elapsedMs(start);
      assert.ok(took >= 59 && took < 60 + slack, `took ${took}`);
      assert.equal(b.broken, true);
      await children.ok(pid);
      assert.throws(() => b.wait(1000), BrokenBarrierError);
      await assert.rejects(b.waitAsync(1000), BrokenBarrierError);
      b.reset();
      assert.equal(b.broken, false);
      assert.equal(b.nWaiting, 0);
      const b2 = new Barrier(1);
      assert.equal(b2.wait(), 0);
    });

    it('the constructor timeout is the default for wait', () => {
      const b = new Barrier(2, { timeout: 40 });
      const start = process.hrtime.bigint();
      assert.throws(() => b.wait(), BrokenBarrierError);
      const took = elapsedMs(start);
      assert.ok(took >= 39 && took < 40 + slack, `took ${took}`);
    });

    it('abort() wakes a waiter in another process with BrokenBarrierError', async () => {
      const b = new Barrier(2);
      const pid = children.fork(() => {
        try {
          b.wait(10000);
          return 2;
        } catch (e) {
          return e instanceof BrokenBarrierError ? 0 : 3;
        }
      });
      await until(() => b.nWaiting === 1, 5000, 'child waiting');
      assert.equal(b.parties, 2);
      b.abort();
      assert.equal(b.broken, true);
      await children.ok(pid, 3000);
    });

    it('waitAsync rejects with AbortError on abort of its signal', async () => {
      const b = new Barrier(2);
      const ac = new AbortController();
      setTimeout(() => ac.abort(), 20);
      await assert.rejects(b.waitAsync({ signal: ac.signal, timeout: 5000 }), { name: 'AbortError' });
    });

    it('bad parties -> argument errors', () => {
      for (const p of [0, -1, 1.5, '3', NaN, 2 ** 53]) {
        assert.throws(() => new Barrier(p as any), (e: unknown) => (e instanceof TypeError || e instanceof RangeError) && /^ERR_/.test(codeOf(e) ?? ''), String(p));
      }
      assert.ok(new BrokenBarrierError() instanceof Error);
    });
  });

  it('stale handles (their creator exited) -> ENOENT for Event, Condition and Barrier', async () => {
    const out = await runNode('sync-handles.js', [], { timeoutMs: 10000 });
    assert.equal(out.code, 0, out.stderr);
    const h = JSON.parse(out.stdout);
    assert.throws(() => Event.fromHandle(h.Event), { code: 'ENOENT' });
    assert.throws(() => Barrier.fromHandle(h.Barrier), { code: 'ENOENT' });
    assert.throws(() => Condition.fromHandle(h.Condition), { code: 'ENOENT' });
  });
});
