/**
 * Waiting for a futex word of a shared memory segment to change: blocking the thread
 * (`sleepWhile`) or from the event loop (`WordWatch`). JavaScript changes the words with
 * Atomics; native/futex.cc only sleeps and wakes.
 *
 * A `WordWatch` is one long-lived native thread per watched word and JavaScript thread,
 * shared by every pending wait on that word in this thread: each wake-up costs one kernel
 * wake and one call into the loop, not a thread per wait. The native side holds the loop
 * open only while armed. In a forked child the helper threads do not exist: every watch is
 * abandoned and its pending waiters are woken, to re-check and wait again on a new thread.
 */
import { afterForkInChild } from '../posix/child';
import { native, type NativeFutexWatcher } from '../posix/native';

/** How often a sleeper wakes on its own, to look for a dead peer (ms). */
export const SLICE_MS = 50;

const watches = new Set<WordWatch>();

export class WordWatch {
  #native: NativeFutexWatcher | undefined;
  #armed = false;
  readonly #waiters = new Set<() => void>();

  constructor(
    private readonly buffer: ArrayBuffer,
    private readonly offset: number,
  ) {}

  /**
   * Calls `onWake` once, when the word may no longer hold `expected` or after `sliceMs`.
   * Every waiter is woken by every change: each re-checks its own condition.
   */
  wait(expected: number, onWake: () => void, sliceMs = SLICE_MS): void {
    this.#waiters.add(onWake);
    if (this.#armed) return;
    if (!this.#native) {
      this.#native = new native.FutexWatcher(this.buffer, this.offset, () => this.#fired());
      watches.add(this);
    }
    this.#armed = true;
    this.#native.arm(expected >>> 0, sliceMs);
  }

  /** Forgets a waiter that stopped waiting (timeout, abort). */
  cancel(onWake: () => void): void {
    this.#waiters.delete(onWake);
  }

  /** Stops the thread; pending waiters are woken (and find the object closed). */
  close(): void {
    this.#native?.close();
    this.#native = undefined;
    watches.delete(this);
    this.#fired();
  }

  #fired(): void {
    this.#armed = false;
    const waiters = [...this.#waiters];
    this.#waiters.clear();
    for (const wake of waiters) wake();
  }

  /**
   * In a forked child: the thread is the parent's. The waiters look again on a later turn,
   * not inside fork(): the code that forked may first close what it does not want to read
   * (a pool's worker closes its siblings' connections), or it would take their messages.
   */
  renewAfterFork(): void {
    this.#native?.abandon();
    this.#native = undefined;
    watches.delete(this);
    queueMicrotask(() => this.#fired());
  }
}

afterForkInChild((rehearsal) => {
  if (rehearsal) return;
  for (const watch of [...watches]) watch.renewAfterFork();
});

/** Blocks the thread while the word at `offset` holds `expected`, at most `ms`. False on timeout. */
export function sleepWhile(buffer: ArrayBuffer, offset: number, expected: number, ms: number): boolean {
  return native.futexWait(buffer, offset, expected >>> 0, ms) === 0;
}

export function wakeAll(buffer: ArrayBuffer, offset: number): void {
  native.futexWake(buffer, offset);
}
