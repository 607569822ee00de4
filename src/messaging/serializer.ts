/**
 * The one transport for values (DESIGN.md "The high level"): V8's structured clone, with
 * forkwise's own objects carried by handle, wherever they sit inside the value.
 *
 * Format: one flag byte, then `v8.serialize`'s bytes. Flag 0: a plain value. Flag 1: the
 * value held forkwise objects, each written as a marker `{ "\0forkwise": handle }` that
 * `deserialize` turns back into a live object with the kind's `fromHandle`. A value with no
 * forkwise object inside is serialized as it is (no copy); one with some is copied along the
 * containers that lead to them, keeping shared references and cycles. Flags 2 to 5: a string
 * (latin1 or UTF-16 code units), a Buffer or a Uint8Array, carried as its raw bytes (the same
 * value back, without structured clone's framing and its cost).
 *
 * Every kind that crosses by handle registers here (`registerByHandle`); its handles carry
 * their kind in `handle.kind`.
 */
import { DefaultDeserializer, DefaultSerializer } from 'node:v8';
import { argError, ForkwiseError } from '../posix/errors';
import { Mutex, RLock, Semaphore, BoundedSemaphore } from '../sync/locks';
import { RWLock } from '../sync/rwlock';
import { Condition } from '../sync/condition';
import { Event } from '../sync/event';
import { Barrier } from '../sync/barrier';
import { Value, SharedArray, type ValueHandle } from '../sync/values';
import { SharedMemory } from '../sync/shared_memory';
import { native, supported } from '../posix/native';

const MARKER = '\u0000forkwise';
const PLAIN = 0;
const WITH_HANDLES = 1;
const PLAIN_BYTE = Buffer.of(PLAIN);
const WITH_HANDLES_BYTE = Buffer.of(WITH_HANDLES);

interface ByHandleKind {
  handleOf(value: object): { kind: string };
  fromHandle(handle: unknown): unknown;
}

// By constructor for the classes, by handle kind for the way back.
const byClass = new Map<Function, ByHandleKind>();
const byKind = new Map<string, ByHandleKind>();

/**
 * Makes instances of `cls` (not of its subclasses) cross by handle: `handleOf` gives the
 * plain description (`{ kind, ... }`), `fromHandle` attaches in the receiving thread or
 * process. `kinds` lists every `handle.kind` its handles may carry.
 */
export function registerByHandle(
  cls: Function,
  kinds: string[],
  fromHandle: (handle: never) => unknown,
  handleOf: (value: never) => { kind: string } = (value) => (value as { handle: { kind: string } }).handle,
): void {
  const entry: ByHandleKind = {
    handleOf: handleOf as ByHandleKind['handleOf'],
    fromHandle: fromHandle as ByHandleKind['fromHandle'],
  };
  byClass.set(cls, entry);
  for (const kind of kinds) byKind.set(kind, entry);
}

registerByHandle(Mutex, ['Mutex'], Mutex.fromHandle);
registerByHandle(RLock, ['RLock'], RLock.fromHandle);
registerByHandle(Semaphore, ['Semaphore'], (h) => Semaphore.fromHandle(h));
registerByHandle(BoundedSemaphore, ['BoundedSemaphore'], (h) => BoundedSemaphore.fromHandle(h));
registerByHandle(RWLock, ['RWLock'], RWLock.fromHandle);
registerByHandle(Condition, ['Condition'], Condition.fromHandle);
registerByHandle(Event, ['Event'], Event.fromHandle);
registerByHandle(Barrier, ['Barrier'], Barrier.fromHandle);
registerByHandle(Value, ['Value'], Value.fromHandle);
registerByHandle(SharedMemory, ['SharedMemory'], (h: { name: string }) => SharedMemory.attach(h.name), (shm: SharedMemory) => ({
  kind: 'SharedMemory',
  name: shm.name,
}));
byKind.set('SharedArray', { handleOf: (a) => (a as SharedArray).handle, fromHandle: (h) => SharedArray.fromHandle(h as ValueHandle) });

// Kinds whose module a thread or process may not have loaded when their first handle
// arrives (a manager proxy sent to a thread that only imported forkwise/threading).
const lateModules: Record<string, string> = { Manager: '../multiprocessing/manager_proxy', Fallback: '../compat/index' };

function lateKind(kind: string): ByHandleKind | undefined {
  for (const [prefix, module] of Object.entries(lateModules)) {
    if (kind.startsWith(prefix)) {
      require(module);
      return byKind.get(kind);
    }
  }
  return undefined;
}

