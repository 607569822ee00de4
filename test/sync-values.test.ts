import assert from 'node:assert/strict';
import { Mutex, RLock, SharedArray, SharedMemory, Value, type ElementType as ValueType } from 'forkwise/sync';
import { runNode } from './helpers';
import { Children, codeOf, runWorker, until } from './sync-helpers';

const N = 100_000;

const limits: Record<ValueType, { zero: number | bigint; samples: Array<number | bigint>; array: string }> = {
  int8: { zero: 0, samples: [127, -128, -1], array: 'Int8Array' },
  uint8: { zero: 0, samples: [255, 0, 1], array: 'Uint8Array' },
  int16: { zero: 0, samples: [32767, -32768], array: 'Int16Array' },
  uint16: { zero: 0, samples: [65535, 1], array: 'Uint16Array' },
  int32: { zero: 0, samples: [2 ** 31 - 1, -(2 ** 31)], array: 'Int32Array' },
  uint32: { zero: 0, samples: [2 ** 32 - 1, 7], array: 'Uint32Array' },
  int64: { zero: 0n, samples: [2n ** 63n - 1n, -(2n ** 63n), -1n], array: 'BigInt64Array' },
  uint64: { zero: 0n, samples: [2n ** 64n - 1n, 2n ** 53n + 1n], array: 'BigUint64Array' },
  float32: { zero: 0, samples: [Math.fround(1.1), -0.5, Math.fround(3.4e38)], array: 'Float32Array' },
  float64: { zero: 0, samples: [Math.PI, -1e308, Number.MIN_VALUE], array: 'Float64Array' },
};
const types = Object.keys(limits) as ValueType[];

