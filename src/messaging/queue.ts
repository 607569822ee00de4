/**
 * `Queue`, `SimpleQueue` and `JoinableQueue`, as CPython's `multiprocessing` ones: many
 * producers and consumers in any processes and threads, over one shared memory ring
 * (ring.ts) and two robust `Mutex`es, one for the producers and one for the consumers.
 *
 * - A put copies its whole record into the ring under the producers' lock and only then
 *   commits `w`; a get copies the record out under the consumers' lock and only then
 *   commits `r`. Neither lock is held while waiting. A process killed in the middle of either
 *   leaves the ring as it was, and the next holder takes the lock as recovered (robust
 *   mutex): nothing is lost, duplicated or torn, and nobody is blocked.
 * - A message larger than a quarter of the ring is spilled into a segment of its own, whose
 *   name goes through the ring: the consumer that takes it copies it out, commits, then
 *   unlinks the segment. (A consumer killed between its commit and the unlink, or a producer
 *   killed between creating the segment and its commit, leaves that segment behind.)
 * - A full queue (`maxsize` items, or no room in the ring) makes `put` wait; an empty one
 *   makes `get` wait. A timed-out `get` throws `QueueEmpty`, a timed-out `put` `QueueFull`,
 *   as CPython's do.
 * - Items put are counted as unfinished before they are committed, and `taskDone()` counts
 *   them down (`JoinableQueue`). `close()` ends this thread's use of the queue (pending
 *   waits reject); the others keep using it.
 */
import { randomBytes } from 'node:crypto';
import { abortError, ForkwiseError, invalidArgType, invalidArgValue } from '../posix/errors';
import { native } from '../posix/native';
import { validateInteger, validateObject } from '../posix/validate';
import { Mutex } from '../sync/locks';
import { isSegmentName, SharedMemory } from '../sync/shared_memory';
import { FOREVER, validateSignal, validateTimeout } from '../sync/waiting';
import { closedError, QueueEmpty, QueueFull } from './errors';
import { pad4, Ring } from './ring';
import { deserialize, registerByHandle, serialize } from './serializer';
import { sleepWhile, SLICE_MS, wakeAll, WordWatch } from './watch';
import { untilEnd } from './iterate';

const MAGIC = 0x65757166; // "fque"
const KIND_QUEUE = 2;
/** Bytes of the ring. */
const CAPACITY = 1 << 20;
const RING = 64; // RING_HEADER_BYTES (128) from here
const UNFINISHED = 64; // Int32 index (byte 256)
const JOIN_SEQ = 65;
const DATA = 4096;
const SPILLED = 0x8000_0000;
const SPILL_PREFIX = 'forkwise-q-';

type QueueKind = 'Queue' | 'SimpleQueue' | 'JoinableQueue';

/** A structured-cloneable description of a queue: `fromHandle` attaches. */
export interface QueueHandle {
  kind: QueueKind;
  name: string;
  putLock: { kind: 'Mutex'; name: string };
  getLock: { kind: 'Mutex'; name: string };
}

export interface QueueOptions {
  /** At most this many items (0, the default: no limit but the ring's room). */
  maxsize?: number;
}

export interface QueueWaitOptions {
  /** Give up after this many ms: `QueueEmpty` / `QueueFull`. */
  timeout?: number;
  /** Aborting rejects with an AbortError. */
  signal?: AbortSignal;
}

export interface QueueSyncOptions {
  /** false: do not wait (default true). */
  block?: boolean;
  /** Give up after this many ms (default: wait for ever). */
  timeout?: number;
}

interface Parts {
  segment: SharedMemory;
  putLock: Mutex;
  getLock: Mutex;
}

// The segment and locks that fromHandle attached, for the constructor to take over.
let adopted: Parts | undefined;

function lock(mutex: Mutex): void {
  mutex.acquire();
  // The previous holder died before its commit: the ring is as it was.
  if (mutex.recovered) mutex.markConsistent();
}

/** A record ready for the ring: the serialized value, or the name of its spill segment. */
interface Record {
  payload: Uint8Array;
  spill?: string;
}

function unlinkSpill(name: string): void {
  try {
    native.shmUnlink(`/${name}`);
  } catch {
    // already gone
  }
}

