/**
 * Value and SharedArray: numbers in shared memory, as CPython's multiprocessing.Value and
 * Array, each with an optional lock (a Mutex by default).
 */
import { invalidArgType, invalidArgValue } from '../posix/errors';
import { validateInteger, validateOptions } from '../posix/validate';
import { heldCount, lockFromHandle, Mutex, RLock, type Lock } from './locks';
import { checkHandle, type PrimitiveHandle } from './primitive';
import { SharedMemory } from './shared_memory';

const arrayTypes = {
  int8: Int8Array,
  uint8: Uint8Array,
  int16: Int16Array,
  uint16: Uint16Array,
  int32: Int32Array,
  uint32: Uint32Array,
  int64: BigInt64Array,
  uint64: BigUint64Array,
  float32: Float32Array,
  float64: Float64Array,
} as const;

export type ElementType = keyof typeof arrayTypes;
type ArrayOf<T extends ElementType> = InstanceType<(typeof arrayTypes)[T]>;
type ElementOf<T extends ElementType> = T extends 'int64' | 'uint64' ? bigint : number;
const typeNames = Object.keys(arrayTypes) as ElementType[];

export interface ValueOptions {
  /**
   * true (default): a new Mutex (CPython makes an RLock, which the async tasks of one thread
   * would all hold at once); false: none; or a Mutex/RLock of yours.
   */
  lock?: boolean | Lock | null;
}

export interface ValueHandle {
  kind: 'Value' | 'SharedArray';
  name: string;
  type: ElementType;
  length: number;
  lock: PrimitiveHandle | null;
}

// A segment starts with what the handle claims, checked on attach: magic, kind, type, length.
const MAGIC = 0x6c617666; // "fval"
const HEADER_BYTES = 64;

function create(kind: 1 | 2, type: ElementType, length: number): SharedMemory {
  const segment = new SharedMemory({ size: HEADER_BYTES + Math.max(length, 1) * arrayTypes[type].BYTES_PER_ELEMENT });
  new Uint32Array(segment.buffer, 0, 4).set([MAGIC, kind, typeNames.indexOf(type), length]);
  return segment;
}

function attach(handle: unknown, kindName: 'Value' | 'SharedArray'): { segment: SharedMemory; handle: ValueHandle } {
  checkHandle(handle, kindName);
  const { type, length, lock } = handle as ValueHandle;
  const segment = SharedMemory.attach((handle as ValueHandle).name);
  const header = segment.buffer.byteLength >= HEADER_BYTES ? new Uint32Array(segment.buffer, 0, 4) : undefined;
  const kind = kindName === 'Value' ? 1 : 2;
  if (!header || header[0] !== MAGIC || header[1] !== kind || typeNames[header[2]!] !== type || header[3] !== length) {
    segment.close();
    throw invalidArgValue('handle', handle, `does not name a live ${kindName}`);
  }
  if (lock !== null && (typeof lock !== 'object' || lock === undefined)) {
    segment.close();
    throw invalidArgValue('handle', handle, 'has a bad lock');
  }
  return { segment, handle: handle as ValueHandle };
}

function validateType(type: unknown): ElementType {
  if (typeof type !== 'string') throw invalidArgType('type', 'of type string', type);
  if (!Object.hasOwn(arrayTypes, type)) throw invalidArgValue('type', type, `must be one of ${typeNames.join(', ')}`);
  return type as ElementType;
}

function lockOption(options: ValueOptions | null | undefined): Lock | null {
  const lock = (validateOptions(options) as ValueOptions).lock ?? true;
  if (lock === true) return new Mutex();
  if (lock === false) return null;
  if (lock instanceof Mutex || lock instanceof RLock) return lock;
  throw invalidArgType('options.lock', 'a boolean, a Mutex or an RLock', lock);
}

function noLock(): Error {
  return new TypeError('This object was created with lock: false and has no lock');
}

/**
 * One number in shared memory. Reading or writing `.value` takes the lock (unless this thread
 * holds it already); for a read-modify-write, hold the lock around it.
 *
 * @example
 * import { Value } from 'forkwise/sync';
 * const hits = new Value('int64', 0n);
 * const lock = hits.getLock();
 * lock.acquire(); hits.value += 1n; lock.release();
 */
export class Value<T extends ElementType = ElementType> {
  readonly type: T;
  private readonly segment: SharedMemory;
  private readonly cell: ArrayOf<T>;
  private readonly lock: Lock | null;

  constructor(type: T, initial?: ElementOf<T>, options?: ValueOptions | null) {
    this.type = validateType(type) as T;
    this.lock = attaching ? attaching.lock : lockOption(options);
    this.segment = attaching ? attaching.segment : create(1, this.type, 1);
    this.cell = new arrayTypes[this.type](this.segment.buffer, HEADER_BYTES, 1) as ArrayOf<T>;
    if (!attaching && initial !== undefined) this.value = initial;
  }

