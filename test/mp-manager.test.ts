import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Connection, Manager, Pipe, Process, SharedMemory, stopForkserver, DictProxy, type StartMethod } from 'forkwise/multiprocessing';
import { Thread } from 'forkwise/threading';
import { fixtures, orphanedSegments, runNode } from './helpers';
import { checkManagerObjects, managerObjects } from './manager-objects';

const tasks = join(fixtures, 'manager-tasks.js');
const ref = (name: string) => ({ module: tasks, name });

async function waitGone(pid: number, ms = 10000): Promise<boolean> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    if (!existsSync(`/proc/${pid}`) || readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z ')) return true;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return false;
}

// Whether a Unix socket named `address` (a path, or an abstract name: a leading NUL) exists.
function unixSocketExists(address: string): boolean {
  if (!address.startsWith('\0')) return existsSync(address);
  return readFileSync('/proc/net/unix', 'utf8').includes(`@${address.slice(1)}`);
}

// A raw client of the wire, for what a hostile or broken peer sends.
class RawPeer {
  readonly socket: Socket;
  #data = Buffer.alloc(0);
  #closed = false;
  #waiters: Array<() => void> = [];

  constructor(address: string | { host: string; port: number }) {
    this.socket = typeof address === 'string' ? connect(address) : connect(address.port, address.host);
    this.socket.on('data', (chunk: Buffer) => {
      this.#data = Buffer.concat([this.#data, chunk]);
      this.#wake();
    });
    this.socket.on('error', () => undefined);
    this.socket.on('close', () => {
      this.#closed = true;
      this.#wake();
    });
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w();
  }

