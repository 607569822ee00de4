/**
 * `PriorityQueue` and `LifoQueue`, as CPython's `queue` module's, in shared memory so that
 * they work between threads and processes like the FIFO `Queue`.
 *
 * One segment holds a binary heap of entries (priority, insertion number, where the item's
 * bytes are, how many) and an arena of serialized items; one robust `Mutex` guards it, and
 * three `Condition`s on that mutex wake getters (not empty), putters (not full) and
 * `join()` (all tasks done). The heap orders by priority, then by insertion number: first in
 * first out among equal priorities (PriorityQueue), last in first out (LifoQueue, whose
 * entries all have priority 0). The arena is a bump allocator; when a new item does not fit
 * after its end, the live items are packed to its start (rare, and as costly as copying them
 * once). An item larger than the arena is refused; a full arena makes `put` wait, as
 * `maxsize` does.
 */
import { invalidArgType, invalidArgValue, outOfRange } from '../posix/errors';
import { validateInteger, validateObject } from '../posix/validate';
import { Mutex } from '../sync/locks';
import { Condition } from '../sync/condition';
import { isSegmentName, SharedMemory } from '../sync/shared_memory';
import { FOREVER, validateTimeout } from '../sync/waiting';
import { deserialize, registerByHandle, serialize } from '../messaging/serializer';
import { closedError, QueueEmpty, QueueFull } from '../messaging/errors';
import { countTaskDone, type QueueSyncOptions } from '../messaging/queue';
import { sleepWhile, SLICE_MS, WordWatch } from '../messaging/watch';

const MAGIC = 0x71726f66; // "forq"
// Int32 header words.
const H_MAGIC = 0;
const H_LIFO = 1;
const H_MAXSIZE = 2;
const H_COUNT = 3;
const H_UNFINISHED = 4;
const H_ARENA_END = 5;
const H_ENTRIES = 6;
const H_ARENA = 7;
const H_JOIN_SEQ = 8; // bumped when the unfinished count reaches 0
const HEADER = 64; // bytes
const ENTRY = 24; // priority f64, insertion f64, offset u32, length u32
// The insertion counter (f64) after the int words.
const F_INSERTED = 5; // Float64 index: byte 40

export interface OrderedQueueOptions {
  /** At most this many items (0, the default: no limit but the room). */
  maxsize?: number;
  /** Bytes for the serialized items (default 1 MiB); an item larger than this is refused. */
  capacity?: number;
}

export interface OrderedQueueHandle {
  kind: 'PriorityQueue' | 'LifoQueue';
  name: string;
  cond: unknown;
}

interface Parts {
  segment: SharedMemory;
  cond: Condition;
}
let adopted: Parts | undefined;

abstract class OrderedQueue<T> {
  readonly #segment: SharedMemory;
  readonly #lock: Mutex;
  readonly #cond: Condition;
  readonly #words: Int32Array;
  readonly #floats: Float64Array;
  readonly #entries: DataView;
  readonly #arena: Uint8Array;
  readonly #maxEntries: number;
  #closed = false;
  #joinWatch: WordWatch | undefined;
  readonly #cancels = new Set<() => void>();

