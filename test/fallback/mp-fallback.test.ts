// The platform fallback (as on Windows), selected by FORKWISE_FORCE_FALLBACK=1 (env.ts):
// no addon, processes on child_process, queues and pipes kept by their creator's service
// thread. Real processes throughout.
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as raw from 'forkwise';
import {
  Process,
  Pool,
  ThreadPool,
  WorkerDiedError,
  TimeoutError,
  Pipe,
  Queue,
  JoinableQueue,
  SimpleQueue,
  Mutex,
  RLock,
  BoundedSemaphore,
  Event,
  Condition,
  Barrier,
  BrokenBarrierError,
  RWLock,
  Value,
  SharedMemory,
  Manager,
  getStartMethod,
  getAllStartMethods,
  setStartMethod,
  getContext,
  activeChildren,
  EOFError,
  QueueEmpty,
  QueueFull,
  type TaskRef,
} from 'forkwise/multiprocessing';
import * as threading from 'forkwise/threading';
import { fixtures, runNode } from '../helpers';
import { checkManagerObjects, managerObjects } from '../manager-objects';
import { stopService, theService } from '../../dist/compat/service';

const tasks = join(fixtures, 'fallback-tasks.js');
const managerTasks = join(fixtures, 'manager-tasks.js');
const ref = (name: string): TaskRef => ({ module: tasks, name });

function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

