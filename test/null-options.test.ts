/**
 * `null` where an option may be given means "not given", as in Node's own option objects
 * (`child_process`'s `{ cwd: null }`) and as CPython takes `None`: for an options argument
 * itself and for each of its properties, everywhere one is read. Each row makes the call with
 * `null` and checks what it did against the default, with real descriptors, processes,
 * signal dispositions and shared memory.
 */
import assert from 'node:assert/strict';
import { realpathSync } from 'node:fs';
import * as fw from 'forkwise';
import {
  Barrier,
  BoundedSemaphore,
  BrokenBarrierError,
  Condition,
  Event,
  Mutex,
  RLock,
  RWLock,
  Semaphore,
  SharedArray,
  SharedMemory,
  Value,
} from 'forkwise/sync';

/** Passes null where the declared types do not allow it. */
const n = <T>(value: T): T => value;
const NULL = null as never;

function pipeFlags([r, w]: [number, number]): [boolean, boolean] {
  try {
    return [fw.getInheritable(r), fw.getBlocking(r)];
  } finally {
    fw.close(r);
    fw.close(w);
  }
}

/** Spawns `sh -c script` with `env` and `options` and returns its exit code. */
function spawnExit(spawn: typeof fw.posixSpawn, file: string, script: string, env: unknown, options: unknown): number {
  const pid = spawn(file, ['sh', '-c', script], env as never, options as never);
  const r = fw.waitpid(pid)!;
  assert.equal(r.kind, 'exited');
  return (r as { exitCode: number }).exitCode;
}

