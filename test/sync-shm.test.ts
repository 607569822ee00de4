import assert from 'node:assert/strict';
import { existsSync, statSync } from 'node:fs';
import { Event, Mutex, SharedMemory, Value } from 'forkwise/sync';
import { orphanedSegments, runNode } from './helpers';
import { Children, codeOf, runWorker, sleep, shmNames, sleepSync, spinUntil, testName, until } from './sync-helpers';

describe('forkwise/sync SharedMemory', function () {
  this.timeout(20000);
  const children = new Children();
  const userNames: string[] = [];
  afterEach(() => children.cleanup());
  after(() => {
    for (const name of userNames) {
      try {
        SharedMemory.attach(name).unlink();
      } catch {
        // already gone, as expected
      }
    }
    assert.deepEqual(shmNames().filter((n) => n.startsWith(`fwtest-${process.pid}-`)), [], 'user-named segments left');
  });

  it('creates a zero-filled segment of the given size under /dev/shm with mode 0600', () => {
    const shm = new SharedMemory({ size: 10000 });
    assert.match(shm.name, new RegExp(`^forkwise-${process.pid}-\\d+-[0-9a-f]{32}$`));
    assert.equal(shm.size, 10000);
    assert.ok(shm.buffer instanceof ArrayBuffer);
    assert.equal(shm.buffer.byteLength, 10000);
    assert.ok(new Uint8Array(shm.buffer).every((b) => b === 0));
    const st = statSync(`/dev/shm/${shm.name}`);
    assert.equal(st.mode & 0o777, 0o600);
    assert.equal(st.size, 10000);
    assert.equal(st.uid, process.getuid!());
    shm.unlink();
    shm.close();
  });

  it('default names are unguessable: a different 128-bit random part every time', () => {
    const names = new Set<string>();
    const segs = [];
    for (let i = 0; i < 20; i++) {
      const s = new SharedMemory({ size: 1 });
      segs.push(s);
      names.add(s.name.slice(s.name.lastIndexOf('-') + 1));
    }
    assert.equal(names.size, 20);
    for (const s of segs) {
      s.unlink();
      s.close();
    }
  });

  it('a forked child sees the parent\'s writes and the parent sees the child\'s', async () => {
    const shm = new SharedMemory({ size: 4096 });
    const view = new Int32Array(shm.buffer);
    view[0] = 12345;
    const pid = children.fork(() => {
      if (view[0] !== 12345) return 2;
      view[1] = 777; // to the parent
      // wait for the parent's answer, written after fork
      spinUntil(() => Atomics.load(view, 2) === 99, 5000, 'parent write');
      view[3] = 1;
      return 0;
    });
    await until(() => Atomics.load(view, 1) === 777, 5000, 'child write');
    Atomics.store(view, 2, 99);
    await children.ok(pid);
    assert.equal(view[3], 1);
    shm.unlink();
    shm.close();
  });

  it('a spawned Node process attaches by name and sees the same bytes both ways', async () => {
    const shm = new SharedMemory({ size: 64 });
    const bytes = new Uint8Array(shm.buffer);
    bytes.set([1, 2, 3, 250], 0);
    const out = await runNode('sync-shm-attach.js', [shm.name], { timeoutMs: 10000 });
    assert.equal(out.code, 0, out.stderr);
    const r = JSON.parse(out.stdout);
    assert.deepEqual(r.first, [1, 2, 3, 250]);
    assert.equal(r.size, 64);
    assert.equal(r.name, shm.name);
    assert.deepEqual([...bytes.subarray(10, 14)], [9, 8, 7, 6]);
    // the spawned process attached; it must not have removed the parent's segment on exit
    assert.ok(existsSync(`/dev/shm/${shm.name}`));
    shm.unlink();
    shm.close();
  });

  it('a worker thread attaches by name and sees the same bytes both ways', async () => {
    const shm = new SharedMemory({ size: 32 });
    const v = new Int32Array(shm.buffer);
    v[0] = 0x11223344;
    const seen = await runWorker<number>(
      `const s = sync.SharedMemory.attach(workerData.name);
       const v = new Int32Array(s.buffer);
       const first = v[0];
       v[1] = -5;
       s.close();
       return first;`,
      { name: shm.name },
    );
    assert.equal(seen, 0x11223344);
    assert.equal(v[1], -5);
    shm.unlink();
    shm.close();
  });

  it('attach takes its size from the segment', () => {
    const shm = new SharedMemory({ size: 5000 });
    const again = SharedMemory.attach(shm.name);
    assert.equal(again.size, 5000);
    assert.equal(again.buffer.byteLength, 5000);
    new Uint8Array(shm.buffer)[4999] = 42;
    assert.equal(new Uint8Array(again.buffer)[4999], 42);
    again.close();
    shm.unlink();
    shm.close();
  });

  it('close() detaches the buffer and is idempotent; the name stays until unlink()', () => {
    const shm = new SharedMemory({ size: 100 });
    const buf = shm.buffer;
    shm.close();
    assert.equal(buf.byteLength, 0);
    assert.doesNotThrow(() => shm.close());
    assert.ok(existsSync(`/dev/shm/${shm.name}`));
    shm.unlink();
    assert.ok(!existsSync(`/dev/shm/${shm.name}`));
  });

  it('unlink() removes the name; a second unlink is ENOENT; the mapping stays usable', () => {
    const shm = new SharedMemory({ size: 16 });
    shm.unlink();
    assert.ok(!existsSync(`/dev/shm/${shm.name}`));
    assert.throws(() => shm.unlink(), { code: 'ENOENT' });
    const v = new Uint8Array(shm.buffer);
    v[3] = 3;
    assert.equal(v[3], 3);
    shm.close();
  });

  it('attach of a missing name is a PosixError ENOENT from shm_open', () => {
    assert.throws(() => SharedMemory.attach(testName('missing')), { code: 'ENOENT', syscall: 'shm_open' });
  });

  it('user-given names: created as given, EEXIST when taken, never unlinked automatically', async () => {
    const name = testName('user');
    userNames.push(name);
    const shm = new SharedMemory({ size: 8, name });
    assert.equal(shm.name, name);
    assert.ok(existsSync(`/dev/shm/${name}`));
    assert.equal(statSync(`/dev/shm/${name}`).mode & 0o777, 0o600);
    assert.throws(() => new SharedMemory({ size: 8, name }), { code: 'EEXIST' });
    // a spawned process that creates a user-named segment and exits leaves it in place
    const other = testName('user2');
    userNames.push(other);
    const out = await runNode('sync-shm-lifecycle.js', ['user', other], { timeoutMs: 10000 });
    assert.equal(out.code, 0, out.stderr);
    assert.ok(existsSync(`/dev/shm/${other}`), 'a user-named segment must survive its creator');
    SharedMemory.attach(other).unlink();
    shm.unlink();
    shm.close();
  });

  describe('bad input', () => {
    for (const size of ['16', null, undefined, 16n, {}]) {
      it(`size ${String(size)} -> TypeError ERR_INVALID_ARG_TYPE`, () => {
        assert.throws(() => new SharedMemory({ size: size as any }), { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' });
      });
    }
    // A number that is not an integer is out of range, as in Node's own checks (Buffer.alloc).
    for (const size of [1.5, NaN, 0, -1, -(2 ** 31), 2 ** 40 + 1, 2 ** 53]) {
      it(`size ${size} -> RangeError ERR_OUT_OF_RANGE`, () => {
        assert.throws(() => new SharedMemory({ size }), { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' });
      });
    }
    it('options that are not an object -> TypeError', () => {
      assert.throws(() => new SharedMemory(undefined as any), TypeError);
      assert.throws(() => new SharedMemory(16 as any), TypeError);
    });
    for (const [label, name] of [
      ['with a slash', 'a/b'],
      ['with a leading slash', '/abc'],
      ['empty', ''],
      ['of 201 characters', 'x'.repeat(201)],
      ['not a string', 42],
    ] as Array<[string, unknown]>) {
      it(`a name ${label} is rejected with a clear error, and nothing is created`, () => {
        const before = new Set(shmNames());
        assert.throws(
          () => new SharedMemory({ size: 8, name: name as any }),
          (e: unknown) => (e instanceof TypeError || e instanceof RangeError) && /^ERR_/.test(codeOf(e) ?? ''),
        );
        assert.deepEqual(shmNames().filter((n) => !before.has(n) && !n.startsWith('forkwise-')), []);
      });
    }
    it('a name of 200 characters is accepted', () => {
      const name = testName('long').padEnd(200, 'y');
      userNames.push(name);
      const shm = new SharedMemory({ size: 8, name });
      assert.equal(shm.name.length, 200);
      shm.unlink();
      shm.close();
    });
    it('attach of names that are not valid -> errors, not crashes', () => {
      assert.throws(() => SharedMemory.attach(42 as any), TypeError);
      assert.throws(() => SharedMemory.attach('a/b'), (e: unknown) => /^ERR_/.test(codeOf(e) ?? ''));
    });
    it('a buffer kept after close() cannot reach the unmapped memory (no crash)', () => {
      const shm = new SharedMemory({ size: 4096 });
      const view = new Uint8Array(shm.buffer);
      shm.unlink();
      shm.close();
      assert.equal(view.length, 0);
      assert.equal(view[0], undefined);
    });
  });

  for (const mode of ['closed', 'open', 'primitives']) {
    it(`garbage collection of ${mode === 'primitives' ? 'dropped primitives' : `${mode} segments`} does not crash the process`, async () => {
      const out = await runNode('sync-gc.js', [mode], { nodeArgs: ['--single-threaded', '--expose-gc'], timeoutMs: 10000 });
      assert.equal(out.signal, null, `the process died of ${out.signal}`);
      assert.equal(out.code, 0, out.stderr);
      assert.equal(out.stdout.trim(), 'survived');
    });
  }

  describe('ownership and crash clean-up', () => {
    it('a SIGKILLed creator leaves garbage that the next new SharedMemory sweeps (a second after the last sweep)', async () => {
      // This process swept at its first creation; the next sweep comes a second after that.
      const earlier = new SharedMemory({ size: 8 });
      earlier.unlink();
      earlier.close();
      const pid = children.fork(() => {
        const s = new SharedMemory({ size: 4096 });
        new Uint8Array(s.buffer)[0] = 1;
        sleepSync(30000);
      });
      let name: string | undefined;
      await until(() => (name = shmNames().find((n) => n.startsWith(`forkwise-${pid}-`))) !== undefined, 5000, 'the child\'s segment');
      children.killAndReap(pid);
      assert.ok(existsSync(`/dev/shm/${name}`), 'the dead creator\'s segment exists before the sweep');
      await sleep(1050);
      const fresh = new SharedMemory({ size: 8 });
      assert.ok(!existsSync(`/dev/shm/${name}`), `/dev/shm/${name} must be swept`);
      fresh.unlink();
      fresh.close();
    });

    it('a sweep in another process (spawned node) also removes it; live creators are untouched', async () => {
      const mine = new SharedMemory({ size: 8 });
      const pid = children.fork(() => {
        new SharedMemory({ size: 4096 });
        sleepSync(30000);
      });
      let name: string | undefined;
      await until(() => (name = shmNames().find((n) => n.startsWith(`forkwise-${pid}-`))) !== undefined, 5000, 'the child\'s segment');
      children.killAndReap(pid);
      const out = await runNode('sync-shm-lifecycle.js', ['create'], { timeoutMs: 10000 });
      assert.equal(out.code, 0, out.stderr);
      assert.ok(!existsSync(`/dev/shm/${name}`), 'swept by the spawned process');
      assert.ok(existsSync(`/dev/shm/${mine.name}`), 'a live creator\'s segment is not swept');
      mine.unlink();
      mine.close();
    });

    it('the segments of primitives made by a SIGKILLed process are swept as well', async () => {
      const pid = children.fork(() => {
        new Mutex();
        new Event();
        new Value('int32', 1);
        sleepSync(30000);
      });
      await until(() => shmNames().filter((n) => n.startsWith(`forkwise-${pid}-`)).length >= 3, 5000, 'the child\'s segments');
      const names = shmNames().filter((n) => n.startsWith(`forkwise-${pid}-`));
      children.killAndReap(pid);
      await sleep(1100); // apart from any rate limit on sweeping
      const fresh = new SharedMemory({ size: 8 });
      fresh.unlink();
      fresh.close();
      for (const name of names) assert.ok(!existsSync(`/dev/shm/${name}`), `${name} must be swept`);
    });

    it('a segment whose name has a reused pid but another start time is swept too', async () => {
      // a segment named after a live process (this one) but with a start time that is not ours:
      // its creator is gone even though the pid exists
      const fake = `forkwise-${process.pid}-1-${'ab'.repeat(16)}`;
      const shm = new SharedMemory({ size: 8, name: fake });
      shm.close();
      await sleep(1100); // apart from any rate limit on sweeping: this checks which names are swept
      const fresh = new SharedMemory({ size: 8 });
      const survived = existsSync(`/dev/shm/${fake}`);
      if (survived) SharedMemory.attach(fake).unlink();
      fresh.unlink();
      fresh.close();
      assert.equal(survived, false, 'a stale forkwise-<pid>-<start> segment with a reused pid must be swept');
    });

    it('default-named segments disappear when their creator exits; forked children do not unlink the parent\'s', async () => {
      const out = await runNode('sync-shm-lifecycle.js', ['exit'], { timeoutMs: 10000 });
      assert.equal(out.code, 0, out.stderr);
      const r = JSON.parse(out.stdout.trim().split('\n').pop()!);
      assert.equal(r.parentsAfterChildExit, true, 'the child\'s exit must not remove the parent\'s segment');
      assert.equal(r.childsAfterChildExit, false, 'the child\'s own segment goes with it');
      assert.equal(r.status.exitCode, 0);
      for (const name of r.names as string[]) assert.ok(!existsSync(`/dev/shm/${name}`), `${name} left after exit`);
    });

    it('after all that, no segment of a dead creator is left once a sweep has run', async () => {
      await sleep(1100);
      const s = new SharedMemory({ size: 8 });
      s.unlink();
      s.close();
      assert.deepEqual(orphanedSegments(), []);
    });
  });
});
