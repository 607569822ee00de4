import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { Readable, Writable } from 'node:stream';
import { join } from 'node:path';
import * as fw from 'forkwise';
import { childPids, openFds, runNode } from './helpers';

/** Passes a deliberately wrong value where the types do not allow it. */
const u = (value: unknown): never => value as never;

const bit = (signal: NodeJS.Signals): bigint => 1n << BigInt(constants.signals[signal] - 1);

/** Reads a popen stream to its end. */
async function readAll(stream: Readable): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of stream) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

describe('system', () => {
  let childrenBefore: number[];

  beforeEach(() => {
    childrenBefore = childPids();
  });

  afterEach(() => {
    assert.deepEqual(childPids(), childrenBefore, 'a child was not reaped');
  });

  it('returns the raw wait status, as C and CPython do', () => {
    assert.equal(fw.system('true'), 0);
    assert.equal(fw.system('exit 3'), 768);
    assert.equal(fw.system('kill -TERM $$'), constants.signals.SIGTERM);
    assert.equal(fw.waitstatusToExitcode(fw.system('exit 42')), 42);
    // The shell's own "not found" status: it ran, the command did not.
    assert.equal(fw.WEXITSTATUS(fw.system('/nonexistent/forkwise-system 2>/dev/null')), 127);
  });

  it('runs the command with /bin/sh -c and the inherited environment', () => {
    const dir = realpathSync(mkdtempSync(join(tmpdir(), 'forkwise-system-')));
    process.env.FORKWISE_SYSTEM_MARK = 'a b';
    try {
      const out = join(dir, 'out');
      assert.equal(fw.system(`echo "$0|$FORKWISE_SYSTEM_MARK" > '${out}'`), 0);
      assert.equal(readFileSync(out, 'utf8'), 'sh|a b\n');
    } finally {
      delete process.env.FORKWISE_SYSTEM_MARK;
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('ignores SIGINT and SIGQUIT and blocks SIGCHLD in the caller only while the command runs', async () => {
    const out = await runNode('system-signals.js');
    assert.equal(out.code, 0, out.stderr);
    const field = (name: string): bigint => BigInt(`0x${new RegExp(`^${name}:(\\w+)$`, 'm').exec(out.stdout)![1]}`);
    const intQuit = bit('SIGINT') | bit('SIGQUIT');
    assert.equal(field('before.SigIgn') & intQuit, 0n);
    assert.equal(field('during.SigIgn') & intQuit, intQuit);
    assert.equal(field('during.SigBlk') & bit('SIGCHLD'), bit('SIGCHLD'));
    assert.equal(field('after.SigIgn'), field('before.SigIgn'));
    assert.equal(field('after.SigBlk'), field('before.SigBlk'));
    // The command starts with the original dispositions and mask, SIGPIPE at default.
    assert.equal(field('command.SigIgn') & (intQuit | bit('SIGPIPE')), 0n);
    assert.equal(field('command.SigBlk') & bit('SIGCHLD'), 0n);
    assert.match(out.stdout, /^status:0$/m);
    // SIGINT to the caller during the command was dropped; the shell's own SIGINT killed it.
    assert.match(out.stdout, new RegExp(`^interrupted:${constants.signals.SIGINT}$`, 'm'));
    // Node's SIGINT listener works again afterwards.
    assert.match(out.stdout, /^handled:1$/m);
  });

  it('from a Node process the command reads the inherited stdin and writes stdout/stderr', async () => {
    const out = await runNode('system-stdio.js', [], { input: 'hello\n' });
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, 'got:hello\nstatus:0\nno0\nstatus:0\n');
    assert.equal(out.stderr, 'err\n');
  });

  it('validates the command', () => {
    assert.throws(() => fw.system(u(42)), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => fw.system(u(null)), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => fw.system('echo\0x'), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
  });
});

describe('popen', () => {
  let childrenBefore: number[];
  let dir: string;

  before(async () => {
    // The first stream over a descriptor makes Node open what it keeps for good.
    const warm = fw.popen('true');
    await readAll(warm);
    await warm.close();
  });

  beforeEach(() => {
    childrenBefore = childPids();
    dir = realpathSync(mkdtempSync(join(tmpdir(), 'forkwise-popen-')));
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
    assert.deepEqual(childPids(), childrenBefore, 'a child was not reaped');
  });

  it("mode 'r' gives the command's stdout as a Readable with the shell's pid", async () => {
    const file = fw.popen('echo "$$:$0"');
    assert.ok(file instanceof Readable);
    assert.ok(file instanceof fw.PopenFile);
    assert.deepEqual(childPids().filter((pid) => !childrenBefore.includes(pid)), [file.pid]);
    assert.equal((await readAll(file)).toString(), `${file.pid}:sh\n`);
    assert.equal(await file.close(), null);
  });

  it("mode 'r' streams a large output fully without blocking", async () => {
    const size = 5_000_000;
    const file = fw.popen(`head -c ${size} /dev/zero`);
    let timerRan = false;
    setTimeout(() => (timerRan = true), 0);
    const data = await readAll(file);
    assert.equal(data.length, size);
    assert.ok(data.every((byte) => byte === 0));
    assert.equal(await file.close(), null);
    assert.ok(timerRan, 'the event loop did not run meanwhile');
  });

  it("mode 'w' gives the command's stdin as a Writable; close() ends it and resolves null", async () => {
    const out = join(dir, 'out');
    const cat = fw.popen(`cat > '${out}'`, 'w');
    assert.ok(cat instanceof Writable);
    cat.write('hello ');
    cat.write(Buffer.from('world\n'));
    assert.equal(await cat.close(), null);
    assert.equal(readFileSync(out, 'utf8'), 'hello world\n');

    const counted = join(dir, 'count');
    const wc = fw.popen(`wc -c > '${counted}'`, 'w');
    const big = Buffer.alloc(3_000_000, 0x61);
    wc.write(big);
    assert.equal(await wc.close(), null);
    assert.equal(readFileSync(counted, 'utf8').trim(), String(big.length));
  });

  it('close() resolves null for exit 0, else the raw wait status', async () => {
    const exited = fw.popen('exit 3');
    assert.equal(await exited.close(), 768);
    const killed = fw.popen('kill -TERM $$');
    assert.equal(await killed.close(), constants.signals.SIGTERM);
    const writer = fw.popen('read x; exit 5', 'w');
    writer.write('line\n');
    assert.equal(await writer.close(), 5 << 8);
  });

  it('close() before the end drops the output and does not hang; a second call gives the same promise', async () => {
    const endless = fw.popen('exec yes');
    const first = endless.close();
    assert.equal(endless.close(), first);
    // yes dies of SIGPIPE (at default in the command, although Node ignores it).
    assert.equal(await first, constants.signals.SIGPIPE);
  });

  it('close() rejects with the stream error (EPIPE) after reaping a command that stopped reading', async () => {
    const writer = fw.popen('exit 0', 'w');
    writer.on('error', () => {});
    writer.write(Buffer.alloc(1_000_000));
    await assert.rejects(writer.close(), { code: 'EPIPE' });
  });

  it('leaves no descriptor behind, and the command inherits none of its pipe ends', async () => {
    const before = openFds();
    const file = fw.popen('ls /proc/self/fd');
    const listed = (await readAll(file)).toString().trim().split('\n').map(Number);
    assert.equal(await file.close(), null);
    // Beyond 0-2 and what this process had inheritable, only the directory ls reads.
    const inherited = (fd: number): boolean => fd <= 2 || (before.has(fd) && fw.getInheritable(fd));
    assert.equal(listed.filter((fd) => !inherited(fd)).length, 1, `the command has ${listed}`);
    const writer = fw.popen('cat > /dev/null', 'w');
    writer.write('x');
    await writer.close();
    assert.deepEqual([...openFds()].filter(([fd, target]) => before.get(fd) !== target), []);
    assert.deepEqual([...before].filter(([fd]) => !openFds().has(fd)), []);
  });

  it('validates command and mode', () => {
    assert.throws(() => fw.popen(u(42)), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
    assert.throws(() => fw.popen('echo\0x'), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
    for (const mode of ['rw', 'rb', '', 'W', 1, null]) {
      assert.throws(() => fw.popen('true', u(mode)), { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' });
    }
  });
});
