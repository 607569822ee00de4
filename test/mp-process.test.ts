import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, readFileSync, readSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  Process,
  getContext,
  currentProcess,
  parentProcess,
  activeChildren,
  stopForkserver,
  getStartMethod,
  setStartMethod,
  SharedMemory,
  Value,
  Pipe,
  type StartMethod,
} from 'forkwise/multiprocessing';
import { fixtures, runNode } from './helpers';

const methods: StartMethod[] = ['fork', 'spawn', 'forkserver'];
const tasks = join(fixtures, 'mp-tasks.js');
const ref = (name: string) => ({ module: tasks, name });

// What a child wrote into shared memory with mp-tasks.js's writeJson.
function readJson(shm: SharedMemory): any {
  const bytes = new Uint8Array(shm.buffer);
  return JSON.parse(Buffer.from(bytes.subarray(0, bytes.indexOf(0))).toString());
}

// Processes whose process group is `pgid`.
function groupMembers(pgid: number): number[] {
  return readdirSync('/proc')
    .filter((d) => /^\d+$/.test(d))
    .filter((d) => {
      try {
        const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
        return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[2]) === pgid;
      } catch {
        return false;
      }
    })
    .map(Number);
}

async function waitGone(pids: number[], ms = 5000): Promise<number[]> {
  const deadline = Date.now() + ms;
  let alive = pids;
  while (Date.now() < deadline) {
    alive = pids.filter((pid) => existsSync(`/proc/${pid}`) && !readFileSync(`/proc/${pid}/stat`, 'utf8').includes(') Z '));
    if (alive.length === 0) return [];
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  return alive;
}

describe('multiprocessing: Process', function () {
  this.timeout(30000);

  after(() => stopForkserver());

  for (const method of methods) {
    describe(`start method '${method}'`, () => {
      const { Process: P } = getContext(method);
      const target = (name: string, fn: Function) => (method === 'fork' ? fn : ref(name));

      it('runs the target with its arguments, forkwise objects crossing by handle', async () => {
        const shm = new SharedMemory({ size: 4096 });
        const p = new P({ target: ref('report'), args: [shm, { n: [1, 2] }] });
        assert.equal(p.exitCode, null);
        assert.equal(p.pid, undefined);
        await p.start();
        assert.equal(typeof p.pid, 'number');
        await p.join();
        assert.equal(p.exitCode, 0);
        const seen = readJson(shm);
        assert.equal(seen.pid, p.pid);
        assert.equal(seen.name, p.name);
        assert.equal(seen.parent, method === 'forkserver' ? seen.parent : process.pid);
        assert.notEqual(seen.parent, null);
        shm.close();
      });

      it('exit codes: 0, 1 when the target throws or rejects (error rebuilt), process.exit(n), -signo', async () => {
        const failing = new P({ target: target('fail', async () => {
          await new Promise((resolve) => setTimeout(resolve, 10));
          throw Object.assign(new RangeError('out of cheese'), { code: 'ECHEESE' });
        }) });
        failing.start();
        await failing.join();
        assert.equal(failing.exitCode, 1);
        assert.equal(failing.error?.name, 'RangeError');
        assert.equal(failing.error?.message, 'out of cheese');
        assert.equal((failing.error as { code?: string }).code, 'ECHEESE');
        assert.match(failing.error?.stack ?? '', /out of cheese/);

        const exiting = new P({ target: () => process.exit(7) });
        exiting.start();
        await exiting.join();
        assert.equal(exiting.exitCode, 7);
        assert.equal(exiting.error, undefined);

        const spinning = new P({ target: () => { for (;;); } });
        await spinning.start();
        assert.equal(spinning.isAlive(), true);
        spinning.terminate();
        await spinning.join();
        assert.equal(spinning.exitCode, -15);
        assert.equal(spinning.isAlive(), false);

        const killed = new P({ target: () => new Promise(() => setInterval(() => {}, 1000)) });
        await killed.start();
        killed.kill();
        killed.joinSync();
        assert.equal(killed.exitCode, -9);
      });

      it('a subclass overriding run()', async () => {
        const out = new Value('int32', 0);
        class Adder extends P {
          amount = 41;
          counter = out;
          override run(): void {
            this.counter.value = this.amount + 1;
          }
        }
        const p = new Adder();
        p.start();
        await p.join();
        assert.equal(p.exitCode, 0);
        assert.equal(out.value, 42);
      });

      it('join(timeout), join(0), joinSync(timeout) return with exitCode null while it runs; join again after the end', async () => {
        const p = new P({ target: () => new Promise((resolve) => setTimeout(resolve, 400)) });
        await p.start();
        const started = Date.now();
        await p.join(0);
        await p.join(50);
        assert.equal(p.exitCode, null);
        p.joinSync(50);
        assert.equal(p.exitCode, null);
        assert.ok(Date.now() - started >= 90);
        assert.deepEqual(activeChildren(), [p]);
        await p.join();
        assert.equal(p.exitCode, 0);
        await p.join();
        p.joinSync();
        assert.deepEqual(activeChildren(), []);
      });

      it('the sentinel reaches end-of-file when the child ends', async () => {
        const p = new P({ target: () => undefined, daemon: true });
        await p.start();
        const fd = p.sentinel!;
        const deadline = Date.now() + 10000;
        let eof = false;
        while (!eof && Date.now() < deadline) {
          try {
            eof = readSync(fd, Buffer.alloc(1 << 16)) === 0;
          } catch (error) {
            assert.equal((error as NodeJS.ErrnoException).code, 'EAGAIN');
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
        }
        assert.ok(eof, 'no end-of-file on the sentinel');
        await p.join();
        assert.equal(p.exitCode, 0);
      });

      if (method !== 'fork') {
        it('refuses a function that reads an outer variable, and arguments that cannot cross, naming them', () => {
          const table = new Map([[1, 2]]);
          assert.throws(() => new P({ target: (x: number) => table.get(x) }).start(), {
            name: 'TypeError',
            code: 'ERR_FORKWISE_NOT_SELF_CONTAINED',
            message: /'table'/,
          });
          assert.throws(() => new P({ target: (x: unknown) => x, args: [1, { conn: () => 1 }] }).start(), {
            name: 'TypeError',
            code: 'ERR_FORKWISE_NOT_CLONEABLE',
            message: /^args\[1\]\.conn could not be cloned/,
          });
          assert.deepEqual(activeChildren(), []);
        });

        it('a Connection among the arguments crosses by handle and works in the child', async () => {
          const [here, there] = Pipe();
          const p = new P({ target: (conn: { send(v: unknown): void }, n: number) => conn.send({ n, pid: process.pid }), args: [there, 7] });
          await p.start();
          assert.deepEqual(await here.recv(), { n: 7, pid: p.pid });
          await p.join();
          assert.equal(p.exitCode, 0);
          here.close();
          there.close();
        });

        it("the parent's copy of a Connection end may be closed right after start(), as in CPython", async () => {
          const [here, there] = Pipe();
          const p = new P({
            target: async (conn: { send(v: unknown): void }) => {
              // Late on purpose: the parent closed its copy long before this attaches.
              await new Promise((resolve) => setTimeout(resolve, 300));
              conn.send('still connected');
            },
            args: [there],
          });
          await p.start();
          there.close();
          assert.equal(await here.recv(), 'still connected');
          await p.join();
          assert.equal(p.exitCode, 0);
          await assert.rejects(here.recv(), { code: 'ERR_EOF' });
          here.close();
        });

        it('a thread that blocks (recvSync) right after an awaited start() does not keep the child from starting', async () => {
          const [here, there] = Pipe();
          const p = new P({ target: (conn: { send(v: unknown): void }) => conn.send('up'), args: [there] });
          await p.start();
          there.close();
          // Before the fix the child waited for its payload, which this blocked thread held.
          assert.equal(here.recvSync(20_000), 'up');
          await p.join();
          here.close();
        });

        it('an end lent to a child that never attached it is given back when the child ends: EOF, no hang', async () => {
          const [here, there] = Pipe();
          // Its target cannot be loaded: it ends before it reads its arguments.
          const p = new P({ target: { module: join(fixtures, 'mp-tasks.js'), name: 'noSuchExport' }, args: [there] });
          await p.start();
          there.close();
          await p.join();
          assert.equal(p.exitCode, 1);
          await assert.rejects(here.recv(), { code: 'ERR_EOF' });
          here.close();
        });

        it('runs a self-contained function sent by its source, require() included', async () => {
          const shm = new SharedMemory({ size: 4096 });
          const p = new P({
            target: (memory: SharedMemory, n: number) => {
              const os = require('node:os');
              new Uint8Array(memory.buffer).set([...Buffer.from(JSON.stringify({ n, os: os.platform() })), 0]);
            },
            args: [shm, 5],
          });
          p.start();
          await p.join();
          assert.equal(p.exitCode, 0, String(p.error));
          assert.deepEqual(readJson(shm), { n: 5, os: process.platform });
          shm.close();
        });
      }
    });
  }

  it("with 'fork', a target is any closure, over data built before or after the Process", async () => {
    const out = new Value('float64', 0);
    const factor = 3;
    const p = new Process({ target: () => (out.value = data.reduce((a, b) => a + b, 0) * factor), startMethod: 'fork' });
    const data = [1, 2, 3];
    await p.start();
    await p.join();
    assert.equal(out.value, 18);
  });

  it('currentProcess() and parentProcess() in the main process', () => {
    assert.equal(currentProcess().name, 'MainProcess');
    assert.equal(currentProcess().pid, process.pid);
    assert.equal(currentProcess().isAlive(), true);
    assert.equal(parentProcess(), null);
  });

  it('bad input: options, start twice, join before start, unknown start method', async () => {
    assert.throws(() => new Process({ args: 3 as never }), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => new Process({ target: 3 as never }), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => new Process({ daemon: 'yes' as never }), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => new Process({ startMethod: 'vfork' as never }), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => getContext('thread' as never), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => setStartMethod('x' as never), { code: 'ERR_INVALID_ARG_VALUE' });
    const p = new Process({ target: () => undefined });
    await assert.rejects(p.join(), { code: 'ERR_FORKWISE_PROCESS_NOT_STARTED' });
    p.start();
    assert.throws(() => p.start(), { code: 'ERR_FORKWISE_PROCESS_STARTED' });
    await assert.rejects(p.join(-1), { code: 'ERR_INVALID_ARG_VALUE' });
    await p.join();
  });

  it("the default start method is 'fork' under --single-threaded, else 'forkserver', which refuses nothing", async () => {
    assert.equal(getStartMethod(), 'fork');
    const out = await runNode('-', [], {
      nodeArgs: [
        '-e',
        `const mp = require(${JSON.stringify(join(__dirname, '..', 'dist', 'multiprocessing', 'index.js'))});
         let refused;
         try { new mp.Process({ target: () => 0, startMethod: 'fork' }).start(); } catch (e) { refused = e; }
         const p = new mp.Process({ target: (a) => process.exit(a), args: [4] });
         p.start();
         p.join().then(async () => {
           console.log(JSON.stringify({ method: mp.getStartMethod(), code: refused.code, message: refused.message, exit: p.exitCode }));
           await mp.stopForkserver();
         });`,
      ],
    });
    assert.equal(out.code, 0, out.stderr);
    const result = JSON.parse(out.stdout);
    assert.equal(result.method, 'forkserver');
    assert.equal(result.code, 'ERR_FORKWISE_FORK_UNSAFE');
    for (const hint of ['--single-threaded', 'reexecSingleThreaded()', 'forkserver']) assert.ok(result.message.includes(hint), hint);
    assert.equal(result.exit, 4);
  });

  describe('lifetime (in a scenario process)', () => {
    let dir: string;
    before(() => {
      dir = mkdtempSync(join(tmpdir(), 'forkwise-mp-'));
    });
    after(() => rmSync(dir, { recursive: true, force: true }));

    for (const method of methods) {
      it(`a non-daemon child keeps its parent alive until it ends; a daemon child ends with it (${method})`, async () => {
        const kept = join(dir, `kept-${method}`);
        const out = await runNode('mp-lifetime.js', ['keepalive', method, kept]);
        assert.equal(out.code, 0, out.stderr);
        assert.ok(existsSync(kept), 'the parent exited before its child finished');

        const dropped = join(dir, `dropped-${method}`);
        const started = Date.now();
        const daemonOut = await runNode('mp-lifetime.js', ['daemon', method, dropped]);
        assert.equal(daemonOut.code, 0, daemonOut.stderr);
        const { child } = JSON.parse(daemonOut.stdout);
        assert.deepEqual(await waitGone([child]), []);
        assert.ok(Date.now() - started < 5000);
        await new Promise((resolve) => setTimeout(resolve, 400));
        assert.equal(existsSync(dropped), false, 'the daemon child outlived its parent');
      });
    }

    it('SIGINT to the process group leaves no process of the group behind', async () => {
      await groupScenario('sigint');
    });
    it('SIGKILL of the parent alone leaves no child behind', async () => {
      await groupScenario('orphans');
    });
  });
});

// Starts the scenario in its own process group, waits for its three children, then signals
// it (SIGINT to the group, or SIGKILL to the parent alone) and checks the group empties.
async function groupScenario(mode: 'sigint' | 'orphans'): Promise<void> {
  const { spawn } = await import('node:child_process');
  const child = spawn(process.execPath, ['--single-threaded', join(fixtures, 'mp-lifetime.js'), mode], {
    detached: true,
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  const line = await new Promise<string>((resolve, reject) => {
    let text = '';
    const timer = setTimeout(() => reject(new Error('scenario did not start its children')), 15000);
    child.stdout!.on('data', (d: Buffer) => {
      text += d;
      if (text.includes('\n')) {
        clearTimeout(timer);
        resolve(text);
      }
    });
  });
  const { children } = JSON.parse(line) as { children: number[] };
  const pgid = child.pid!;
  const members = groupMembers(pgid);
  assert.ok(members.length >= 5, `expected parent, 3 children and the forkserver: ${members}`);
  const closed = new Promise((resolve) => child.on('close', resolve));
  if (mode === 'sigint') process.kill(-pgid, 'SIGINT');
  else process.kill(pgid, 'SIGKILL');
  await closed;
  assert.deepEqual(await waitGone([...children, ...members]), [], 'processes left behind');
  try {
    process.kill(-pgid, 'SIGKILL');
  } catch {
    // none left, as it should be
  }
}
