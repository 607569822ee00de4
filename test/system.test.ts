import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, realpathSync, rmSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as fw from 'forkwise';
import { childPids, runNode } from './helpers';

/** Passes a deliberately wrong value where the types do not allow it. */
const u = (value: unknown): never => value as never;

const bit = (signal: NodeJS.Signals): bigint => 1n << BigInt(constants.signals[signal] - 1);

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
