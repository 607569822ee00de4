import assert from 'node:assert/strict';
import { join } from 'node:path';
import {
  Thread,
  Timer,
  currentThread,
  mainThread,
  enumerate,
  activeCount,
  excepthook,
  getExcepthook,
  setExcepthook,
  Mutex,
  Event,
  Value,
  SharedArray,
  SharedMemory,
  type ExceptHookArgs,
} from 'forkwise/threading';
import { Queue, Pipe } from 'forkwise/multiprocessing';
import { fixtures, runNode } from './helpers';

const tasks = join(fixtures, 'threading-tasks.js');

// Collects what the thread-error hook is given, instead of printing it.
function quietHook(): { seen: ExceptHookArgs[]; restore: () => void } {
  const seen: ExceptHookArgs[] = [];
  setExcepthook((args) => seen.push(args));
  return { seen, restore: () => setExcepthook(null) };
}

async function started(options: ConstructorParameters<typeof Thread>[0]): Promise<Thread> {
  const thread = new Thread(options);
  thread.start();
  return thread;
}

describe('threading: Thread', function () {
  this.timeout(30000);

  it('runs a self-contained target with its arguments; a SharedArrayBuffer is shared, not copied', async () => {
    const words = new Int32Array(new SharedArrayBuffer(16));
    const t = await started({ target: (w: Int32Array, v: number) => w.fill(v), args: [words, 7] });
    await t.join();
    assert.deepEqual([...words], [7, 7, 7, 7]);
    assert.equal(t.error, undefined);
    assert.equal(t.isAlive(), false);
  });

  it('runs a TaskRef target, and an async target is waited for', async () => {
    const words = new Int32Array(new SharedArrayBuffer(8));
    const t = await started({ target: { module: tasks, name: 'fill' }, args: [words, 3] });
    await t.join();
    assert.deepEqual([...words], [3, 3]);
    const slow = await started({
      target: async (w: Int32Array) => {
        await new Promise((r) => setTimeout(r, 50));
        Atomics.store(w, 0, 9);
      },
      args: [words],
    });
    await slow.join();
    assert.equal(words[0], 9);
  });

  it('shares forkwise objects: two threads add under one Mutex to one Value', async () => {
    const total = new Value('int32', 0);
    const lock = new Mutex();
    const add = (total: Value, lock: Mutex, n: number) => {
      for (let i = 0; i < n; i++) {
        lock.acquire();
        total.value = (total.value as number) + 1;
        lock.release();
      }
    };
    const threads = [1, 2].map(() => new Thread({ target: add, args: [total, lock, 2000] }));
    for (const t of threads) t.start();
    for (const t of threads) await t.join();
    assert.equal(total.value, 4000);
    assert.deepEqual(threads.map((t) => t.error), [undefined, undefined]);
  });

  it('shares a SharedArray, an Event, a Queue and a Connection given inside other values', async () => {
    const array = new SharedArray('float64', 3);
    const ready = new Event();
    const queue = new Queue<number>();
    const [mine, theirs] = Pipe();
    const t = await started({
      target: (shared: { array: Float64Array; ready: Event; queue: Queue<number>; conn: ReturnType<typeof Pipe>[1] }) => {
        shared.array[1] = 2.5;
        for (let i = 0; i < 5; i++) shared.queue.putSync(i);
        shared.conn.send({ from: 'thread' });
        shared.ready.set();
      },
      args: [{ array, ready, queue, conn: theirs }],
    });
    assert.equal(await ready.waitAsync(10000), true);
    assert.equal(array[1], 2.5);
    const got: number[] = [];
    for (let i = 0; i < 5; i++) got.push(await queue.get({ timeout: 10000 }));
    assert.deepEqual(got, [0, 1, 2, 3, 4]);
    assert.deepEqual(await mine.recv(), { from: 'thread' });
    await t.join();
    mine.close();
    theirs.close();
    queue.close();
  });

  it("a subclass's run() runs in the thread with its own fields as `this`", async () => {
    class Filler extends Thread {
      words = new Int32Array(new SharedArrayBuffer(8));
      value = 5;
      override run(): void {
        Atomics.store(this.words, 0, this.value);
        Atomics.store(this.words, 1, this.name.length);
      }
    }
    const t = new Filler({ name: 'filler' });
    t.start();
    await t.join();
    assert.deepEqual([...t.words], [5, 'filler'.length]);
  });

  it('names threads Thread-N (target), keeps ident after the end, and reports identity inside the thread', async () => {
    const shm = new SharedMemory({ size: 4096 });
    try {
      const t = new Thread({ target: { module: tasks, name: 'identity' }, args: [shm], daemon: true });
      assert.match(t.name, /^Thread-\d+ \(identity\)$/);
      assert.equal(t.ident, undefined);
      t.start();
      assert.ok(Number.isInteger(t.ident) && t.ident! > 0);
      assert.equal(t.threadId, t.ident);
      const ident = t.ident;
      await t.join();
      assert.equal(t.ident, ident);
      const bytes = new Uint8Array(shm.buffer);
      const seen = JSON.parse(Buffer.from(bytes.subarray(0, bytes.indexOf(0))).toString());
      assert.deepEqual(seen, { name: t.name, ident, daemon: true, main: 'MainThread', count: 2 });
      assert.match(new Thread({ target: () => {} }).name, /^Thread-\d+ \(target\)$/);
      assert.match(new Thread().name, /^Thread-\d+$/);
      assert.equal(new Thread({ name: 'mine' }).name, 'mine');
    } finally {
      shm.close();
    }
  });

  it('currentThread, mainThread, enumerate and activeCount in the main thread', async () => {
    assert.equal(currentThread(), mainThread());
    assert.equal(mainThread().name, 'MainThread');
    assert.equal(mainThread().ident, 0);
    assert.equal(mainThread().isAlive(), true);
    const stop = new Event();
    const t = await started({ target: (stop: Event) => stop.wait(10000), args: [stop] });
    assert.ok(enumerate().includes(t));
    assert.equal(activeCount(), enumerate().length);
    assert.ok(activeCount() >= 2);
    stop.set();
    await t.join();
    assert.ok(!enumerate().includes(t));
  });

  it('isAlive while running; join(timeout) returns with it still alive; joinSync waits for the end', async () => {
    const stop = new Event();
    const t = await started({ target: (stop: Event) => stop.wait(20000), args: [stop] });
    assert.equal(t.isAlive(), true);
    const before = performance.now();
    await t.join(50);
    assert.ok(performance.now() - before >= 45);
    assert.equal(t.isAlive(), true);
    assert.equal(t.joinSync(20), false);
    stop.set();
    assert.equal(t.joinSync(10000), true);
    assert.equal(t.isAlive(), false);
    await t.join();
    await t.join(0);
  });

  it('a thread may start and join a thread of its own', async () => {
    const words = new Int32Array(new SharedArrayBuffer(8));
    const t = await started({
      target: (words: Int32Array) => {
        const { Thread, currentThread } = require('forkwise/threading');
        const inner = new Thread({ target: (w: Int32Array) => Atomics.store(w, 1, 2), args: [words] });
        inner.start();
        inner.joinSync();
        Atomics.store(words, 0, currentThread().ident === inner.ident ? -1 : 1);
      },
      args: [words],
    });
    await t.join();
    assert.equal(t.error, undefined);
    assert.deepEqual([...words], [1, 2]);
  });
});

