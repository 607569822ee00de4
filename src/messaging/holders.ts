/**
 * Who holds an end of a Connection: a small table in the shared segment, one slot per
 * process (pid, start time, count of open objects), so that the other end can tell a peer
 * that is gone from one that is only slow. A pid counts as dead when /proc has no such
 * process, a process with another start time (the pid was reused), or a zombie not yet
 * reaped. Explicit `close()` and a normal exit take the count down at once; a SIGKILLed
 * holder is found dead by the peer's next look (a sleeping peer looks every SLICE_MS).
 *
 * A forked child's slot is reserved by the parent before fork() (pid: minus the parent's,
 * count 1), and named by both sides after it: the parent once fork() returned there, the
 * child before any code of its own runs. Whichever comes first, the child's `close()` finds
 * its slot, and no instant exists where its inherited copy is counted by nobody.
 *
 * An end on its way (serialized: lending.ts) is counted by a slot reserved the same way,
 * which the receiver claims; a spawned child's is named by its parent once the pid is known
 * (start time LENT until the child claims it), so that the child's death ends it.
 */
import { closeSync, openSync, readSync } from 'node:fs';
import { ForkwiseError } from '../posix/errors';

export const SLOTS = 64;
// The start time of a slot lent to a child (`lendTo`) that has not claimed it yet.
const LENT = -1;
const SLOT_WORDS = 3; // pid, start time (clock ticks since boot, mod 2^31), count
export const TABLE_BYTES = SLOTS * SLOT_WORDS * 4;

// /proc/PID/stat is one short line; read with one read(2) into this buffer, as
// `readFileSync` (fstat, then reads until end of file) cost 30 µs a look, 180 µs when the
// code is cold (a waiter that slept), against 3.5.
const statBuffer = Buffer.alloc(1024);

/** Start time of `pid` (mod 2^31), or undefined if it is dead or a zombie. */
export function liveStartTime(pid: number | 'self'): number | undefined {
  try {
    const fd = openSync(`/proc/${pid}/stat`, 'r');
    let length: number;
    try {
      length = readSync(fd, statBuffer, 0, statBuffer.length, 0);
    } finally {
      closeSync(fd);
    }
    const stat = statBuffer.toString('latin1', 0, length);
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    if (fields[0] === 'Z' || fields[0] === 'X') return undefined;
    return Number(BigInt(fields[19]!) % 2147483648n) | 0;
  } catch {
    return undefined;
  }
}

let self = { pid: 0, start: 0 };
function selfStart(): number {
  if (self.pid !== process.pid) self = { pid: process.pid, start: liveStartTime('self') ?? 0 };
  return self.start;
}

/** The holders table at byte `offset` of a segment. */
export class Holders {
  readonly #words: Int32Array;

  constructor(buffer: ArrayBuffer, offset: number) {
    this.#words = new Int32Array(buffer, offset, SLOTS * SLOT_WORDS);
  }

  /** Counts one more open object of this end in process `pid` (this one by default). */
  hold(pid = process.pid, start = pid === process.pid ? selfStart() : liveStartTime(pid) ?? 0): void {
    const words = this.#words;
    for (let i = 0; i < words.length; i += SLOT_WORDS) {
      if (Atomics.load(words, i) === pid) {
        Atomics.add(words, i + 2, 1);
        return;
      }
    }
    for (let attempt = 0; attempt < 2; attempt++) {
      for (let i = 0; i < words.length; i += SLOT_WORDS) {
        if (Atomics.compareExchange(words, i, 0, pid) === 0) {
          Atomics.store(words, i + 1, start);
          Atomics.store(words, i + 2, 1); // a slot given back by `unlend` kept its count
          return;
        }
      }
      this.#freeDeadSlots();
    }
    throw new ForkwiseError('ERR_FORKWISE_TOO_MANY_HOLDERS', `A connection end is held by more than ${SLOTS} processes`);
  }

