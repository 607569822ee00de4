import assert from 'node:assert/strict';
import { readSync } from 'node:fs';
import * as fw from 'forkwise';
import type { CurrentSigAction, SigInfo } from 'forkwise';
import { forkChild, runNode } from './helpers';

// The signals these tests change; each test leaves them as it found them.
const TOUCHED = ['SIGUSR2', 'SIGWINCH', 'SIGURG', 'SIGTERM'] as const;

/** Installs a handler on `sig` and resolves with its next delivery. */
function nextDelivery(sig: NodeJS.Signals, flags?: fw.SigActionFlags): Promise<[NodeJS.Signals, SigInfo]> {
  return new Promise((resolve) => {
    fw.sigaction(sig, { handler: (signal, info) => resolve([signal, info]), flags });
  });
}

function bit(hexMask: string, signo: number): boolean {
  return ((BigInt(`0x${hexMask}`) >> BigInt(signo - 1)) & 1n) === 1n;
}

describe('sigaction, signal, sigprocmask, sigpending', () => {
  let saved: Map<NodeJS.Signals, CurrentSigAction>;
  let savedMask: NodeJS.Signals[];

  beforeEach(() => {
    saved = new Map(TOUCHED.map((sig) => [sig, fw.sigaction(sig)]));
    savedMask = fw.sigprocmask('block', []);
  });

  afterEach(() => {
    fw.sigprocmask('setmask', savedMask);
    for (const [sig, action] of saved) fw.sigaction(sig, action);
  });

  it('reads dispositions faithfully, Node-owned ones included', () => {
    assert.equal(fw.sigaction('SIGUSR1').handler, 'node'); // Node's inspector trigger
    assert.equal(fw.sigaction('SIGPIPE').handler, 'ignore'); // Node ignores it
    assert.equal(fw.sigaction('SIGURG').handler, 'default');
    assert.deepEqual(fw.sigaction('SIGKILL'), {
      handler: 'default',
      flags: { restart: false, resetHand: false, nodefer: false, noCldStop: false, noCldWait: false },
      mask: [],
    });
  });

  it('runs a function handler on the loop with the sender in SigInfo', async () => {
    const delivered = nextDelivery('SIGUSR2');
    fw.raise('SIGUSR2');
    const [signal, info] = await delivered;
    assert.equal(signal, 'SIGUSR2');
    assert.deepEqual(info, { signo: 12, code: -6, pid: process.pid, uid: process.getuid!(), missed: 0 });

    const killed = nextDelivery('SIGUSR2');
    fw.kill(process.pid, 'SIGUSR2');
    assert.equal((await killed)[1].code, 0); // SI_USER
  });

  it('returns the previous action, and sets it back', () => {
    const first = (): void => {};
    const second = (): void => {};
    assert.equal(fw.sigaction('SIGURG', { handler: first, flags: { restart: true }, mask: ['SIGINT', 15] }).handler, 'default');
    const previous = fw.sigaction('SIGURG', { handler: second });
    assert.deepEqual(previous, {
      handler: first,
      flags: { restart: true, resetHand: false, nodefer: false, noCldStop: false, noCldWait: false },
      mask: ['SIGINT', 'SIGTERM'],
    });
    assert.equal(fw.signal('SIGURG', 'ignore'), second);
    assert.equal(fw.signal('SIGURG', previous.handler), 'ignore');
    fw.sigaction('SIGURG', previous);
    assert.deepEqual(fw.sigaction('SIGURG'), previous);
  });

  it('keeps each signal apart and each handler to its own signal', async () => {
    const usr2 = nextDelivery('SIGUSR2');
    const winch = nextDelivery('SIGWINCH');
    fw.sigprocmask('block', ['SIGUSR2', 'SIGWINCH']);
    fw.raise('SIGWINCH');
    fw.raise('SIGUSR2');
    fw.sigprocmask('unblock', ['SIGUSR2', 'SIGWINCH']);
    assert.equal((await usr2)[0], 'SIGUSR2');
    assert.equal((await winch)[0], 'SIGWINCH');
  });

  it('resetHand goes back to default after one delivery', async () => {
    const delivered = nextDelivery('SIGWINCH', { resetHand: true });
    fw.raise('SIGWINCH');
    await delivered;
    assert.equal(fw.sigaction('SIGWINCH').handler, 'default');
  });

  it('takes a signal from process.on listeners and gives it back on default', async () => {
    let listenerRuns = 0;
    let listenerRan: () => void = () => {};
    const listener = (): void => {
      listenerRuns++;
      listenerRan();
    };
    process.on('SIGUSR2', listener);
    try {
      await new Promise<void>((resolve) => {
        listenerRan = resolve;
        process.kill(process.pid, 'SIGUSR2');
      });
      assert.equal(fw.sigaction('SIGUSR2').handler, 'node');
      const delivered = nextDelivery('SIGUSR2');
      fw.raise('SIGUSR2');
      await delivered;
      assert.equal(listenerRuns, 1);
      fw.sigaction('SIGUSR2', { handler: 'default' });
      assert.equal(fw.sigaction('SIGUSR2').handler, 'node');
      await new Promise<void>((resolve) => {
        listenerRan = resolve;
        fw.raise('SIGUSR2');
      });
      assert.equal(listenerRuns, 2);
    } finally {
      process.off('SIGUSR2', listener);
    }
    assert.equal(fw.sigaction('SIGUSR2').handler, 'default');
  });

  it('counts the deliveries that did not fit in the pipe', async () => {
    const sent = 5000; // more records than a 64 KiB pipe holds
    let delivered = 0;
    let missed = 0;
    const done = new Promise<void>((resolve) => {
      fw.signal('SIGURG', (_signal, info) => {
        delivered++;
        missed += info.missed;
        if (delivered + missed === sent) resolve();
      });
    });
    for (let i = 0; i < sent; i++) fw.raise('SIGURG');
    await done;
    assert.ok(missed > 0);
  });

  it('SIGKILL and SIGSTOP cannot be caught', () => {
    assert.throws(() => fw.sigaction('SIGKILL', { handler: () => {} }), { code: 'EINVAL', syscall: 'sigaction' });
    assert.throws(() => fw.signal('SIGSTOP', 'ignore'), { code: 'EINVAL', syscall: 'sigaction' });
  });

  it('a blocked signal stays pending until it is unblocked', async () => {
    let ran = false;
    const delivered = new Promise<void>((resolve) => {
      fw.signal('SIGUSR2', () => {
        ran = true;
        resolve();
      });
    });
    const before = fw.sigprocmask('block', ['SIGUSR2']);
    assert.ok(!before.includes('SIGUSR2'));
    fw.raise('SIGUSR2');
    assert.ok(fw.sigpending().includes('SIGUSR2'));
    assert.ok(fw.sigprocmask('block', []).includes('SIGUSR2'));
    await new Promise((resolve) => setImmediate(resolve));
    assert.equal(ran, false);
    fw.sigprocmask('setmask', before);
    await delivered;
    assert.ok(!fw.sigpending().includes('SIGUSR2'));
  });

  it('exec keeps ignored signals ignored and resets caught ones', () => {
    const [r, w] = fw.pipe();
    const pid = forkChild(() => {
      fw.close(r);
      fw.signal('SIGUSR2', 'ignore');
      fw.signal('SIGTERM', () => {});
      fw.dup2(w, 1);
      fw.execv('/bin/cat', ['cat', '/proc/self/status']);
    });
    fw.close(w);
    let status = '';
    const buf = Buffer.alloc(65536);
    for (let n; (n = readSync(r, buf)) > 0; ) status += buf.toString('utf8', 0, n);
    fw.close(r);
    assert.deepEqual(fw.waitpid(pid), { pid, status: 0, kind: 'exited', exitCode: 0 });
    const field = (name: string): string => /^(\w+):\s*(\S+)$/m.exec(status.split('\n').find((l) => l.startsWith(`${name}:`))!)![2]!;
    assert.equal(bit(field('SigIgn'), 12), true, 'SIGUSR2 ignored');
    assert.equal(bit(field('SigCgt'), 15), false, 'SIGTERM not caught');
    assert.equal(bit(field('SigIgn'), 13), false, 'SIGPIPE back to default');
  });

  it('a forked child handles its own signals, with handlers it inherited', async () => {
    const { code, stdout, stderr } = await runNode('sigaction.js', ['forked']);
    assert.equal(code, 0, stderr);
    const result = JSON.parse(stdout);
    assert.equal(result.child.exitCode, 42);
    assert.deepEqual(result.parentSaw, ['parent']);
  });

  it('a SIGCHLD handler chains to libuv: child_process and the handler both see children', async () => {
    const { code, stdout, stderr } = await runNode('sigaction.js', ['sigchld']);
    assert.equal(code, 0, stderr);
    const result = JSON.parse(stdout);
    assert.equal(result.firstCode, 0);
    assert.equal(result.firstInfo.signo, 17);
    assert.equal(result.firstInfo.status, 0);
    assert.equal(result.forkedInfo.status, 7);
    assert.equal(result.forkedInfo.code, 1); // CLD_EXITED
    assert.equal(result.reaped.exitCode, 7);
    assert.equal(result.secondCode, 0);
    assert.equal(result.after, 'node'); // back to libuv's handler
    assert.equal(result.thirdCode, 0);
  });

  it('a handler does not keep the process alive', async () => {
    const { code, stdout, stderr } = await runNode('sigaction.js', ['alive'], { timeoutMs: 5000 });
    assert.equal(code, 0, stderr);
    assert.deepEqual(JSON.parse(stdout), { installed: true });
  });

  it('an exception thrown by a handler is an uncaught exception', async () => {
    const { code, stdout, stderr } = await runNode('sigaction.js', ['throws']);
    assert.equal(code, 0, stderr);
    assert.deepEqual(JSON.parse(stdout), { message: 'thrown by a handler' });
  });

  it('a worker thread reads dispositions but cannot change them', async () => {
    const { code, stdout, stderr } = await runNode('sigaction.js', ['inWorker']);
    assert.equal(code, 0, stderr);
    assert.deepEqual(JSON.parse(stdout), { read: 'ignore', code: 'ERR_FORKWISE_NOT_MAIN_THREAD' });
  });

  it('validates its arguments', () => {
    assert.throws(() => fw.sigaction('SIGNOPE' as NodeJS.Signals), { code: 'ERR_UNKNOWN_SIGNAL' });
    assert.throws(() => fw.sigaction('SIGUSR2', { handler: 3 } as never), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => fw.sigaction('SIGUSR2', { handler: 'catch' } as never), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => fw.sigaction('SIGUSR2', { handler: 'ignore', flags: 1 } as never), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => fw.sigaction('SIGUSR2', { handler: 'ignore', flags: { restart: 1 } } as never), {
      code: 'ERR_INVALID_ARG_TYPE',
    });
    assert.throws(() => fw.sigaction('SIGUSR2', { handler: 'ignore', flags: { resethand: true } } as never), {
      code: 'ERR_INVALID_ARG_VALUE',
    });
    assert.throws(() => fw.sigaction('SIGUSR2', { handler: 'ignore', mask: ['SIGNOPE'] } as never), {
      code: 'ERR_UNKNOWN_SIGNAL',
    });
    assert.throws(() => fw.signal('SIGUSR2', undefined as never), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => fw.sigprocmask('add' as never, []), { code: 'ERR_INVALID_ARG_VALUE' });
    assert.throws(() => fw.sigprocmask(0 as never, []), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => fw.sigprocmask('block', 'SIGINT' as never), { code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => fw.sigprocmask('block', ['SIGNOPE' as NodeJS.Signals]), { code: 'ERR_UNKNOWN_SIGNAL' });
    assert.equal(fw.sigaction('SIGUSR2').handler, saved.get('SIGUSR2')!.handler);
  });
});