  get value(): ElementOf<T> {
    return this.locked(() => this.cell[0] as ElementOf<T>);
  }

  set value(value: ElementOf<T>) {
    const element = toElement(this.type, value);
    this.locked(() => {
      (this.cell as { [i: number]: number | bigint })[0] = element;
    });
  }

  getLock(): Lock {
    if (!this.lock) throw noLock();
    return this.lock;
  }

  get handle(): ValueHandle {
    return { kind: 'Value', name: this.segment.name, type: this.type, length: 1, lock: this.lock?.handle ?? null };
  }

  static fromHandle(handle: ValueHandle): Value {
    const { segment, handle: checked } = attach(handle, 'Value');
    attaching = { segment, lock: checked.lock && lockFromHandle(checked.lock) };
    try {
      return new Value(checked.type);
    } finally {
      attaching = undefined;
    }
  }

  private locked<R>(access: () => R): R {
    const lock = this.lock;
    if (!lock || lock[heldCount] > 0) return access();
    lock.acquire();
    try {
      return access();
    } finally {
      lock.release();
    }
  }
}

let attaching: { segment: SharedMemory; lock: Lock | null } | undefined;

function toElement(type: ElementType, value: unknown): number | bigint {
  if (type === 'int64' || type === 'uint64') {
    if (typeof value === 'bigint') return value;
    if (typeof value === 'number' && Number.isInteger(value)) return BigInt(value);
    throw invalidArgType('value', 'of type bigint', value);
  }
  if (typeof value !== 'number') throw invalidArgType('value', 'of type number', value);
  return value;
}

/** What a SharedArray adds to its typed array. */
export interface SharedArrayExtras {
  /** The lock given at creation (a Mutex by default). */
  getLock(): Lock;
  readonly handle: ValueHandle;
}

/** A typed array over shared memory (BigInt64Array / BigUint64Array for the 64-bit integers). */
export type SharedArray<T extends ElementType = ElementType> = ArrayOf<T> & SharedArrayExtras;

export interface SharedArrayConstructor {
  new <T extends ElementType>(
    type: T,
    lengthOrValues: number | ArrayLike<ElementOf<T>> | Iterable<ElementOf<T>>,
    options?: ValueOptions,
  ): SharedArray<T>;
  /** The same array, in another thread or process. */
  fromHandle(handle: ValueHandle): SharedArray;
}

const MAX_LENGTH = 2 ** 32;

function sharedArray<T extends ElementType>(segment: SharedMemory, type: T, length: number, lock: Lock | null): SharedArray<T> {
  const view = new arrayTypes[type](segment.buffer, HEADER_BYTES, length) as SharedArray<T>;
  Object.defineProperties(view, {
    getLock: {
      value(): Lock {
        if (!lock) throw noLock();
        return lock;
      },
    },
    handle: {
      get: (): ValueHandle => ({ kind: 'SharedArray', name: segment.name, type, length, lock: lock?.handle ?? null }),
    },
  });
  return view;
}

/**
 * `new SharedArray(type, lengthOrValues, { lock })` returns the typed array itself, over
 * shared memory, with `getLock()` and `handle` added. Element accesses do not take the lock.
 *
 * @example
 * import { SharedArray } from 'forkwise/sync';
 * const totals = new SharedArray('float64', 8);
 * totals[3] = 1.5; // seen by forked children and by processes that attach
 */
export const SharedArray = function SharedArray<T extends ElementType>(
  this: unknown,
  type: T,
  lengthOrValues: number | ArrayLike<ElementOf<T>> | Iterable<ElementOf<T>>,
  options?: ValueOptions,
): SharedArray<T> {
  if (!new.target) throw new TypeError("Class constructor SharedArray cannot be invoked without 'new'");
  validateType(type);
  let values: Array<ElementOf<T>> | undefined;
  let length: number;
  if (typeof lengthOrValues === 'number') {
    length = validateInteger(lengthOrValues, 'lengthOrValues', 0, MAX_LENGTH);
  } else if (lengthOrValues !== null && typeof lengthOrValues === 'object') {
    values = Array.from(lengthOrValues as ArrayLike<ElementOf<T>>);
    length = values.length;
  } else {
    throw invalidArgType('lengthOrValues', 'a number or an array-like object', lengthOrValues);
  }
  const lock = lockOption(options);
  const view = sharedArray(create(2, type, length), type, length, lock);
  values?.forEach((value, i) => {
    (view as { [i: number]: number | bigint })[i] = toElement(type, value);
  });
  return view;
} as unknown as SharedArrayConstructor;

SharedArray.fromHandle = (handle: ValueHandle): SharedArray => {
  const { segment, handle: checked } = attach(handle, 'SharedArray');
  return sharedArray(segment, checked.type, checked.length, checked.lock && lockFromHandle(checked.lock));
};