  /**
   * Takes over the slot that `lender` lent (lending.ts) for this process, counting one open
   * object; false if it is not lent any more (then `hold()`).
   */
  claim(slot: number, lender: number): boolean {
    const words = this.#words;
    if (!Number.isInteger(slot) || slot < 0 || slot >= words.length || slot % SLOT_WORDS !== 0 || !(lender > 0)) return false;
    const was = Atomics.compareExchange(words, slot, -lender, process.pid);
    // Made this child's by its parent already (`lendTo`), and not claimed yet.
    if (was === process.pid) return Atomics.compareExchange(words, slot + 1, LENT, selfStart()) === LENT;
    if (was !== -lender) return false;
    Atomics.store(words, slot + 1, selfStart());
    return true;
  }

  /** Gives back a slot this process lent, unless it was claimed meanwhile. */
  unlend(slot: number): void {
    Atomics.compareExchange(this.#words, slot, -process.pid, 0);
  }

  /**
   * Reserves a slot counting one open object, for a child about to be forked (`assign`), or
   * for a handle on its way (`claim`): counted as this process's until then.
   */
  reserve(): number {
    const words = this.#words;
    for (let attempt = 0; attempt < 2; attempt++) {
      for (let i = 0; i < words.length; i += SLOT_WORDS) {
        if (Atomics.compareExchange(words, i, 0, -process.pid) === 0) {
          Atomics.store(words, i + 1, 0);
          Atomics.store(words, i + 2, 1);
          return i;
        }
      }
      this.#freeDeadSlots();
    }
    throw new ForkwiseError('ERR_FORKWISE_TOO_MANY_HOLDERS', `A connection end is held by more than ${SLOTS} processes`);
  }

  /** Names the process of a `reserve`d slot (both the parent and the child may: same values). */
  assign(slot: number, pid: number, start: number): void {
    Atomics.store(this.#words, slot + 1, start);
    Atomics.store(this.#words, slot, pid);
  }

  /** Makes a slot this process lent the child `pid`'s, unless it was claimed or given back. */
  lendTo(slot: number, pid: number): void {
    // Marked as not claimed yet (any live `pid` counts), before it is named.
    Atomics.store(this.#words, slot + 1, LENT);
    Atomics.compareExchange(this.#words, slot, -process.pid, pid);
  }

  /** Gives back a `reserve`d slot whose fork failed. */
  unreserve(slot: number): void {
    Atomics.store(this.#words, slot + 2, 0);
    Atomics.compareExchange(this.#words, slot, -process.pid, 0);
  }

  /** Counts `n` fewer open objects of this end in process `pid`. */
  release(n = 1, pid = process.pid): void {
    const words = this.#words;
    for (let i = 0; i < words.length; i += SLOT_WORDS) {
      if (Atomics.load(words, i) !== pid) continue;
      const left = Atomics.load(words, i + 2);
      const take = Math.min(left, n);
      if (take > 0) Atomics.sub(words, i + 2, take);
      n -= take;
      if (n === 0) return;
    }
  }

  /** Cheap: whether any slot counts an open object (dead holders included). */
  anyHeld(): boolean {
    const words = this.#words;
    for (let i = 0; i < words.length; i += SLOT_WORDS) {
      if (Atomics.load(words, i) !== 0 && Atomics.load(words, i + 2) > 0) return true;
    }
    return false;
  }

  /** Whether a live process holds this end (reads /proc for the others' pids). */
  anyAlive(): boolean {
    const words = this.#words;
    for (let i = 0; i < words.length; i += SLOT_WORDS) {
      const slotPid = Atomics.load(words, i);
      if (slotPid === 0 || Atomics.load(words, i + 2) <= 0) continue;
      const pid = Math.abs(slotPid); // reserved for a child being forked: its parent's
      if (pid === process.pid) return true;
      const start = Atomics.load(words, i + 1);
      const live = liveStartTime(pid);
      if (live !== undefined && (start === 0 || start === LENT || live === start)) return true;
    }
    return false;
  }

  #freeDeadSlots(): void {
    const words = this.#words;
    for (let i = 0; i < words.length; i += SLOT_WORDS) {
      const slotPid = Atomics.load(words, i);
      const pid = Math.abs(slotPid);
      if (pid === 0 || pid === process.pid) continue;
      const start = Atomics.load(words, i + 1);
      const live = liveStartTime(pid);
      if (live !== undefined && (start === 0 || start === LENT || live === start)) continue;
      Atomics.store(words, i + 2, 0);
      Atomics.compareExchange(words, i, slotPid, 0);
    }
  }
}
