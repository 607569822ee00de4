/**
 * `Pipe()` and `Connection`, as CPython's `multiprocessing.Pipe`, over the shared memory
 * rings of ring.ts: one segment per pipe holding a ring per direction and, per end, the table
 * of the processes that hold it (holders.ts).
 *
 * - A message larger than the ring streams through it in chunks: `send` blocks until the
 *   reader has taken all but the last ring-full (as a pipe's write does), so messages of any
 *   size never deadlock between two live peers.
 * - EOF: a read that finds the ring empty and no live holder of the other end fails with
 *   `EOFError`. A holder's `close()` or normal exit is seen at once; a SIGKILLed or zombie
 *   holder within a slice (SLICE_MS). Data a peer sent before it ended stays readable.
 * - Each end is for one reader and one writer at a time (as CPython's).
 * - Crosses by handle (a forked child inherits it; `fromHandle` attaches elsewhere). The
 *   parent counts a forked child as a holder as soon as fork() returns, so it may close its
 *   own copy at once; an end serialized for a spawned child, a worker or a message lends a
 *   holder slot that its receiver claims (lending.ts), so the sender may close its copy at
 *   once there too. A handle taken by hand (`.handle`) is held once `fromHandle` attached.
 */
import { afterForkInChild, aroundFork } from '../posix/child';
import { ForkwiseError, invalidArgType, invalidArgValue, outOfRange } from '../posix/errors';
import { validateObject } from '../posix/validate';
import { isSegmentName, SharedMemory } from '../sync/shared_memory';
import { FOREVER, validateTimeout } from '../sync/waiting';
import { closedError, EOFError, TimeoutError } from './errors';
import { Holders, liveStartTime, TABLE_BYTES } from './holders';
import { pad4, Ring, RING_HEADER_BYTES } from './ring';
import { deserialize, registerByHandle, serializeShortLived } from './serializer';
import { isCollecting, lendingOn, noteLent } from './lending';
import { SLICE_MS } from './watch';
import { untilEnd } from './iterate';

const MAGIC = 0x70697066; // "fpip"
const KIND_PIPE = 1;
/** Bytes per direction. */
const CAPACITY = 1 << 20;
const RING0 = 64; // end 0 writes, end 1 reads
const RING1 = RING0 + RING_HEADER_BYTES; // end 1 writes, end 0 reads
const HOLDERS0 = RING1 + RING_HEADER_BYTES;
const HOLDERS1 = HOLDERS0 + TABLE_BYTES;
const DATA = 4096;
const MAX_MESSAGE = 0xffff_fff0;

/** A structured-cloneable description of a Connection: `Connection.fromHandle` attaches. */
export interface ConnectionHandle {
  kind: 'Connection';
  name: string;
  end: 0 | 1;
  readable: boolean;
  writable: boolean;
  /** The holder slot its passage lent (lending.ts), and the lender's pid: `fromHandle` claims it. */
  slot?: number;
  lender?: number;
}

// Set by fromHandle for the constructor: the lent slot to claim instead of holding anew.
let claiming: { slot: number; lender: number } | undefined;

export interface PipeOptions {
  /** false: the first Connection only receives, the second only sends (default true). */
  duplex?: boolean;
}

// Open Connections of this thread, released at exit. A forked child inherits them: each
// gets a holder slot reserved for the child before fork() (holders.ts), named by the parent
// once fork() returned and by the child before any of its own code runs.
const live = new Set<Connection>();
let forkSlots: Array<[Connection, number]> = [];
aroundFork(
  () => {
    forkSlots = [...live].map((conn) => [conn, conn.holders.reserve()]);
  },
  (child) => {
    const start = child === undefined || forkSlots.length === 0 ? 0 : (liveStartTime(child) ?? 0);
    for (const [conn, slot] of forkSlots) {
      if (child === undefined) conn.holders.unreserve(slot);
      else conn.holders.assign(slot, child, start);
    }
    forkSlots = [];
  },
);
afterForkInChild((rehearsal) => {
  if (rehearsal || forkSlots.length === 0) return;
  const start = liveStartTime('self') ?? 0;
  for (const [conn, slot] of forkSlots) conn.holders.assign(slot, process.pid, start);
  forkSlots = [];
});
let exitHooked = false;
function releaseAtExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.on('exit', () => {
    for (const conn of [...live]) conn.close();
  });
}

interface PartialMessage {
  bytes: Buffer;
  padded: number;
  taken: number; // bytes of the padded payload consumed so far
}