/** A value that structured clone cannot carry: a TypeError that names where it sits. */
function notCloneable(path: string, detail: string): Error {
  return argError(TypeError, 'ERR_FORKWISE_NOT_CLONEABLE', `${path} could not be cloned: ${detail}`);
}

function kindOf(value: object): ByHandleKind | undefined {
  if (ArrayBuffer.isView(value)) {
    return Object.prototype.hasOwnProperty.call(value, 'handle') ? byKind.get('SharedArray') : undefined;
  }
  const proto = Object.getPrototypeOf(value) as { constructor?: Function } | null;
  return proto?.constructor ? byClass.get(proto.constructor) : undefined;
}

// Objects whose insides structured clone takes as they are (or refuses as a whole).
function isOpaque(value: object): boolean {
  return (
    ArrayBuffer.isView(value) ||
    value instanceof ArrayBuffer ||
    value instanceof SharedArrayBuffer ||
    value instanceof Date ||
    value instanceof RegExp ||
    value instanceof Error
  );
}

function describe(value: unknown): string {
  if (typeof value === 'function') return `function ${value.name || '(anonymous)'}`;
  if (typeof value === 'symbol') return value.toString();
  return Object.prototype.toString.call(value);
}

function childPath(path: string, key: string | number): string {
  if (typeof key === 'number') return `${path}[${key}]`;
  return /^[A-Za-z_$][\w$]*$/.test(key) ? `${path}.${key}` : `${path}[${JSON.stringify(key)}]`;
}

// Walks `value` as structured clone will, finding forkwise objects and values it refuses
// (functions and symbols). True when a forkwise object is inside. Paths are only built
// (by `pathOfRefused`) once something is refused: building them for every key cost more
// than the serialization itself.
// Shallow values are walked without remembering what was seen (a Set per message cost as
// much as the rest of the walk); one deeper than SHALLOW_DEPTH, perhaps a cycle, is walked
// again with a Set.
function scan(value: unknown, seen: Set<object> | undefined, depth: number): boolean {
  if (typeof value !== 'object') {
    if (typeof value === 'function' || typeof value === 'symbol') throw REFUSED;
    return false;
  }
  if (value === null) return false;
  if (seen) {
    if (seen.has(value)) return false;
  } else if (depth > SHALLOW_DEPTH) {
    throw DEEP;
  }
  if (kindOf(value)) return true;
  if (isOpaque(value)) return false;
  seen?.add(value);
  depth++;
  let found = false;
  if (value instanceof Map) {
    for (const [k, v] of value) found = scan(k, seen, depth) || scan(v, seen, depth) || found;
  } else if (value instanceof Set) {
    for (const v of value) found = scan(v, seen, depth) || found;
  } else if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) found = scan(value[i], seen, depth) || found;
  } else {
    for (const key in value) {
      if (Object.prototype.hasOwnProperty.call(value, key)) found = scan((value as Record<string, unknown>)[key], seen, depth) || found;
    }
  }
  return found;
}

const SHALLOW_DEPTH = 32;
const REFUSED = Symbol('refused');
const DEEP = Symbol('deep');

// The path and description of the first value that `scan` refused.
function pathOfRefused(value: unknown, path: string, seen: Set<object>): [string, string] | undefined {
  if (typeof value === 'function' || typeof value === 'symbol') return [path, describe(value)];
  if (value === null || typeof value !== 'object' || seen.has(value)) return undefined;
  seen.add(value);
  if (kindOf(value) || isOpaque(value)) return undefined;
  let i = 0;
  if (value instanceof Map) {
    for (const [k, v] of value) {
      const found =
        pathOfRefused(k, `${path}.keys()[${i}]`, seen) ??
        pathOfRefused(v, childPath(path, typeof k === 'string' || typeof k === 'number' ? String(k) : `<key ${i}>`), seen);
      if (found) return found;
      i++;
    }
  } else if (value instanceof Set) {
    for (const v of value) {
      const found = pathOfRefused(v, `${path}.values()[${i++}]`, seen);
      if (found) return found;
    }
  } else if (Array.isArray(value)) {
    for (; i < value.length; i++) {
      const found = pathOfRefused(value[i], childPath(path, i), seen);
      if (found) return found;
    }
  } else {
    for (const key of Object.keys(value)) {
      const found = pathOfRefused((value as Record<string, unknown>)[key], childPath(path, key), seen);
      if (found) return found;
    }
  }
  return undefined;
}

