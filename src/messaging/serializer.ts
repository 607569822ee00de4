/**
 * The one transport for values (DESIGN.md "The high level"): V8's structured clone, with
 * forkwise's own objects carried by handle, wherever they sit inside the value.
 *
 * Format: one flag byte, then `v8.serialize`'s bytes. Flag 0: a plain value. Flag 1: the
 * value held forkwise objects, each written as a marker `{ "\0forkwise": handle }` that
 * `deserialize` turns back into a live object with the kind's `fromHandle`. A value with no
 * forkwise object inside is serialized as it is (no copy); one with some is copied along the
 * containers that lead to them, keeping shared references and cycles.
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
// (functions and symbols, named with their path). True when a forkwise object is inside.
function scan(value: unknown, path: string, seen: Set<object>): boolean {
  if (typeof value === 'function' || typeof value === 'symbol') throw notCloneable(path, describe(value));
  if (value === null || typeof value !== 'object' || seen.has(value)) return false;
  seen.add(value);
  if (kindOf(value)) return true;
  if (isOpaque(value)) return false;
  let found = false;
  if (value instanceof Map) {
    let i = 0;
    for (const [k, v] of value) {
      found = scan(k, `${path}.keys()[${i}]`, seen) || found;
      found = scan(v, childPath(path, typeof k === 'string' || typeof k === 'number' ? String(k) : `<key ${i}>`), seen) || found;
      i++;
    }
  } else if (value instanceof Set) {
    let i = 0;
    for (const v of value) found = scan(v, `${path}.values()[${i++}]`, seen) || found;
  } else if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) found = scan(value[i], childPath(path, i), seen) || found;
  } else {
    for (const key of Object.keys(value)) {
      found = scan((value as Record<string, unknown>)[key], childPath(path, key), seen) || found;
    }
  }
  return found;
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
    const kind = typeof handle?.kind === 'string' ? byKind.get(handle.kind) : undefined;
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

/**
 * Serializes `value` for another thread or process. Throws a `TypeError` with code
 * `ERR_FORKWISE_NOT_CLONEABLE` naming the path of a value that cannot cross (`args[1].fn`).
 *
 * @example
 * const bytes = serialize({ lock: new Mutex(), n: 1 }, 'message');
 * deserialize(bytes); // { lock: Mutex (the same lock), n: 1 }
 */
export function serialize(value: unknown, path = 'value'): Buffer {
  const hasHandles = scan(value, path, new Set());
  const serializer = new DefaultSerializer();
  serializer.writeRawBytes(hasHandles ? WITH_HANDLES_BYTE : PLAIN_BYTE);
  serializer.writeHeader();
  try {
    serializer.writeValue(hasHandles ? encode(value, new Map()) : value);
  } catch (error) {
    throw notCloneable(path, error instanceof Error ? error.message : String(error));
  }
  return serializer.releaseBuffer();
}

/** The value that `serialize` wrote, forkwise objects attached in this thread or process. */
export function deserialize(bytes: Uint8Array): unknown {
  const flag = bytes[0];
  if (bytes.byteLength < 2 || (flag !== PLAIN && flag !== WITH_HANDLES)) {
    throw new ForkwiseError('ERR_FORKWISE_BAD_MESSAGE', "forkwise: a message is not in forkwise's format");
  }
  const deserializer = new DefaultDeserializer(bytes);
  deserializer.readRawBytes(1);
  deserializer.readHeader();
  const value = deserializer.readValue();
  return flag === WITH_HANDLES ? decode(value, new Map()) : value;
}