async function waitUntil(condition: () => boolean, ms: number, what: string): Promise<void> {
  const deadline = Date.now() + ms;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting: ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

describe('platform fallback (FORKWISE_FORCE_FALLBACK=1)', () => {
  // The service thread lives as long as the process; ended here so the suite's leftover
  // check sees none of its descriptors.
  after(() => stopService());

  describe('the raw layer and the start methods', () => {
    it('raw POSIX functions throw ERR_FORKWISE_UNSUPPORTED_PLATFORM naming themselves', () => {
      assert.throws(() => raw.fork(), { code: 'ERR_FORKWISE_UNSUPPORTED_PLATFORM', message: /fork\(\)/ });
      assert.throws(() => raw.pipe(), { code: 'ERR_FORKWISE_UNSUPPORTED_PLATFORM', message: /pipe\(\)/ });
      // What needs shared memory is not there.
      assert.throws(() => new RWLock(), { code: 'ERR_FORKWISE_UNSUPPORTED_PLATFORM' });
      assert.throws(() => new Value('int32', 0), { code: 'ERR_FORKWISE_UNSUPPORTED_PLATFORM' });
      assert.throws(() => new SharedMemory({ size: 8 }), { code: 'ERR_FORKWISE_UNSUPPORTED_PLATFORM' });
    });

    it("only 'spawn' exists; 'fork' and 'forkserver' are refused by setStartMethod, getContext and start()", () => {
      assert.equal(getStartMethod(), 'spawn');
      assert.deepEqual(getAllStartMethods(), ['spawn']);
      assert.throws(() => setStartMethod('fork'), { code: 'ERR_FORKWISE_UNSUPPORTED_PLATFORM' });
      assert.throws(() => getContext('forkserver'), { code: 'ERR_FORKWISE_UNSUPPORTED_PLATFORM' });
      assert.equal(getContext('spawn').getStartMethod(), 'spawn');
      for (const startMethod of ['fork', 'forkserver'] as const) {
        const p = new Process({ target: ref('sleep'), args: [0], startMethod });
        assert.throws(() => p.start(), { code: 'ERR_FORKWISE_UNSUPPORTED_PLATFORM', message: new RegExp(`'${startMethod}'.*'spawn'`) });
      }
    });
  });

  describe('Process on child_process', () => {
    it('runs a TaskRef and a self-contained function; exitCode 0; identity as in CPython', async () => {
      const [mine, theirs] = Pipe();
      const p = new Process({ target: ref('identity'), args: [theirs], name: 'worker-1' });
      await p.start();
      theirs.close();
      assert.deepEqual(await mine.recv(), { pid: p.pid, name: 'worker-1', parent: process.pid });
      await p.join();
      assert.equal(p.exitCode, 0);
      assert.equal(p.sentinel, -1);
      const q = new Process({ target: (a: number, b: number) => process.exit(a + b), args: [3, 4] });
      await q.start();
      await q.join();
      assert.equal(q.exitCode, 7);
      mine.close();
    });

    it("a target's error is rebuilt in the parent with name, message, code and stack", async () => {
      const p = new Process({
        target: () => {
          const e = new RangeError('out of cheese') as RangeError & { code: string };
          e.code = 'ECHEESE';
          throw e;
        },
      });
      await p.start();
      await p.join();
      assert.equal(p.exitCode, 1);
      assert.equal(p.error?.name, 'RangeError');
      assert.equal(p.error?.message, 'out of cheese');
      assert.equal((p.error as { code?: string }).code, 'ECHEESE');
      assert.match(p.error?.stack ?? '', /out of cheese/);
    });

    it('terminate and kill give -15 and -9; joinSync(timeout) waits while this loop stands still', async () => {
      const p = new Process({ target: ref('sleep'), args: [60_000] });
      await p.start();
      assert.equal(p.isAlive(), true);
      assert.ok(activeChildren().includes(p));
      const t0 = Date.now();
      p.joinSync(200);
      assert.ok(Date.now() - t0 >= 190, 'joinSync(200) returned early');
      assert.equal(p.exitCode, null);
      p.terminate();
      p.joinSync(10_000);
      assert.equal(p.exitCode, -15);
      assert.equal(p.isAlive(), false);
      const k = new Process({ target: ref('sleep'), args: [60_000] });
      await k.start();
      k.kill();
      await k.join();
      assert.equal(k.exitCode, -9);
      assert.ok(!activeChildren().includes(k));
    });

    it('join(timeout) resolves after the timeout with the child still running', async () => {
      const p = new Process({ target: ref('sleep'), args: [60_000] });
      await p.start();
      await p.join(100);
      assert.equal(p.exitCode, null);
      p.kill();
      await p.join();
    });

    it('unserializable arguments fail at start() naming their path', () => {
      const p = new Process({ target: ref('sleep'), args: [{ f: () => 1 }] });
      assert.throws(() => p.start(), { code: 'ERR_FORKWISE_NOT_CLONEABLE', message: /args\[0\]\.f/ });
    });

    it('a non-daemon child keeps the parent alive until it ends; a daemon is ended with the parent', async () => {
      const dir = mkdtempSync(join(tmpdir(), 'forkwise-fallback-'));
      try {
        const kept = join(dir, 'kept');
        const r1 = await runNode('fallback-lifetime.js', ['keepalive', kept], { nodeArgs: [] });
        assert.equal(r1.code, 0, r1.stderr);
        assert.ok(existsSync(kept), 'the non-daemon child did not finish before the parent exited');
        const daemonOut = join(dir, 'daemon');
        const r2 = await runNode('fallback-lifetime.js', ['daemon', daemonOut], { nodeArgs: [] });
        assert.equal(r2.code, 0, r2.stderr);
        const { child } = JSON.parse(r2.stdout) as { child: number };
        await waitUntil(() => !alive(child), 5000, 'the daemon child to end with its parent');
        assert.ok(!existsSync(daemonOut));
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    for (const mode of ['orphan', 'orphan-busy'] as const) it(`a child dies with a SIGKILLed parent${mode === 'orphan-busy' ? ', even one whose loop never turns' : ''}`, async () => {
      const script = join(fixtures, 'fallback-lifetime.js');
      const { spawn } = await import('node:child_process');
      const parent = spawn(process.execPath, [script, mode], { stdio: ['ignore', 'pipe', 'inherit'] });
      const line = await new Promise<string>((resolve, reject) => {
        let out = '';
        parent.stdout.on('data', (d: Buffer) => {
          out += d;
          if (out.includes('\n')) resolve(out);
        });
        parent.once('exit', () => reject(new Error(`parent ended early: ${out}`)));
      });
      const { child } = JSON.parse(line) as { child: number };
      assert.ok(alive(child));
      parent.kill('SIGKILL');
      await new Promise((resolve) => parent.once('close', resolve));
      await waitUntil(() => !alive(child), 5000, 'the child to die with its parent');
    });
  });

  describe('Queue', () => {
    it('put/get in every form, maxsize, timeouts, abort', async () => {
      const q = new Queue<unknown>({ maxsize: 2 });
      q.putSync(1);
      await q.put({ two: 2 });
      assert.equal(q.qsize(), 2);
      assert.equal(q.full(), true);
      assert.throws(() => q.putNowait(3), QueueFull);
      await assert.rejects(q.put(3, { timeout: 50 }), QueueFull);
      assert.equal(q.getSync(), 1);
      assert.deepEqual(await q.get(), { two: 2 });
      assert.throws(() => q.getNowait(), QueueEmpty);
      assert.throws(() => q.getSync({ timeout: 30 }), QueueEmpty);
      await assert.rejects(q.get({ timeout: 30 }), { code: 'ERR_QUEUE_EMPTY' });
      const ac = new AbortController();
      const pending = q.get({ signal: ac.signal });
      setTimeout(() => ac.abort(), 20);
      await assert.rejects(pending, { name: 'AbortError' });
      // The aborted get took nothing: the next item goes to the next get.
      q.putSync('after');
      assert.equal(await q.get(), 'after');
      q.close();
      assert.throws(() => q.putSync(1), { code: 'ERR_FORKWISE_CLOSED' });
    });

    it('4 producer and 4 consumer processes move 2,000 items exactly once', async function () {
      this.timeout(60_000);
      const q = new Queue<number | null>();
      const results = new SimpleQueue<number>();
      const producers = [0, 1, 2, 3].map((i) => new Process({ target: ref('produce'), args: [q, i * 500, 500] }));
      const consumers = [0, 1, 2, 3].map(() => new Process({ target: ref('consume'), args: [q, results] }));
      for (const p of [...producers, ...consumers]) await p.start();
      for (const p of producers) await p.join();
      for (let i = 0; i < 4; i++) await q.put(null);
      for (const p of consumers) await p.join();
      const got: number[] = [];
      for (let i = 0; i < 2000; i++) got.push(await results.get({ timeout: 10_000 }));
      assert.equal(results.qsize(), 0);
      assert.deepEqual(got.sort((a, b) => a - b), Array.from({ length: 2000 }, (_, i) => i));
      for (const p of [...producers, ...consumers]) assert.equal(p.exitCode, 0);
    });

    it('a consumer SIGKILLed in the middle of a get takes nothing with it', async () => {
      const q = new Queue<number>();
      const [ready, readySend] = Pipe();
      const p = new Process({ target: ref('waitInGet'), args: [q, readySend] });
      await p.start();
      readySend.close();
      assert.equal(await ready.recv(), p.pid);
      // Its get is parked in this process's hub; killed, it must not take what comes next.
      await new Promise((resolve) => setTimeout(resolve, 100));
      p.kill();
      q.putSync(1);
      q.putSync(2);
      // An item handed to it as it died comes back, at the front: both are here.
      const got = [await q.get({ timeout: 5000 }), await q.get({ timeout: 5000 })];
      assert.deepEqual(got.sort(), [1, 2]);
      assert.equal(q.qsize(), 0);
      await p.join();
      assert.equal(p.exitCode, -9);
      ready.close();
    });

    it('JoinableQueue: join waits for taskDone from another process', async () => {
      const q = new JoinableQueue<number>();
      q.putSync(1);
      q.putSync(2);
      assert.equal(q.joinSync(20), false);
      const p = new Process({
        target: async (queue: JoinableQueue<number>) => {
          for (let i = 0; i < 2; i++) {
            await queue.get();
            queue.taskDone();
          }
        },
        args: [q],
      });
      await p.start();
      await q.join();
      assert.equal(q.unfinished(), 0);
      assert.throws(() => q.taskDone(), { code: 'ERR_QUEUE_TASK_DONE_TOO_MANY' });
      await p.join();
    });

    it('a queue crosses back from the child that made it; once that child has ended, calls fail with EOFError', async () => {
      const [mine, theirs] = Pipe();
      const p = new Process({ target: ref('sendNewQueue'), args: [theirs] });
      await p.start();
      theirs.close();
      const q = (await mine.recv()) as Queue<string>;
      assert.equal(await q.get(), 'kept by the child');
      await p.join();
      await assert.rejects(q.get({ timeout: 1000 }), EOFError);
      mine.close();
    });
  });

  describe('Pipe / Connection', () => {
    it('a child echoes; recvSync blocks this thread while the service thread works; EOF when the child ends', async () => {
      const [mine, theirs] = Pipe();
      const p = new Process({ target: ref('echo'), args: [theirs] });
      await p.start();
      theirs.close();
      mine.send('a');
      assert.deepEqual(mine.recvSync(10_000), { echoed: 'a' });
      mine.send([1, 2, 3]);
      assert.deepEqual(await mine.recv(), { echoed: [1, 2, 3] });
      assert.equal(await mine.poll(), false);
      assert.throws(() => mine.recvSync(30), { code: 'ERR_TIMEOUT' });
      mine.close();
      await p.join();
      assert.equal(p.exitCode, 0);
    });

    it('the peer sees EOF once its last holder closed or was SIGKILLed; what was sent stays readable', async () => {
      const [a, b] = Pipe();
      b.send('last words');
      b.close();
      assert.equal(await a.recv(), 'last words');
      await assert.rejects(a.recv(), EOFError);
      a.close();
      const [mine, theirs] = Pipe();
      const p = new Process({ target: ref('sleep'), args: [60_000, theirs] });
      await p.start();
      // Closed at once: the child's arguments hold it until it attaches (or ends, as here,
      // killed maybe before it attached).
      theirs.close();
      const reading = mine.recv();
      p.kill();
      await assert.rejects(reading, EOFError);
      await p.join();
      mine.close();
    });

    it('a 100 MB message from a child arrives whole', async function () {
      this.timeout(60_000);
      const [mine, theirs] = Pipe();
      const size = 100 * 1024 * 1024;
      const p = new Process({ target: ref('sendBig'), args: [theirs, size] });
      await p.start();
      theirs.close();
      const bytes = await mine.recvBytes();
      assert.equal(bytes.length, size);
      assert.equal(bytes[0], 7);
      assert.equal(bytes[size - 1], 7);
      await p.join();
      mine.close();
    });

    it('bad input is a clear error', () => {
      assert.throws(() => Pipe({ duplex: 1 as never }), { code: 'ERR_INVALID_ARG_TYPE' });
      const [a, b] = Pipe({ duplex: false });
      assert.throws(() => a.send(1), TypeError);
      assert.throws(() => b.send(() => 1), { code: 'ERR_FORKWISE_NOT_CLONEABLE' });
      a.close();
      b.close();
      assert.throws(() => new Queue({ maxsize: -1 }), { code: 'ERR_OUT_OF_RANGE' });
      assert.throws(() => (Queue as unknown as { fromHandle(h: unknown): unknown }).fromHandle({ kind: 'FallbackQueue', id: 1 }), {
        code: 'ERR_INVALID_ARG_VALUE',
      });
    });
  });

  describe('Pool and ThreadPool', () => {
    it('map, apply, errors, a timeout and a killed worker, on spawned workers', async function () {
      this.timeout(60_000);
      const pool = new Pool({ processes: 2 });
      try {
        assert.deepEqual(await pool.map((x: number) => x * 2, [1, 2, 3, 4, 5]), [2, 4, 6, 8, 10]);
        assert.equal(await pool.apply((a: number, b: number) => a + b, [2, 3]), 5);
        await assert.rejects(
          pool.apply(() => {
            throw new TypeError('bad input');
          }),
          { name: 'TypeError', message: 'bad input' },
        );
        await assert.rejects(pool.apply(() => new Promise((resolve) => setTimeout(resolve, 60_000)), [], { timeout: 200 }), TimeoutError);
        // A worker killed mid-task fails exactly that task; the others complete.
        const others = pool.map((x: number) => x * 2, Array.from({ length: 200 }, (_, i) => i));
        await assert.rejects(
          pool.apply(() => process.kill(process.pid, 'SIGKILL')),
          (error: unknown) => error instanceof WorkerDiedError && /SIGKILL/.test((error as Error).message),
        );
        assert.deepEqual(await others, Array.from({ length: 200 }, (_, i) => i * 2));
        const outer = 3;
        await assert.rejects(pool.apply(() => outer), /outer/);
      } finally {
        pool.close();
        await pool.join();
      }
    });

    it('imap in order, and maxTasksPerChild 1: the workers\' pipes are let go (the hub keeps none of them)', async function () {
      this.timeout(60_000);
      const objects = (): number => theService().callSync({ op: 'hubSize' }) as number;
      const before = objects();
      const pool = new Pool({ processes: 2, maxTasksPerChild: 1 });
      const got: number[] = [];
      for await (const value of pool.imap((x: number) => x * x, [1, 2, 3, 4, 5, 6])) got.push(value as number);
      assert.deepEqual(got, [1, 4, 9, 16, 25, 36]);
      pool.close();
      await pool.join();
      assert.equal(objects(), before);
    });

    it('ThreadPool runs on worker threads', async () => {
      const pool = new ThreadPool({ processes: 2 });
      try {
        assert.deepEqual(await pool.map((x: number) => x * 3, [1, 2, 3]), [3, 6, 9]);
      } finally {
        await pool.terminate();
        await pool.join(); // its threads' ends handled before the suite's leftover check
      }
    });
  });

  describe('threading on worker_threads', () => {
    it('a Thread and a Process share the queue classes of CPython\'s queue module', async () => {
      const pq = new threading.PriorityQueue<[number, string]>();
      const lifo = new threading.LifoQueue<number>();
      const fifo = new threading.Queue<string>();
      const t = new threading.Thread({
        target: (p: typeof pq, l: typeof lifo, f: typeof fifo) => {
          p.putSync([2, 'b']);
          p.putSync([1, 'a']);
          l.putSync(1);
          l.putSync(2);
          f.putSync('from the thread');
        },
        args: [pq, lifo, fifo],
      });
      await t.start();
      await t.join();
      const p = new Process({ target: (q: { putSync(v: [number, string]): void }) => q.putSync([1, 'a, later']), args: [pq] });
      await p.start();
      await p.join();
      pq.putSync([0, 'first']);
      assert.deepEqual([pq.getSync(), pq.getSync(), await pq.get(), pq.getSync()], [[0, 'first'], [1, 'a'], [1, 'a, later'], [2, 'b']]);
      assert.deepEqual([lifo.getSync(), lifo.getSync()], [2, 1]);
      assert.equal(await fifo.get(), 'from the thread');
      fifo.taskDone();
      assert.equal(fifo.joinSync(0), true);
      assert.throws(() => pq.putSync('not an entry' as never), { code: 'ERR_INVALID_ARG_TYPE' });
    });
  });

  describe('forkwise/sync primitives kept by the hub', () => {
    it('a Mutex excludes 2 processes and a thread from each other', async function () {
      this.timeout(60_000);
      const lock = new Mutex();
      const inside = new Event();
      const overlaps = new Queue<number>();
      const procs = [0, 1].map(() => new Process({ target: ref('critical'), args: [lock, inside, overlaps, 20] }));
      const thread = new threading.Thread({ target: { module: tasks, name: 'critical' }, args: [lock, inside, overlaps, 20] });
      for (const p of procs) await p.start();
      await thread.start();
      for (const p of procs) await p.join();
      await thread.join();
      for (const p of procs) assert.equal(p.exitCode, 0);
      assert.equal(thread.error, undefined);
      assert.equal(overlaps.qsize(), 0, 'two were inside at once');
      assert.equal(lock.locked(), false);
    });

    it('Mutex errors as pthread: EDEADLK taken twice, EPERM released unheld; RLock counts', () => {
      const m = new Mutex();
      assert.equal(m.acquire(), true);
      assert.throws(() => m.acquire(), { code: 'EDEADLK' });
      m.release();
      assert.throws(() => m.release(), { code: 'EPERM' });
      const r = new RLock();
      r.acquire();
      r.acquire();
      r.release();
      assert.equal(r.locked(), true);
      r.release();
      assert.equal(r.locked(), false);
    });

    it('a lock whose owner was SIGKILLed is taken recovered; released without markConsistent it is dead', async () => {
      const lock = new Mutex();
      const holding = new Event();
      const p = new Process({ target: ref('holdAndWait'), args: [lock, holding] });
      await p.start();
      assert.equal(await holding.waitAsync(10_000), true);
      assert.equal(lock.acquire({ blocking: false }), false);
      p.kill();
      assert.equal(lock.acquire({ timeout: 10_000 }), true);
      assert.equal(lock.recovered, true);
      lock.markConsistent();
      lock.release();
      await p.join();
      // Again, without markConsistent this time.
      holding.clear();
      const q = new Process({ target: ref('holdAndWait'), args: [lock, holding] });
      await q.start();
      assert.equal(await holding.waitAsync(10_000), true);
      q.kill();
      assert.equal(await lock.acquireAsync({ timeout: 10_000 }), true);
      assert.equal(lock.recovered, true);
      lock.release();
      assert.throws(() => lock.acquire(), { code: 'ERR_LOCK_NOT_RECOVERABLE' });
      await q.join();
    });

    it('acquireAsync waits without blocking the loop, times out, and aborts', async () => {
      const lock = new Mutex();
      lock.acquire();
      let ticks = 0;
      const timer = setInterval(() => ticks++, 5);
      assert.equal(await lock.acquireAsync({ timeout: 100 }), false);
      clearInterval(timer);
      assert.ok(ticks >= 5, 'the loop stood still');
      const ac = new AbortController();
      const pending = lock.acquireAsync({ signal: ac.signal });
      setTimeout(() => ac.abort(), 20);
      await assert.rejects(pending, { name: 'AbortError' });
      // Another task of this thread waits for the release (not a deadlock).
      const later = lock.acquireAsync();
      lock.release();
      assert.equal(await later, true);
      lock.release();
    });

    it('BoundedSemaphore, Event, Condition and Barrier between processes', async () => {
      const s = new BoundedSemaphore(1);
      assert.equal(s.acquire({ blocking: false }), true);
      assert.equal(s.acquire({ blocking: false }), false);
      s.release();
      assert.throws(() => s.release(), { code: 'ERR_SEMAPHORE_RELEASED_TOO_MANY_TIMES' });

      const cond = new Condition();
      const said = new Queue<unknown>();
      const waiter = new Process({
        target: (c: Condition, q: Queue<unknown>) => {
          c.acquire();
          q.putSync('waiting');
          const notified = c.wait(10_000);
          c.release();
          q.putSync(notified);
        },
        args: [cond, said],
      });
      await waiter.start();
      assert.equal(await said.get({ timeout: 10_000 }), 'waiting');
      // It is waiting once it has let go of the lock.
      assert.equal(await cond.acquireAsync({ timeout: 10_000 }), true);
      cond.notify();
      cond.release();
      assert.equal(await said.get({ timeout: 10_000 }), true);
      await waiter.join();

      const barrier = new Barrier(2);
      const party = new Process({ target: (b: Barrier) => b.wait(10_000), args: [barrier] });
      await party.start();
      const index = await barrier.waitAsync(10_000);
      assert.ok(index === 0 || index === 1);
      await party.join();
      assert.equal(party.exitCode, 0);
      assert.throws(() => barrier.wait(30), BrokenBarrierError);
      assert.equal(barrier.broken, true);
      barrier.reset();
      assert.equal(barrier.broken, false);
    });
  });

  describe('Manager', function () {
    this.timeout(60_000);
    let manager: Manager;
    before(async () => {
      manager = await Manager.start();
    });
    after(() => manager.shutdown());

    for (const where of ['spawn', 'thread'] as const) {
      it(`every kind of object works in a ${where === 'thread' ? 'worker thread' : 'spawned child'}, Promise and …Sync forms`, async () => {
        const o = await managerObjects(manager);
        const target = { module: managerTasks, name: 'useAll' };
        let run: Promise<void>;
        let outcome: () => unknown;
        if (where === 'thread') {
          const t = new threading.Thread({ target, args: [o, where] });
          await t.start();
          run = t.join();
          outcome = () => t.error ?? 0;
        } else {
          const p = new Process({ target, args: [o, where] });
          await p.start();
          run = p.join();
          outcome = () => p.exitCode;
        }
        const [arrival] = await Promise.all([o.barrier.wait(20_000), run]);
        assert.equal(outcome(), 0);
        assert.equal(typeof arrival, 'number');
        await checkManagerObjects(o, where);
      });
    }

    it('4 processes × 200 locked increments lose no update; a SIGKILLed client leaves the others working', async () => {
      const d = await manager.dict({ n: 0 });
      const lock = await manager.Lock();
      const started = await manager.Event();
      const victim = new Process({ target: { module: managerTasks, name: 'hammer' }, args: [d, started] });
      await victim.start();
      assert.equal(await started.wait(20_000), true);
      const workers = [0, 1, 2, 3].map((i) => new Process({ target: { module: managerTasks, name: 'increment' }, args: [d, lock, 200, i % 2 === 0] }));
      for (const p of workers) await p.start();
      victim.kill();
      for (const p of workers) await p.join();
      await victim.join();
      assert.deepEqual(workers.map((p) => p.exitCode), [0, 0, 0, 0]);
      assert.equal(await d.get('n'), 800);
    });

    it("TCP on port 0 and connect() from a child; a wrong key is refused; transport 'pipe' is not there", async () => {
      await using tcp = await Manager.start({ address: { host: '127.0.0.1', port: 0 }, authkey: 'sesame' });
      const address = tcp.address as { host: string; port: number };
      assert.ok(address.port > 0);
      const d = await tcp.dict();
      const p = new Process({ target: { module: managerTasks, name: 'joinAndWrite' }, args: [address, 'sesame', d] });
      await p.start();
      await p.join();
      assert.equal(p.exitCode, 0);
      assert.equal(await d.get('remote'), 'remote');
      assert.equal(d.getSync('remote-sync'), true);
      await assert.rejects(Manager.connect(address, 'wrong key'), { code: 'ERR_FORKWISE_MANAGER_AUTH' });
      await assert.rejects(Manager.start({ transport: 'pipe' }), { code: 'ERR_FORKWISE_UNSUPPORTED_PLATFORM' });
    });
  });
});