describe('threading: errors in threads', function () {
  this.timeout(30000);

  it('join() does not throw; .error is the rebuilt error; the hook gets CPython-shaped arguments', async () => {
    const { seen, restore } = quietHook();
    try {
      const t = await started({ name: 'failing', target: { module: tasks, name: 'fail' } });
      await t.join();
      const error = t.error as RangeError & { code?: string };
      assert.ok(error instanceof RangeError);
      assert.equal(error.message, 'out of cheese');
      assert.equal(error.code, 'ECHEESE');
      assert.match(error.stack!, /threading-tasks\.js/);
      assert.equal(seen.length, 1);
      assert.equal(seen[0]!.excType, 'RangeError');
      assert.equal(seen[0]!.excValue, error);
      assert.equal(seen[0]!.thread, t);
      assert.equal(seen[0]!.excTraceback, error.stack);
    } finally {
      restore();
    }
  });

  it('a thrown non-Error value and a custom error name both arrive', async () => {
    const { seen, restore } = quietHook();
    try {
      const a = await started({
        target: () => {
          throw { reason: 'plain object' };
        },
      });
      const b = await started({
        target: () => {
          class NotFound extends Error {
            override name = 'NotFound';
          }
          throw new NotFound('nope');
        },
      });
      await a.join();
      await b.join();
      assert.deepEqual(a.error, { reason: 'plain object' });
      assert.equal((b.error as Error).name, 'NotFound');
      assert.equal((b.error as Error).message, 'nope');
      assert.equal(seen.length, 2);
    } finally {
      restore();
    }
  });

  it('a target that cannot be loaded is an error of the thread', async () => {
    const { seen, restore } = quietHook();
    try {
      const t = await started({ target: { module: tasks, name: 'missing' } });
      await t.join();
      assert.match((t.error as Error).message, /no exported function 'missing'/);
      assert.equal(seen.length, 1);
    } finally {
      restore();
    }
  });

  it('the default hook prints "Exception in thread NAME:" and the stack; the exit status stays 0', async () => {
    const out = await runNode('threading-exit.js', ['throws']);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stderr, /^Exception in thread worker-7:\nTypeError: bad things\n\s+at boom \(forkwise-task:boom/);
    assert.equal(out.stdout, 'joined: TypeError: bad things\n');
  });

  it('a replaced hook is called instead; a hook that throws is reported too', async () => {
    const hooked = await runNode('threading-exit.js', ['hook']);
    assert.equal(hooked.code, 0, hooked.stderr);
    assert.equal(hooked.stderr, '');
    assert.equal(hooked.stdout, 'hook: Error caught by hook in hooked string\njoined\n');
    const broken = await runNode('threading-exit.js', ['hook-throws']);
    assert.equal(broken.code, 0, broken.stderr);
    assert.match(broken.stderr, /^Exception in threading\.excepthook:\nError: the hook itself failed/);
  });

  it('an error thrown later by a callback the target left ends the thread with that error', async () => {
    const out = await runNode('threading-exit.js', ['late-error']);
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stderr, /^Exception in thread late:\nError: late failure/);
    assert.equal(out.stdout, 'joined: late failure\n');
  });

  it('excepthook and setExcepthook', () => {
    assert.equal(getExcepthook(), excepthook);
    const hook = () => {};
    setExcepthook(hook);
    assert.equal(getExcepthook(), hook);
    setExcepthook(undefined);
    assert.equal(getExcepthook(), excepthook);
    assert.throws(() => setExcepthook('print' as never), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  });
});