function dropSpill(record: Record): void {
  if (record.spill) unlinkSpill(record.spill);
}

/**
 * A FIFO queue shared by processes and threads (CPython's `multiprocessing.Queue`).
 *
 * @example
 * import { Queue } from 'forkwise/multiprocessing';
 * import { fork, waitpid } from 'forkwise';
 * const queue = new Queue<number>({ maxsize: 100 });
 * const pid = fork();
 * if (pid === 0) {
 *   for (let i = 0; i < 10; i++) queue.putSync(i);
 *   process.exit(0);
 * }
 * let sum = 0;
 * for (let i = 0; i < 10; i++) sum += await queue.get();
 * waitpid(pid);
 */
export class Queue<T = unknown> {
  readonly #segment: SharedMemory;
  readonly #ring: Ring;
  readonly #putLock: Mutex;
  readonly #getLock: Mutex;
  readonly #maxsize: number;
  protected readonly words: Int32Array;
  #closed = false;
  readonly #cancels = new Set<() => void>();
  #joinWatch: WordWatch | undefined;

  constructor(options: QueueOptions = {}) {
    const parts = adopted;
    adopted = undefined;
    if (parts) {
      this.#segment = parts.segment;
      this.#putLock = parts.putLock;
      this.#getLock = parts.getLock;
    } else {
      const { maxsize = 0 } = validateObject(options, 'options') as QueueOptions;
      validateInteger(maxsize, 'options.maxsize', 0, 2 ** 31 - 1);
      this.#segment = new SharedMemory({ size: DATA + CAPACITY });
      new Int32Array(this.#segment.buffer, 0, 4).set([MAGIC, KIND_QUEUE, CAPACITY, maxsize]);
      this.#putLock = new Mutex();
      this.#getLock = new Mutex();
    }
    const header = new Int32Array(this.#segment.buffer, 0, 4);
    this.#maxsize = header[3]!;
    this.words = new Int32Array(this.#segment.buffer, 0, DATA / 4);
    this.#ring = new Ring(this.#segment.buffer, RING, DATA, header[2]!);
  }

  /** Attaches the queue that `handle` describes (in another process or thread). */
  static fromHandle<T = unknown>(handle: QueueHandle): Queue<T> {
    return attach(handle, 'Queue', () => new Queue<T>());
  }

  get handle(): QueueHandle {
    return {
      kind: (this.constructor as { kind?: QueueKind }).kind ?? 'Queue',
      name: this.#segment.name,
      putLock: this.#putLock.handle as QueueHandle['putLock'],
      getLock: this.#getLock.handle as QueueHandle['getLock'],
    };
  }

  static readonly kind: QueueKind = 'Queue';

  /** The number of items in the queue (a snapshot: others may put or get meanwhile). */
  qsize(): number {
    return this.#ring.items();
  }

  empty(): boolean {
    return this.#ring.available() === 0;
  }

  full(): boolean {
    return this.#maxsize > 0 && this.#ring.items() >= this.#maxsize;
  }

  /** The `maxsize` the queue was made with (0: no limit). */
  get maxsize(): number {
    return this.#maxsize;
  }

  /**
   * Puts `value` (structured clone; forkwise objects by handle), waiting while the queue is
   * full: at most `timeout` ms, then rejects with `QueueFull`.
   */
  put(value: T, options: QueueWaitOptions = {}): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.#open();
      const { timeout, signal } = validateObject(options, 'options') as QueueWaitOptions;
      const ms = validateTimeout(timeout, 'options.timeout');
      validateSignal(signal);
      if (signal?.aborted) throw abortError(signal);
      const record = this.#encode(value);
      this.#waitAsync(
        true,
        () => this.#tryPut(record),
        () => this.#room(record),
        ms,
        signal,
        () => new QueueFull(),
        (error) => {
          if (error) {
            dropSpill(record);
            reject(error);
          } else {
            resolve();
          }
        },
      );
    });
  }

  /** `put` blocking the thread; `{ block: false }` is `putNowait`. */
  putSync(value: T, options: QueueSyncOptions = {}): void {
    this.#open();
    const ms = syncTimeout(options);
    const record = this.#encode(value);
    try {
      this.#waitSync(true, () => this.#tryPut(record), () => this.#room(record), ms, () => new QueueFull());
    } catch (error) {
      dropSpill(record);
      throw error;
    }
  }

  /** Puts without waiting; throws `QueueFull` (code `ERR_QUEUE_FULL`) when full. */
  putNowait(value: T): void {
    this.putSync(value, { block: false });
  }

  /** The next item, waiting while the queue is empty: at most `timeout` ms, then `QueueEmpty`. */
  get(options: QueueWaitOptions = {}): Promise<T> {
    return new Promise<T>((resolve, reject) => {
      this.#open();
      const { timeout, signal } = validateObject(options, 'options') as QueueWaitOptions;
      const ms = validateTimeout(timeout, 'options.timeout');
      validateSignal(signal);
      if (signal?.aborted) throw abortError(signal);
      let bytes: Buffer | null = null;
      this.#waitAsync(
        false,
        () => (bytes = this.#tryGet()) !== null,
        () => this.#ring.available() !== 0,
        ms,
        signal,
        () => new QueueEmpty(),
        (error) => {
          if (error) return reject(error);
          try {
            resolve(deserialize(bytes!) as T);
          } catch (failure) {
            reject(failure);
          }
        },
      );
    });
  }

  /** `get` blocking the thread; `{ block: false }` is `getNowait`. */
  getSync(options: QueueSyncOptions = {}): T {
    this.#open();
    const ms = syncTimeout(options);
    let bytes: Buffer | null = null;
    this.#waitSync(false, () => (bytes = this.#tryGet()) !== null, () => this.#ring.available() !== 0, ms, () => new QueueEmpty());
    return deserialize(bytes!) as T;
  }

  /** Gets without waiting; throws `QueueEmpty` (code `ERR_QUEUE_EMPTY`) when empty. */
  getNowait(): T {
    return this.getSync({ block: false });
  }

  /** Ends this thread's use of the queue: pending waits reject; others keep using it. */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const cancel of [...this.#cancels]) cancel();
    this.#ring.closeWatches();
    this.#joinWatch?.close();
    this.#segment.close();
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Every item, as it comes, until this queue is closed in this thread. */
  [Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    return untilEnd(() => this.get(), ['ERR_FORKWISE_CLOSED']);
  }

  protected open(): void {
    this.#open();
  }

  protected get segmentBuffer(): ArrayBuffer {
    return this.#segment.buffer;
  }

  protected joinWatch(): WordWatch {
    return (this.#joinWatch ??= new WordWatch(this.#segment.buffer, JOIN_SEQ * 4));
  }

  protected track(cancel: () => void): () => unknown {
    this.#cancels.add(cancel);
    return () => this.#cancels.delete(cancel);
  }

  #open(): void {
    if (this.#closed) throw closedError(this.constructor.name);
  }

  #encode(value: T): Record {
    const bytes = serialize(value, 'value');
    if (bytes.length <= this.#ring.capacity / 4) return { payload: bytes };
    const spill = `${SPILL_PREFIX}${randomBytes(16).toString('hex')}`;
    const segment = new SharedMemory({ name: spill, size: bytes.length });
    new Uint8Array(segment.buffer).set(bytes);
    segment.close();
    return { payload: Buffer.from(spill, 'latin1'), spill };
  }

  // Whether the record would fit now (looked at without the lock).
  #room(record: Record): boolean {
    const ring = this.#ring;
    if (this.#maxsize > 0 && ring.items() >= this.#maxsize) return false;
    return ring.capacity - ring.available() >= 4 + pad4(record.payload.length);
  }

  #tryPut(record: Record): boolean {
    const ring = this.#ring;
    lock(this.#putLock);
    try {
      if (!this.#room(record)) return false;
      const w = ring.w;
      const length = record.payload.length;
      ring.writeWord(w, record.spill ? (length | SPILLED) >>> 0 : length);
      ring.copyIn((w + 4) >>> 0, record.payload, 0, length);
      Atomics.add(this.words, UNFINISHED, 1);
      ring.commitWrite((w + 4 + pad4(length)) >>> 0, 1);
      return true;
    } finally {
      this.#putLock.release();
    }
  }

  #tryGet(): Buffer | null {
    const ring = this.#ring;
    if (ring.available() === 0) return null;
    let spill: string | undefined;
    let bytes: Buffer;
    lock(this.#getLock);
    try {
      if (ring.available() === 0) return null;
      const r = ring.r;
      const head = ring.readWord(r);
      const length = head & ~SPILLED;
      bytes = Buffer.allocUnsafe(length);
      ring.copyOut((r + 4) >>> 0, bytes, 0, length);
      if (head & SPILLED) {
        spill = bytes.toString('latin1');
        bytes = readSpill(spill);
      }
      ring.commitRead((r + 4 + pad4(length)) >>> 0, 1);
    } finally {
      this.#getLock.release();
    }
    if (spill) unlinkSpill(spill);
    return bytes;
  }

  #waitSync(space: boolean, attempt: () => boolean, ready: () => boolean, ms: number, timedOut: () => Error): void {
    const deadline = ms === FOREVER ? Infinity : performance.now() + ms;
    for (;;) {
      if (attempt()) return;
      const left = deadline - performance.now();
      if (left <= 0) throw timedOut();
      this.#ring.waitSync(space, ready, left === Infinity ? -1 : left);
    }
  }

  #waitAsync(
    space: boolean,
    attempt: () => boolean,
    ready: () => boolean,
    ms: number,
    signal: AbortSignal | undefined,
    timedOut: () => Error,
    done: (error?: unknown) => void,
  ): void {
    let cancelWait = (): void => {};
    let timer: NodeJS.Timeout | undefined;
    let settled = false;
    const finish = (error?: unknown): void => {
      if (settled) return;
      settled = true;
      cancelWait();
      if (timer) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      untrack();
      done(error);
    };
    const onAbort = (): void => finish(abortError(signal!));
    const untrack = this.track(() => finish(closedError(this.constructor.name)));
    const step = (): void => {
      if (settled) return;
      try {
        if (this.#closed) return finish(closedError(this.constructor.name));
        if (attempt()) return finish();
        if (ms === 0) return finish(timedOut());
        cancelWait = this.#ring.waitAsync(space, ready, step);
      } catch (error) {
        finish(error);
      }
    };
    if (ms !== FOREVER && ms !== 0) timer = setTimeout(() => finish(timedOut()), ms);
    signal?.addEventListener('abort', onAbort, { once: true });
    step();
  }
}

function readSpill(name: string): Buffer {
  let segment: SharedMemory;
  try {
    segment = SharedMemory.attach(name);
  } catch (error) {
    throw new ForkwiseError('ERR_FORKWISE_BAD_MESSAGE', `forkwise: a queued message's segment is gone (${(error as Error).message})`);
  }
  const bytes = Buffer.from(new Uint8Array(segment.buffer));
  segment.close();
  return bytes;
}

/** @internal The timeout of a `…Sync` call's `{ block, timeout }` (0: do not wait). */
export function syncTimeout(options: QueueSyncOptions): number {
  const { block = true, timeout } = validateObject(options, 'options') as QueueSyncOptions;
  if (typeof block !== 'boolean') throw invalidArgType('options.block', 'of type boolean', block);
  if (!block) return 0;
  return validateTimeout(timeout, 'options.timeout');
}

function attach<Q>(handle: unknown, kind: QueueKind, build: () => Q): Q {
  if (handle === null || typeof handle !== 'object') throw invalidArgType('handle', 'an object', handle);
  const { kind: actual, name, putLock, getLock } = handle as Partial<QueueHandle>;
  if (actual !== kind) throw invalidArgValue('handle', handle, `is not the handle of a ${kind}`);
  if (!isSegmentName(name)) throw invalidArgValue('handle', handle, 'does not name a segment');
  const segment = SharedMemory.attach(name);
  const header = segment.size >= DATA ? new Int32Array(segment.buffer, 0, 4) : undefined;
  const capacity = header?.[2] ?? 0;
  const fits =
    header?.[0] === MAGIC &&
    header[1] === KIND_QUEUE &&
    capacity > 0 &&
    (capacity & (capacity - 1)) === 0 &&
    segment.size >= DATA + capacity;
  if (!fits) {
    segment.close();
    throw invalidArgValue('handle', handle, `does not name a live ${kind}`);
  }
  try {
    adopted = { segment, putLock: Mutex.fromHandle(putLock as never), getLock: Mutex.fromHandle(getLock as never) };
    return build();
  } catch (error) {
    segment.close();
    throw error;
  } finally {
    adopted = undefined;
  }
}

/**
 * CPython's `multiprocessing.SimpleQueue`: the same queue without a `maxsize`.
 *
 * @example
 * const queue = new SimpleQueue<string>();
 * queue.putSync('a');
 * await queue.get(); // 'a'
 */
export class SimpleQueue<T = unknown> extends Queue<T> {
  static override readonly kind: QueueKind = 'SimpleQueue';

  constructor() {
    super({});
  }

  static override fromHandle<T = unknown>(handle: QueueHandle): SimpleQueue<T> {
    return attach(handle, 'SimpleQueue', () => new SimpleQueue<T>());
  }
}

/**
 * `taskDone()` of a joinable queue whose header has an unfinished count at `unfinished` and
 * a futex word at `joinSeq` (Int32 indices): one fewer, and `join()`ers woken at zero.
 */
export function countTaskDone(words: Int32Array, unfinished: number, joinSeq: number, buffer: ArrayBuffer): void {
  const left = Atomics.sub(words, unfinished, 1) - 1;
  if (left < 0) {
    Atomics.add(words, unfinished, 1);
    throw new ForkwiseError('ERR_QUEUE_TASK_DONE_TOO_MANY', 'taskDone() called too many times');
  }
  if (left === 0) {
    Atomics.add(words, joinSeq, 1);
    wakeAll(buffer, joinSeq * 4);
  }
}

/**
 * A Queue that counts unfinished items: `taskDone()` after handling each item got, `join()`
 * waits until every item put has been handled.
 *
 * @example
 * const queue = new JoinableQueue<number>();
 * queue.putSync(1);
 * const item = await queue.get();
 * queue.taskDone();
 * await queue.join(); // resolves: nothing unfinished
 */
export class JoinableQueue<T = unknown> extends Queue<T> {
  static override readonly kind: QueueKind = 'JoinableQueue';

  static override fromHandle<T = unknown>(handle: QueueHandle): JoinableQueue<T> {
    return attach(handle, 'JoinableQueue', () => new JoinableQueue<T>());
  }

  /** One item got earlier is handled. Throws `ERR_QUEUE_TASK_DONE_TOO_MANY` past the count. */
  taskDone(): void {
    this.open();
    countTaskDone(this.words, UNFINISHED, JOIN_SEQ, this.segmentBuffer);
  }

  /** Items put and not yet marked done. */
  unfinished(): number {
    return Atomics.load(this.words, UNFINISHED);
  }

  /** Resolves once every item put has been marked done (`taskDone()`). */
  join(): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.open();
      const watch = this.joinWatch();
      let untrack = (): unknown => true;
      const step = (): void => {
        untrack();
        if (this.closed) return reject(closedError('JoinableQueue'));
        const seq = Atomics.load(this.words, JOIN_SEQ);
        if (Atomics.load(this.words, UNFINISHED) <= 0) return resolve();
        watch.wait(seq, step);
        untrack = this.track(() => {
          watch.cancel(step);
          reject(closedError('JoinableQueue'));
        });
      };
      step();
    });
  }

  /** `join()` blocking the thread (at most `timeout` ms: then false). */
  joinSync(timeout?: number): boolean {
    this.open();
    const ms = validateTimeout(timeout, 'timeout');
    const deadline = ms === FOREVER ? Infinity : performance.now() + ms;
    for (;;) {
      const seq = Atomics.load(this.words, JOIN_SEQ);
      if (Atomics.load(this.words, UNFINISHED) <= 0) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      sleepWhile(this.segmentBuffer, JOIN_SEQ * 4, seq, Math.min(left, SLICE_MS));
    }
  }
}

registerByHandle(Queue, ['Queue'], (handle: QueueHandle) => Queue.fromHandle(handle));
registerByHandle(SimpleQueue, ['SimpleQueue'], (handle: QueueHandle) => SimpleQueue.fromHandle(handle));
registerByHandle(JoinableQueue, ['JoinableQueue'], (handle: QueueHandle) => JoinableQueue.fromHandle(handle));
