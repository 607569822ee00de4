/**
 * A byte ring in shared memory, the transport under Connection and the queues.
 *
 * Design (measured against pipes and CPython: README "Messaging costs"; DESIGN.md fact 17)
 * ------
 * - One ring per direction: a data area of `capacity` bytes (a power of two) and a header of
 *   32-bit words that JavaScript updates with Atomics (sequentially consistent atomic
 *   instructions on the shared mapping, seen by every process and thread):
 *   `w` and `r`, the bytes written and read so far (mod 2^32; positions in the data are
 *   `w & (capacity - 1)`), two futex words `dataSeq` / `spaceSeq`, and a flag per word
 *   saying that someone may sleep on it. Writers' words and readers' words sit on separate
 *   cache lines, and a Connection re-reads the peer's position only when the one it saw
 *   last does not suffice: one way, 1 KB objects went from 1.7-2.0 to 1.45 µs each.
 * - A message is a record `[u32 length][bytes]` padded to 4 bytes, so every record starts
 *   aligned and a header never wraps. A record is committed by storing `w` (or `r`) only
 *   after its bytes are copied: a writer or reader that dies in the middle leaves the ring as
 *   it was.
 * - Sleeping and waking go through the addon only when needed: a reader spins (below), then
 *   raises the flag, reads `dataSeq`, checks again, and sleeps on `dataSeq`; a writer, after
 *   its commit, looks at the flag and, if it is up, takes it down (exchange), bumps `dataSeq`
 *   and calls FUTEX_WAKE for everyone. With all of it sequentially consistent, either the
 *   writer sees the flag or the sleeper sees the new `w`: no wake-up is lost; a sleeper that
 *   takes long to be scheduled costs one wake, not one per message written meanwhile; and a
 *   commit that nobody sleeps on costs no atomic read-modify-write. Writers waiting for space
 *   do the same on `spaceSeq`.
 * - The blocking forms sleep in FUTEX_WAIT; the event loop waits through a WordWatch
 *   (watch.ts: io_uring polled by the loop, or a thread). Both wake on their own every
 *   SLICE_MS to look for a dead peer.
 * - Where the time went before (1 KB objects between forked processes, this 2-vCPU VM):
 *   one way 17 µs, of which node:v8's serializer objects took 4-6 µs per message to create
 *   (serializer.ts now calls V8's directly: 1.1 µs to serialize, 0.5 to deserialize); round
 *   trips 75-135 µs, nearly all of it both sides sleeping and being woken (~25 µs per wake-up
 *   of an idle vCPU, in C as well); the dead-peer check reads /proc once a slice at most and
 *   did not show in profiles.
 */
import { native } from '../posix/native';
import { sleepWhile, WordWatch, SLICE_MS, wakeAll } from './watch';

// Header words (Int32 indices from the ring's header): what writers store on one cache
// line, what readers store on the next, so that each side's stores do not take the other's
// line away at every message. A side's flag sits on the line of the side that reads it at
// every commit (and writes it only to sleep).
const W = 0;
const DATA_SEQ = 1;
const ITEMS_W = 2;
const READERS_ASLEEP = 3;
const R = 16;
const SPACE_SEQ = 17;
const ITEMS_R = 18;
const WRITERS_ASLEEP = 19;
export const RING_HEADER_BYTES = 128;

/**
 * How long a wait keeps looking before it sleeps (ms), giving up the CPU between looks.
 * Measured with 1 KB objects ping-ponged between two forked processes on this 2-vCPU
 * Firecracker VM (µs per round trip; "same": both pinned to one CPU, "split": one each):
 *
 *   spin        none   10 µs   50 µs   100 µs   50 µs without yielding
 *   same CPU     26      30      29      29       124
 *   split       195     116      50      22        45
 *
 * A sleeping peer costs a wake-up of ~25 µs of the waker's and the wakee's time here when
 * it sleeps on the other vCPU (the same in C with a futex, a pipe or an eventfd: the cost is
 * waking an idle vCPU, not the primitive), so a round trip in which both sides sleep costs
 * ~100-250 µs; spinning long enough to see the reply (a 1 KB object costs ~1.5 µs to send
 * and receive) avoids both. But a peer on the same CPU cannot answer while we spin: hence
 * sched_yield between looks, which hands it the CPU at once and costs ~0.3 µs otherwise.
 */
export let SPIN_MS = 0.1;
const LOOKS_PER_YIELD = 16;

/**
 * A wait that sleeps anyway only takes CPU from others: a pool's parent that spun before
 * each answer of two workers busy with 1 ms tasks on this 2-vCPU machine had them reach
 * 57-62% of the ideal throughput, and 85-87% without the spin. So each ring and direction
 * spins only while its last wait ended within reach of a spin (`SPIN_REACH` of it, the
 * wake-up of a sleeper included): ping-pong keeps spinning, a peer that answers every
 * millisecond is waited for asleep, and one wait that ends soon brings the spin back.
 */
export const SPIN_REACH = 2;

/** For the benchmarks: the spin before sleeping, in ms (0: none). */
export function setSpinMs(ms: number): void {
  SPIN_MS = ms;
}

