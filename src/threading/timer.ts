/**
 * `Timer`: a Thread that runs its target after a delay unless cancelled first, as CPython's
 * `threading.Timer`. The delay is waited out in the thread itself (`Atomics.wait` on the
 * cancellation word), so `cancel()` from any thread wakes it at once.
 */
import { invalidArgType, outOfRange } from '../posix/errors';
import type { TaskRef } from '../messaging/task';
import { Thread, TIMER_DELAY } from './thread';

export interface TimerOptions {
  name?: string;
  /** Default false, as CPython's. */
  daemon?: boolean;
}

/**
 * Runs `target(...args)` in a thread after `interval` ms, unless `cancel()` came first.
 *
 * @example
 * import { Timer } from 'forkwise/threading';
 * const timer = new Timer(5000, () => console.log('too slow'));
 * timer.start();
 * // ... the work finished in time:
 * timer.cancel();
 */
export class Timer extends Thread {
  readonly interval: number;

  constructor(interval: number, target: Function | TaskRef, args: unknown[] = [], options: TimerOptions = {}) {
    if (typeof interval !== 'number') throw invalidArgType('interval', 'of type number', interval);
    if (!(interval >= 0 && interval < 2 ** 31)) throw outOfRange('interval', '>= 0 and < 2 ** 31', interval);
    const ms = interval;
    if (typeof target !== 'function' && (target === null || typeof target !== 'object')) {
      throw invalidArgType('target', 'a function or a TaskRef { module, name }', target);
    }
    super({ target, args, ...options, [TIMER_DELAY]: ms } as never);
    this.interval = ms;
  }

  /** Stops the timer if it is still waiting (before or after `start()`); the target does not run. */
  cancel(): void {
    this.cancelTimer();
  }
}