describe('forkwise/sync Value and SharedArray', function () {
  this.timeout(60000);
  const children = new Children();
  afterEach(() => children.cleanup());

  describe('Value', () => {
    for (const type of types) {
      it(`${type}: starts at zero, round-trips its limits, is shared with a forked child`, async () => {
        const { zero, samples } = limits[type];
        const v = new Value(type);
        assert.equal(v.type, type);
        assert.equal(v.value, zero);
        assert.equal(typeof v.value, typeof zero);
        for (const s of samples) {
          v.value = s;
          assert.equal(v.value, s);
        }
        const init = new Value(type, samples[0]);
        assert.equal(init.value, samples[0]);
        const last = samples[samples.length - 1]!;
        const pid = children.fork(() => {
          if (v.value !== last) return 2;
          v.value = samples[0]!;
          return 0;
        });
        await children.ok(pid);
        assert.equal(v.value, samples[0]);
      });
    }

    it('float32 rounds like a Float32Array; integer types wrap like typed arrays or reject, never store garbage', () => {
      const f = new Value('float32', 1.1);
      assert.equal(f.value, Math.fround(1.1));
      const i8 = new Value('int8');
      let stored: unknown;
      try {
        i8.value = 200;
        stored = i8.value;
      } catch (e) {
        stored = e instanceof RangeError || e instanceof TypeError ? 'rejected' : e;
      }
      assert.ok(stored === -56 || stored === 'rejected', `int8 = 200 gave ${String(stored)}`);
    });

    it('64-bit values are bigint: a number is either rejected (TypeError) or stored exactly as a bigint', () => {
      for (const type of ['int64', 'uint64'] as const) {
        const v = new Value(type, 5n);
        try {
          (v as any).value = 7;
          assert.equal(v.value, 7n);
        } catch (e) {
          assert.ok(e instanceof TypeError, String(e));
          assert.equal(v.value, 5n);
        }
        assert.equal(typeof v.value, 'bigint');
      }
      const big = new Value('uint64', 2n ** 64n - 1n);
      assert.equal(big.value, 18446744073709551615n);
    });

    it('a counter Value under its getLock(): 2 forked processes + 2 workers x 100,000, exact', async () => {
      const counter = new Value('int32', 0);
      const lock = counter.getLock();
      const gate = new SharedMemory({ size: 8 });
      const g = new Int32Array(gate.buffer);
      const body = (): number => {
        Atomics.add(g, 1, 1);
        while (Atomics.load(g, 0) === 0);
        for (let i = 0; i < N; i++) {
          lock.acquire();
          counter.value = (counter.value as number) + 1;
          lock.release();
        }
        return 0;
      };
      const pids = [children.fork(body), children.fork(body)];
      const workers = [0, 1].map(() =>
        runWorker(
          `const c = sync.Value.fromHandle(workerData.h);
           const lock = c.getLock();
           const g = new Int32Array(sync.SharedMemory.attach(workerData.gate).buffer);
           Atomics.add(g, 1, 1);
           while (Atomics.load(g, 0) === 0);
           for (let i = 0; i < workerData.n; i++) { lock.acquire(); c.value = c.value + 1; lock.release(); }`,
          { h: counter.handle, gate: gate.name, n: N },
          60000,
        ),
      );
      try {
        await until(() => Atomics.load(g, 1) === 4, 10000, 'participants');
        Atomics.store(g, 0, 1);
        const results = await Promise.allSettled([...workers, ...pids.map((p) => children.ok(p, 60000))]);
        for (const r of results) if (r.status === 'rejected') throw r.reason;
      } finally {
        children.cleanup();
        await Promise.allSettled(workers);
        gate.unlink();
        gate.close();
      }
      assert.equal(counter.value, 4 * N);
    });

    it('getLock(): a Mutex by default; the given Mutex/RLock; throws with lock: false', () => {
      const v = new Value('int32');
      const l = v.getLock();
      assert.ok(l instanceof Mutex);
      assert.equal(v.getLock().handle.name, l.handle.name, 'the same lock every time');
      l.acquire();
      v.value = 5; // the holder reads and writes without taking it again
      assert.equal(v.value, 5);
      l.release();
      const m = new Mutex();
      const withMutex = new Value('float64', 1.5, { lock: m });
      assert.equal(withMutex.getLock().handle.name, m.handle.name);
      const r = new RLock();
      assert.equal(new Value('int8', 1, { lock: r }).getLock().handle.name, r.handle.name);
      const bare = new Value('uint16', 3, { lock: false });
      assert.throws(() => bare.getLock(), (e: unknown) => e instanceof Error);
      assert.equal(bare.value, 3);
    });

    it('handles: JSON-able and structured-cloneable; fromHandle in a worker and a spawned process sees the same value', async () => {
      const v = new Value('int64', 123n);
      assert.equal(v.handle.kind, 'Value');
      assert.deepEqual(JSON.parse(JSON.stringify(v.handle)), v.handle);
      assert.deepEqual(structuredClone(v.handle), v.handle);
      const again = Value.fromHandle(JSON.parse(JSON.stringify(v.handle)));
      assert.equal(again.type, 'int64');
      assert.equal(again.value, 123n);
      again.value = 124n;
      assert.equal(v.value, 124n);
      const seen = await runWorker<string>(
        `const v = sync.Value.fromHandle(workerData.h); const s = String(v.value); v.value = -9n; return s;`,
        { h: v.handle },
      );
      assert.equal(seen, '124');
      assert.equal(v.value, -9n);
      const out = await runNode('sync-values.js', [JSON.stringify(v.handle)], { timeoutMs: 10000 });
      assert.equal(out.code, 0, out.stderr);
      assert.deepEqual(JSON.parse(out.stdout), { value: '-9', type: 'int64' });
      assert.equal(v.value, 10n ** 18n);
    });

    it('bad input -> clear errors', () => {
      for (const t of ['int128', 'Int32', '', 'toString', '__proto__', 5, null, undefined]) {
        assert.throws(() => new Value(t as any), (e: unknown) => (e instanceof TypeError || e instanceof RangeError) && /^ERR_/.test(codeOf(e) ?? ''), String(t));
      }
      assert.throws(() => new Value('int32', 'x' as any), TypeError);
      assert.throws(() => new Value('int32', 1, { lock: {} as any }), TypeError);
      assert.throws(() => new Value('int32', 1, 'yes' as any), TypeError);
      for (const h of [null, {}, { kind: 'Mutex', name: new Mutex().handle.name }, { kind: 'Value', name: 3 }]) {
        assert.throws(() => Value.fromHandle(h as any), (e: unknown) => e instanceof TypeError && /^ERR_INVALID_ARG_(VALUE|TYPE)$/.test(codeOf(e) ?? ''));
      }
    });
  });

  describe('SharedArray', () => {
    for (const type of types) {
      it(`${type}: returns a ${limits[type].array} over shared memory (fork and worker see it)`, async () => {
        const { zero, samples, array } = limits[type];
        const a = new SharedArray(type, 5);
        assert.equal(Object.prototype.toString.call(a), `[object ${array}]`);
        assert.equal(a.constructor.name, array);
        assert.equal(a.length, 5);
        for (let i = 0; i < 5; i++) assert.equal(a[i], zero);
        a[0] = samples[0];
        const pid = children.fork(() => {
          if (a[0] !== samples[0]) return 2;
          a[4] = samples[samples.length - 1];
          return 0;
        });
        await children.ok(pid);
        assert.equal(a[4], samples[samples.length - 1]);
        const fromWorker = await runWorker<string>(
          `const a = sync.SharedArray.fromHandle(workerData.h);
           const s = a.constructor.name + ':' + a.length + ':' + String(a[0]);
           a[1] = a[0];
           return s;`,
          { h: a.handle },
        );
        assert.equal(fromWorker, `${array}:5:${String(samples[0])}`);
        assert.equal(a[1], samples[0]);
      });
    }

    it('initial values, non-enumerable getLock and handle', () => {
      const a = new SharedArray('int16', [1, -2, 3]);
      assert.deepEqual([...a], [1, -2, 3]);
      assert.deepEqual(Object.keys(a), ['0', '1', '2']);
      assert.equal(Object.prototype.propertyIsEnumerable.call(a, 'getLock'), false);
      assert.equal(Object.prototype.propertyIsEnumerable.call(a, 'handle'), false);
      assert.ok(a.getLock() instanceof Mutex);
      assert.equal(a.handle.kind, 'SharedArray');
      assert.deepEqual(JSON.parse(JSON.stringify(a.handle)), a.handle);
      const b = new SharedArray('uint64', [1n, 2n ** 64n - 1n]);
      assert.ok(b instanceof BigUint64Array);
      assert.equal(b[1], 2n ** 64n - 1n);
      const c = SharedArray.fromHandle(structuredClone((b as any).handle));
      assert.ok(c instanceof BigUint64Array);
      c[0] = 99n;
      assert.equal(b[0], 99n);
      const noLock = new SharedArray('int8', 2, { lock: false });
      assert.throws(() => noLock.getLock());
    });

    it('a counter in a SharedArray slot under getLock(): two processes, exact', async () => {
      const a = new SharedArray('int32', 4);
      const lock = a.getLock();
      const body = (): number => {
        for (let i = 0; i < N; i++) {
          lock.acquire();
          a[2] = a[2] + 1;
          lock.release();
        }
        return 0;
      };
      const pids = [children.fork(body), children.fork(body)];
      await Promise.all(pids.map((p) => children.ok(p, 60000)));
      assert.equal(a[2], 2 * N);
    });

    it('bad input -> clear errors', () => {
      for (const len of [-1, 1.5, 2 ** 53, NaN, 'x', null]) {
        assert.throws(() => new SharedArray('int32', len as any), (e: unknown) => (e instanceof TypeError || e instanceof RangeError) && /^ERR_/.test(codeOf(e) ?? ''), String(len));
      }
      assert.throws(() => new SharedArray('nope' as any, 3), (e: unknown) => e instanceof TypeError || e instanceof RangeError);
      assert.throws(() => new SharedArray('int32', ['a', 2] as any), TypeError);
      assert.throws(() => SharedArray.fromHandle({ kind: "SharedArray" } as any), TypeError);
      assert.throws(() => SharedArray.fromHandle(new Value('int32').handle), (e: unknown) => e instanceof TypeError && codeOf(e) === 'ERR_INVALID_ARG_VALUE');
    });

    it('stale handles of every kind (creator exited) -> ENOENT', async () => {
      const out = await runNode('sync-handles.js', [], { timeoutMs: 10000 });
      assert.equal(out.code, 0, out.stderr);
      const h = JSON.parse(out.stdout);
      assert.throws(() => Value.fromHandle(h.Value), { code: 'ENOENT' });
      assert.throws(() => SharedArray.fromHandle(h.SharedArray), { code: 'ENOENT' });
    });
  });
});
