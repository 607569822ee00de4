import assert from 'node:assert/strict';
import { runNode, underAsan } from './helpers';

function lastJson(stdout: string): any {
  const lines = stdout.trim().split('\n');
  return JSON.parse(lines[lines.length - 1]!.replace(/^RESULT /, ''));
}

describe('fork()', function () {
  this.timeout(30000);

  it('gives the child a working heap, JIT, GC, fs and timers (facts 1-3)', async () => {
    const out = await runNode('fork-workload.js');
    assert.equal(out.code, 0, out.stderr);
    const [childLine, parentLine] = out.stdout.trim().split('\n');
    const child = JSON.parse(childLine!);
    assert.equal(child.ok, true);
    // Without --single-threaded this loop ran ~30x slower in a child (DESIGN.md fact 3).
    assert.ok(child.hotMs < 5000, `hot loop took ${child.hotMs} ms`);
    assert.deepEqual(JSON.parse(parentLine!), { pid: JSON.parse(parentLine!).pid, status: 42 << 8, kind: 'exited', exitCode: 42 });
  });

  it("a child's full collections do not hang after the parent collected just before fork()", async () => {
    // warmup() wakes Node's platform worker threads; the child inherits their queue's
    // condition variable and posts to it from its mark-compacts. It hung there every time
    // before fork() held those threads (native/platform_park.cc).
    const out = await runNode('fork-workload.js', ['warmup'], { timeoutMs: 45000 });
    assert.equal(out.code, 0, out.stderr);
    const [childLine, parentLine] = out.stdout.trim().split('\n');
    assert.equal(JSON.parse(childLine!).ok, true);
    assert.equal(JSON.parse(parentLine!).exitCode, 42);
  });

  it('a child whose loop runs dry after full collections ends', async () => {
    // Its mark-compacts post worker tasks that never run in the child, and Node waits for
    // them when the loop runs dry: the child hung there (native/child_loop_end.cc).
    const out = await runNode('fork-workload.js', ['dry'], { timeoutMs: 45000 });
    assert.equal(out.code, 0, out.stderr);
    const [childLine, parentLine] = out.stdout.trim().split('\n');
    assert.equal(JSON.parse(childLine!).ok, true);
    assert.equal(JSON.parse(parentLine!).exitCode, 42);
  });

  describe('every exit path of the child ends it (fact 4)', () => {
    const cases: Array<[string, number]> = [
      ['exit', 3],
      ['exitCode', 4],
      ['dry', 0],
      ['beforeExit', 5],
      ['throw', 1],
      ['reject', 1],
      ['listenerSetsCode', 9],
      ['listenerExits', 6],
      ['listenerThrows', 1],
    ];
    for (const [mode, code] of cases) {
      it(`${mode} → exit code ${code}, 'exit' listeners run`, async () => {
        const out = await runNode('fork-exit.js', [mode]);
        assert.equal(out.code, 0, out.stderr);
        const result = lastJson(out.stdout);
        assert.equal(result.kind, 'exited');
        assert.equal(result.exitCode, code);
        assert.match(out.stdout, new RegExp(`exit listener ran in child with ${mode.startsWith('listener') ? 0 : code}`));
      });
    }

    it('prints an uncaught exception as Node does', async () => {
      const out = await runNode('fork-exit.js', ['throw']);
      assert.match(out.stderr, /Error: thrown in child\n\s+at /);
      assert.match(out.stderr, /Node\.js v\d+/);
    });

    it("prints an exception thrown by an 'exit' listener as Node does", async () => {
      const out = await runNode('fork-exit.js', ['listenerThrows']);
      assert.match(out.stderr, /Error: thrown in exit listener\n\s+at /);
      assert.match(out.stderr, /Node\.js v\d+/);
    });

    it('prints an unhandled rejection', async () => {
      const out = await runNode('fork-exit.js', ['reject']);
      assert.match(out.stderr, /Error: rejected in child/);
    });

    it('flushes a megabyte of stdout written just before process.exit', async () => {
      const out = await runNode('fork-exit.js', ['output']);
      assert.equal(out.code, 0);
      assert.match(out.stdout, /^x{1048576}\nend\n/);
      assert.equal(lastJson(out.stdout).exitCode, 0);
    });
  });

  describe("fork() inside an 'exit' listener: the child ends cleanly (CPython refuses it)", () => {
    // How the parent came to emit 'exit', and the code it ends with.
    const reaches: Array<[string, number]> = [
      ['exit', 3], // process.exit(3)
      ['exitCode', 4], // process.exitCode = 4, then the loop runs dry
      ['dry', 0], // the loop runs dry
      ['throw', 1], // an uncaught exception
      ['reject', 1], // an unhandled rejection
    ];
    // What the child then does in the listener, and the code it must end with (null: the
    // parent's, inherited with process.exitCode).
    const childDoes: Array<[string, number | null]> = [
      ['nothing', null],
      ['exit', 7],
      ['exitCode', 8],
      ['throw', null],
    ];
    for (const [reach, parentCode] of reaches) {
      for (const [does, childCode] of childDoes) {
        if ((reach === 'throw' || reach === 'reject') && does !== 'nothing') continue;
        it(`parent reaches 'exit' by ${reach}, child does ${does}`, async () => {
          const out = await runNode('fork-in-exit.js', [reach, does]);
          assert.equal(out.code, parentCode, out.stderr);
          const result = lastJson(out.stdout.replace(/\nsecond listener in parent\n?$/, ''));
          const expected = childCode ?? (does === 'throw' && parentCode === 0 ? 1 : parentCode);
          assert.deepEqual([result.kind, result.exitCode], ['exited', expected], out.stderr);
          assert.match(out.stdout, new RegExp(`child forked in 'exit' \\(code ${parentCode}\\)`));
          // the listeners after the forking one run in the child too, unless it left early
          assert.equal(out.stdout.includes('second listener in child'), does === 'nothing' || does === 'exitCode');
          assert.match(out.stdout, /second listener in parent\n$/);
          if (does === 'throw') assert.match(out.stderr, /Error: thrown in a child forked at exit\n\s+at /);
          // the parent's fatal error is printed once, by the parent
          if (reach === 'throw') assert.equal(out.stderr.split('Error: thrown in parent').length, 2, out.stderr);
          if (reach === 'reject') assert.equal(out.stderr.split('Error: rejected in parent').length, 2, out.stderr);
        });
      }
    }
  });

  it('gives the child its own process.pid and Math.random sequence (facts 5, 6)', async () => {
    const out = await runNode('fork-identity.js');
    assert.equal(out.code, 0, out.stderr);
    const r = JSON.parse(out.stdout);
    assert.equal(r.child.pid, r.childPid);
    assert.equal(r.child.getpid, r.childPid);
    assert.equal(r.child.ppid, r.parentPid);
    assert.notDeepEqual(r.child.random, r.parentRandom);
    for (const x of r.child.random) assert.ok(x >= 0 && x < 1);
    assert.equal(r.status.exitCode, 0);
  });

  it('data queued on a stream at fork time reaches the reader once (fact 13)', async () => {
    const out = await runNode('fork-pending-writes.js');
    assert.equal(out.code, 0, out.stderr);
    const r = JSON.parse(out.stdout);
    const chunk = 100 * 1024;
    assert.ok(r.atFork.queued > 0, 'the scenario must have writes queued at fork time');
    assert.ok(r.atFork.jsBuffered > 0, 'and chunks in the JavaScript buffer');
    assert.deepEqual([r.a, r.b, r.c], [chunk, chunk, chunk]);
    assert.equal(r.child, true);
    assert.equal(r.total, 3 * chunk + 'CHILD'.length);
    assert.equal(r.status.exitCode, 0);
  });

  it("a backlog on the parent's stdout is written once, by the parent", async () => {
    const out = await runNode('fork-stdout-backlog.js');
    assert.equal(out.code, 0, out.stderr);
    const [, backlog, written] = /backlog at fork: (\d+) of (\d+)/.exec(out.stderr)!;
    assert.ok(Number(backlog) > 0, out.stderr);
    assert.match(out.stderr, /"exitCode":0/);
    assert.equal(out.stdout.split('p').length - 1, Number(written));
    assert.equal(out.stdout.split('CHILD\n').length - 1, 1);
  });

  it('children forked while the thread pool is busy end on their own (fact 13)', async function () {
    if (underAsan) this.skip();
    this.timeout(90000); // longer than the scenario's own limit, which kills it
    const out = await runNode('fork-busy-pool.js', ['25'], { timeoutMs: 60000 });
    assert.equal(out.code, 0, out.stderr);
    const { statuses } = JSON.parse(out.stdout);
    assert.equal(statuses.length, 25);
    assert.deepEqual(statuses, new Array(25).fill(0));
  });

  it('a live worker thread does not keep the child alive (fact 14)', async function () {
    if (underAsan) this.skip();
    const out = await runNode('fork-worker.js');
    assert.equal(out.code, 0, out.stderr);
    assert.equal(JSON.parse(out.stdout).exitCode, 5);
  });

  it('warns once (FORKWISE_UNSAFE_FORK) without --single-threaded', async () => {
    const out = await runNode('fork-unsafe-warning.js', [], { nodeArgs: [] });
    assert.equal(out.code, 0, out.stderr);
    assert.deepEqual(JSON.parse(out.stdout), { warnings: 1, isForkSafe: false });
    assert.equal(out.stderr.match(/FORKWISE_UNSAFE_FORK/g)?.length, 1);
  });

  it('reexecSingleThreaded() keeps the pid and arguments and becomes fork-safe', async () => {
    const out = await runNode('reexec.js', ['a b', 'c'], { nodeArgs: ['--no-warnings'] });
    assert.equal(out.code, 0, out.stderr);
    // The new image runs the script from the start: it prints its first line again.
    const lines = out.stdout.trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.length, 3);
    const [before, , after] = lines;
    assert.equal(before.safe, false);
    assert.equal(after.after, true);
    assert.equal(after.safe, true);
    assert.equal(after.pid, before.pid);
    assert.deepEqual(after.argv, ['a b', 'c']);
    assert.deepEqual(after.execArgv, ['--single-threaded', '--no-warnings']);
  });
});
