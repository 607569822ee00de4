import assert from 'node:assert/strict';
import { readSync, writeSync } from 'node:fs';
import * as fw from 'forkwise';
import { forkChild } from './helpers';

describe('signals to processes and identity', () => {
  it('kill delivers a signal and kill(pid, 0) checks existence', () => {
    const [r, w] = fw.pipe();
    const pid = fw.fork();
    if (pid === 0) {
      try {
        fw.close(w);
        readSync(r, Buffer.alloc(1));
      } finally {
        fw._exit(0);
      }
    }
    fw.close(r);
    fw.kill(pid, 0);
    fw.kill(pid, 'SIGTERM');
    assert.deepEqual(fw.waitpid(pid), { pid, status: 15, kind: 'signaled', signal: 'SIGTERM', coreDumped: false });
    fw.close(w);
    assert.throws(() => fw.kill(pid, 0), { code: 'ESRCH', syscall: 'kill' });
  });

  it('setpgid, getpgid and killpg on a child group; getppid in the child', () => {
    const [r, w] = fw.pipe();
    const [blockR, blockW] = fw.pipe();
    const pid = fw.fork();
    if (pid === 0) {
      try {
        fw.close(r);
        fw.close(blockW);
        fw.setpgid(0, 0);
        writeSync(w, JSON.stringify({ pgid: fw.getpgid(), ppid: fw.getppid() }) + '\n');
        readSync(blockR, Buffer.alloc(1)); // blocks until the group signal ends it
      } finally {
        fw._exit(0);
      }
    }
    fw.close(w);
    fw.close(blockR);
    const buf = Buffer.alloc(256);
    const n = readSync(r, buf);
    fw.close(r);
    const seen = JSON.parse(buf.toString('utf8', 0, n));
    assert.equal(seen.pgid, pid);
    assert.equal(seen.ppid, process.pid);
    assert.equal(fw.getpgid(pid), pid);
    fw.killpg(pid, 'SIGKILL');
    assert.equal(fw.waitpid(pid)?.kind, 'signaled');
    fw.close(blockW);
  });

  it('setsid makes a new session led by the child', () => {
    const pid = forkChild(() => {
      const sid = fw.setsid();
      return sid === fw.getpid() && fw.getsid() === sid && fw.getpgid() === sid ? 0 : 2;
    });
    assert.deepEqual(fw.waitpid(pid), { pid, status: 0, kind: 'exited', exitCode: 0 });
  });

  it('raise signals the calling process', () => {
    const pid = forkChild(() => fw.raise('SIGUSR2'));
    assert.equal(fw.waitpid(pid)?.kind, 'signaled');
  });

  it('real-time signals by name, both ways', () => {
    const pid = forkChild(() => fw.raise('SIGRTMIN+2'));
    const result = fw.waitpid(pid);
    assert.deepEqual(result, { pid, status: 36, kind: 'signaled', signal: 'SIGRTMIN+2', coreDumped: false });
  });

  it('identity functions agree with Node', () => {
    assert.equal(fw.getpid(), process.pid);
    assert.equal(fw.getppid(), process.ppid);
    assert.equal(fw.getsid(0), fw.getsid(process.pid));
  });
});
