import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as fw from 'forkwise';
import { forkChild, runNode } from './helpers';

describe('waiting', () => {
  it('waitpid reports an exit code', () => {
    const pid = forkChild(() => 7);
    assert.deepEqual(fw.waitpid(pid), { pid, status: 7 << 8, kind: 'exited', exitCode: 7 });
  });

  it('waitpid reports death by signal', () => {
    const pid = forkChild(() => {
      fw.raise('SIGKILL');
    });
    const result = fw.waitpid(pid);
    assert.equal(result?.kind, 'signaled');
    assert.deepEqual(result, { pid, status: 9, kind: 'signaled', signal: 'SIGKILL', coreDumped: false });
    assert.equal(fw.waitstatusToExitcode(result!.status), -9);
  });

  it('WNOHANG, WUNTRACED and WCONTINUED', () => {
    const [r, w] = fw.pipe();
    const pid = forkChild(() => {
      fw.close(w);
      require('node:fs').readSync(r, Buffer.alloc(1)); // blocks until the parent closes w
    });
    fw.close(r);
    assert.equal(fw.waitpid(pid, fw.WNOHANG), null);
    fw.kill(pid, 'SIGSTOP');
    assert.deepEqual(fw.waitpid(pid, fw.WUNTRACED), { pid, status: 0x137f, kind: 'stopped', signal: 'SIGSTOP' });
    fw.kill(pid, 'SIGCONT');
    assert.deepEqual(fw.waitpid(pid, fw.WCONTINUED), { pid, status: 0xffff, kind: 'continued' });
    fw.close(w);
    assert.equal(fw.waitpid(pid)?.kind, 'exited');
  });

  it('wait() reaps a child', () => {
    const pid = forkChild(() => 2);
    assert.deepEqual(fw.wait(), { pid, status: 2 << 8, kind: 'exited', exitCode: 2 });
  });

  it('waitpid of a pid that is not a child is ECHILD', () => {
    assert.throws(() => fw.waitpid(1), { code: 'ECHILD', errno: -10, syscall: 'waitpid', message: 'ECHILD: no child processes, waitpid' });
  });

  it('the W* helpers decode raw statuses as C does', () => {
    assert.equal(fw.WIFEXITED(0x0300), true);
    assert.equal(fw.WEXITSTATUS(0x0300), 3);
    assert.equal(fw.WIFSIGNALED(0x0086), true);
    assert.equal(fw.WTERMSIG(0x0086), 6);
    assert.equal(fw.WCOREDUMP(0x0086), true);
    assert.equal(fw.WIFSTOPPED(0x137f), true);
    assert.equal(fw.WSTOPSIG(0x137f), 19);
    assert.equal(fw.WIFCONTINUED(0xffff), true);
    assert.equal(fw.waitstatusToExitcode(0), 0);
  });

  describe('waitpidAsync', () => {
    it('does not block the event loop while it waits', async () => {
      const [r, w] = fw.pipe();
      const pid = forkChild(() => {
        fw.close(w);
        require('node:fs').readSync(r, Buffer.alloc(1));
        return 11;
      });
      fw.close(r);
      let ticks = 0;
      const interval = setInterval(() => {
        if (++ticks === 5) fw.close(w); // the child ends only after the loop ran 5 timers
      }, 5);
      const result = await fw.waitpidAsync(pid);
      clearInterval(interval);
      assert.ok(ticks >= 5, `${ticks} timer ticks`);
      assert.deepEqual(result, { pid, status: 11 << 8, kind: 'exited', exitCode: 11 });
    });

    it('never reaps a child_process child next to it', async () => {
      const other = spawn('sh', ['-c', 'sleep 0.2; exit 3']);
      const otherExit = new Promise<number | null>((resolve) => other.on('exit', (code) => resolve(code)));
      const pid = forkChild(() => 1);
      const [mine, theirs] = await Promise.all([fw.waitpidAsync(pid), otherExit]);
      assert.equal(mine.pid, pid);
      assert.equal(theirs, 3);
    });

    it('resolves for a child that has already exited, and rejects ECHILD for a stranger', async () => {
      const pid = forkChild(() => 4);
      await new Promise((r) => setTimeout(r, 50));
      assert.equal((await fw.waitpidAsync(pid)).kind, 'exited');
      await assert.rejects(fw.waitpidAsync(1), { code: 'ECHILD' });
    });

    it('rejects with AbortError when aborted, and leaves the child to be reaped', async () => {
      const [r, w] = fw.pipe();
      const pid = forkChild(() => {
        fw.close(w);
        require('node:fs').readSync(r, Buffer.alloc(1));
      });
      fw.close(r);
      const controller = new AbortController();
      const waiting = fw.waitpidAsync(pid, { signal: controller.signal });
      setTimeout(() => controller.abort(), 10);
      await assert.rejects(waiting, { name: 'AbortError' });
      fw.close(w);
      assert.equal(fw.waitpid(pid)?.kind, 'exited');
    });

    it('works without pidfd (waitid thread)', async () => {
      const out = await runNode('wait-async.js', [], { env: { ...process.env, FORKWISE_NO_PIDFD: '1' } });
      assert.equal(out.code, 0, out.stderr);
      assert.deepEqual(JSON.parse(out.stdout), { exitCodes: [1, 2, 3], aborted: true, ticks: true });
    });
  });
});