/**
 * Spinning needs a free core. When every core is taken by other busy processes, a
 * sched_yield hands the CPU to one of them for its whole time slice (2-4 ms here), and a
 * message that came meanwhile waits for it: 8 clients taking a managed lock and updating a
 * dict through Pipes beside two busy-looping processes took 12-29 s awaiting (1.7-24 s
 * blocking), against 1.6-4 s over a socket, the server losing up to 90% of its time in
 * such yields. A sleeper, by contrast, is woken ahead of the busy ones. So each thread
 * keeps the share of its spins that lost the CPU (a yield back after more than LOST_MS),
 * a moving average over the last ~64 spins that yielded: over LOSS_LIMIT, waits sleep at
 * once for REST_MS, then spinning is tried again (a lost slice or so per REST_MS while the
 * load lasts). Beside those busy processes 76% of the awaiting clients' and the server's
 * spins lost; on an idle machine 1-2% of the manager server's and 3-14% of its 4 clients'
 * (five spinning processes on two cores lose to one another, and gain from it: 4 clients
 * that rested at 10% got 40% fewer round trips).
 */
const LOST_MS = 0.2;
const LOSS_WEIGHT = 1 / 64;
const LOSS_LIMIT = 0.3;
const REST_MS = 200;
let lossRate = 0;
let restUntil = 0;

function spinLost(lost: boolean, now: number): void {
  lossRate += ((lost ? 1 : 0) - lossRate) * LOSS_WEIGHT;
  if (lost && lossRate > LOSS_LIMIT) restUntil = now + REST_MS;
}

/** Looks at `ready()` until it is true or the spin is over (none when not `worthIt`). */
export function spin(ready: () => boolean, worthIt: boolean): boolean {
  if (ready()) return true;
  if (SPIN_MS <= 0 || !worthIt) return false;
  for (let i = 0; i < LOOKS_PER_YIELD; i++) if (ready()) return true;
  let now = performance.now();
  if (now < restUntil) return false;
  const until = now + SPIN_MS;
  for (;;) {
    native.yieldCpu();
    const before = now;
    now = performance.now();
    if (now - before > LOST_MS) {
      spinLost(true, now);
      return ready();
    }
    for (let i = 0; i < LOOKS_PER_YIELD; i++) {
      if (ready()) {
        spinLost(false, now);
        return true;
      }
    }
    if (now >= until) {
      spinLost(false, now);
      return false;
    }
  }
}

export function pad4(n: number): number {
  return (n + 3) & ~3;
}

export class Ring {
  readonly capacity: number;
  readonly #mask: number;
  readonly #h: Int32Array;
  readonly #headerOffset: number;
  readonly #data: Uint8Array;
  readonly #words: Uint32Array;
  readonly #buffer: ArrayBuffer;
  #dataWatch: WordWatch | undefined;
  #spaceWatch: WordWatch | undefined;
  // Whether a wait for data / for space spins first (SPIN_REACH).
  #spinForData = true;
  #spinForSpace = true;

  constructor(buffer: ArrayBuffer, headerOffset: number, dataOffset: number, capacity: number) {
    this.capacity = capacity;
    this.#mask = capacity - 1;
    this.#buffer = buffer;
    this.#headerOffset = headerOffset;
    this.#h = new Int32Array(buffer, headerOffset, RING_HEADER_BYTES / 4);
    this.#data = new Uint8Array(buffer, dataOffset, capacity);
    this.#words = new Uint32Array(buffer, dataOffset, capacity / 4);
  }

