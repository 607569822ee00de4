/**
 * Waiting for a futex word of a shared memory segment to change: blocking the thread
 * (`sleepWhile`) or from the event loop (`WordWatch`). JavaScript changes the words with
 * Atomics; the addon only sleeps and wakes.
 *
 * A `WordWatch` is one native watcher per watched word and JavaScript thread, shared by
 * every pending wait on that word in this thread. Where the kernel has io_uring futex waits
 * (Linux 6.7), the loop itself waits on the word (native/futex_poll.cc: an io_uring whose
 * descriptor the loop polls), so a writer's wake-up costs one kernel wake, the loop's;
 * elsewhere a long-lived thread per watcher FUTEX_WAITs and then calls into the loop
 * (native/futex.cc), two wake-ups. In C the io_uring wait answered a peer that worked
 * 10 µs in 13.5 µs a round trip against 102 µs through a thread (futex_poll.cc has the
 * table). From JavaScript, with 1 KB objects and the parent awaiting `recv()` from a forked
 * peer that works 300 µs (longer than the spin, so the loop sleeps), medians of 5 on this
 * 2-vCPU VM: 181 µs a round trip beyond the work with io_uring, 190 with the thread; most
 * of it is waking idle vCPUs, which neither avoids. Either holds the loop open only while
 * armed. In a forked child the watchers are the parent's: every watch is
 * abandoned and its pending waiters are woken, to re-check and wait again on a new one.
 */
import { afterForkInChild } from '../posix/child';
import { native, type NativeFutexWatcher } from '../posix/native';

/** How often a sleeper wakes on its own, to look for a dead peer (ms). */
export const SLICE_MS = 50;

const watches = new Set<WordWatch>();

// FORKWISE_FUTEX_THREAD=1 keeps the thread (for comparing the two in the benchmarks).
let poll: boolean | undefined;
function usePoll(): boolean {
  return (poll ??= process.env.FORKWISE_FUTEX_THREAD !== '1' && native.futexPollSupported());
}

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
      this.#native = usePoll()
        ? new native.FutexPoll(this.buffer, this.offset, () => this.#fired())
        : new native.FutexWatcher(this.buffer, this.offset, () => this.#fired());
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
