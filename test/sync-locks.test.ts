import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { BoundedSemaphore, Event, Mutex, RLock, RWLock, Semaphore, SharedMemory, Value } from 'forkwise/sync';
import { runNode } from './helpers';
import { Children, codeOf, elapsedMs, runWorker, sleep, sleepSync, spinUntil, testName, until } from './sync-helpers';

const N = 100_000;

// Shared control words, in an Int32Array over a SharedMemory:
const COUNTER = 0; // the plain (non-atomic) counter incremented under the lock
const INSIDE = 1; // how many participants are inside the critical section now
const MAX = 2; // the most ever seen inside at once
const GO = 3; // start gate
const READY = 4; // participants waiting at the gate
const TOTAL = 5; // atomic count of critical sections entered

/** The critical-section body, as text: run the same way in forked children and workers. */
const enterSrc = `
  const n = Atomics.add(v, ${INSIDE}, 1) + 1;
  for (let m = Atomics.load(v, ${MAX}); n > m; m = Atomics.load(v, ${MAX})) {
    if (Atomics.compareExchange(v, ${MAX}, m, n) === m) break;
  }`;
const leaveSrc = `Atomics.sub(v, ${INSIDE}, 1); Atomics.add(v, ${TOTAL}, 1);`;
const gateSrc = `
  Atomics.add(v, ${READY}, 1);
  const gateEnd = Date.now() + 10000;
  while (Atomics.load(v, ${GO}) === 0) {
    if (Date.now() > gateEnd) throw new Error('gate timeout');
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
  }`;

/** Loop bodies per primitive: `lock` is the primitive, `v` the control view, `c` an optional counter. */
const loops: Record<string, string> = {
  Mutex: `for (let i = 0; i < n; i++) {
      lock.acquire(); ${enterSrc} v[${COUNTER}] = v[${COUNTER}] + 1; ${leaveSrc} lock.release(); }`,
  RLock: `for (let i = 0; i < n; i++) {
      lock.acquire(); lock.acquire(); ${enterSrc} c.value = c.value + 1n; ${leaveSrc} lock.release(); lock.release(); }`,
  Semaphore: `for (let i = 0; i < n; i++) {
      lock.acquire(); ${enterSrc} ${leaveSrc} lock.release(); }`,
};

function loopFn(kind: string): (lock: any, v: Int32Array, c: any, n: number) => void {
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  return new Function('lock', 'v', 'c', 'n', `${gateSrc}\n${loops[kind]}`) as any;
}

async function hammer(
  children: Children,
  kind: 'Mutex' | 'RLock' | 'Semaphore',
  lock: Mutex | RLock | Semaphore,
  counter?: Value,
): Promise<Int32Array> {
  const shm = new SharedMemory({ size: 64 });
  const v = new Int32Array(shm.buffer);
  const fn = loopFn(kind);
  const pids = [0, 1].map(() => children.fork(() => fn(lock, v, counter, N)));
  const workers = [0, 1].map(() =>
    runWorker(
      `const lock = sync.${kind}.fromHandle(workerData.lock);
       const c = workerData.counter ? sync.Value.fromHandle(workerData.counter) : undefined;
       const v = new Int32Array(sync.SharedMemory.attach(workerData.shm).buffer);
       const fn = new Function('lock', 'v', 'c', 'n', workerData.src);
       fn(lock, v, c, workerData.n);
       return 'done';`,
      { lock: lock.handle, counter: counter?.handle, shm: shm.name, src: `${gateSrc}\n${loops[kind]}`, n: N },
      60000,
    ),
  );
  try {
    await until(() => Atomics.load(v, READY) === 4, 10000, 'all participants at the gate');
    Atomics.store(v, GO, 1);
    const results = await Promise.allSettled([...workers, ...pids.map((pid) => children.ok(pid, 60000))]);
    for (const r of results) if (r.status === 'rejected') throw r.reason;
  } finally {
    children.cleanup();
    await Promise.allSettled(workers);
  }
  const copy = Int32Array.from(v);
  shm.unlink();
  shm.close();
  return copy;
}

/** Forks a child that takes the lock with `take`, holds it `ms` ms, marks v[1] and gives it back. */
function holdInChild(children: Children, take: () => unknown, give: () => void, ms: number): { pid: number; v: Int32Array; shm: SharedMemory } {
  const shm = new SharedMemory({ size: 16 });
  const v = new Int32Array(shm.buffer);
  const pid = children.fork(() => {
    if (take() === false) return 3;
    Atomics.store(v, 0, 1);
    sleepSync(ms);
    Atomics.store(v, 1, 1);
    give();
    return 0;
  });
  return { pid, v, shm };
}