/**
 * One end of a `Pipe()`. `send` / `recv` carry any structured-cloneable value (forkwise
 * objects by handle); `sendBytes` / `recvBytes` raw bytes.
 *
 * @example
 * import { Pipe } from 'forkwise/multiprocessing';
 * import { fork } from 'forkwise';
 * const [parent, child] = Pipe();
 * if (fork() === 0) {
 *   parent.close();
 *   child.send({ hello: 'from the child' });
 *   process.exit(0);
 * }
 * child.close();
 * console.log(await parent.recv()); // { hello: 'from the child' }
 */
export class Connection {
  readonly readable: boolean;
  readonly writable: boolean;
  /** This end's holders (this process among them while it is open). */
  readonly holders: Holders;
  readonly #peer: Holders;
  readonly #segment: SharedMemory;
  readonly #end: 0 | 1;
  readonly #send: Ring | undefined;
  readonly #recv: Ring | undefined;
  #closed = false;
  #partial: PartialMessage | undefined;
  #reads: Promise<unknown> = Promise.resolve();
  #queuedReads = 0;
  #cancelWaits = new Set<() => void>();
  // sendBytesAsync: how many are under way, and the last of them (they go in order).
  #asyncWrites = 0;
  #asyncWriteChain: Promise<void> = Promise.resolve();
  #lookedForDeadPeer = 0;
  // The peer's position as last read: `w` of the ring this end reads, `r` of the one it
  // writes. Positions only grow, so a stale one only understates what is there or free;
  // it is read again (off the peer's cache line) only when it does not suffice.
  #seenW = 0;
  #seenR = 0;

  /** Use `Pipe()` or `Connection.fromHandle()`. */
  private constructor(segment: SharedMemory, end: 0 | 1, readable: boolean, writable: boolean) {
    const buffer = segment.buffer;
    const capacity = new Int32Array(buffer, 0, 4)[2]!;
    this.#segment = segment;
    this.#end = end;
    this.readable = readable;
    this.writable = writable;
    const ring = (index: 0 | 1): Ring =>
      new Ring(buffer, index === 0 ? RING0 : RING1, DATA + index * capacity, capacity);
    this.#send = writable ? ring(end) : undefined;
    this.#recv = readable ? ring(end === 0 ? 1 : 0) : undefined;
    this.holders = new Holders(buffer, end === 0 ? HOLDERS0 : HOLDERS1);
    this.#peer = new Holders(buffer, end === 0 ? HOLDERS1 : HOLDERS0);
    const lent = claiming;
    claiming = undefined;
    if (!lent || !this.holders.claim(lent.slot, lent.lender)) this.holders.hold();
    live.add(this);
    releaseAtExit();
  }

  /** @internal Pipe()'s constructor; `capacity`: bytes per direction, a power of two. */
  static create(duplex: boolean, capacity = CAPACITY): [Connection, Connection] {
    const size = DATA + (duplex ? 2 : 1) * capacity;
    const segment = new SharedMemory({ size });
    new Int32Array(segment.buffer, 0, 4).set([MAGIC, KIND_PIPE, capacity, duplex ? 1 : 0]);
    const other = SharedMemory.attach(segment.name);
    if (duplex) return [new Connection(segment, 0, true, true), new Connection(other, 1, true, true)];
    return [new Connection(other, 1, true, false), new Connection(segment, 0, false, true)];
  }

  /** Attaches the Connection that `handle` describes (in another process or thread). */
  static fromHandle(handle: ConnectionHandle): Connection {
    if (handle === null || typeof handle !== 'object') throw invalidArgType('handle', 'an object', handle);
    const { kind, name, end, readable, writable } = handle as Partial<ConnectionHandle>;
    if (kind !== 'Connection') throw invalidArgValue('handle', handle, 'is not the handle of a Connection');
    if (!isSegmentName(name)) throw invalidArgValue('handle', handle, 'does not name a segment');
    if ((end !== 0 && end !== 1) || typeof readable !== 'boolean' || typeof writable !== 'boolean') {
      throw invalidArgValue('handle', handle, 'is not the handle of a Connection');
    }
    const segment = SharedMemory.attach(name);
    const header = segment.size >= DATA ? new Int32Array(segment.buffer, 0, 4) : undefined;
    const capacity = header?.[2] ?? 0;
    const duplex = header?.[3] === 1;
    const fits =
      header?.[0] === MAGIC &&
      header[1] === KIND_PIPE &&
      capacity > 0 &&
      (capacity & (capacity - 1)) === 0 &&
      segment.size >= DATA + (duplex ? 2 : 1) * capacity &&
      (duplex ? readable && writable : readable !== writable && readable === (end === 1));
    if (!fits) {
      segment.close();
      throw invalidArgValue('handle', handle, 'does not name a live Connection');
    }
    const { slot, lender } = handle;
    claiming = typeof slot === 'number' && typeof lender === 'number' ? { slot, lender } : undefined;
    return new Connection(segment, end, readable, writable);
  }