  get w(): number {
    return Atomics.load(this.#h, W) >>> 0;
  }

  get r(): number {
    return Atomics.load(this.#h, R) >>> 0;
  }

  /** Bytes committed and not yet read. */
  available(): number {
    return (Atomics.load(this.#h, W) - Atomics.load(this.#h, R)) >>> 0;
  }

  /** Committed items not yet read (the queues' qsize). */
  items(): number {
    // A reader may count an item it took before its writer has counted it (commitWrite
    // publishes `w` first): for that instant the difference is negative.
    const n = (Atomics.load(this.#h, ITEMS_W) - Atomics.load(this.#h, ITEMS_R)) | 0;
    return n > 0 ? n : 0;
  }

  /** The u32 at position `pos` (4-aligned). */
  readWord(pos: number): number {
    return this.#words[(pos & this.#mask) >>> 2]!;
  }

  writeWord(pos: number, value: number): void {
    this.#words[(pos & this.#mask) >>> 2] = value;
  }

  /** Copies `n` bytes of `src` from `from` into the ring at `pos`, wrapping. */
  copyIn(pos: number, src: Uint8Array, from: number, n: number): void {
    const at = pos & this.#mask;
    const first = Math.min(n, this.capacity - at);
    this.#data.set(from === 0 && first === src.length ? src : src.subarray(from, from + first), at);
    if (first < n) this.#data.set(src.subarray(from + first, from + n), 0);
  }

  /** Copies `n` bytes at `pos` out of the ring into `dst` at `to`, wrapping. */
  copyOut(pos: number, dst: Uint8Array, to: number, n: number): void {
    const at = pos & this.#mask;
    const first = Math.min(n, this.capacity - at);
    dst.set(this.#data.subarray(at, at + first), to);
    if (first < n) dst.set(this.#data.subarray(0, n - first), to + first);
  }

  /** Makes bytes up to `w` (and `items` more items) visible to readers, waking sleepers. */
  commitWrite(w: number, items = 0): void {
    const h = this.#h;
    Atomics.store(h, W, w | 0);
    if (items) Atomics.add(h, ITEMS_W, items);
    // The futex word changes only for a reader that said it sleeps: one that raises its
    // flag after this load sees the new `w` when it looks again before sleeping.
    if (Atomics.load(h, READERS_ASLEEP) !== 0 && Atomics.exchange(h, READERS_ASLEEP, 0) !== 0) {
      Atomics.add(h, DATA_SEQ, 1);
      wakeAll(this.#buffer, this.#headerOffset + DATA_SEQ * 4);
    }
  }

  /** Frees bytes up to `r` (and counts `items` read), waking writers waiting for space. */
  commitRead(r: number, items = 0): void {
    const h = this.#h;
    Atomics.store(h, R, r | 0);
    if (items) Atomics.add(h, ITEMS_R, items);
    if (Atomics.load(h, WRITERS_ASLEEP) !== 0 && Atomics.exchange(h, WRITERS_ASLEEP, 0) !== 0) {
      Atomics.add(h, SPACE_SEQ, 1);
      wakeAll(this.#buffer, this.#headerOffset + SPACE_SEQ * 4);
    }
  }

  /** Wakes everyone waiting on this ring (a close, so that they look again). */
  wakeEveryone(): void {
    const h = this.#h;
    Atomics.add(h, DATA_SEQ, 1);
    Atomics.add(h, SPACE_SEQ, 1);
    wakeAll(this.#buffer, this.#headerOffset + DATA_SEQ * 4);
    wakeAll(this.#buffer, this.#headerOffset + SPACE_SEQ * 4);
  }

  /**
   * Blocks the thread until `ready()` or `ms` pass (-1: SLICE_MS at most, so that the caller
   * can look for a dead peer). `space` picks the word: data for readers, space for writers.
   * Returns `ready()`'s last answer.
   */
  waitSync(space: boolean, ready: () => boolean, ms: number): boolean {
    const start = performance.now();
    if (spin(ready, space ? this.#spinForSpace : this.#spinForData)) return true;
    const h = this.#h;
    const seqIndex = space ? SPACE_SEQ : DATA_SEQ;
    Atomics.store(h, space ? WRITERS_ASLEEP : READERS_ASLEEP, 1);
    const seq = Atomics.load(h, seqIndex);
    if (ready()) return true;
    sleepWhile(this.#buffer, this.#headerOffset + seqIndex * 4, seq, ms < 0 ? SLICE_MS : Math.min(ms, SLICE_MS));
    const woken = ready();
    this.#learn(space, woken, start);
    return woken;
  }

  // After a wait that slept: whether the next one should spin first.
  #learn(space: boolean, woken: boolean, start: number): void {
    const worthIt = woken && performance.now() - start < SPIN_MS * SPIN_REACH;
    if (space) this.#spinForSpace = worthIt;
    else this.#spinForData = worthIt;
  }

  /**
   * From the event loop: calls `onWake` once `ready()` may have become true, or after a
   * slice. Returns a function that cancels the wait (without calling `onWake`).
   * `spinFirst` false: no spin (a caller that spins over several rings itself).
   */
  waitAsync(space: boolean, ready: () => boolean, onWake: () => void, spinFirst = true): () => void {
    const h = this.#h;
    const asleep = space ? WRITERS_ASLEEP : READERS_ASLEEP;
    const seqIndex = space ? SPACE_SEQ : DATA_SEQ;
    const watch = space
      ? (this.#spaceWatch ??= new WordWatch(this.#buffer, this.#headerOffset + SPACE_SEQ * 4))
      : (this.#dataWatch ??= new WordWatch(this.#buffer, this.#headerOffset + DATA_SEQ * 4));
    // A short spin first, on the loop too: a reply that comes within it costs no wake-up
    // at all, where the watch thread costs two (the thread, then the loop).
    const start = performance.now();
    if (spin(ready, spinFirst && (space ? this.#spinForSpace : this.#spinForData))) {
      queueMicrotask(onWake);
      return () => {};
    }
    Atomics.store(h, asleep, 1);
    const seq = Atomics.load(h, seqIndex);
    if (ready()) {
      queueMicrotask(onWake);
      return () => {};
    }
    const woken = (): void => {
      this.#learn(space, ready(), start);
      onWake();
    };
    watch.wait(seq, woken);
    return () => watch.cancel(woken);
  }

  /** Stops this ring's watch threads in this thread. */
  closeWatches(): void {
    this.#dataWatch?.close();
    this.#spaceWatch?.close();
    this.#dataWatch = this.#spaceWatch = undefined;
  }
}