// The copy that structured clone will see: forkwise objects replaced by markers.
function encode(value: unknown, copies: Map<object, unknown>): unknown {
  if (value === null || typeof value !== 'object') return value;
  const done = copies.get(value);
  if (done !== undefined) return done;
  const kind = kindOf(value);
  if (kind) {
    const marker = { [MARKER]: kind.handleOf(value) };
    copies.set(value, marker);
    return marker;
  }
  if (isOpaque(value)) return value;
  if (value instanceof Map) {
    const copy = new Map();
    copies.set(value, copy);
    for (const [k, v] of value) copy.set(encode(k, copies), encode(v, copies));
    return copy;
  }
  if (value instanceof Set) {
    const copy = new Set();
    copies.set(value, copy);
    for (const v of value) copy.add(encode(v, copies));
    return copy;
  }
  const copy = (Array.isArray(value) ? new Array(value.length) : {}) as Record<string, unknown>;
  copies.set(value, copy);
  for (const key of Object.keys(value)) copy[key] = encode((value as Record<string, unknown>)[key], copies);
  return copy;
}

// Markers back to live objects, in place; `done` keeps one live object per marker, so a
// forkwise object referenced twice comes back as one.
function decode(value: unknown, done: Map<object, unknown>): unknown {
  if (value === null || typeof value !== 'object' || isOpaque(value)) return value;
  if (done.has(value)) return done.get(value);
  if (Object.prototype.hasOwnProperty.call(value, MARKER)) {
    const handle = (value as Record<string, { kind?: unknown }>)[MARKER];
    const kind = typeof handle?.kind === 'string' ? (byKind.get(handle.kind) ?? lateKind(handle.kind)) : undefined;
    if (!kind) throw new ForkwiseError('ERR_FORKWISE_BAD_MESSAGE', 'forkwise: a message names an unknown kind of object');
    const live = kind.fromHandle(handle);
    done.set(value, live);
    return live;
  }
  done.set(value, value);
  if (value instanceof Map) {
    const entries = [...value];
    value.clear();
    for (const [k, v] of entries) value.set(decode(k, done), decode(v, done));
  } else if (value instanceof Set) {
    const items = [...value];
    value.clear();
    for (const v of items) value.add(decode(v, done));
  } else {
    const record = value as Record<string, unknown>;
    for (const key of Object.keys(record)) record[key] = decode(record[key], done);
  }
  return value;
}

// Values that need no structured clone: their bytes as they are, behind a flag of their own.
const LATIN1_STRING = 2;
const UTF16_STRING = 3;
const BUFFER = 4;
const UINT8ARRAY = 5;
const RAW_MIN = 64; // below this, V8's own format costs no more
const NOT_LATIN1 = /[^\u0000-\u00ff]/;

function raw(flag: number, bytes: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(1 + bytes.length);
  out[0] = flag;
  out.set(bytes, 1);
  return out;
}

function rawString(value: string): Buffer {
  const latin1 = !NOT_LATIN1.test(value);
  const size = latin1 ? value.length : value.length * 2;
  const out = Buffer.allocUnsafe(1 + size);
  out[0] = latin1 ? LATIN1_STRING : UTF16_STRING;
  out.write(value, 1, size, latin1 ? 'latin1' : 'utf16le');
  return out;
}

// Whether `value` holds forkwise objects; a refused value throws, named by its path (found
// only then: building paths for every key cost more than the serialization).
function holdsHandles(value: unknown, path: string): boolean {
  try {
    try {
      return scan(value, undefined, 0);
    } catch (error) {
      if (error !== DEEP) throw error;
      return scan(value, new Set(), 0);
    }
  } catch (error) {
    if (error !== REFUSED) throw error;
    const [where, what] = pathOfRefused(value, path, new Set()) ?? [path, 'a function or a symbol'];
    throw notCloneable(where, what);
  }
}

/**
 * Serializes `value` for another thread or process. Throws a `TypeError` with code
 * `ERR_FORKWISE_NOT_CLONEABLE` naming the path of a value that cannot cross (`args[1].fn`).
 * Strings and plain Buffers / Uint8Arrays of 64 bytes or more are carried raw (a flag byte
 * and their bytes); everything else goes through V8's structured clone.
 *
 * @example
 * const bytes = serialize({ lock: new Mutex(), n: 1 }, 'message');
 * deserialize(bytes); // { lock: Mutex (the same lock), n: 1 }
 */