  // The handle that crosses in a message or a child's arguments: its passage holds the end
  // (a slot of this end's holders, claimed by whoever attaches it).
  #lend(): ConnectionHandle {
    if (this.#closed) throw closedError('Connection');
    if (!lendingOn()) return this.handle;
    const slot = this.holders.reserve();
    if (isCollecting()) {
      // Through a mapping of its own: the object may be closed before the child ends.
      const segment = SharedMemory.attach(this.#segment.name);
      const holders = new Holders(segment.buffer, this.#end === 0 ? HOLDERS0 : HOLDERS1);
      let open = true;
      const done = (): void => {
        if (!open) return;
        open = false;
        segment.close();
      };
      noteLent({
        giveBack: () => {
          if (open) holders.unlend(slot);
          done();
        },
        toChild: (pid) => {
          if (open) holders.lendTo(slot, pid);
          done();
        },
      });
    }
    return { ...this.handle, slot, lender: process.pid };
  }

  /** @internal For the serializer. */
  static lend(conn: Connection): ConnectionHandle {
    return conn.#lend();
  }

  get handle(): ConnectionHandle {
    return { kind: 'Connection', name: this.#segment.name, end: this.#end, readable: this.readable, writable: this.writable };
  }

  /** True once `close()` was called in this thread. */
  get closed(): boolean {
    return this.#closed;
  }

  /**
   * Sends `value` (structured clone; forkwise objects by handle). Blocks while the peer has
   * not read what fills the ring. Throws `EOFError` when the other end is closed or dead.
   */
  send(value: unknown): void {
    this.#writable();
    this.#write(serializeShortLived(value, 'value'));
  }

  /** Sends the bytes of `data` (or `size` bytes from `offset`) as one message. */
  sendBytes(data: ArrayBufferView | ArrayBuffer, offset = 0, size?: number): void {
    this.#writable();
    const bytes = bytesOf(data, offset, size);
    this.#write(bytes);
  }

  /**
   * `sendBytes` without blocking the thread: what does not fit in the ring now is written
   * as the peer reads, and the Promise resolves once all of it is in (rejects with
   * `EOFError` if the peer goes first). Such sends from one thread go in the order they
   * were made; a blocking `send` or `sendBytes` meanwhile throws (code
   * `ERR_FORKWISE_CONNECTION_BUSY`) rather than overtake them. For a server that must not
   * stall on one slow reader.
   */
  sendBytesAsync(data: ArrayBufferView | ArrayBuffer, offset = 0, size?: number): Promise<void> {
    let bytes: Uint8Array;
    try {
      this.#writable();
      bytes = bytesOf(data, offset, size);
      // Nothing ahead of it and room enough: written now, as sendBytes would.
      if (this.#asyncWrites === 0) {
        const state = this.#startWrite(bytes);
        if (this.#writeSome(state)) return Promise.resolve();
        return this.#queueAsync(() => this.#writeAsync(state));
      }
    } catch (error) {
      return Promise.reject(error);
    }
    return this.#queueAsync(() => this.#writeAsync(this.#startWrite(bytes)));
  }

  /**
   * Sends the bytes as one message if the ring has room for all of them now; false (and
   * nothing sent) otherwise, or while a `sendBytesAsync` is under way. Never waits.
   */
  trySendBytes(data: ArrayBufferView | ArrayBuffer, offset = 0, size?: number): boolean {
    this.#writable();
    const bytes = bytesOf(data, offset, size);
    if (this.#asyncWrites > 0) return false;
    const state = this.#startWrite(bytes);
    if (this.#free(state.w, 4 + state.padded) < 4 + state.padded) return false;
    return this.#writeSome(state);
  }

  #queueAsync(write: () => Promise<void>): Promise<void> {
    this.#asyncWrites++;
    const done = this.#asyncWriteChain.then(write);
    const settle = (): void => {
      this.#asyncWrites--;
    };
    this.#asyncWriteChain = done.then(settle, settle);
    return done;
  }

  /** The next message; rejects with `EOFError` when the peer is gone and nothing is left. */
  recv(): Promise<unknown> {
    return this.recvBytes().then(deserialize);
  }

  /** The next message's bytes. */
  recvBytes(): Promise<Buffer> {
    try {
      this.#readable();
    } catch (error) {
      return Promise.reject(error);
    }
    if (this.#queuedReads === 0) {
      const bytes = this.#take();
      if (bytes) return Promise.resolve(bytes);
    }
    this.#queuedReads++;
    const read = this.#reads.then(() => this.#readAsync());
    this.#reads = read.then(
      () => this.#queuedReads--,
      () => this.#queuedReads--,
    );
    return read;
  }

  /**
   * The next message's bytes if all of it is there now, else null (what the ring holds of
   * a longer one is taken meanwhile). Throws `EOFError` when the peer is gone and nothing is
   * left. Never waits; null while a `recv()` is pending. For a server of many connections.
   */
  tryRecvBytes(): Buffer | null {
    this.#readable();
    if (this.#queuedReads > 0) return null;
    const bytes = this.#take();
    if (!bytes) this.#eofIfPeerGone();
    return bytes;
  }

  /**
   * @internal Calls `onReady` once a message may have come (or a slice passed), without
   * spinning first; returns a function that cancels the wait. For a server that spins
   * over all its connections at once (manager_pipes.ts).
   */
  whenReadable(onReady: () => void): () => void {
    this.#readable();
    const ring = this.#recv!;
    return ring.waitAsync(false, () => ring.available() !== 0, onReady, false);
  }

  /**
   * The next message, blocking the thread (at most `timeout` ms: then a `TimeoutError` with
   * code `ERR_TIMEOUT`).
   */
  recvSync(timeout?: number): unknown {
    return deserialize(this.recvBytesSync(timeout));
  }

  /** The next message's bytes, blocking the thread. */
  recvBytesSync(timeout?: number): Buffer {
    this.#readable();
    const ms = validateTimeout(timeout, 'timeout');
    const deadline = ms === FOREVER ? Infinity : performance.now() + ms;
    const ring = this.#recv!;
    for (;;) {
      const bytes = this.#take();
      if (bytes) return bytes;
      this.#eofIfPeerGone();
      const left = deadline - performance.now();
      if (left <= 0) throw new TimeoutError('recvSync: no message within the timeout');
      ring.waitSync(false, () => ring.available() !== 0, left === Infinity ? -1 : left);
    }
  }

  /**
   * Resolves true when a message (or EOF) is ready to read, false after `timeout` ms
   * (default 0: only look).
   */
  poll(timeout = 0): Promise<boolean> {
    return new Promise<boolean>((resolve, reject) => {
      this.#readable();
      const ms = validateTimeout(timeout, 'timeout');
      const ring = this.#recv!;
      const ready = (): boolean => ring.available() !== 0 || this.#peerGone();
      if (ready() || ms === 0) return resolve(ready());
      let timer: NodeJS.Timeout | undefined;
      let cancel = (): void => {};
      const done = (value: boolean): void => {
        if (timer) clearTimeout(timer);
        cancel();
        this.#cancelWaits.delete(stop);
        resolve(value);
      };
      const stop = (): void => done(false);
      const look = (): void => {
        if (this.#closed) return done(false);
        if (ready()) return done(true);
        cancel = ring.waitAsync(false, () => ring.available() !== 0, look);
      };
      if (ms !== FOREVER) timer = setTimeout(() => done(ready()), ms);
      this.#cancelWaits.add(stop);
      look();
    });
  }

  /** Whether a message (or EOF) is ready, waiting at most `timeout` ms (default 0). */
  pollSync(timeout = 0): boolean {
    this.#readable();
    const ms = validateTimeout(timeout, 'timeout');
    const deadline = ms === FOREVER ? Infinity : performance.now() + ms;
    const ring = this.#recv!;
    for (;;) {
      if (ring.available() !== 0 || this.#peerGone()) return true;
      const left = deadline - performance.now();
      if (left <= 0) return false;
      ring.waitSync(false, () => ring.available() !== 0, left === Infinity ? -1 : left);
    }
  }

  /**
   * Closes this end in this thread: the peer sees EOF once no other holder is left. Pending
   * `recv()`s reject. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    live.delete(this);
    this.holders.release(1);
    this.#send?.wakeEveryone();
    this.#recv?.wakeEveryone();
    this.#send?.closeWatches();
    this.#recv?.closeWatches();
    for (const cancel of [...this.#cancelWaits]) cancel();
    this.#segment.close();
  }

  [Symbol.dispose](): void {
    this.close();
  }

  /** Every message until EOF (or until this end is closed). */
  [Symbol.asyncIterator](): AsyncGenerator<unknown, void, undefined> {
    return untilEnd(() => this.recv(), ['ERR_EOF', 'ERR_FORKWISE_CLOSED']);
  }

  #writable(): void {
    if (this.#closed) throw closedError('Connection');
    if (!this.writable) throw new TypeError('This Connection is read-only');
  }

  #readable(): void {
    if (this.#closed) throw closedError('Connection');
    if (!this.readable) throw new TypeError('This Connection is write-only');
  }

  // No holder left, or (looked at most once a slice) none alive.
  #peerGone(): boolean {
    if (!this.#peer.anyHeld()) return true;
    const now = performance.now();
    if (now - this.#lookedForDeadPeer < SLICE_MS) return false;
    this.#lookedForDeadPeer = now;
    return !this.#peer.anyAlive();
  }

  // EOF when the peer is gone and nothing it committed is left (a torn message is dropped).
  #eofIfPeerGone(): void {
    if (!this.#peerGone() || this.#recv!.available() !== 0) return;
    const torn = this.#partial !== undefined;
    this.#partial = undefined;
    throw new EOFError(
      torn ? 'The other end of the connection ended in the middle of a message' : 'The other end of the connection is closed',
    );
  }

  // Takes what the ring holds of the next message; the message once it is complete.
  #take(): Buffer | null {
    const ring = this.#recv!;
    let r = ring.r;
    let available = (this.#seenW - r) >>> 0;
    if (available < 4 || available > ring.capacity) available = ((this.#seenW = ring.w) - r) >>> 0;
    let partial = this.#partial;
    if (!partial) {
      if (available < 4) return null;
      const length = ring.readWord(r);
      const padded = pad4(length);
      if (available < 4 + padded) available = ((this.#seenW = ring.w) - r) >>> 0;
      const bytes = Buffer.allocUnsafe(length);
      if (available >= 4 + padded) {
        ring.copyOut(r + 4, bytes, 0, length);
        ring.commitRead((r + 4 + padded) >>> 0);
        return bytes;
      }
      partial = this.#partial = { bytes, padded, taken: 0 };
      r = (r + 4) >>> 0;
      available -= 4;
    }
    const n = Math.min(available, partial.padded - partial.taken);
    const real = Math.min(n, partial.bytes.length - partial.taken);
    if (real > 0) ring.copyOut(r, partial.bytes, partial.taken, real);
    partial.taken += n;
    ring.commitRead((r + n) >>> 0);
    if (partial.taken < partial.padded) return null;
    this.#partial = undefined;
    return partial.bytes;
  }

  #readAsync(): Promise<Buffer> {
    return new Promise<Buffer>((resolve, reject) => {
      const ring = this.#recv!;
      let cancel = (): void => {};
      const stop = (): void => {
        cancel();
        this.#cancelWaits.delete(stop);
        reject(closedError('Connection'));
      };
      const attempt = (): void => {
        try {
          if (this.#closed) throw closedError('Connection');
          const bytes = this.#take();
          if (bytes) {
            this.#cancelWaits.delete(stop);
            return resolve(bytes);
          }
          this.#eofIfPeerGone();
          cancel = ring.waitAsync(false, () => ring.available() !== 0, attempt);
        } catch (error) {
          this.#cancelWaits.delete(stop);
          reject(error);
        }
      };
      this.#cancelWaits.add(stop);
      attempt();
    });
  }

  #write(bytes: Uint8Array): void {
    if (this.#asyncWrites > 0) throw busyError();
    const ring = this.#send!;
    const state = this.#startWrite(bytes);
    while (!this.#writeSome(state)) {
      const woken = ring.waitSync(true, () => roomAfter(ring, state.w), -1);
      this.#afterWaitForRoom(woken);
    }
  }

  async #writeAsync(state: WriteState): Promise<void> {
    const ring = this.#send!;
    while (!this.#writeSome(state)) {
      const woken = await new Promise<boolean>((resolve) => {
        const ready = (): boolean => roomAfter(ring, state.w);
        const stop = (): void => resolve(false);
        this.#cancelWaits.add(stop);
        const cancel = ring.waitAsync(true, ready, () => {
          this.#cancelWaits.delete(stop);
          resolve(ready());
        });
        if (this.#closed) {
          cancel();
          resolve(false);
        }
      });
      this.#afterWaitForRoom(woken);
    }
  }

  #startWrite(bytes: Uint8Array): WriteState {
    const length = bytes.length;
    if (length > MAX_MESSAGE) throw outOfRange('message size', `<= ${MAX_MESSAGE}`, length);
    if (!this.#peer.anyHeld()) throw new EOFError('The other end of the connection is closed');
    return { bytes, padded: pad4(length), w: this.#send!.w, sent: -1 };
  }

  // Bytes free in the ring this end writes, for a writer at `w`: from the reader's position
  // as last seen, read again only when that does not show `need` bytes free.
  #free(w: number, need: number): number {
    const ring = this.#send!;
    const free = ring.capacity - ((w - this.#seenR) >>> 0);
    if (free >= need && free <= ring.capacity) return free;
    return ring.capacity - ((w - (this.#seenR = ring.r)) >>> 0);
  }

  // Writes what fits of the message now; true once all of it is committed.
  #writeSome(state: WriteState): boolean {
    const ring = this.#send!;
    const { bytes, padded } = state;
    let { w, sent } = state;
    let free = this.#free(w, 4 + padded - Math.max(sent, 0));
    if (sent < 0 && free >= 4) {
      ring.writeWord(w, bytes.length);
      w = (w + 4) >>> 0;
      free -= 4;
      sent = 0;
    }
    if (sent >= 0) {
      const n = Math.min(free, padded - sent);
      const real = Math.min(n, bytes.length - sent);
      if (real > 0) ring.copyIn(w, bytes, sent, real);
      w = (w + n) >>> 0;
      sent += n;
      ring.commitWrite(w);
    }
    state.w = w;
    state.sent = sent;
    return sent === padded;
  }

  #afterWaitForRoom(woken: boolean): void {
    if (!woken && this.#peerGone()) {
      throw new EOFError('The other end of the connection ended before reading the whole message');
    }
    if (this.#closed) throw closedError('Connection');
  }
}

// A message being written: its bytes, their length padded, where the writer is, and how
// much of it is in the ring (-1: not even its length).
interface WriteState {
  bytes: Uint8Array;
  padded: number;
  w: number;
  sent: number;
}

// Whether the ring has room after a writer at `w` (what a writer waiting for room waits for).
function roomAfter(ring: Ring, w: number): boolean {
  return ((w - ring.r) >>> 0) < ring.capacity;
}

function busyError(): ForkwiseError {
  return new ForkwiseError('ERR_FORKWISE_CONNECTION_BUSY', 'A sendBytesAsync() on this Connection end has not finished: await it before sending more');
}

/** @internal The bytes `size` from `offset` of `data`, validated. */
export function bytesOf(data: unknown, offset: number, size: number | undefined): Uint8Array {
  let view: Uint8Array;
  if (data instanceof ArrayBuffer) view = new Uint8Array(data);
  else if (ArrayBuffer.isView(data)) view = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  else throw invalidArgType('data', 'an ArrayBuffer, a TypedArray, a DataView or a Buffer', data);
  if (!Number.isInteger(offset) || offset < 0 || offset > view.length) {
    throw outOfRange('offset', `>= 0 && <= ${view.length}`, offset);
  }
  const n = size ?? view.length - offset;
  if (!Number.isInteger(n) || n < 0 || offset + n > view.length) {
    throw outOfRange('size', `>= 0 && <= ${view.length - offset}`, size);
  }
  return view.subarray(offset, offset + n);
}

/**
 * A pair of connected `Connection`s (CPython's `multiprocessing.Pipe`). With
 * `duplex: false` the first only receives and the second only sends.
 *
 * @example
 * const [a, b] = Pipe();
 * a.send([1, 2, 3]);
 * await b.recv(); // [1, 2, 3]
 */
export function Pipe(options: PipeOptions = {}): [Connection, Connection] {
  return Connection.create(pipeDuplex(options));
}

/** @internal `Pipe()`'s `duplex`, validated. */
export function pipeDuplex(options: PipeOptions): boolean {
  const { duplex = true } = validateObject(options, 'options') as PipeOptions;
  if (typeof duplex !== 'boolean') throw invalidArgType('options.duplex', 'of type boolean', duplex);
  return duplex;
}

registerByHandle(
  Connection,
  ['Connection'],
  (handle: ConnectionHandle) => Connection.fromHandle(handle),
  (conn: Connection) => Connection.lend(conn),
);
