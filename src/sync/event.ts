/** Event: a flag that threads and processes wait for (a futex word in shared memory). */
import { native } from '../posix/native';
import { fromHandle, segmentFor, type PrimitiveHandle } from './primitive';
import type { SharedMemory } from './shared_memory';
import { asyncWaitOptions, validateTimeout, waitAsync, type AsyncWaitOptions } from './waiting';

/**
 * As CPython's Event: `set()` wakes every waiter, in any process; `wait()` returns true
 * unless the timeout passed first.
 *
 * @example
 * import { Event } from 'forkwise/sync';
 * const ready = new Event();
 * // in a child: ready.set();
 * await ready.waitAsync(1000);
 */
export class Event {
  private readonly segment: SharedMemory;

  constructor() {
    this.segment = segmentFor('Event');
  }

  set(): void {
    native.eventSet(this.segment.buffer);
  }

  clear(): void {
    native.eventClear(this.segment.buffer);
  }

  isSet(): boolean {
    return native.eventIsSet(this.segment.buffer);
  }

  /**
   * Blocks the calling thread until the flag is set (or `set()` is called, even if `clear()`
   * follows); false if `timeout` ms passed first.
   */
  wait(timeout?: number | null): boolean {
    return native.eventWait(this.segment.buffer, validateTimeout(timeout, 'timeout'));
  }

  /** Waits without blocking the event loop; resolves false if the timeout passed first. */
  waitAsync(options?: number | AsyncWaitOptions | null): Promise<boolean> {
    const buffer = this.segment.buffer;
    const start = native.syncSeq(buffer); // set() moves it, even if clear() follows at once
    const wasSet = (): true | null => (native.eventIsSet(buffer) || native.syncSeq(buffer) !== start ? true : null);
    return waitAsync(buffer, wasSet, asyncWaitOptions(options)).then((set) => set ?? false);
  }

  get handle(): PrimitiveHandle<'Event'> {
    return { kind: 'Event', name: this.segment.name };
  }

  static fromHandle(handle: PrimitiveHandle): Event {
    return fromHandle(handle, 'Event', 'Event', () => new Event());
  }
}
