import assert from 'node:assert/strict';
import { PriorityQueue, LifoQueue, Queue, SimpleQueue, Thread, QueueEmpty, QueueFull } from 'forkwise/threading';
import { serialize, deserialize } from 'forkwise/multiprocessing';
import { Children } from './sync-helpers';

describe('threading: the queue classes', function () {
  this.timeout(30000);
  const children = new Children();
  afterEach(() => children.cleanup());

  it('PriorityQueue: lowest priority first, ties in insertion order (1,000 random entries)', () => {
    const queue = new PriorityQueue<[number, number]>();
    const entries: [number, number][] = Array.from({ length: 1000 }, (_, i) => [Math.floor(Math.random() * 10) - 5, i]);
    for (const entry of entries) queue.putSync(entry);
    assert.equal(queue.qsize(), 1000);
    const expected = [...entries].sort((a, b) => a[0] - b[0]); // a stable sort: ties keep their order
    const got: [number, number][] = [];
    while (!queue.empty()) got.push(queue.getNowait());
    assert.deepEqual(got, expected);
    assert.equal(queue.unfinished(), 1000);
    queue.close();
  });

  it('LifoQueue: the last put is the first got; -Infinity and Infinity are priorities like others', () => {
    const stack = new LifoQueue<string>();
    for (const s of ['a', 'b', 'c']) stack.putSync(s);
    assert.deepEqual([stack.getSync(), stack.getSync(), stack.getSync()], ['c', 'b', 'a']);
    stack.close();
    const queue = new PriorityQueue<[number, string]>();
    queue.putSync([Infinity, 'last']);
    queue.putSync([-Infinity, 'first']);
    queue.putSync([0, 'middle']);
    assert.deepEqual([queue.getSync()[1], queue.getSync()[1], queue.getSync()[1]], ['first', 'middle', 'last']);
    queue.close();
  });

  it('maxsize: putNowait and a timed-out put throw QueueFull; an empty get QueueEmpty', async () => {
    const queue = new LifoQueue<number>({ maxsize: 2 });
    queue.putSync(1);
    await queue.put(2);
    assert.equal(queue.full(), true);
    assert.throws(() => queue.putNowait(3), (e: unknown) => e instanceof QueueFull && (e as QueueFull).code === 'ERR_QUEUE_FULL');
    assert.throws(() => queue.putSync(3, { timeout: 20 }), QueueFull);
    await assert.rejects(queue.put(3, { timeout: 20 }), QueueFull);
    assert.equal(queue.getSync(), 2);
    assert.equal(queue.getSync(), 1);
    assert.throws(() => queue.getNowait(), (e: unknown) => e instanceof QueueEmpty && (e as QueueEmpty).code === 'ERR_QUEUE_EMPTY');
    const before = performance.now();
    await assert.rejects(queue.get({ timeout: 50 }), QueueEmpty);
    assert.ok(performance.now() - before >= 45);
    queue.close();
  });

  it('taskDone() and join(), joinSync(timeout); one taskDone() too many throws', async () => {
    const queue = new PriorityQueue<[number, string]>();
    queue.putSync([1, 'a']);
    queue.putSync([2, 'b']);
    queue.getSync();
    queue.getSync();
    assert.equal(queue.joinSync(20), false);
    let joined = false;
    const join = queue.join().then(() => (joined = true));
    queue.taskDone();
    await new Promise((r) => setTimeout(r, 20));
    assert.equal(joined, false);
    queue.taskDone();
    await join;
    assert.equal(queue.joinSync(0), true);
    assert.throws(() => queue.taskDone(), { code: 'ERR_QUEUE_TASK_DONE_TOO_MANY' });
    queue.close();
  });

  it('a small arena is reused and packed without corrupting items', () => {
    const queue = new PriorityQueue<[number, string]>({ capacity: 4096 });
    const live = new Map<number, string>();
    let next = 0;
    for (let round = 0; round < 300; round++) {
      while (queue.qsize() < 20) {
        const text = `${next}:`.padEnd(20 + ((next * 37) % 150), 'x');
        live.set(next, text);
        queue.putNowait([next, text]);
        next++;
      }
      for (let i = 0; i < 7; i++) {
        const [n, text] = queue.getNowait();
        assert.equal(text, live.get(n));
        live.delete(n);
      }
    }
    assert.throws(() => queue.putSync([0, 'x'.repeat(5000)]), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
    queue.close();
  });

  it('between threads: producer threads block on a full queue while the main thread awaits get()', async () => {
    const queue = new PriorityQueue<[number, number]>({ maxsize: 4 });
    const produce = (queue: PriorityQueue<[number, number]>, base: number) => {
      for (let i = 0; i < 200; i++) queue.putSync([i % 5, base + i]);
    };
    const threads = [0, 1000].map((base) => new Thread({ target: produce, args: [queue, base] }));
    for (const t of threads) t.start();
    const got = new Set<number>();
    for (let i = 0; i < 400; i++) {
      const [, n] = await queue.get({ timeout: 15000 });
      got.add(n);
      queue.taskDone();
    }
    await queue.join();
    for (const t of threads) await t.join();
    assert.equal(got.size, 400);
    assert.deepEqual(threads.map((t) => t.error), [undefined, undefined]);
    queue.close();
  });

  it('a consumer thread blocks in getSync() and calls taskDone(); the main thread awaits join()', async () => {
    const queue = new LifoQueue<number | null>();
    const sums = new Float64Array(new SharedArrayBuffer(8));
    const t = new Thread({
      target: (queue: LifoQueue<number | null>, sums: Float64Array) => {
        for (;;) {
          const n = queue.getSync();
          if (n !== null) sums[0]! += n;
          queue.taskDone();
          if (n === null) return;
        }
      },
      args: [queue, sums],
    });
    t.start();
    for (let i = 1; i <= 100; i++) await queue.put(i);
    await queue.join();
    assert.equal(sums[0], 5050);
    await queue.put(null);
    await t.join();
    assert.equal(t.error, undefined);
    queue.close();
  });

  it('between processes: a forked child puts, the parent gets in priority order', async () => {
    const queue = new PriorityQueue<[number, string]>();
    const pid = children.fork(() => {
      for (const [p, s] of [[3, 'c'], [1, 'a'], [2, 'b']] as [number, string][]) queue.putSync([p, s]);
    });
    await children.ok(pid);
    assert.deepEqual([queue.getSync()[1], queue.getSync()[1], queue.getSync()[1]], ['a', 'b', 'c']);
    queue.close();
  });

  it('crosses by handle inside a message, as the same queue', () => {
    const queue = new LifoQueue<string>();
    const copy = deserialize(serialize({ queue }, 'message')) as { queue: LifoQueue<string> };
    assert.ok(copy.queue instanceof LifoQueue);
    copy.queue.putSync('through the copy');
    assert.equal(queue.getSync(), 'through the copy');
    copy.queue.close();
    queue.close();
    assert.throws(() => PriorityQueue.fromHandle(copy.queue.handle as never), { code: 'ERR_INVALID_ARG_VALUE' });
  });

  it('Queue is FIFO with taskDone()/join() and maxsize; SimpleQueue is unbounded', async () => {
    const queue = new Queue<number>({ maxsize: 2 });
    queue.putSync(1);
    queue.putSync(2);
    assert.throws(() => queue.putNowait(3), QueueFull);
    assert.deepEqual([queue.getSync(), queue.getSync()], [1, 2]);
    queue.taskDone();
    queue.taskDone();
    await queue.join();
    assert.throws(() => queue.taskDone(), { code: 'ERR_QUEUE_TASK_DONE_TOO_MANY' });
    queue.close();
    const simple = new SimpleQueue<string>();
    simple.putSync('x');
    assert.equal(await simple.get(), 'x');
    simple.close();
  });

  it('bad input: entries, options, a closed queue', async () => {
    const queue = new PriorityQueue();
    assert.throws(() => queue.putSync('x' as never), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => queue.putSync([NaN, 1] as never), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => queue.putSync(['1', 1] as never), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => queue.putSync([1, () => {}] as never), { code: 'ERR_FORKWISE_NOT_CLONEABLE', message: /item\[1\]/ });
    assert.throws(() => queue.getSync({ block: 'no' as never }), { code: 'ERR_INVALID_ARG_TYPE' });
    await assert.rejects(queue.get({ timeout: -1 }), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => new LifoQueue({ maxsize: -1 }), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => new LifoQueue({ capacity: 1.5 }), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => new LifoQueue(7 as never), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => LifoQueue.fromHandle({ kind: 'LifoQueue', name: '../etc' } as never), { code: 'ERR_INVALID_ARG_VALUE' });
    queue.close();
    assert.throws(() => queue.getSync(), { code: 'ERR_FORKWISE_CLOSED' });
    await assert.rejects(queue.put([1, 1]), { code: 'ERR_FORKWISE_CLOSED' });
  });
});
