import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as fw from 'forkwise';
import { runNode } from './helpers';

function ignoredSignals(): bigint {
  const line = readFileSync('/proc/self/status', 'utf8').split('\n').find((l) => l.startsWith('SigIgn:'))!;
  return BigInt(`0x${line.split(/\s+/)[1]}`);
}

describe('exec family', () => {
  it('execvp from Node gives the program the inherited stdin, stdout and stderr (fact 10)', async () => {
    const out = await runNode('exec-stdio.js', [], { input: 'hello\n' });
    assert.equal(out.code, 0, out.stderr);
    assert.match(out.stdout, /^got:hello$/m);
    assert.equal(out.stderr, 'to-stderr\n');
    // SIGPIPE (bit 13) back to default, mask empty, fd 1 blocking (no O_NONBLOCK, 04000).
    const sigIgn = BigInt(`0x${/^SigIgn:\s+(\w+)/m.exec(out.stdout)![1]}`);
    assert.equal(sigIgn & (1n << 12n), 0n, 'SIGPIPE ignored in the new program');
    assert.match(out.stdout, /^SigBlk:\s+0+$/m);
    const flags = parseInt(/^flags:\s+(\d+)/m.exec(out.stdout)![1]!, 8);
    assert.equal(flags & 0o4000, 0, 'stdout still non-blocking');
  });

  it('a failed exec throws and leaves the process as it was', () => {
    const before = [0, 1, 2].map((fd) => [fw.getInheritable(fd), fw.getBlocking(fd)]);
    const ignored = ignoredSignals();
    assert.throws(() => fw.execv('/nonexistent/program', ['program']), {
      code: 'ENOENT',
      errno: -2,
      syscall: 'execv',
      path: '/nonexistent/program',
      message: "ENOENT: no such file or directory, execv '/nonexistent/program'",
    });
    assert.throws(() => fw.execvp('no-such-program-anywhere', ['x']), { code: 'ENOENT', syscall: 'execvp' });
    const dir = mkdtempSync(join(tmpdir(), 'forkwise-'));
    const notExecutable = join(dir, 'data');
    writeFileSync(notExecutable, 'data', { mode: 0o644 });
    assert.throws(() => fw.execv(notExecutable, ['x']), { code: 'EACCES', path: notExecutable });
    rmSync(dir, { recursive: true });
    assert.deepEqual([0, 1, 2].map((fd) => [fw.getInheritable(fd), fw.getBlocking(fd)]), before);
    assert.equal(ignoredSignals(), ignored);
  });

  it('runs each variant with its arguments and environment', async () => {
    const out = await runNode('exec-variants.js');
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(JSON.parse(out.stdout), {
      execv: 'a1|',
      execve: 'a2|2',
      execvp: 'a3|',
      execvpe: 'a4|4',
      execl: 'a5|',
      execle: 'a6|6',
      execlp: 'a7|',
      execlpe: 'a8|8',
      execvpeUsesEnvPath: 'found-in-env-path',
    });
  });
});
