import assert from 'node:assert/strict';
import { deserialize, registerByHandle, serialize } from 'forkwise/multiprocessing';
import { Event, Mutex, SharedArray, SharedMemory, Value } from 'forkwise/sync';
import { codeOf } from './sync-helpers';

function roundTrip<T>(value: T): T {
  return deserialize(serialize(value)) as T;
}

describe('messaging serializer', function () {
  it('carries what structured clone carries: primitives, Dates, RegExps, typed arrays, BigInt, errors', function () {
    const date = new Date(123456789);
    const value = {
      n: 1.5,
      neg: -0,
      nan: NaN,
      big: 2n ** 70n,
      s: 'é ✓',
      t: true,
      u: undefined,
      nil: null,
      date,
      re: /a+b/gi,
      f64: new Float64Array([1, 2.5]),
      err: new RangeError('boom'),
    };
    const back = roundTrip(value);
    assert.ok(Object.is(back.neg, -0));
    assert.ok(Number.isNaN(back.nan));
    assert.equal(back.big, 2n ** 70n);
    assert.equal(back.s, 'é ✓');
    assert.ok('u' in back && back.u === undefined);
    assert.ok(back.date instanceof Date && back.date.getTime() === date.getTime());
    assert.equal(back.re.source, 'a+b');
    assert.equal(back.re.flags, 'gi');
    assert.deepEqual([...back.f64], [1, 2.5]);
    assert.ok(back.err instanceof RangeError);
    assert.equal(back.err.message, 'boom');
  });

  it('keeps shared references and cycles, in plain values and in values holding forkwise objects', function () {
    for (const withLock of [false, true]) {
      const shared = { x: 1 };
      const cyclic: Record<string, unknown> = { a: shared, b: shared };
      cyclic.self = cyclic;
      if (withLock) cyclic.lock = new Mutex();
      const back = roundTrip(cyclic);
      assert.equal(back.self, back, 'cycle');
      assert.equal(back.a, back.b, 'shared reference');
      assert.deepEqual(back.a, { x: 1 });
      if (withLock) assert.ok(back.lock instanceof Mutex);
    }
  });

  it('carries Maps and Sets, with forkwise objects as keys and values', function () {
    const event = new Event();
    const map = new Map<unknown, unknown>([
      ['k', 1],
      [event, 'as key'],
      ['ev', event],
    ]);
    const set = new Set<unknown>([1, 'two', event]);
    const back = roundTrip({ map, set });
    assert.ok(back.map instanceof Map && back.set instanceof Set);
    assert.equal(back.map.get('k'), 1);
    const keys = [...back.map.keys()];
    assert.ok(keys[1] instanceof Event);
    assert.equal(keys[1], back.map.get('ev'), 'one live object per marker');
    assert.ok([...back.set][2] instanceof Event);
    assert.equal([...back.set][2], keys[1]);
    // The live object works: the original sees what the copy does.
    (keys[1] as Event).set();
    assert.equal(event.isSet(), true);
  });

  it('carries forkwise objects by handle: the same lock, Value and SharedArray', function () {
    const lock = new Mutex();
    const value = new Value('int32', 5);
    const array = new SharedArray('float64', 4);
    array[2] = 2.5;
    const back = roundTrip({ lock, value, array, again: lock });
    assert.equal(back.lock, back.again);
    assert.ok(back.lock instanceof Mutex);
    back.lock.acquire();
    assert.equal(lock.locked(), true);
    back.lock.release();
    back.value.value = 9;
    assert.equal(value.value, 9);
    assert.ok(back.array instanceof Float64Array);
    assert.equal(back.array[2], 2.5);
    back.array[0] = 7;
    assert.equal(array[0], 7);
  });

  it('carries strings, Buffers and Uint8Arrays raw, with the same value and class back', function () {
    const long = 'x'.repeat(1000);
    const wide = 'ü\u{1F600}\ud800'.repeat(40); // non-latin1, astral, and a lone surrogate
    const buffer = Buffer.from(Array.from({ length: 300 }, (_, i) => i & 0xff));
    const u8 = new Uint8Array(buffer);
    assert.equal(serialize(long)[0], 2);
    assert.equal(serialize(wide)[0], 3);
    assert.equal(serialize(buffer)[0], 4);
    assert.equal(serialize(u8)[0], 5);
    assert.equal(roundTrip(long), long);
    assert.equal(roundTrip(wide), wide);
    const b = roundTrip(buffer);
    assert.ok(Buffer.isBuffer(b));
    assert.deepEqual(b, buffer);
    const u = roundTrip(u8);
    assert.ok(!Buffer.isBuffer(u) && u instanceof Uint8Array);
    assert.deepEqual([...u], [...u8]);
    // A copy: changing the serialized bytes afterwards changes nothing.
    const bytes = serialize(buffer);
    const copy = deserialize(bytes) as Buffer;
    bytes[5] ^= 0xff;
    assert.equal(copy[4], buffer[4]);
    // Short ones go through structured clone; a subclass keeps structured clone's meaning.
    assert.equal(serialize('short')[0], 0);
    assert.equal(roundTrip('short'), 'short');
    assert.equal(roundTrip(''), '');
  });

  it('names the path of a value that cannot be cloned', function () {
    const cases: Array<[unknown, string, RegExp]> = [
      [{ a: [1, { fn() {} }] }, 'msg', /^msg\.a\[1\]\.fn could not be cloned: function fn/],
      [[Symbol('s')], 'args', /^args\[0\] could not be cloned: Symbol\(s\)/],
      [{ 'odd key': () => 1 }, 'value', /^value\["odd key"\] could not be cloned: function/],
      [new Map([['k', () => 1]]), 'm', /^m\.k could not be cloned/],
      [new Set([1, () => 1]), 's', /^s\.values\(\)\[1\] could not be cloned/],
      [{ lock: new Mutex(), bad: () => 1 }, 'x', /^x\.bad could not be cloned/],
    ];
    for (const [value, path, message] of cases) {
      assert.throws(() => serialize(value, path), (e: Error) => {
        assert.ok(e instanceof TypeError);
        assert.equal(codeOf(e), 'ERR_FORKWISE_NOT_CLONEABLE');
        assert.match(e.message, message);
        return true;
      });
    }
    // Refused by V8 itself (a WeakMap): the path of the whole value.
    assert.throws(() => serialize({ w: new WeakMap() }, 'top'), { code: 'ERR_FORKWISE_NOT_CLONEABLE', message: /^top could not be cloned/ });
  });

  it('refuses bytes that are not a message and handles of unknown kinds', function () {
    assert.throws(() => deserialize(Buffer.of(9, 1, 2)), { code: 'ERR_FORKWISE_BAD_MESSAGE' });
    assert.throws(() => deserialize(Buffer.alloc(0)), { code: 'ERR_FORKWISE_BAD_MESSAGE' });
    // A forged marker: a kind nobody registered.
    const forged = serialize({ x: new Mutex() });
    const text = forged.toString('latin1').replace('Mutex', 'Nutex');
    assert.throws(() => deserialize(Buffer.from(text, 'latin1')), { code: 'ERR_FORKWISE_BAD_MESSAGE' });
    // A forged handle of a known kind naming no segment: the kind's own argument error.
    const dead = serialize({ x: new Mutex() }).toString('latin1');
    const name = /forkwise-\d+-\d+-[0-9a-f]{32}/.exec(dead)![0];
    const gone = Buffer.from(dead.replace(name, name.slice(0, -4) + '0000'), 'latin1');
    assert.throws(() => deserialize(gone), (e: Error) => codeOf(e) === 'ENOENT');
  });

  it('lets other kinds register (registerByHandle) and round-trips them', function () {
    class Token {
      constructor(readonly id: number) {}
    }
    registerByHandle(Token, ['TestToken'], (h: { id: number }) => new Token(h.id * 10), (t: Token) => ({ kind: 'TestToken', id: t.id } as { kind: string }));
    const back = roundTrip({ t: new Token(4) });
    assert.ok(back.t instanceof Token);
    assert.equal(back.t.id, 40);
    const shm = new SharedMemory({ size: 64 });
    try {
      const attached = roundTrip(shm);
      assert.ok(attached instanceof SharedMemory);
      assert.equal(attached.name, shm.name);
      attached.close();
    } finally {
      shm.unlink();
      shm.close();
    }
  });
});