  /** The next frame's body, or null once the server closed the connection. */
  async frame(): Promise<Buffer | null> {
    for (;;) {
      if (this.#data.length >= 4) {
        const size = this.#data.readUInt32LE(0);
        if (this.#data.length >= 4 + size) {
          const body = this.#data.subarray(4, 4 + size);
          this.#data = this.#data.subarray(4 + size);
          return body;
        }
      }
      if (this.#closed) return null;
      await new Promise<void>((resolve) => this.#waiters.push(resolve));
    }
  }

  closed(): Promise<boolean> {
    return new Promise((resolve) => {
      if (this.#closed) resolve(true);
      else this.socket.once('close', () => resolve(true));
    });
  }

  send(bytes: Buffer): void {
    this.socket.write(bytes);
  }

  /** Completes the handshake with `authkey`, as the protocol says. */
  async authenticate(authkey: string): Promise<void> {
    const challenge = await this.frame();
    const nonce = challenge!.subarray(4);
    const mac = createHmac('sha256', authkey).update('forkwise-manager client:').update(nonce).digest();
    this.send(blobFrame(Buffer.concat([mac, Buffer.alloc(32, 7)])));
    const proof = await this.frame();
    assert.ok(proof && proof.length === 36, 'the server proved its key');
  }
}

function blobFrame(blob: Buffer): Buffer {
  const out = Buffer.alloc(8 + blob.length);
  out.writeUInt32LE(4 + blob.length, 0);
  out.writeUInt32LE(blob.length, 4);
  blob.copy(out, 8);
  return out;
}

// How many distinct segments named `prefix`… process `pid` maps.
function serverSegmentsMapped(pid: number, prefix: string): number {
  const names = readFileSync(`/proc/${pid}/maps`, 'utf8')
    .split('\n')
    .map((line) => /\/dev\/shm\/(\S+)/.exec(line)?.[1])
    .filter((name): name is string => name !== undefined && name.startsWith(prefix));
  return new Set(names).size;
}

function rawFrame(body: Buffer): Buffer {
  const head = Buffer.alloc(4);
  head.writeUInt32LE(body.length, 0);
  return Buffer.concat([head, body]);
}

describe('multiprocessing: Manager', function () {
  this.timeout(60000);

  after(() => stopForkserver());

  for (const transport of ['socket', 'pipe'] as const) {
    describe(`every kind of object, through a forked child, a spawned child and a thread (transport: ${transport})`, () => {
      let manager: Manager;
      before(async () => {
        manager = await Manager.start({ transport });
      });
      after(() => manager.shutdown());

      for (const where of ['fork', 'spawn', 'thread'] as const) {
        it(`works in a ${where === 'thread' ? 'worker thread' : `${where}ed child`}`, async () => {
          const o = await managerObjects(manager);
          let run: Promise<void>;
          let exitCode: () => unknown;
          if (where === 'thread') {
            const t = new Thread({ target: ref('useAll'), args: [o, where] });
            t.start();
            run = t.join();
            exitCode = () => t.error ?? 0;
          } else {
            const p = new Process({ target: ref('useAll'), args: [o, where], startMethod: where as StartMethod });
            p.start();
            run = p.join();
            exitCode = () => p.exitCode;
          }
          const [arrival] = await Promise.all([o.barrier.wait(20000), run]);
          assert.equal(exitCode(), 0);
          assert.equal(typeof arrival, 'number');
          await checkManagerObjects(o, where);
        });
      }

      it('dict: the methods of a Map, each a Promise, with …Sync twins', async () => {
        const d = await manager.dict(new Map<unknown, unknown>([[1, 'one'], ['1', 'string one']]));
        assert.equal(await d.get(1), 'one');
        assert.equal(await d.get('1'), 'string one');
        assert.equal(await d.get('missing'), undefined);
        assert.equal(await d.get('missing', 'fallback'), 'fallback');
        await d.set(2n, new Map([['nested', new Date(0)]]));
        assert.deepEqual(await d.get(2n), new Map([['nested', new Date(0)]]));
        await d.set(null, 'null key');
        await d.set(true, 'true key');
        assert.equal(await d.has(null), true);
        assert.equal(d.hasSync(false), false);
        assert.equal(await d.size(), 5);
        assert.deepEqual(await d.keys(), [1, '1', 2n, null, true]);
        assert.equal(await d.delete(null), true);
        assert.equal(d.deleteSync(null), false);
        assert.equal(await d.pop(true), 'true key');
        assert.equal(await d.setdefault('x', 1), 1);
        assert.equal(d.setdefaultSync('x', 2), 1);
        await d.update({ a: 1, b: 2 });
        d.updateSync([['c', 3]]);
        assert.deepEqual(await d.values(), ['one', 'string one', new Map([['nested', new Date(0)]]), 1, 1, 2, 3]);
        assert.equal(d.sizeSync(), 7);
        const seen = [];
        for await (const [k] of d) seen.push(k);
        assert.equal(seen.length, 7);
        await d.clear();
        assert.deepEqual(d.entriesSync(), []);
      });

      it('list: the methods of an Array, each a Promise, with …Sync twins', async () => {
        const l = await manager.list(['a', 'b']);
        assert.equal(await l.push('c', 'd'), 4);
        assert.equal(await l.at(0), 'a');
        assert.equal(await l.at(-1), 'd');
        assert.equal(l.atSync(9), undefined);
        await l.set(1, 'B');
        assert.deepEqual(await l.slice(1, 3), ['B', 'c']);
        assert.equal(await l.pop(), 'd');
        assert.equal(await l.shift(), 'a');
        assert.equal(l.unshiftSync('z'), 3);
        assert.deepEqual(await l.splice(1, 1, 'x', 'y'), ['B']);
        assert.deepEqual(l.toArraySync(), ['z', 'x', 'y', 'c']);
        assert.equal(await l.length(), 4);
        await assert.rejects(l.set(4, 'out'), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
        assert.throws(() => l.setSync(-5, 'out'), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
        await l.clear();
        assert.equal(l.lengthSync(), 0);
      });

      it('a proxy or a lock stored in a dict or a list comes back working', async () => {
        const d = await manager.dict();
        const inner = await manager.dict({ deep: true });
        const l = await manager.list();
        const lock = await manager.Lock();
        await d.set('inner', inner);
        await d.set('lock', lock);
        await l.push(d);
        const dBack = (await l.at(0)) as DictProxy;
        assert.ok(dBack instanceof DictProxy);
        const innerBack = (await dBack.get('inner')) as DictProxy;
        assert.equal(await innerBack.get('deep'), true);
        await innerBack.set('written', 'through the copy');
        assert.equal(await inner.get('written'), 'through the copy');
        const lockBack = (await d.get('lock')) as typeof lock;
        await lockBack.acquire();
        assert.equal(lock.locked(), true);
        lock.releaseSync();
      });

      it('__proto__ and constructor are keys like any other', async () => {
        const d = await manager.dict(JSON.parse('{"__proto__": {"polluted": true}}'));
        await d.set('constructor', 'plain');
        assert.deepEqual(await d.get('__proto__'), { polluted: true });
        assert.equal(await d.get('constructor'), 'plain');
        const copy = await d.toJSON();
        assert.ok(Object.prototype.hasOwnProperty.call(copy, '__proto__'));
        assert.equal(Object.getPrototypeOf(copy), Object.prototype);
        assert.equal(({} as Record<string, unknown>).polluted, undefined);
        const ns = await manager.Namespace();
        await ns.set('__proto__', 1);
        await ns.set('constructor', 2);
        assert.deepEqual(await ns.keys(), ['__proto__', 'constructor']);
        assert.equal(await ns.get('__proto__'), 1);
        assert.equal(await d.has('toString'), false);
      });

      it('bad input is a clear error, and the manager goes on', async () => {
        const d = await manager.dict();
        await assert.rejects(d.set('f', () => 1), { name: 'TypeError', code: 'ERR_FORKWISE_NOT_CLONEABLE' });
        assert.throws(() => d.setSync('f', { deep: [Symbol('no')] }), { name: 'TypeError', code: 'ERR_FORKWISE_NOT_CLONEABLE', message: /value\.deep\[0\]/ });
        await assert.rejects(d.get({} as never), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
        await assert.rejects(d.update(5 as never), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
        const l = await manager.list();
        await assert.rejects(l.at(1.5), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
        await assert.rejects(manager.list(5 as never), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
        await assert.rejects(manager.Barrier('two' as never), { name: 'TypeError' });
        await assert.rejects(Manager.start({ address: 5 as never }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
        await assert.rejects(Manager.start({ authkey: '' }), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
        await assert.rejects(Manager.start({ startMethod: 'telepathy' as never }), { name: 'TypeError' });
        await d.set('still', 'works');
        assert.equal(d.getSync('still'), 'works');
      });

      // Fewer through the Pipe: its spinning is slow on a busy machine (README), and a test
      // must not outlast its timeout with forked children still running.
      const times = transport === 'pipe' ? 2000 : 10000;
      it(`8 processes × ${times.toLocaleString('en')} locked increments lose no update`, async function () {
        this.timeout(300000);
        const d = await manager.dict({ n: 0 });
        const lock = await manager.Lock();
        const workers = Array.from(
          { length: 8 },
          (_, i) => new Process({ target: ref('increment'), args: [d, lock, times, i % 2 === 0] }),
        );
        for (const p of workers) p.start();
        for (const p of workers) await p.join();
        assert.deepEqual(workers.map((p) => p.exitCode), Array(8).fill(0));
        assert.equal(await d.get('n'), 8 * times);
      });

      it('a client SIGKILLed in the middle of a call leaves the manager and the other clients working', async () => {
        const d = await manager.dict();
        const started = await manager.Event();
        const lock = await manager.Lock();
        const serverPid = manager.pid!;
        const pipesBefore = serverSegmentsMapped(serverPid, `forkwise-${serverPid}-`);
        const victim = new Process({ target: ref('hammer'), args: [d, started] });
        const bystander = new Process({ target: ref('increment'), args: [d, lock, 500, true] });
        await d.set('n', 0);
        victim.start();
        assert.equal(await started.wait(20000), true);
        bystander.start();
        await new Promise((resolve) => setTimeout(resolve, 100));
        victim.kill();
        await victim.join();
        assert.equal(victim.exitCode, -9);
        await bystander.join(40000);
        if (bystander.isAlive()) {
          bystander.kill();
          await bystander.join();
        }
        assert.equal(bystander.exitCode, 0);
        assert.equal(await d.get('n'), 500);
        assert.equal(((await d.get('big0')) as string).length, 4 << 20);
        // The server let go of the two clients' Pipes.
        const deadline = Date.now() + 5000;
        while (serverSegmentsMapped(serverPid, `forkwise-${serverPid}-`) > pipesBefore && Date.now() < deadline) {
          await new Promise((resolve) => setTimeout(resolve, 50));
        }
        assert.equal(serverSegmentsMapped(serverPid, `forkwise-${serverPid}-`), pipesBefore);
      });

      // Only a Pipe could stall the server: a socket's writes are queued by Node.
      if (transport === 'pipe') it('a client that does not read its replies stalls only itself', async function () {
        const d = await manager.dict({ small: 1 });
        await d.set('big', 'b'.repeat(1 << 20));
        const stalled = await manager.Event();
        const slow = new Process({
          target: async (dict: DictProxy, ready: typeof stalled) => {
            // 40 MB of replies asked for, then the loop blocked: nothing reads them for 3 s.
            await dict.get('small'); // connected
            const gets = Array.from({ length: 40 }, () => dict.get('big'));
            ready.set(); // the requests went when asked for (the connection is up)
            Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 3000);
            const all = (await Promise.all(gets)) as string[];
            process.exitCode = all.every((v) => v.length === 1 << 20) ? 0 : 7;
          },
          args: [d, stalled],
        });
        slow.start();
        assert.equal(await stalled.wait(20000), true);
        const started = Date.now();
        assert.equal(await d.get('small'), 1);
        assert.equal(d.getSync('small'), 1);
        assert.ok(Date.now() - started < 1000, `the others were served in ${Date.now() - started} ms`);
        await slow.join(30000);
        assert.equal(slow.exitCode, 0);
      });
    });
  }

  describe('network: Unix socket and TCP with an authkey', () => {
    let dir: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'forkwise-manager-test-'));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    it('TCP on port 0: the real port, and a spawned process joins with connect()', async () => {
      await using manager = await Manager.start({ address: { host: '127.0.0.1', port: 0 }, authkey: 'sesame' });
      const address = manager.address as { host: string; port: number };
      assert.equal(address.host, '127.0.0.1');
      assert.ok(address.port > 0);
      const d = await manager.dict();
      const p = new Process({ target: ref('joinAndWrite'), args: [address, 'sesame', d], startMethod: 'spawn' });
      p.start();
      await p.join();
      assert.equal(p.exitCode, 0);
      assert.equal(await d.get('remote'), 'remote');
      assert.equal(d.getSync('remote-sync'), true);
      const made = (await d.get('made')) as DictProxy;
      assert.equal(await made.get('from'), 'remote');
      const joined = await Manager.connect(address, 'sesame');
      const again = await joined.dict({ k: 1 });
      assert.equal(again.getSync('k'), 1);
      await joined.shutdown();
    });

    it('a wrong or missing key is refused before any request is read', async () => {
      const path = join(dir, 'auth.sock');
      await using manager = await Manager.start({ address: path, authkey: Buffer.from('right key') });
      await assert.rejects(Manager.connect(path, 'wrong key'), { code: 'ERR_FORKWISE_MANAGER_AUTH' });
      // A peer that skips the handshake: its request is never answered, it is cut off.
      const peer = new RawPeer(path);
      const challenge = await peer.frame();
      assert.equal(challenge!.length, 36);
      peer.send(rawFrame(Buffer.from([1, 0, 0, 0, 0, 4, 0, 0, 0, 0x64, 0x69, 0x63, 0x74])));
      assert.equal(await peer.frame(), null);
      // A peer that answers with a wrong HMAC: the same.
      const liar = new RawPeer(path);
      await liar.frame();
      liar.send(blobFrame(Buffer.alloc(64, 1)));
      assert.equal(await liar.frame(), null);
      const joined = await Manager.connect(path, 'right key');
      const d = await joined.dict({ ok: true });
      assert.equal(await d.get('ok'), true);
      await joined.shutdown();
    });

    it('an address in use is refused with the system error, and nothing is left running', async () => {
      const path = join(dir, 'taken.sock');
      await using first = await Manager.start({ address: path });
      await assert.rejects(Manager.start({ address: path }), { code: 'EADDRINUSE', syscall: 'listen' });
      const d = await first.dict({ still: 'served' });
      assert.equal(await d.get('still'), 'served');
    });

    it('a peer that does not authenticate in time is cut off', async () => {
      // The server's own function, in this process, with a short deadline.
      const { serveManager } = require(join(__dirname, '..', 'dist', 'multiprocessing', 'manager_server.js')) as {
        serveManager(control: unknown, options: { address: string; authkey: Uint8Array; handshakeMs: number }): Promise<void>;
      };
      const [ours, theirs] = Pipe();
      const path = join(dir, 'deadline.sock');
      const served = serveManager(theirs, { address: path, authkey: Buffer.from('k'), handshakeMs: 300 });
      assert.deepEqual(await ours.recv(), { address: path });
      const idle = new RawPeer(path);
      assert.equal((await idle.frame())!.length, 36, 'the challenge');
      assert.equal(await idle.frame(), null, 'cut off after the deadline');
      const patient = new RawPeer(path);
      await patient.authenticate('k');
      await new Promise((resolve) => setTimeout(resolve, 500));
      patient.send(rawFrame(Buffer.from([1, 0, 0, 0, 0, 4, 0, 0, 0, 0x64, 0x69, 0x63, 0x74])));
      const reply = await patient.frame();
      assert.equal(reply![0], 0, 'an authenticated peer has no deadline');
      patient.socket.destroy();
      ours.send('shutdown');
      assert.equal(await ours.recv(), 'done');
      await served;
      ours.close();
      assert.equal(existsSync(path), false);
    });

    it("by default requests go through a shared-memory Pipe, whose name is gone once attached; with transport 'socket' and over TCP they do not", async () => {
      const path = join(dir, 'ring.sock');
      await using local = await Manager.start({ address: path, authkey: 'k' });
      const d = await local.dict();
      await d.set('a', 1);
      d.setSync('b', 2);
      assert.deepEqual([await d.get('b'), d.getSync('a')], [2, 1]);
      const prefix = `forkwise-${local.pid}-`;
      // This thread's two connections (Promise and …Sync forms) each mapped a Pipe of the server.
      assert.equal(serverSegmentsMapped(process.pid, prefix), 2);
      assert.deepEqual(readdirSync('/dev/shm').filter((name) => name.startsWith(prefix)), []);
      // transport: 'socket', and TCP, keep to the socket.
      await using plain = await Manager.start({ address: join(dir, 'plain.sock'), authkey: 'k', transport: 'socket' });
      const p = await plain.dict();
      await p.set('a', 1);
      p.setSync('b', 2);
      assert.equal(serverSegmentsMapped(process.pid, `forkwise-${plain.pid}-`), 0);
      await using joined = await Manager.connect(join(dir, 'ring.sock'), 'k', { transport: 'socket' });
      assert.equal(await joined.dict().then((j) => j.set('c', 3)), undefined);
      assert.equal(serverSegmentsMapped(process.pid, prefix), 2);
      await assert.rejects(Manager.start({ address: { host: '127.0.0.1', port: 0 }, transport: 'pipe' }), { code: 'ERR_INVALID_ARG_TYPE' });
      await assert.rejects(Manager.connect({ host: '127.0.0.1', port: 1 }, 'k', { transport: 'pipe' }), { code: 'ERR_INVALID_ARG_TYPE' });
      await assert.rejects(Manager.start({ transport: 'shm' as 'pipe' }), { code: 'ERR_INVALID_ARG_TYPE' });
      await using remote = await Manager.start({ address: { host: '127.0.0.1', port: 0 }, authkey: 'k' });
      const r = await remote.dict();
      await r.set('a', 1);
      r.setSync('b', 2);
      assert.equal(serverSegmentsMapped(process.pid, `forkwise-${remote.pid}-`), 0);
      // Asking for a Pipe over TCP (a peer maybe on another host) closes that connection.
      const peer = new RawPeer(remote.address as { host: string; port: number });
      await peer.authenticate('k');
      peer.send(rawFrame(Buffer.from([20, 0, 0, 0, 0])));
      assert.equal(await peer.frame(), null);
      assert.equal(await r.get('a'), 1);
    });

    it('a server that cannot make a Pipe serves the connection over the socket', async () => {
      // The server is a fork of this process: it inherits a Connection.create that fails for
      // the clients' Pipes (the control Pipe has no capacity argument), as with a full /dev/shm.
      const create = Connection.create;
      Connection.create = (duplex: boolean, capacity?: number) => {
        if (capacity !== undefined) throw Object.assign(new Error('No space left on device'), { code: 'ENOSPC' });
        return create.call(Connection, duplex);
      };
      let manager: Manager;
      try {
        manager = await Manager.start({ startMethod: 'fork' });
      } finally {
        Connection.create = create;
      }
      await using _ = manager;
      const d = await manager.dict();
      await d.set('a', 1);
      d.setSync('b', 2);
      assert.deepEqual([await d.get('b'), d.getSync('a')], [2, 1]);
      assert.equal(serverSegmentsMapped(process.pid, `forkwise-${manager.pid}-`), 0);
    });

    it('oversized and malformed frames close that connection only', async () => {
      const path = join(dir, 'frames.sock');
      await using manager = await Manager.start({ address: path, authkey: 'k' });
      const d = await manager.dict({ ok: 1 });
      const bad = [
        Buffer.from([0xf0, 0xff, 0xff, 0xff]), // 4 GB announced
        rawFrame(Buffer.from([99, 1, 0, 0, 0])), // no such operation
        rawFrame(Buffer.from([2, d.id, 0, 0, 0, 9, 0, 0, 0, 5])), // a blob longer than its frame
        rawFrame(Buffer.from([2, d.id, 0, 0, 0, 1, 0, 0, 0, 77])), // a key of no known tag
        rawFrame(Buffer.from([2, 1])), // shorter than a request's head
      ];
      for (const bytes of bad) {
        const peer = new RawPeer(path);
        await peer.authenticate('k');
        peer.send(bytes);
        assert.equal(await peer.frame(), null, `closed after ${bytes.toString('hex')}`);
      }
      // An oversized handshake frame is refused too.
      const early = new RawPeer(path);
      await early.frame();
      early.send(Buffer.from([0, 1, 0, 0]));
      assert.equal(await early.frame(), null);
      assert.equal(await d.get('ok'), 1);
      assert.equal(d.getSync('ok'), 1);
    });
  });

  describe('lifetime', () => {
    it('shutdown() and asyncDispose leave no process, socket file or segment', async () => {
      const manager = await Manager.start();
      const pid = manager.pid!;
      const path = manager.address as string;
      const d = await manager.dict();
      await manager.Queue();
      await manager.Lock();
      d.setSync('x', 1);
      assert.ok(path.startsWith('\0forkwise-manager-'), 'a private socket in the abstract namespace');
      assert.ok(unixSocketExists(path));
      await manager.shutdown();
      await manager.shutdown();
      assert.equal(existsSync(`/proc/${pid}`), false, 'the server was reaped');
      assert.equal(unixSocketExists(path), false);
      await assert.rejects(manager.dict(), { code: 'ERR_FORKWISE_MANAGER_SHUT_DOWN' });
      await assert.rejects(d.get('x'));
      assert.throws(() => d.getSync('x'));

      let spid: number;
      let spath: string;
      {
        await using m2 = await Manager.start({ startMethod: 'spawn' });
        spid = m2.pid!;
        spath = m2.address as string;
        const l = await m2.list([1]);
        assert.equal(await l.at(0), 1);
      }
      assert.equal(existsSync(`/proc/${spid}`), false);
      assert.equal(unixSocketExists(spath), false);

      // A socket path given by the caller is removed too.
      const dir = mkdtempSync(join(tmpdir(), 'forkwise-manager-test-'));
      const m3 = await Manager.start({ address: join(dir, 'm.sock') });
      assert.ok(existsSync(join(dir, 'm.sock')));
      await m3.shutdown();
      assert.equal(existsSync(join(dir, 'm.sock')), false);
      rmSync(dir, { recursive: true });
    });

    it('the server ends with its parent and removes its socket', async () => {
      for (const method of ['fork', 'spawn']) {
        const out = await runNode(join(fixtures, 'manager-orphan.js'), [method], { timeoutMs: 30000 });
        assert.equal(out.signal, 'SIGKILL', out.stderr);
        const { pid, address } = JSON.parse(out.stdout) as { pid: number; address: string };
        assert.equal(await waitGone(pid), true, `manager server ${pid} (${method}) ended`);
        for (let i = 0; i < 100 && unixSocketExists(address); i++) await new Promise((resolve) => setTimeout(resolve, 50));
        assert.equal(unixSocketExists(address), false, 'its socket is gone');
      }
      // The killed parent's control Pipe is garbage until the next sweep: make one.
      await new Promise((resolve) => setTimeout(resolve, 1100));
      const probe = new SharedMemory({ size: 8 });
      probe.unlink();
      probe.close();
      assert.deepEqual(orphanedSegments(), []);
    });
  });
});