export function serialize(value: unknown, path = 'value'): Buffer {
  const bytes = serializeShortLived(value, path);
  if (bytes.buffer !== scratch.buffer) return bytes as Buffer;
  const copy = Buffer.allocUnsafe(bytes.length);
  copy.set(bytes);
  return copy;
}

// Where V8 writes a serialized value first: reused, so `serializeShortLived` costs no
// allocation for a value that fits.
const SCRATCH_BYTES = 64 * 1024;
const scratch = Buffer.allocUnsafeSlow(SCRATCH_BYTES);

/**
 * @internal `serialize`, for a caller that copies the bytes out before it serializes again
 * (Connection.send): they may be in memory that the next call reuses.
 */
export function serializeShortLived(value: unknown, path = 'value'): Uint8Array {
  if (typeof value === 'string') {
    if (value.length >= RAW_MIN) return rawString(value);
  } else if (value instanceof Uint8Array && value.length >= RAW_MIN) {
    const proto = Object.getPrototypeOf(value);
    if (proto === Buffer.prototype) return raw(BUFFER, value);
    if (proto === Uint8Array.prototype && !Object.prototype.hasOwnProperty.call(value, 'handle')) return raw(UINT8ARRAY, value);
  }
  const hasHandles = holdsHandles(value, path);
  const input = hasHandles ? encode(value, new Map()) : value;
  const flag = hasHandles ? WITH_HANDLES : PLAIN;
  // V8's serializer called directly, into the scratch; node:v8's for what it leaves to Node
  // (typed arrays, DataViews) and to say why a value is refused.
  const fast = supported ? native.serializeInto(input, flag, scratch) : undefined;
  if (typeof fast === 'number') return scratch.subarray(0, fast);
  if (fast !== undefined) return fast;
  const serializer = new DefaultSerializer();
  serializer.writeRawBytes(hasHandles ? WITH_HANDLES_BYTE : PLAIN_BYTE);
  serializer.writeHeader();
  try {
    serializer.writeValue(input);
  } catch (error) {
    throw notCloneable(path, error instanceof Error ? error.message : String(error));
  }
  return serializer.releaseBuffer();
}

const NOT_FAST = Symbol('not fast');

/** The value that `serialize` wrote, forkwise objects attached in this thread or process. */
export function deserialize(bytes: Uint8Array): unknown {
  const flag = bytes[0];
  switch (flag) {
    case LATIN1_STRING:
    case UTF16_STRING:
      return Buffer.from(bytes.buffer, bytes.byteOffset + 1, bytes.byteLength - 1).toString(flag === LATIN1_STRING ? 'latin1' : 'utf16le');
    case BUFFER:
      return Buffer.from(bytes.subarray(1));
    case UINT8ARRAY:
      return new Uint8Array(bytes.subarray(1));
    default:
  }
  if (bytes.byteLength < 2 || (flag !== PLAIN && flag !== WITH_HANDLES)) {
    throw new ForkwiseError('ERR_FORKWISE_BAD_MESSAGE', "forkwise: a message is not in forkwise's format");
  }
  let value = supported ? native.deserializeFrom(bytes, 1, NOT_FAST) : NOT_FAST;
  if (value === NOT_FAST) {
    const deserializer = new DefaultDeserializer(bytes);
    deserializer.readRawBytes(1);
    deserializer.readHeader();
    value = deserializer.readValue();
  }
  return flag === WITH_HANDLES ? decode(value, new Map()) : value;
}

/**
 * `value` ready for `postMessage` / `workerData` between threads: forkwise objects replaced
 * by their handles, everything else left to the structured clone of `postMessage`, which
 * shares `SharedArrayBuffer`s (and typed arrays over them) instead of copying them. Refused
 * values throw as in `serialize`, naming their path.
 *
 * @example
 * new Worker(file, { workerData: toHandles({ lock, counts: new Int32Array(new SharedArrayBuffer(8)) }, 'args') });
 * // in the worker: fromHandles(workerData) gives the same lock and the same memory
 */
export function toHandles(value: unknown, path = 'value'): unknown {
  const hasHandles = holdsHandles(value, path);
  return hasHandles ? encode(value, new Map()) : value;
}

/** What `toHandles` made, after `postMessage`: forkwise objects attached in this thread. */
export function fromHandles(value: unknown): unknown {
  return decode(value, new Map());
}