describe('null for an option means not given', function () {
  this.timeout(20000);

  describe('raw layer', () => {
    const rows: Array<[string, () => void]> = [
      ['pipe(null)', () => assert.deepEqual(pipeFlags(fw.pipe(NULL)), [false, true])],
      [
        'pipe({ cloexec: null, nonblock: null })',
        () => assert.deepEqual(pipeFlags(fw.pipe({ cloexec: n(null), nonblock: n(null) })), [false, true]),
      ],
      ...([null, { inheritable: null }] as const).map((options): [string, () => void] => [
        `dup2(fd, fd2, ${JSON.stringify(options)})`,
        () => {
          const [r, w] = fw.pipe();
          const spare = fw.dup(w);
          try {
            assert.equal(fw.getInheritable(spare), false);
            assert.equal(fw.dup2(r, spare, options as never), spare);
            assert.equal(fw.getInheritable(spare), true, 'inheritable, the default');
          } finally {
            for (const fd of [r, w, spare]) fw.close(fd);
          }
        },
      ]),
      ...(['posixSpawn', 'posixSpawnp'] as const).flatMap((name): Array<[string, () => void]> => {
        const spawn = fw[name];
        const file = name === 'posixSpawn' ? '/bin/sh' : 'sh';
        const keys = ['fileActions', 'setpgroup', 'setsid', 'setsigmask', 'setsigdef', 'resetids', 'cwd'];
        return [
          [`${name}(file, argv, null, null)`, () => assert.equal(spawnExit(spawn, file, 'exit 3', null, null), 3)],
          [
            `${name}: env null is this process's environment`,
            () => {
              process.env.FORKWISE_NULL_OPTION = 'inherited';
              try {
                assert.equal(spawnExit(spawn, file, '[ "$FORKWISE_NULL_OPTION" = inherited ]', null, undefined), 0);
              } finally {
                delete process.env.FORKWISE_NULL_OPTION;
              }
            },
          ],
          ...keys.map((key): [string, () => void] => [
            `${name}(…, { ${key}: null })`,
            () => assert.equal(spawnExit(spawn, file, 'exit 4', undefined, { [key]: null }), 4),
          ]),
          [
            `${name}: every option null at once is the defaults: same cwd, process group, session, empty mask`,
            () => {
              const all = Object.fromEntries(keys.map((key) => [key, null]));
              // The mask is read first and by builtins only: dash blocks every signal while it
              // waits for a child, so a forked grep would see the shell's mask of that moment.
              const script =
                `while read -r key value; do [ "$key" = SigBlk: ] && mask=$value; done < /proc/$$/status; ` +
                `case "$mask" in ''|*[!0]*) exit 11;; esac; ` +
                `[ "$(pwd -P)" = '${realpathSync(process.cwd())}' ] || exit 12; ` +
                `read -r _ _ _ _ pgid sid _ < /proc/$$/stat; ` +
                `[ "$pgid" = ${fw.getpgid()} ] || exit 13; [ "$sid" = ${fw.getsid()} ] || exit 14`;
              assert.equal(spawnExit(spawn, file, script, null, all), 0);
            },
          ],
        ];
      }),
      [
        'waitpidAsync(pid, null) and { signal: null }',
        async () => {
          for (const options of [null, { signal: null }]) {
            const pid = fw.posixSpawn('/bin/sh', ['sh', '-c', 'exit 5']);
            const r = await fw.waitpidAsync(pid, options as never);
            assert.deepEqual([r.kind, (r as { exitCode: number }).exitCode], ['exited', 5]);
          }
        },
      ] as [string, () => void],
      [
        "sigaction(sig, null) only reads, as sigaction(sig)",
        () => {
          const before = fw.sigaction('SIGUSR2');
          assert.deepEqual(fw.sigaction('SIGUSR2', NULL), before);
          assert.deepEqual(fw.sigaction('SIGUSR2'), before);
        },
      ],
      [
        'sigaction(sig, { handler, flags: null, mask: null }) and flags of null',
        () => {
          const before = fw.sigaction('SIGUSR2');
          try {
            for (const action of [
              { handler: 'ignore', flags: null, mask: null },
              { handler: 'ignore', flags: { restart: null, nodefer: null }, mask: null },
            ]) {
              fw.sigaction('SIGUSR2', action as never);
              const now = fw.sigaction('SIGUSR2');
              assert.equal(now.handler, 'ignore');
              assert.deepEqual(Object.values(now.flags), [false, false, false, false, false]);
              assert.deepEqual(now.mask, []);
            }
          } finally {
            fw.sigaction('SIGUSR2', before);
          }
        },
      ],
    ];
    for (const [name, run] of rows) it(name, run);
  });

  describe('forkwise/sync', () => {
    const locks: Array<[string, () => Mutex | RLock | Semaphore | BoundedSemaphore | RWLock | Condition]> = [
      ['Mutex', () => new Mutex()],
      ['RLock', () => new RLock()],
      ['Semaphore', () => new Semaphore()],
      ['BoundedSemaphore', () => new BoundedSemaphore()],
      ['RWLock', () => new RWLock()],
      ['Condition', () => new Condition()],
    ];
    for (const [kind, make] of locks) {
      it(`${kind}: acquire and acquireAsync with null options or null properties take the lock`, async () => {
        const lock = make();
        const sync = [null, { blocking: null, timeout: null }, { blocking: false, timeout: null }, { timeout: null }];
        for (const options of sync) {
          assert.equal(lock.acquire(options as never), true, `acquire(${JSON.stringify(options)})`);
          assert.equal(lock.locked(), true);
          lock.release();
        }
        for (const options of [null, { timeout: null, signal: null }]) {
          assert.equal(await lock.acquireAsync(options as never), true, `acquireAsync(${JSON.stringify(options)})`);
          lock.release();
        }
        assert.equal(lock.locked(), false);
        // still refused: a timeout together with blocking: false
        assert.throws(() => lock.acquire({ blocking: false, timeout: 5 }), { code: 'ERR_INVALID_ARG_VALUE' });
      });
    }

    it('RWLock: acquireRead/acquireWrite and their async forms with null', async () => {
      const rw = new RWLock();
      assert.equal(rw.acquireRead(NULL), true);
      rw.releaseRead();
      assert.equal(rw.acquireWrite({ blocking: n(null), timeout: n(null) }), true);
      rw.releaseWrite();
      assert.equal(await rw.acquireReadAsync(NULL), true);
      rw.releaseRead();
      assert.equal(await rw.acquireWriteAsync({ signal: n(null) }), true);
      rw.releaseWrite();
    });

    it('Event: wait(null) and waitAsync(null | { timeout: null, signal: null }) wait for ever', async () => {
      const ev = new Event();
      const pending = [ev.waitAsync(NULL), ev.waitAsync({ timeout: n(null), signal: n(null) })];
      setTimeout(() => ev.set(), 50);
      assert.deepEqual(await Promise.all(pending), [true, true]);
      assert.equal(ev.wait(NULL), true);
    });

    it('Condition: waitAsync(null) waits until notified; waitFor(predicate, null)', async () => {
      const cond = new Condition();
      await cond.acquireAsync(NULL);
      setTimeout(() => {
        cond.acquire();
        cond.notify();
        cond.release();
      }, 50);
      assert.equal(await cond.waitAsync(NULL), true);
      assert.equal(cond.waitFor(() => 7, NULL), 7);
      cond.release();
    });

    it("Barrier: options null is none; a timeout of null is the barrier's default", async () => {
      const one = new Barrier(1, NULL);
      assert.equal(one.wait(NULL), 0);
      assert.equal(await one.waitAsync(NULL), 0);
      assert.equal(new Barrier(1, { timeout: n(null) }).handle.timeout, null);
      // with a default of 50 ms, wait(null) gives up after it instead of waiting for ever
      const lonely = new Barrier(2, { timeout: 50 });
      assert.throws(() => lonely.wait(NULL), BrokenBarrierError);
      const lonelyAsync = new Barrier(2, { timeout: 50 });
      await assert.rejects(lonelyAsync.waitAsync({ timeout: n(null), signal: n(null) }), BrokenBarrierError);
    });

    it('SharedMemory({ size, name: null }) makes an owned, unnamed segment', () => {
      const shm = new SharedMemory({ size: 16, name: n(null) });
      try {
        assert.match(shm.name, /^forkwise-\d+-\d+-[0-9a-f]{32}$/);
        assert.equal(shm.size, 16);
      } finally {
        shm.unlink();
        shm.close();
      }
    });

    it('Value and SharedArray: options null or { lock: null } get the default Mutex', () => {
      for (const options of [null, { lock: null }]) {
        assert.ok(new Value('int32', 5, options as never).getLock() instanceof Mutex);
        assert.ok(new SharedArray('float64', 3, options as never).getLock() instanceof Mutex);
      }
    });
  });
});