async function heldFor(children: Children, take: () => unknown, give: () => void, ms: number) {
  const h = holdInChild(children, take, give, ms);
  await until(() => Atomics.load(h.v, 0) === 1, 5000, 'the child to take the lock');
  return h;
}

function assertArgError(fn: () => unknown): void {
  assert.throws(fn, (e: unknown) => (e instanceof TypeError || e instanceof RangeError) && /^ERR_/.test(codeOf(e) ?? ''));
}

async function assertArgErrorAsync(fn: () => Promise<unknown>): Promise<void> {
  let error: any;
  try {
    await fn();
  } catch (e) {
    error = e;
  }
  assert.ok(error instanceof TypeError || error instanceof RangeError, `expected a TypeError/RangeError, got ${error}`);
  assert.match(codeOf(error) ?? '', /^ERR_/);
}

describe('forkwise/sync locks', function () {
  this.timeout(60000);
  const children = new Children();
  afterEach(() => children.cleanup());

  describe('real concurrency: 2 forked processes + 2 worker threads x 100,000', () => {
    it('Mutex: the counter is exact and never two inside', async () => {
      const m = new Mutex();
      const v = await hammer(children, 'Mutex', m);
      assert.equal(v[COUNTER], 4 * N);
      assert.equal(v[TOTAL], 4 * N);
      assert.equal(v[MAX], 1);
      assert.equal(m.locked(), false);
    });

    it('RLock taken twice: the Value (int64) counter is exact', async () => {
      const r = new RLock();
      const c = new Value('int64', 0n, { lock: false });
      const v = await hammer(children, 'RLock', r, c);
      assert.equal(c.value, BigInt(4 * N));
      assert.equal(v[MAX], 1);
      assert.equal(r.locked(), false);
    });

    it('Semaphore(2): the gauge reaches 2 and never exceeds it', async () => {
      const s = new Semaphore(2);
      const v = await hammer(children, 'Semaphore', s);
      assert.equal(v[TOTAL], 4 * N);
      assert.equal(v[MAX], 2);
      assert.equal(s.getValue(), 2);
    });

    it('RWLock: readers hold it together (two processes meet inside)', async () => {
      const rw = new RWLock();
      const shm = new SharedMemory({ size: 16 });
      const v = new Int32Array(shm.buffer);
      const reader = (): number => {
        if (!rw.acquireRead({ timeout: 5000 })) return 3;
        Atomics.add(v, 0, 1);
        try {
          spinUntil(() => Atomics.load(v, 0) >= 2, 5000, 'the other reader inside');
        } finally {
          rw.releaseRead();
        }
        return 0;
      };
      const a = children.fork(reader);
      const b = children.fork(reader);
      await Promise.all([children.ok(a), children.ok(b)]);
      shm.unlink();
      shm.close();
    });

    it('RWLock: writers alone, readers in parallel (processes + workers)', async () => {
      const rw = new RWLock();
      const shm = new SharedMemory({ size: 64 });
      const v = new Int32Array(shm.buffer);
      // v[0] counter, v[1] readers inside, v[2] writers inside, v[3] violations, v[4] max readers, v[5] go, v[6] ready
      const src = `
        Atomics.add(v, 6, 1);
        const end = Date.now() + 10000;
        while (Atomics.load(v, 5) === 0) { if (Date.now() > end) throw new Error('gate'); }
        for (let i = 0; i < n; i++) {
          if (writer) {
            rw.acquireWrite();
            if (Atomics.add(v, 2, 1) !== 0 || Atomics.load(v, 1) !== 0) Atomics.add(v, 3, 1);
            v[0] = v[0] + 1;
            Atomics.sub(v, 2, 1);
            rw.releaseWrite();
          } else {
            rw.acquireRead();
            const r = Atomics.add(v, 1, 1) + 1;
            if (Atomics.load(v, 2) !== 0) Atomics.add(v, 3, 1);
            for (let m = Atomics.load(v, 4); r > m; m = Atomics.load(v, 4)) if (Atomics.compareExchange(v, 4, m, r) === m) break;
            for (let k = 0; k < 50; k++) Atomics.load(v, 0);
            Atomics.sub(v, 1, 1);
            rw.releaseRead();
          }
        }`;
      const run = new Function('rw', 'v', 'writer', 'n', src) as (rw: RWLock, v: Int32Array, writer: boolean, n: number) => void;
      const n = 20000;
      const pids = [children.fork(() => run(rw, v, true, n)), children.fork(() => run(rw, v, false, n))];
      const workers = [true, false].map((writer) =>
        runWorker(
          `const rw = sync.RWLock.fromHandle(workerData.rw);
           const v = new Int32Array(sync.SharedMemory.attach(workerData.shm).buffer);
           new Function('rw', 'v', 'writer', 'n', workerData.src)(rw, v, workerData.writer, workerData.n);`,
          { rw: rw.handle, shm: shm.name, src, writer, n },
          60000,
        ),
      );
      try {
        await until(() => Atomics.load(v, 6) === 4, 10000, 'participants');
        Atomics.store(v, 5, 1);
        const results = await Promise.allSettled([...workers, ...pids.map((p) => children.ok(p, 60000))]);
        for (const r of results) if (r.status === 'rejected') throw r.reason;
      } finally {
        children.cleanup();
        await Promise.allSettled(workers);
      }
      assert.equal(v[3], 0, 'a writer was not alone');
      assert.equal(v[0], 2 * n);
      shm.unlink();
      shm.close();
    });
  });

  describe('async acquisition keeps the event loop running', () => {
    const cases: Array<[string, () => { take: () => unknown; give: () => void; takeAsync: () => Promise<boolean>; giveHere: () => void }]> = [
      ['Mutex', () => { const l = new Mutex(); return { take: () => l.acquire(), give: () => l.release(), takeAsync: () => l.acquireAsync(), giveHere: () => l.release() }; }],
      ['RLock', () => { const l = new RLock(); return { take: () => l.acquire(), give: () => l.release(), takeAsync: () => l.acquireAsync(), giveHere: () => l.release() }; }],
      ['Semaphore', () => { const l = new Semaphore(1); return { take: () => l.acquire(), give: () => l.release(), takeAsync: () => l.acquireAsync(), giveHere: () => l.release() }; }],
      ['BoundedSemaphore', () => { const l = new BoundedSemaphore(1); return { take: () => l.acquire(), give: () => l.release(), takeAsync: () => l.acquireAsync(), giveHere: () => l.release() }; }],
      ['RWLock write vs read', () => { const l = new RWLock(); return { take: () => l.acquireRead(), give: () => l.releaseRead(), takeAsync: () => l.acquireWriteAsync(), giveHere: () => l.releaseWrite() }; }],
      ['RWLock read vs write', () => { const l = new RWLock(); return { take: () => l.acquireWrite(), give: () => l.releaseWrite(), takeAsync: () => l.acquireReadAsync(), giveHere: () => l.releaseRead() }; }],
    ];
    for (const [label, make] of cases) {
      it(`${label}: timers run while another process holds it; resolves after its release`, async () => {
        const l = make();
        const h = await heldFor(children, l.take, l.give, 300);
        let ticks = 0;
        const timer = setInterval(() => ticks++, 10);
        const start = process.hrtime.bigint();
        try {
          const got = await l.takeAsync();
          assert.equal(got, true);
          assert.equal(Atomics.load(h.v, 1), 1, 'resolved before the holder released');
          assert.ok(ticks >= 8, `only ${ticks} timer ticks in ${elapsedMs(start)} ms`);
          l.giveHere();
        } finally {
          clearInterval(timer);
        }
        await children.ok(h.pid);
        h.shm.unlink();
        h.shm.close();
      });
    }

    it('a worker thread holding the Mutex: acquireAsync in the main thread waits without blocking', async () => {
      const m = new Mutex();
      const shm = new SharedMemory({ size: 8 });
      const v = new Int32Array(shm.buffer);
      const worker = runWorker(
        `const m = sync.Mutex.fromHandle(workerData.m);
         const v = new Int32Array(sync.SharedMemory.attach(workerData.shm).buffer);
         m.acquire();
         Atomics.store(v, 0, 1);
         await new Promise((r) => setTimeout(r, 200));
         Atomics.store(v, 1, 1);
         m.release();`,
        { m: m.handle, shm: shm.name },
      );
      await until(() => Atomics.load(v, 0) === 1, 5000, 'worker holds');
      let ticks = 0;
      const timer = setInterval(() => ticks++, 10);
      try {
        assert.equal(m.locked(), true);
        assert.equal(await m.acquireAsync({ timeout: 5000 }), true);
        assert.equal(v[1], 1);
        assert.ok(ticks >= 5, `${ticks} ticks`);
        m.release();
      } finally {
        clearInterval(timer);
        await worker;
      }
      shm.unlink();
      shm.close();
    });

    it('acquireAsync in a worker thread waits for the main thread\'s release', async () => {
      const m = new Mutex();
      m.acquire();
      const started = new Event();
      const w = runWorker<{ got: boolean; ms: number; ticks: number }>(
        `const m = sync.Mutex.fromHandle(workerData.h);
         let ticks = 0;
         const timer = setInterval(() => ticks++, 10);
         const t0 = Date.now();
         const pending = m.acquireAsync({ timeout: 5000 });
         sync.Event.fromHandle(workerData.started).set();
         const got = await pending;
         clearInterval(timer);
         if (got) m.release();
         return { got, ms: Date.now() - t0, ticks };`,
        { h: m.handle, started: started.handle },
      );
      // the release is measured from the worker's acquire, however long the worker takes to start
      assert.equal(await started.waitAsync(10000), true);
      await sleep(200);
      m.release();
      const r = await w;
      assert.equal(r.got, true);
      assert.ok(r.ms >= 100, `resolved after ${r.ms} ms, before the release`);
      assert.ok(r.ticks >= 5, `${r.ticks} ticks in the worker`);
    });

    it('acquireAsync with a signal rejects with AbortError when aborted, and the lock stays usable', async () => {
      const m = new Mutex();
      const h = await heldFor(children, () => m.acquire(), () => m.release(), 400);
      const ac = new AbortController();
      const p = m.acquireAsync({ signal: ac.signal });
      setTimeout(() => ac.abort(), 50);
      const start = process.hrtime.bigint();
      await assert.rejects(p, { name: 'AbortError' });
      assert.ok(elapsedMs(start) < 300, 'the abort must not wait for the holder');
      await children.ok(h.pid);
      assert.equal(m.acquire({ timeout: 1000 }), true);
      m.release();
      await assert.rejects(m.acquireAsync({ signal: AbortSignal.abort() }), { name: 'AbortError' });
      assert.equal(m.locked(), false, 'an already-aborted acquireAsync must not take the lock');
      h.shm.unlink();
      h.shm.close();
    });

    it('withLock runs fn under the lock (awaiting async fn), returns its result and releases on throw', async () => {
      for (const lock of [new Mutex(), new RLock(), new Semaphore(1)]) {
        const result = await lock.withLock(async () => {
          assert.equal(lock.locked(), true);
          await sleep(5);
          assert.equal(lock.locked(), true);
          return 42;
        });
        assert.equal(result, 42);
        assert.equal(lock.locked(), false);
        await assert.rejects(lock.withLock(() => { throw new Error('boom'); }), /boom/);
        assert.equal(lock.locked(), false);
      }
    });

    it('[Symbol.dispose] releases', () => {
      const dispose = (Symbol as any).dispose as symbol;
      assert.equal(typeof dispose, 'symbol');
      const m = new Mutex();
      m.acquire();
      (m as any)[dispose]();
      assert.equal(m.locked(), false);
      const s = new Semaphore(1);
      s.acquire();
      (s as any)[dispose]();
      assert.equal(s.getValue(), 1);
    });
  });

  describe('timeouts (monotonic, to within a few ms)', () => {
    const slack = 25;
    it('Mutex.acquire({ timeout }) returns false after the timeout while another process holds it', async () => {
      const m = new Mutex();
      const h = await heldFor(children, () => m.acquire(), () => m.release(), 1500);
      for (const t of [50, 200]) {
        const start = process.hrtime.bigint();
        assert.equal(m.acquire({ timeout: t }), false);
        const took = elapsedMs(start);
        assert.ok(took >= t - 1 && took < t + slack, `timeout ${t}: took ${took} ms`);
      }
      const start = process.hrtime.bigint();
      assert.equal(m.acquire({ blocking: false }), false);
      assert.ok(elapsedMs(start) < 5);
      const startAsync = process.hrtime.bigint();
      assert.equal(await m.acquireAsync({ timeout: 100 }), false);
      const tookAsync = elapsedMs(startAsync);
      assert.ok(tookAsync >= 99 && tookAsync < 100 + slack, `async timeout 100: took ${tookAsync} ms`);
      await children.ok(h.pid);
      h.shm.unlink();
      h.shm.close();
    });

    it('RLock held by a worker: acquire times out in the main thread', async () => {
      const r = new RLock();
      const shm = new SharedMemory({ size: 8 });
      const v = new Int32Array(shm.buffer);
      const worker = runWorker(
        `const r = sync.RLock.fromHandle(workerData.r);
         const v = new Int32Array(sync.SharedMemory.attach(workerData.shm).buffer);
         r.acquire();
         Atomics.store(v, 0, 1);
         while (Atomics.load(v, 1) === 0) await new Promise((res) => setTimeout(res, 2));
         r.release();`,
        { r: r.handle, shm: shm.name },
      );
      try {
        await until(() => Atomics.load(v, 0) === 1, 5000, 'worker holds');
        const start = process.hrtime.bigint();
        assert.equal(r.acquire({ timeout: 80 }), false);
        const took = elapsedMs(start);
        assert.ok(took >= 79 && took < 80 + slack, `took ${took}`);
      } finally {
        Atomics.store(v, 1, 1);
        await worker;
      }
      assert.equal(r.acquire({ timeout: 1000 }), true);
      r.release();
      shm.unlink();
      shm.close();
    });

    it('Semaphore(0): acquire and acquireAsync time out on time', async () => {
      const s = new Semaphore(0);
      for (const t of [10, 120]) {
        const start = process.hrtime.bigint();
        assert.equal(s.acquire({ timeout: t }), false);
        const took = elapsedMs(start);
        assert.ok(took >= t - 1 && took < t + slack, `timeout ${t}: took ${took}`);
      }
      const start = process.hrtime.bigint();
      assert.equal(await s.acquireAsync({ timeout: 60 }), false);
      const took = elapsedMs(start);
      assert.ok(took >= 59 && took < 60 + slack, `async: took ${took}`);
      assert.equal(s.acquire({ blocking: false }), false);
    });

    it('RWLock: acquireWrite/acquireRead time out while another process holds it', async () => {
      const rw = new RWLock();
      const h = await heldFor(children, () => rw.acquireWrite(), () => rw.releaseWrite(), 1000);
      let start = process.hrtime.bigint();
      assert.equal(rw.acquireRead({ timeout: 60 }), false);
      let took = elapsedMs(start);
      assert.ok(took >= 59 && took < 60 + slack, `read: ${took}`);
      start = process.hrtime.bigint();
      assert.equal(rw.acquireWrite({ timeout: 60 }), false);
      took = elapsedMs(start);
      assert.ok(took >= 59 && took < 60 + slack, `write: ${took}`);
      assert.equal(await rw.acquireWriteAsync({ timeout: 60 }), false);
      assert.equal(rw.acquireRead({ blocking: false }), false);
      await children.ok(h.pid);
      assert.equal(rw.acquireRead({ timeout: 1000 }), true);
      rw.releaseRead();
      h.shm.unlink();
      h.shm.close();
    });
    it('huge timeouts (beyond 32 bits, up to MAX_SAFE_INTEGER) wait instead of overflowing', async () => {
      const s = new Semaphore(0);
      for (const t of [2 ** 31 + 5, 2 ** 32 + 5, Number.MAX_SAFE_INTEGER]) {
        const pid = children.fork(() => {
          sleepSync(80);
          s.release();
        });
        const start = process.hrtime.bigint();
        assert.equal(s.acquire({ timeout: t }), true, `timeout ${t}`);
        const took = elapsedMs(start);
        assert.ok(took >= 60, `timeout ${t}: returned after ${took} ms, before the release`);
        await children.ok(pid);
        setTimeout(() => s.release(), 50);
        assert.equal(await s.acquireAsync({ timeout: t }), true);
      }
    });
  });

  describe('semantics and errors', () => {
    it('Mutex: EDEADLK on a second acquire by the owner, EPERM on release by a non-owner', () => {
      const m = new Mutex();
      assert.equal(m.locked(), false);
      assert.throws(() => m.release(), { code: 'EPERM', syscall: 'pthread_mutex_unlock' });
      assert.equal(m.acquire(), true);
      assert.equal(m.locked(), true);
      assert.throws(() => m.acquire(), { code: 'EDEADLK' });
      assert.throws(() => m.acquire({ timeout: 10 }), { code: 'EDEADLK' });
      m.release();
      assert.equal(m.locked(), false);
    });

    it("where CPython's multiprocessing differs (README): a holder's non-blocking retry is EDEADLK; blocking: false with a timeout is refused", () => {
      const m = new Mutex();
      m.acquire();
      // multiprocessing.Lock().acquire(False) by its holder returns False; an error-checking mutex says why
      assert.throws(() => m.acquire({ blocking: false }), { code: 'EDEADLK' });
      assert.equal(m.locked(), true);
      m.release();
      assert.equal(m.locked(), false, 'held once, released once');
      const r = new RLock();
      assert.equal(r.acquire(), true);
      assert.equal(r.acquire({ blocking: false }), true, 'an RLock is re-entered instead');
      r.release();
      r.release();
      // as threading.Lock: multiprocessing's primitives would ignore the timeout instead
      const rw = new RWLock();
      const attempts: Array<[string, (o: object) => unknown]> = [
        ['Mutex', (o) => m.acquire(o)],
        ['RLock', (o) => r.acquire(o)],
        ['Semaphore', (o) => new Semaphore().acquire(o)],
        ['BoundedSemaphore', (o) => new BoundedSemaphore().acquire(o)],
        ['RWLock.acquireRead', (o) => rw.acquireRead(o)],
        ['RWLock.acquireWrite', (o) => rw.acquireWrite(o)],
      ];
      for (const [what, attempt] of attempts) {
        for (const timeout of [0, 5, Infinity]) {
          assert.throws(() => attempt({ blocking: false, timeout }), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' }, what);
        }
      }
      assert.deepEqual([m.locked(), r.locked(), rw.locked()], [false, false, false]);
    });

    it('Mutex held by the parent: a forked child cannot release it (EPERM) and cannot take it', async () => {
      const m = new Mutex();
      m.acquire();
      const pid = children.fork(() => {
        try {
          m.release();
          return 2;
        } catch (e: any) {
          if (e.code !== 'EPERM') return 3;
        }
        return m.acquire({ timeout: 50 }) === false ? 0 : 4;
      });
      try {
        await children.ok(pid);
      } finally {
        m.release();
      }
    });

    it('Mutex held by the main thread: a worker cannot release it (EPERM)', async () => {
      const m = new Mutex();
      m.acquire();
      try {
        const code = await runWorker<string>(
          `const m = sync.Mutex.fromHandle(workerData.h);
           try { m.release(); return 'released'; } catch (e) { return e.code; }`,
          { h: m.handle },
        );
        assert.equal(code, 'EPERM');
        assert.equal(m.locked(), true);
      } finally {
        m.release();
      }
    });

    it('RLock counts recursion: held (for another process) after one of two releases, free after both', async () => {
      const r = new RLock();
      r.acquire();
      r.acquire();
      r.release();
      const probe = async (): Promise<number> => {
        const res = await children.wait(children.fork(() => (r.acquire({ blocking: false }) ? 1 : 0)));
        return res.kind === 'exited' ? res.exitCode : -1;
      };
      assert.equal(await probe(), 0, 'still held after one release of two');
      assert.equal(r.locked(), true);
      r.release();
      assert.equal(await probe(), 1, 'free after the second release');
      assert.throws(() => r.release(), { code: 'EPERM' });
    });

    it('Semaphore: value, release(n), locked()', () => {
      const s = new Semaphore(2);
      assert.equal(s.getValue(), 2);
      assert.equal(s.acquire(), true);
      assert.equal(s.acquire(), true);
      assert.equal(s.locked(), true);
      assert.equal(s.getValue(), 0);
      assert.equal(s.acquire({ blocking: false }), false);
      s.release(3);
      assert.equal(s.getValue(), 3);
      assert.equal(s.locked(), false);
      assert.equal(new Semaphore().getValue(), 1);
      assert.equal(new Semaphore(0).locked(), true);
    });

    it('BoundedSemaphore: releasing above the initial value throws and does not change it', () => {
      const b = new BoundedSemaphore(2);
      assert.throws(() => b.release(), { code: 'ERR_SEMAPHORE_RELEASED_TOO_MANY_TIMES' });
      assert.equal(b.getValue(), 2);
      b.acquire();
      assert.throws(() => b.release(2), { code: 'ERR_SEMAPHORE_RELEASED_TOO_MANY_TIMES' });
      assert.equal(b.getValue(), 1);
      b.release();
      assert.equal(b.getValue(), 2);
    });

    it('BoundedSemaphore: the bound holds across processes', async () => {
      const b = new BoundedSemaphore(1);
      b.acquire();
      const pid = children.fork(() => {
        b.release();
        try {
          b.release();
          return 2;
        } catch (e: any) {
          return e.code === 'ERR_SEMAPHORE_RELEASED_TOO_MANY_TIMES' ? 0 : 3;
        }
      });
      await children.ok(pid);
      assert.equal(b.getValue(), 1);
    });

    it('RWLock: releasing what this object does not hold is EPERM', () => {
      const rw = new RWLock();
      assert.throws(() => rw.releaseRead(), { code: 'EPERM' });
      assert.throws(() => rw.releaseWrite(), { code: 'EPERM' });
      rw.acquireRead();
      assert.throws(() => rw.releaseWrite(), { code: 'EPERM' });
      rw.releaseRead();
      rw.acquireWrite();
      assert.throws(() => rw.releaseRead(), { code: 'EPERM' });
      rw.releaseWrite();
      assert.equal(rw.acquireWrite({ blocking: false }), true);
      rw.releaseWrite();
    });

    describe('bad input', () => {
      for (const v of [-1, -(2 ** 31), 2 ** 53, Infinity]) {
        it(`Semaphore(${v}) / BoundedSemaphore(${v}) -> RangeError`, () => {
          assert.throws(() => new Semaphore(v), RangeError);
          assert.throws(() => new BoundedSemaphore(v), RangeError);
        });
      }
      for (const v of ['1', 1.5, null, {}, 1n, NaN]) {
        it(`Semaphore(${String(v)}) -> TypeError or RangeError with a code`, () => {
          assertArgError(() => new Semaphore(v as any));
        });
      }
      it('Semaphore.release(n) with n not a positive integer -> argument error', () => {
        const s = new Semaphore(0);
        for (const n of [-1, 1.5, '2', NaN]) assertArgError(() => s.release(n as any));
        assert.equal(s.getValue(), 0);
      });
      it('acquire options of the wrong type -> argument errors, lock untouched', async () => {
        for (const lock of [new Mutex(), new RLock(), new Semaphore(1)]) {
          for (const opts of ['x', 5, { timeout: 'x' }, { timeout: -1 }, { timeout: NaN }, { blocking: 'yes' }]) {
            assertArgError(() => lock.acquire(opts as any));
          }
          for (const opts of ['x', { timeout: 'x' }, { timeout: -5 }, { signal: {} }]) {
            await assertArgErrorAsync(() => lock.acquireAsync(opts as any));
          }
          assert.equal(lock.locked(), false);
          await assertArgErrorAsync(() => lock.withLock(42 as any));
        }
        const rw = new RWLock();
        assertArgError(() => rw.acquireRead({ timeout: 'x' } as any));
        assertArgError(() => rw.acquireWrite({ blocking: 1 } as any));
        await assertArgErrorAsync(() => rw.acquireReadAsync({ signal: 'no' } as any));
      });

      it('handles are plain, JSON-able and structured-cloneable', () => {
        const all = [new Mutex(), new RLock(), new RWLock(), new Semaphore(3), new BoundedSemaphore(2)];
        const kinds = ['Mutex', 'RLock', 'RWLock', 'Semaphore', 'BoundedSemaphore'];
        all.forEach((o, i) => {
          const h = o.handle;
          assert.equal(h.kind, kinds[i]);
          assert.equal(typeof h.name, 'string');
          assert.deepEqual(JSON.parse(JSON.stringify(h)), h);
          assert.deepEqual(structuredClone(h), h);
        });
        const m2 = Mutex.fromHandle(JSON.parse(JSON.stringify(all[0]!.handle)));
        m2.acquire();
        assert.equal((all[0] as Mutex).locked(), true);
        m2.release();
        const s2 = Semaphore.fromHandle(structuredClone(all[3]!.handle));
        assert.equal(s2.getValue(), 3);
      });

      it('fromHandle: a handle of another kind -> TypeError ERR_INVALID_ARG_VALUE', () => {
        const m = new Mutex();
        const s = new Semaphore();
        assert.throws(() => Semaphore.fromHandle(m.handle), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
        assert.throws(() => Mutex.fromHandle(s.handle), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
        assert.throws(() => RWLock.fromHandle(m.handle), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
        // same kind string, but the segment really holds a Semaphore
        assert.throws(() => Mutex.fromHandle({ ...s.handle, kind: 'Mutex' }), (e: unknown) => e instanceof Error && /^(ERR_|E)/.test(codeOf(e) ?? ''));
      });

      for (const [label, h] of [
        ['null', null],
        ['a number', 42],
        ['a string', 'Mutex'],
        ['no name', { kind: 'Mutex' }],
        ['a numeric name', { kind: 'Mutex', name: 5 }],
        ['a name with a slash', { kind: 'Mutex', name: '../../etc/passwd' }],
        ['an empty name', { kind: 'Mutex', name: '' }],
      ] as Array<[string, unknown]>) {
        it(`fromHandle(${label}) -> TypeError`, () => {
          assert.throws(() => Mutex.fromHandle(h as any), (e: unknown) => e instanceof TypeError && /^ERR_INVALID_ARG_(VALUE|TYPE)$/.test(codeOf(e) ?? ''));
        });
      }

      it('fromHandle of a forged segment (garbage bytes, or too small) -> clear error, no crash (checked in a child)', async () => {
        const big = testName('forged');
        const small = testName('tiny');
        const a = new SharedMemory({ size: 4096, name: big });
        new Uint8Array(a.buffer).fill(0xa5);
        const b = new SharedMemory({ size: 1, name: small });
        const shm = new SharedMemory({ size: 64 });
        const out = new Int32Array(shm.buffer);
        try {
          const pid = children.fork(() => {
            let i = 0;
            for (const name of [big, small]) {
              for (const cls of [Mutex, RLock, Semaphore, RWLock] as any[]) {
                try {
                  cls.fromHandle({ kind: cls.name, name }).acquire?.({ timeout: 10 });
                  out[i] = 1; // accepted a forged segment
                } catch (e: any) {
                  out[i] = e instanceof TypeError && codeOf(e) === 'ERR_INVALID_ARG_VALUE' ? 2 : 3;
                }
                i++;
              }
            }
            return 0;
          });
          const r = await children.wait(pid);
          assert.deepEqual(r.kind === 'exited' ? r.exitCode : r, 0, `the child crashed: ${JSON.stringify(r)}`);
          assert.deepEqual([...out.subarray(0, 8)], new Array(8).fill(2));
        } finally {
          a.unlink();
          b.unlink();
          a.close();
          b.close();
          shm.unlink();
          shm.close();
        }
      });

      it('fromHandle of a segment holding a real header but too small for the primitive -> error, no crash (in a child)', async () => {
        const real = new Mutex();
        const header = readFileSync(`/dev/shm/${real.handle.name}`);
        const shm = new SharedMemory({ size: 8 });
        const out = new Int32Array(shm.buffer);
        const names: string[] = [];
        try {
          for (const size of [16, 32]) {
            const name = testName(`cut${size}`);
            const seg = new SharedMemory({ size, name });
            names.push(name);
            new Uint8Array(seg.buffer).set(header.subarray(0, size));
            seg.close();
          }
          const pid = children.fork(() => {
            names.forEach((name, i) => {
              try {
                const m = Mutex.fromHandle({ kind: 'Mutex', name });
                if (m.acquire({ timeout: 10 })) m.release();
                out[i] = 1;
              } catch (e) {
                out[i] = e instanceof TypeError && codeOf(e) === 'ERR_INVALID_ARG_VALUE' ? 2 : 3;
              }
            });
            return 0;
          });
          const r = await children.wait(pid);
          assert.deepEqual(r.kind === 'exited' ? r.exitCode : r, 0, `the child crashed: ${JSON.stringify(r)}`);
          assert.deepEqual([out[0], out[1]], [2, 2], 'a segment too small for a Mutex must be refused with TypeError ERR_INVALID_ARG_VALUE');
        } finally {
          for (const name of names) SharedMemory.attach(name).unlink();
          shm.unlink();
          shm.close();
        }
      });

      it('fromHandle of a segment that is gone (stale handle) -> PosixError ENOENT', async () => {
        const out = await runNode('sync-handles.js', [], { timeoutMs: 10000 });
        assert.equal(out.code, 0, out.stderr);
        const handles = JSON.parse(out.stdout) as Record<string, any>;
        const classes: Record<string, any> = { Mutex, RLock, RWLock, Semaphore, BoundedSemaphore };
        for (const [kind, cls] of Object.entries(classes)) {
          assert.equal(handles[kind].kind, kind);
          assert.throws(() => cls.fromHandle(handles[kind]), { code: 'ENOENT' }, kind);
        }
      });
    });
  });
});
