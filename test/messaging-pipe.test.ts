import assert from 'node:assert/strict';
import { join } from 'node:path';
import { _exit, fork, kill, waitpid } from 'forkwise';
import { Connection, EOFError, Pipe, deserialize, serialize } from 'forkwise/multiprocessing';
import { Mutex, SharedArray } from 'forkwise/sync';
import { runNode } from './helpers';
import { Children, codeOf, runWorker, sleep, sleepSync, until } from './sync-helpers';

const multiprocessingPath = join(__dirname, '..', 'dist', 'multiprocessing', 'index.js');

function base64(value: unknown): string {
  return serialize(value).toString('base64');
}

async function rejectsWith(promise: Promise<unknown>, code: string, ms = 5000): Promise<void> {
  const timer = sleep(ms).then(() => 'hang');
  const outcome = await Promise.race([promise.then(() => 'resolved', (e: unknown) => e), timer]);
  assert.notEqual(outcome, 'hang', `no answer within ${ms} ms`);
  assert.equal(codeOf(outcome), code, `expected ${code}, got ${String(outcome)}`);
}

describe('messaging: Pipe and Connection', function () {
  this.timeout(30000);
  const children = new Children();
  const open: Connection[] = [];
  afterEach(() => {
    children.cleanup();
    for (const c of open.splice(0)) c.close();
  });
  function pipe(duplex = true): [Connection, Connection] {
    const ends = Pipe({ duplex });
    open.push(...ends);
    return ends;
  }

  it('an end serialized once and attached twice counts both copies: EOF only once all are closed', () => {
    const [a, b] = pipe();
    const bytes = serialize(b);
    const copies = [deserialize(bytes) as Connection, deserialize(bytes) as Connection];
    open.push(...copies);
    b.close();
    copies[0]!.close();
    assert.equal(a.pollSync(0), false, 'EOF while a copy is open');
    copies[1]!.send('still here');
    assert.equal(a.recvSync(1000), 'still here');
    copies[1]!.close();
    assert.throws(() => a.recvSync(1000), EOFError);
  });

  it('carries values both ways in one process, asynchronously and blocking', async function () {
    const [a, b] = pipe();
    a.send({ hello: 'world', n: [1, 2] });
    assert.deepEqual(await b.recv(), { hello: 'world', n: [1, 2] });
    b.send('x'.repeat(5000));
    assert.equal(a.recvSync(), 'x'.repeat(5000));
    a.sendBytes(Buffer.from('raw bytes'));
    assert.equal((await b.recvBytes()).toString(), 'raw bytes');
    a.sendBytes(new Uint16Array([1, 2, 3]), 2, 2);
    assert.deepEqual([...b.recvBytesSync()], [2, 0]);
    a.sendBytes(Buffer.alloc(0));
    assert.equal((await b.recvBytes()).length, 0);
    // Order is kept, and recv() calls queue in order.
    for (let i = 0; i < 100; i++) a.send(i);
    const got = await Promise.all(Array.from({ length: 100 }, () => b.recv()));
    assert.deepEqual(got, Array.from({ length: 100 }, (_, i) => i));
  });

  it('poll, pollSync and recvSync time out; recv waits with the loop running', async function () {
    const [a, b] = pipe();
    assert.equal(await b.poll(), false);
    assert.equal(await b.poll(30), false);
    assert.equal(b.pollSync(20), false);
    assert.throws(() => b.recvSync(20), { code: 'ERR_TIMEOUT', name: 'TimeoutError' });
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    const pending = b.recv();
    setTimeout(() => a.send('late'), 80);
    assert.equal(await pending, 'late');
    clearInterval(timer);
    assert.ok(ticks >= 5, `the loop ran (${ticks} ticks)`);
    const polled = b.poll(5000);
    setTimeout(() => a.send(1), 20);
    assert.equal(await polled, true);
    assert.equal(b.recvSync(), 1);
  });

  it('duplex: false gives a receive-only and a send-only end', async function () {
    const [r, w] = pipe(false);
    assert.equal(r.readable && !r.writable, true);
    assert.equal(w.writable && !w.readable, true);
    w.send(42);
    assert.equal(await r.recv(), 42);
    assert.throws(() => r.send(1), TypeError);
    assert.throws(() => w.recvSync(), TypeError);
    await assert.rejects(w.recv(), TypeError);
  });

  it('a closed end gives EOFError to the other, after what was sent before; close is idempotent', async function () {
    const [a, b] = pipe();
    a.send('last words');
    a.close();
    a.close();
    assert.equal(a.closed, true);
    assert.equal(await b.recv(), 'last words');
    await rejectsWith(b.recv(), 'ERR_EOF');
    assert.throws(() => b.recvSync(), EOFError);
    assert.throws(() => b.send(1), { code: 'ERR_EOF' });
    assert.equal(await b.poll(), true, 'EOF is ready to read');
    assert.throws(() => a.send(1), { code: 'ERR_FORKWISE_CLOSED' });
    await rejectsWith(a.recv(), 'ERR_FORKWISE_CLOSED');
    // A recv pending when its own end closes rejects.
    const [c, d] = pipe();
    const pending = d.recv();
    d.close();
    await rejectsWith(pending, 'ERR_FORKWISE_CLOSED');
    assert.equal(c.closed, false);
  });

  it('async iteration yields until EOF', async function () {
    const [a, b] = pipe();
    for (let i = 0; i < 5; i++) a.send(i);
    a.close();
    const got: unknown[] = [];
    for await (const v of b) got.push(v);
    assert.deepEqual(got, [0, 1, 2, 3, 4]);
  });

  it('talks to a forked child both ways; the child sees EOF when the parent closes', async function () {
    const [parent, child] = pipe();
    const pid = children.fork(() => {
      parent.close();
      for (;;) {
        let m: unknown;
        try {
          m = child.recvSync(10000);
        } catch (e) {
          return codeOf(e) === 'ERR_EOF' ? 0 : 3;
        }
        child.send({ back: m, pid: process.pid });
      }
    });
    child.close();
    for (let i = 0; i < 50; i++) {
      parent.send(i);
      assert.deepEqual(await parent.recv(), { back: i, pid });
    }
    parent.close();
    await children.ok(pid);
  });

  it('a recv() pending at fork() goes on in the child, on a watcher of its own', async function () {
    const [a, b] = pipe();
    const pending = a.recv();
    const pid = fork();
    if (pid === 0) {
      // The inherited pending recv is this child's too: its wait goes on on a new watcher.
      const timer = setTimeout(() => _exit(5), 10000);
      pending.then(
        (v) => {
          clearTimeout(timer);
          _exit(v === 'm1' ? 1 : v === 'm2' ? 2 : 4);
        },
        () => _exit(6),
      );
      await new Promise(() => {}); // never back into mocha in the child: it ends above
    }
    children.track(pid);
    // One reader per end: the parent lets go of its own (its pending recv rejects).
    a.close();
    await rejectsWith(pending, 'ERR_FORKWISE_CLOSED');
    await sleep(50);
    b.send('m1');
    const theirs = await children.wait(pid);
    assert.deepEqual([theirs.kind, theirs.kind === 'exited' && theirs.exitCode], ['exited', 1]);
  });

  it('EOFError when the peer is SIGKILLed, also in the middle of a message, and when it is a zombie', async function () {
    // Killed while idle, parent waiting in recv().
    {
      const [a, b] = pipe();
      const pid = children.fork(() => {
        a.close();
        sleepSync(30000);
      });
      b.close();
      const pending = a.recv();
      await sleep(50);
      children.killAndReap(pid);
      await rejectsWith(pending, 'ERR_EOF', 3000);
    }
    // Killed in the middle of a message larger than the ring: the torn message is dropped.
    {
      const [a, b] = pipe();
      const pid = children.fork(() => {
        a.close();
        b.sendBytes(Buffer.alloc(5 << 20, 1)); // blocks: nobody reads past the first MiB
        return 3;
      });
      b.close();
      await until(() => a.pollSync(0), 5000, 'the first chunk');
      children.killAndReap(pid);
      await rejectsWith(a.recvBytes(), 'ERR_EOF', 3000);
    }
    // A zombie (exited, not reaped) counts as dead; blocking form.
    {
      const [a, b] = pipe();
      const pid = fork();
      if (pid === 0) {
        a.close();
        _exit(0);
      }
      children.track(pid);
      b.close();
      await sleep(50); // it is a zombie now
      const started = Date.now();
      assert.throws(() => a.recvSync(5000), { code: 'ERR_EOF' });
      assert.ok(Date.now() - started < 2000);
      assert.equal(waitpid(pid)?.kind, 'exited');
    }
    // A writer blocked on a full ring sees its reader die.
    {
      const [a, b] = pipe();
      const pid = children.fork(() => {
        b.close();
        sleepSync(200);
        kill(process.pid, 'SIGKILL'); // while the parent is blocked in sendBytes
      });
      a.close();
      assert.throws(() => b.sendBytes(Buffer.alloc(3 << 20)), { code: 'ERR_EOF' });
      children.killAndReap(pid);
    }
  });

  it('sendBytesAsync writes past a full ring without blocking the loop, in order; a blocking send meanwhile is refused; trySendBytes never waits', async function () {
    const [a, b] = pipe();
    const pid = children.fork(() => {
      a.close();
      sleepSync(300); // reads nothing for a while: the ring fills
      const sizes: number[] = [];
      for (let i = 0; i < 3; i++) {
        const bytes = b.recvBytesSync(10000);
        if (!bytes.every((x) => x === i + 1)) return 20 + i;
        sizes.push(bytes.length);
      }
      return sizes.join() === `${3 << 20},10,${2 << 20}` ? 0 : 30;
    });
    b.close();
    let ticks = 0;
    const timer = setInterval(() => ticks++, 10);
    const sends = [a.sendBytesAsync(Buffer.alloc(3 << 20, 1)), a.sendBytesAsync(Buffer.alloc(10, 2)), a.sendBytesAsync(Buffer.alloc(2 << 20, 3))];
    assert.throws(() => a.send('overtaking'), { code: 'ERR_FORKWISE_CONNECTION_BUSY' });
    assert.equal(a.trySendBytes(Buffer.from('overtaking')), false);
    await Promise.all(sends);
    clearInterval(timer);
    assert.ok(ticks >= 10, `the loop ran while the peer did not read (${ticks} ticks)`);
    try {
      a.send('after'); // allowed again (or EOF, if the child has already gone)
    } catch (error) {
      assert.equal(codeOf(error), 'ERR_EOF');
    }
    await children.ok(pid);
    // Room enough: written at once.
    const [c, d] = pipe();
    await c.sendBytesAsync(Buffer.from('now'));
    assert.equal(d.recvBytesSync(0).toString(), 'now');
    // trySendBytes: all of it now, or nothing.
    assert.equal(c.trySendBytes(Buffer.from('fits')), true);
    assert.equal(c.trySendBytes(Buffer.alloc(2 << 20)), false);
    assert.equal(d.recvBytesSync(0).toString(), 'fits');
    assert.equal(d.pollSync(0), false);
    // A reader that dies: the pending send rejects with EOFError.
    const [e, f] = pipe();
    const reader = children.fork(() => {
      e.close();
      sleepSync(30000);
    });
    f.close();
    const pending = e.sendBytesAsync(Buffer.alloc(3 << 20));
    await sleep(100);
    children.killAndReap(reader);
    await rejectsWith(pending, 'ERR_EOF', 3000);
  });

  it('tryRecvBytes returns a message only once all of it is there, never waits, and throws EOFError at the end', async function () {
    const [a, b] = pipe();
    assert.equal(b.tryRecvBytes(), null);
    a.sendBytes(Buffer.from('one'));
    assert.equal(b.tryRecvBytes()?.toString(), 'one');
    assert.equal(b.tryRecvBytes(), null);
    // 3 MB through a 1 MB ring: taken piece by piece as the writer (a child) goes on.
    const pid = children.fork(() => {
      b.close();
      a.sendBytes(Buffer.alloc(3 << 20, 7));
      return 0;
    });
    a.close();
    let message: Buffer | null = null;
    let nulls = 0;
    const deadline = Date.now() + 10000;
    while (!message && Date.now() < deadline) {
      message = b.tryRecvBytes();
      if (!message) nulls++;
      if (!message) await sleep(1);
    }
    assert.equal(message?.length, 3 << 20);
    assert.ok(message!.every((x) => x === 7));
    assert.ok(nulls > 0);
    await children.ok(pid);
    // The writer's death is seen within a slice (it ended without closing its end).
    let eof: unknown;
    while (!eof && Date.now() < deadline) {
      try {
        assert.equal(b.tryRecvBytes(), null);
        await sleep(5);
      } catch (error) {
        eof = error;
      }
    }
    assert.equal(codeOf(eof), 'ERR_EOF');
    b.close();
    assert.throws(() => b.tryRecvBytes(), { code: 'ERR_FORKWISE_CLOSED' });
  });

  it('what an exited child sent is still read after it is gone', async function () {
    const [a, b] = pipe();
    const pid = children.fork(() => {
      a.close();
      for (let i = 0; i < 100; i++) b.send({ i });
      b.sendBytes(Buffer.alloc(200000, 3));
      process.exit(0); // the 'exit' path releases the end at once
    });
    b.close();
    await children.ok(pid);
    for (let i = 0; i < 100; i++) assert.deepEqual(await a.recv(), { i });
    const bytes = a.recvBytesSync();
    assert.equal(bytes.length, 200000);
    assert.ok(bytes.every((x) => x === 3));
    assert.throws(() => a.recvSync(), { code: 'ERR_EOF' });
  });

  it('values of every serializer path arrive intact when sent in a burst, before any is read', async function () {
    // Small (V8's serializer into the reused scratch), larger than the scratch, holding typed
    // arrays (node:v8's serializer), deeper than the shallow walk, cyclic, with a lock.
    const deep = (n: number): unknown => (n === 0 ? 'bottom' : { n, next: deep(n - 1) });
    const cyclic: { self?: unknown; k: number } = { k: 7 };
    cyclic.self = cyclic;
    const values = (lock: Mutex): unknown[] => [
      { i: 1, s: 'x'.repeat(1000) },
      { big: 'y'.repeat(200_000), n: [1, 2, 3] },
      { bytes: new Uint16Array([1, 2, 65535]), view: new DataView(new ArrayBuffer(4)), buf: Buffer.from('abc') },
      deep(100),
      cyclic,
      new Map<unknown, unknown>([[1, new Set(['a'])], ['lock', lock]]),
      123n,
    ];
    const [a, b] = pipe();
    const lock = new Mutex();
    const pid = children.fork(() => {
      a.close();
      const got: unknown[] = [];
      for (let i = 0; i < 7; i++) got.push(b.recvSync(10000));
      for (const value of got) b.send(value); // a burst back
      return 0;
    });
    b.close();
    const sent = values(lock);
    for (const value of sent) a.send(value);
    const back: unknown[] = [];
    for (let i = 0; i < 7; i++) back.push(await a.recv());
    const map = back[5] as Map<unknown, unknown>;
    assert.ok(map.get('lock') instanceof Mutex);
    assert.deepEqual((map.get('lock') as Mutex).handle, lock.handle);
    map.set('lock', lock);
    const again = back[4] as { self: unknown; k: number };
    assert.equal(again.self, again);
    assert.ok(Buffer.isBuffer((back[2] as { buf: unknown }).buf));
    assert.deepEqual(back, sent);
    await children.ok(pid);
  });

  for (const watcher of ['io_uring', 'thread']) {
    it(`the event loop sleeps until a forked child's messages and EOF come (${watcher})`, async function () {
      const env = { ...process.env, FORKWISE_FUTEX_THREAD: watcher === 'thread' ? '1' : '0' };
      const outcome = await runNode('messaging-peer.js', ['loop-waits'], { env });
      assert.equal(outcome.stderr, '');
      assert.equal(outcome.code, 0);
      assert.equal(outcome.stdout, 'got 0,1,2\n');
    });
  }

  it('a 200 MB message goes both ways without deadlock', async function () {
    this.timeout(120000);
    const [a, b] = pipe();
    const size = 200 * 1024 * 1024;
    const pid = children.fork(() => {
      a.close();
      const got = b.recvBytesSync();
      if (got.length !== size || got[0] !== 1 || got[size - 1] !== 2 || got[size >> 1] !== 3) return 3;
      got[0] = 4;
      b.sendBytes(got);
      return 0;
    });
    b.close();
    const message = Buffer.alloc(size, 3);
    message[0] = 1;
    message[size - 1] = 2;
    a.sendBytes(message);
    const back = await a.recvBytes();
    assert.equal(back.length, size);
    assert.equal(back[0], 4);
    assert.equal(back[size - 1], 2);
    await children.ok(pid, 60000);
  });

  it('crosses by handle inside messages: to a forked child, a spawned node, a worker thread', async function () {
    // In a message over another pipe, with a lock beside it.
    const [a, b] = pipe();
    const [c, d] = pipe();
    const lock = new Mutex();
    a.send({ conn: c, lock });
    const { conn, lock: lock2 } = (await b.recv()) as { conn: Connection; lock: Mutex };
    open.push(conn);
    assert.ok(conn instanceof Connection && lock2 instanceof Mutex);
    conn.send('through the copy');
    assert.equal(await d.recv(), 'through the copy');

    // A spawned node process echoes until EOF.
    const [mine, theirs] = pipe();
    const run = runNode('messaging-peer.js', ['conn-echo', base64({ conn: theirs })]);
    assert.equal(await mine.recv(), 'ready');
    theirs.close(); // it holds its own now
    for (let i = 0; i < 10; i++) {
      mine.send(i);
      const reply = (await mine.recv()) as { echo: number };
      assert.equal(reply.echo, i);
    }
    mine.close();
    const outcome = await run;
    assert.equal(outcome.code, 0, outcome.stderr);
    assert.equal(outcome.stdout.trim(), 'echoed 10');

    // A worker thread.
    const [w1, w2] = pipe();
    const result = runWorker<number>(
      `const m = require(workerData.path);
       const conn = m.deserialize(Buffer.from(workerData.bytes));
       let sum = 0;
       for (;;) { const v = await conn.recv(); if (v === 'end') break; sum += v; }
       conn.send(sum);
       return sum;`,
      { path: multiprocessingPath, bytes: serialize(w2) },
    );
    for (let i = 1; i <= 10; i++) w1.send(i);
    w1.send('end');
    assert.equal(await result, 55);
    assert.equal(await w1.recv(), 55);
  });

  it('carries forkwise objects in messages to a forked child, which uses them', async function () {
    const [a, b] = pipe();
    const counter = new SharedArray('int32', 1);
    const pid = children.fork(() => {
      a.close();
      const { arr, lock } = b.recvSync(5000) as { arr: Int32Array; lock: Mutex };
      if (!arr) return 3;
      lock.acquire();
      arr[0] = 99;
      lock.release();
      b.send('done');
    });
    b.close();
    a.send({ arr: counter, lock: new Mutex() });
    assert.equal(await a.recv(), 'done');
    assert.equal(counter[0], 99);
    await children.ok(pid);
  });

  it('refuses bad input with clear errors', async function () {
    assert.throws(() => Pipe({ duplex: 'yes' as never }), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => Pipe(5 as never), { code: 'ERR_INVALID_ARG_TYPE' });
    const [a, b] = pipe();
    assert.throws(() => a.send({ f: () => 1 }), { code: 'ERR_FORKWISE_NOT_CLONEABLE', message: /value\.f/ });
    assert.throws(() => a.sendBytes('text' as never), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => a.sendBytes(Buffer.alloc(4), 5), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => a.sendBytes(Buffer.alloc(4), 1, 4), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => b.recvSync(-1), { code: 'ERR_OUT_OF_RANGE' });
    assert.throws(() => b.recvSync('1' as never), { code: 'ERR_INVALID_ARG_TYPE' });
    await assert.rejects(b.poll(-5), { code: 'ERR_OUT_OF_RANGE' });
    // Forged handles.
    assert.throws(() => Connection.fromHandle(null as never), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => Connection.fromHandle({ ...a.handle, kind: 'Queue' } as never), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => Connection.fromHandle({ ...a.handle, end: 2 } as never), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => Connection.fromHandle({ ...a.handle, name: 'a/b' }), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => Connection.fromHandle({ ...a.handle, name: 'forkwise-no-such' }), { code: 'ENOENT' });
    const lock = new Mutex();
    assert.throws(() => Connection.fromHandle({ ...a.handle, name: lock.handle.name }), { code: 'ERR_INVALID_ARG_VALUE' });
    // Nothing was sent by the failed calls.
    assert.equal(b.pollSync(0), false);
  });
});