  protected constructor(lifo: boolean, options: OrderedQueueOptions) {
    const parts = adopted;
    adopted = undefined;
    if (parts) {
      this.#segment = parts.segment;
      this.#cond = parts.cond;
      this.#lock = parts.cond.lock as Mutex;
    } else {
      const { maxsize = 0, capacity = 1 << 20 } = validateObject(options, 'options') as OrderedQueueOptions;
      validateInteger(maxsize, 'options.maxsize', 0, 2 ** 31 - 1);
      validateInteger(capacity, 'options.capacity', 64, 2 ** 30);
      // Room for as many entries as the arena could hold items of 16 bytes, or maxsize.
      const entries = maxsize > 0 ? maxsize : Math.ceil(capacity / 16);
      this.#segment = new SharedMemory({ size: HEADER + entries * ENTRY + capacity });
      new Int32Array(this.#segment.buffer, 0, 8).set([MAGIC, lifo ? 1 : 0, maxsize, 0, 0, 0, entries, capacity]);
      this.#lock = new Mutex();
      this.#cond = new Condition(this.#lock);
    }
    const buffer = this.#segment.buffer;
    this.#words = new Int32Array(buffer, 0, HEADER / 4);
    this.#floats = new Float64Array(buffer, 0, HEADER / 8);
    this.#maxEntries = this.#words[H_ENTRIES]!;
    this.#entries = new DataView(buffer, HEADER, this.#maxEntries * ENTRY);
    this.#arena = new Uint8Array(buffer, HEADER + this.#maxEntries * ENTRY, this.#words[H_ARENA]!);
  }

  /** The plain description that `fromHandle` attaches to, in another thread or process. */
  get handle(): OrderedQueueHandle {
    return {
      kind: this.#words[H_LIFO] ? 'LifoQueue' : 'PriorityQueue',
      name: this.#segment.name,
      cond: this.#cond.handle,
    };
  }

  get maxsize(): number {
    return this.#words[H_MAXSIZE]!;
  }

  /** The number of items (a snapshot). */
  qsize(): number {
    return Atomics.load(this.#words, H_COUNT);
  }

  empty(): boolean {
    return this.qsize() === 0;
  }

  full(): boolean {
    return this.maxsize > 0 && this.qsize() >= this.maxsize;
  }

  /** Items put and not yet marked done. */
  unfinished(): number {
    return Atomics.load(this.#words, H_UNFINISHED);
  }

  /** The priority an item is ordered by (LifoQueue: 0 for all). */
  protected abstract priorityOf(item: T): number;

  /** Puts `item`, waiting while the queue is full: at most `timeout` ms, then `QueueFull`. */
  async put(item: T, options: { timeout?: number } = {}): Promise<void> {
    const [priority, bytes] = this.#prepare(item);
    const ms = validateTimeout((validateObject(options, 'options') as { timeout?: number }).timeout, 'options.timeout');
    await this.#lockAsync();
    try {
      const ok = await this.#cond.waitForAsync(() => this.#closed || this.#fits(bytes.length), ms === FOREVER ? null : ms);
      this.#checkOpen();
      if (!ok) throw new QueueFull();
      this.#push(priority, bytes);
    } finally {
      this.#lock.release();
    }
  }

  /** `put` blocking the thread; `{ block: false }` is `putNowait`. */
  putSync(item: T, options: QueueSyncOptions = {}): void {
    const [priority, bytes] = this.#prepare(item);
    const ms = syncTimeout(options);
    this.#lockSync();
    try {
      const ok = ms === 0 ? this.#fits(bytes.length) : this.#cond.waitFor(() => this.#fits(bytes.length), ms === FOREVER ? null : ms);
      if (!ok) throw new QueueFull();
      this.#push(priority, bytes);
    } finally {
      this.#lock.release();
    }
  }

  putNowait(item: T): void {
    this.putSync(item, { block: false });
  }

  /** The first item in order, waiting while the queue is empty: at most `timeout` ms, then `QueueEmpty`. */
  async get(options: { timeout?: number } = {}): Promise<T> {
    this.#checkOpen();
    const ms = validateTimeout((validateObject(options, 'options') as { timeout?: number }).timeout, 'options.timeout');
    await this.#lockAsync();
    let bytes: Uint8Array;
    try {
      const ok = await this.#cond.waitForAsync(() => this.#closed || this.qsize() > 0, ms === FOREVER ? null : ms);
      this.#checkOpen();
      if (!ok) throw new QueueEmpty();
      bytes = this.#pop();
    } finally {
      this.#lock.release();
    }
    return deserialize(bytes) as T;
  }

  /** `get` blocking the thread; `{ block: false }` is `getNowait`. */
  getSync(options: QueueSyncOptions = {}): T {
    this.#checkOpen();
    const ms = syncTimeout(options);
    this.#lockSync();
    let bytes: Uint8Array;
    try {
      const ok = ms === 0 ? this.qsize() > 0 : this.#cond.waitFor(() => this.qsize() > 0, ms === FOREVER ? null : ms);
      if (!ok) throw new QueueEmpty();
      bytes = this.#pop();
    } finally {
      this.#lock.release();
    }
    return deserialize(bytes) as T;
  }

  getNowait(): T {
    return this.getSync({ block: false });
  }

  /** One item got earlier is handled. Throws `ERR_QUEUE_TASK_DONE_TOO_MANY` past the count. */
  taskDone(): void {
    this.#checkOpen();
    countTaskDone(this.#words, H_UNFINISHED, H_JOIN_SEQ, this.#segment.buffer);
  }

  /** Resolves once every item put has been marked done (`taskDone()`). */
  join(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#checkOpen();
      const watch = (this.#joinWatch ??= new WordWatch(this.#segment.buffer, H_JOIN_SEQ * 4));
      const cancel = (): void => {
        watch.cancel(step);
        reject(closedError(this.constructor.name));
      };
      const step = (): void => {
        this.#cancels.delete(cancel);
        if (this.#closed) return reject(closedError(this.constructor.name));
        const seq = Atomics.load(this.#words, H_JOIN_SEQ);
        if (this.unfinished() <= 0) return resolve();
        this.#cancels.add(cancel);
        watch.wait(seq, step);
      };
      step();
    });
  }

  /** `join()` blocking the thread, at most `timeout` ms: false if tasks are still unfinished. */
  joinSync(timeout?: number): boolean {
    this.#checkOpen();
    const ms = validateTimeout(timeout, 'timeout');
    const deadline = ms === FOREVER ? Infinity : performance.now() + ms;
    for (;;) {
      const seq = Atomics.load(this.#words, H_JOIN_SEQ);
      if (this.unfinished() <= 0) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      sleepWhile(this.#segment.buffer, H_JOIN_SEQ * 4, seq, Math.min(left, SLICE_MS));
    }
  }

  /** Ends this thread's use of the queue; the others keep using it. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const cancel of [...this.#cancels]) cancel();
    this.#joinWatch?.close();
    this.#segment.close();
  }

  get closed(): boolean {
    return this.#closed;
  }

  #checkOpen(): void {
    if (this.#closed) throw closedError(this.constructor.name);
  }

  #prepare(item: T): [number, Uint8Array] {
    this.#checkOpen();
    const priority = this.priorityOf(item);
    const bytes = serialize(item, 'item');
    if (bytes.length > this.#arena.length) {
      throw outOfRange('item', `at most ${this.#arena.length} bytes serialized (options.capacity)`, `${bytes.length} bytes`);
    }
    return [priority, bytes];
  }

  // A holder that died left the heap as its last complete step: take the lock as it is.
  #lockSync(): void {
    this.#lock.acquire();
    if (this.#lock.recovered) this.#lock.markConsistent();
  }

  async #lockAsync(): Promise<void> {
    await this.#lock.acquireAsync();
    if (this.#lock.recovered) this.#lock.markConsistent();
  }

  #fits(length: number): boolean {
    const count = this.qsize();
    if (this.maxsize > 0 && count >= this.maxsize) return false;
    if (count >= this.#maxEntries) return false;
    if (this.#words[H_ARENA_END]! + length <= this.#arena.length) return true;
    let live = 0;
    for (let i = 0; i < count; i++) live += this.#entries.getUint32(i * ENTRY + 20, true);
    return live + length <= this.#arena.length;
  }

  // Moves the live items to the start of the arena.
  #pack(): void {
    const count = this.qsize();
    const order = Array.from({ length: count }, (_, i) => i).sort(
      (a, b) => this.#entries.getUint32(a * ENTRY + 16, true) - this.#entries.getUint32(b * ENTRY + 16, true),
    );
    let end = 0;
    for (const i of order) {
      const offset = this.#entries.getUint32(i * ENTRY + 16, true);
      const length = this.#entries.getUint32(i * ENTRY + 20, true);
      this.#arena.copyWithin(end, offset, offset + length);
      this.#entries.setUint32(i * ENTRY + 16, end, true);
      end += length;
    }
    this.#words[H_ARENA_END] = end;
  }

  #push(priority: number, bytes: Uint8Array): void {
    if (this.#words[H_ARENA_END]! + bytes.length > this.#arena.length) this.#pack();
    const offset = this.#words[H_ARENA_END]!;
    this.#arena.set(bytes, offset);
    this.#words[H_ARENA_END] = offset + bytes.length;
    const inserted = this.#floats[F_INSERTED]!;
    this.#floats[F_INSERTED] = inserted + 1;
    let i = this.qsize();
    this.#write(i, priority, inserted, offset, bytes.length);
    // Sift up.
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!this.#before(i, parent)) break;
      this.#swap(i, parent);
      i = parent;
    }
    Atomics.add(this.#words, H_UNFINISHED, 1);
    Atomics.add(this.#words, H_COUNT, 1);
    this.#cond.notifyAll();
  }

  #pop(): Uint8Array {
    const view = this.#entries;
    const offset = view.getUint32(16, true);
    const length = view.getUint32(20, true);
    const bytes = this.#arena.slice(offset, offset + length);
    const count = this.qsize() - 1;
    if (count > 0) {
      this.#swap(0, count);
      // Sift down.
      let i = 0;
      for (;;) {
        const left = 2 * i + 1;
        if (left >= count) break;
        const right = left + 1;
        const first = right < count && this.#before(right, left) ? right : left;
        if (!this.#before(first, i)) break;
        this.#swap(first, i);
        i = first;
      }
    }
    Atomics.store(this.#words, H_COUNT, count);
    if (count === 0) this.#words[H_ARENA_END] = 0;
    this.#cond.notifyAll();
    return bytes;
  }

  #before(a: number, b: number): boolean {
    const view = this.#entries;
    const pa = view.getFloat64(a * ENTRY, true);
    const pb = view.getFloat64(b * ENTRY, true);
    if (pa !== pb) return pa < pb;
    const ia = view.getFloat64(a * ENTRY + 8, true);
    const ib = view.getFloat64(b * ENTRY + 8, true);
    return this.#words[H_LIFO] ? ia > ib : ia < ib;
  }

  #write(i: number, priority: number, inserted: number, offset: number, length: number): void {
    const view = this.#entries;
    view.setFloat64(i * ENTRY, priority, true);
    view.setFloat64(i * ENTRY + 8, inserted, true);
    view.setUint32(i * ENTRY + 16, offset, true);
    view.setUint32(i * ENTRY + 20, length, true);
  }

  #swap(a: number, b: number): void {
    const bytes = new Uint8Array(this.#entries.buffer, this.#entries.byteOffset, this.#entries.byteLength);
    const saved = bytes.slice(a * ENTRY, a * ENTRY + ENTRY);
    bytes.copyWithin(a * ENTRY, b * ENTRY, b * ENTRY + ENTRY);
    bytes.set(saved, b * ENTRY);
  }
}

function syncTimeout(options: QueueSyncOptions): number {
  const { block = true, timeout } = validateObject(options, 'options') as QueueSyncOptions;
  if (typeof block !== 'boolean') throw invalidArgType('options.block', 'of type boolean', block);
  if (!block) return 0;
  return validateTimeout(timeout, 'options.timeout');
}

function attach<Q>(handle: unknown, kind: OrderedQueueHandle['kind'], build: () => Q): Q {
  if (handle === null || typeof handle !== 'object') throw invalidArgType('handle', 'an object', handle);
  const { kind: actual, name, cond } = handle as Partial<OrderedQueueHandle>;
  if (actual !== kind) throw invalidArgValue('handle', handle, `is not the handle of a ${kind}`);
  if (!isSegmentName(name)) throw invalidArgValue('handle', handle, 'does not name a segment');
  const segment = SharedMemory.attach(name);
  const words = segment.size >= HEADER ? new Int32Array(segment.buffer, 0, 8) : undefined;
  if (!words || words[H_MAGIC] !== MAGIC || words[H_LIFO] !== (kind === 'LifoQueue' ? 1 : 0) || segment.size < HEADER + words[H_ENTRIES]! * ENTRY + words[H_ARENA]!) {
    segment.close();
    throw invalidArgValue('handle', handle, `does not name a live ${kind}`);
  }
  try {
    adopted = { segment, cond: Condition.fromHandle(cond as never) };
    return build();
  } catch (error) {
    segment.close();
    throw error;
  } finally {
    adopted = undefined;
  }
}

/**
 * CPython's `queue.PriorityQueue`: entries are `[priority, value]` (priority a number),
 * lowest priority first, equal priorities in the order they were put.
 *
 * @example
 * import { PriorityQueue } from 'forkwise/threading';
 * const jobs = new PriorityQueue<[number, string]>();
 * jobs.putSync([2, 'later']);
 * jobs.putSync([1, 'first']);
 * jobs.getSync(); // [1, 'first']
 */
export class PriorityQueue<T extends readonly [number, ...unknown[]] = [number, unknown]> extends OrderedQueue<T> {
  constructor(options: OrderedQueueOptions = {}) {
    super(false, options);
  }

  static fromHandle<T extends readonly [number, ...unknown[]] = [number, unknown]>(handle: OrderedQueueHandle): PriorityQueue<T> {
    return attach(handle, 'PriorityQueue', () => new PriorityQueue<T>());
  }

  protected priorityOf(entry: T): number {
    if (!Array.isArray(entry) || typeof entry[0] !== 'number' || Number.isNaN(entry[0])) {
      throw invalidArgType('entry', 'an array [priority, value] whose priority is a number (not NaN)', entry);
    }
    return entry[0];
  }
}

/**
 * CPython's `queue.LifoQueue`: the last item put is the first got.
 *
 * @example
 * import { LifoQueue } from 'forkwise/threading';
 * const stack = new LifoQueue<string>();
 * stack.putSync('a');
 * stack.putSync('b');
 * stack.getSync(); // 'b'
 */
export class LifoQueue<T = unknown> extends OrderedQueue<T> {
  constructor(options: OrderedQueueOptions = {}) {
    super(true, options);
  }

  static fromHandle<T = unknown>(handle: OrderedQueueHandle): LifoQueue<T> {
    return attach(handle, 'LifoQueue', () => new LifoQueue<T>());
  }

  protected priorityOf(): number {
    return 0;
  }
}

registerByHandle(PriorityQueue, ['PriorityQueue'], (handle: OrderedQueueHandle) => PriorityQueue.fromHandle(handle));
registerByHandle(LifoQueue, ['LifoQueue'], (handle: OrderedQueueHandle) => LifoQueue.fromHandle(handle));