describe('threading: lifetime', function () {
  this.timeout(30000);

  it('a daemon thread does not keep the process alive, and ends with it', async () => {
    const out = await runNode('threading-exit.js', ['daemon'], { timeoutMs: 15000 });
    assert.deepEqual([out.code, out.signal, out.stdout], [0, null, 'main done\n']);
  });

  it('a non-daemon thread keeps the process alive until it ends', async () => {
    const out = await runNode('threading-exit.js', ['non-daemon']);
    assert.deepEqual([out.code, out.stdout], [0, 'main done\nthread done\n']);
  });
});

describe('threading: Timer', function () {
  this.timeout(30000);

  it('runs its target after the interval', async () => {
    const words = new Int32Array(new SharedArrayBuffer(4));
    const timer = new Timer(100, (w: Int32Array) => Atomics.store(w, 0, 1), [words]);
    assert.equal(timer.interval, 100);
    const before = performance.now();
    timer.start();
    await timer.join();
    assert.ok(performance.now() - before >= 95);
    assert.equal(words[0], 1);
  });

  it('cancel() while waiting ends it at once without running the target; before start() too', async () => {
    const words = new Int32Array(new SharedArrayBuffer(4));
    const timer = new Timer(60000, (w: Int32Array) => Atomics.store(w, 0, 1), [words]);
    timer.start();
    await new Promise((r) => setTimeout(r, 50));
    timer.cancel();
    await timer.join(15000);
    assert.equal(timer.isAlive(), false);
    assert.equal(words[0], 0);
    const early = new Timer(60000, (w: Int32Array) => Atomics.store(w, 0, 2), [words]);
    early.cancel();
    early.start();
    await early.join(15000);
    assert.equal(early.isAlive(), false);
    assert.equal(words[0], 0);
  });

  it('refuses a bad interval or target', () => {
    assert.throws(() => new Timer('1' as never, () => {}), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => new Timer(-1, () => {}), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => new Timer(Infinity, () => {}), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => new Timer(1, 42 as never), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
  });
});

describe('threading: bad input', () => {
  it('a target that reads an outer variable is refused at start(), naming it', () => {
    const secret = 42;
    const t = new Thread({ target: () => secret + 1 });
    assert.throws(() => t.start(), { name: 'TypeError', code: 'ERR_FORKWISE_NOT_SELF_CONTAINED', message: /reads 'secret'.*self-contained/ });
    assert.equal(t.isAlive(), false);
    assert.throws(() => new Thread({ target: Math.max }).start(), { code: 'ERR_FORKWISE_NOT_SELF_CONTAINED' });
  });

  it('an argument that cannot cross is refused at start(), naming its path', () => {
    const t = new Thread({ target: () => {}, args: [1, { fn: () => {} }] });
    assert.throws(() => t.start(), { name: 'TypeError', code: 'ERR_FORKWISE_NOT_CLONEABLE', message: /args\[1\]\.fn/ });
  });

  it('options of the wrong type', () => {
    assert.throws(() => new Thread(42 as never), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => new Thread({ target: 42 as never }), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => new Thread({ args: 'x' as never }), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => new Thread({ name: 1 as never }), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => new Thread({ daemon: 'yes' as never }), { code: 'ERR_INVALID_ARG_TYPE' });
  });

  it('start twice, join before start, join of the current thread, daemon after start, bad timeouts', async () => {
    const t = new Thread({ target: () => {} });
    await assert.rejects(t.join(), { code: 'ERR_FORKWISE_THREAD_NOT_STARTED' });
    assert.throws(() => t.joinSync(), { code: 'ERR_FORKWISE_THREAD_NOT_STARTED' });
    t.start();
    assert.throws(() => t.start(), { code: 'ERR_FORKWISE_THREAD_STARTED' });
    assert.throws(() => (t.daemon = true), { code: 'ERR_FORKWISE_THREAD_STARTED' });
    await assert.rejects(t.join(-1), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => t.joinSync(NaN), { code: 'ERR_INVALID_ARG_VALUE' });
    await assert.rejects(currentThread().join(), { code: 'ERR_FORKWISE_JOIN_SELF' });
    await t.join();
    const words = new Int32Array(new SharedArrayBuffer(4));
    const other = await started({
      target: (words: Int32Array) => {
        try {
          require('forkwise/threading').mainThread().joinSync();
        } catch (error) {
          Atomics.store(words, 0, (error as { code?: string }).code === 'ERR_FORKWISE_JOIN_FOREIGN' ? 1 : 2);
        }
      },
      args: [words],
    });
    await other.join();
    assert.equal(words[0], 1);
    const d = new Thread();
    d.daemon = true;
    assert.equal(d.daemon, true);
  });
});
