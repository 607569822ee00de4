/** Barrier: parties wait for each other, as CPython's threading.Barrier, across processes. */
import { abortError, ForkwiseError } from '../posix/errors';
import { native } from '../posix/native';
import { validateInteger, validateOptions } from '../posix/validate';
import { fromHandle, segmentFor, type PrimitiveHandle } from './primitive';
import type { SharedMemory } from './shared_memory';
import { asyncWaitOptions, FOREVER, validateSignal, validateTimeout, waitAsync, type AsyncWaitOptions } from './waiting';

/** The barrier was aborted, reset while waiting, or broken by a waiter's timeout. */
export class BrokenBarrierError extends ForkwiseError {
  constructor() {
    super('ERR_BARRIER_BROKEN', 'The barrier is broken');
    this.name = 'BrokenBarrierError';
  }
}

const PASSED = 1;

export interface BarrierHandle extends PrimitiveHandle<'Barrier'> {
  timeout: number | null;
}

/**
 * `parties` threads or processes call `wait()`; all return together, each with its arrival
 * index. A waiter's timeout breaks the barrier for everyone (as in CPython); so does
 * `abort()`, which is how to release waiters when a party died before arriving.
 *
 * @example
 * import { Barrier } from 'forkwise/sync';
 * const start = new Barrier(3);
 * // in each of 3 processes: start.wait(); work();
 */
export class Barrier {
  private readonly segment: SharedMemory;
  private readonly timeout: number;

  constructor(parties: number, options: { timeout?: number | null } | null = {}) {
    validateInteger(parties, 'parties', 1, 2 ** 31 - 1);
    const { timeout } = validateOptions(options);
    this.timeout = validateTimeout(timeout, 'options.timeout');
    this.segment = segmentFor('Barrier', parties);
  }

  /**
   * Blocks the calling thread until all parties have arrived; returns this party's arrival
   * index (0 to parties - 1). Throws BrokenBarrierError if the barrier breaks.
   */
  wait(timeout?: number | null): number {
    const ms = timeout == null ? this.timeout : validateTimeout(timeout, 'timeout');
    const [index, generation] = this.arrive();
    let outcome = native.barrierWait(this.segment.buffer, generation, ms);
    if (outcome === 0) outcome = native.barrierBreak(this.segment.buffer, generation);
    if (outcome !== PASSED) throw new BrokenBarrierError();
    return index;
  }

  /** As `wait()`, without blocking the event loop. An abort breaks the barrier, as a timeout. */
  async waitAsync(options?: number | AsyncWaitOptions | null): Promise<number> {
    const { timeout, signal: givenSignal } = validateOptions(asyncWaitOptions(options)) as AsyncWaitOptions;
    const ms = timeout == null ? this.timeout : validateTimeout(timeout, 'options.timeout');
    validateSignal(givenSignal); // before arriving: a bad argument must not break the barrier
    const signal = givenSignal ?? undefined;
    if (signal?.aborted) throw abortError(signal);
    const buffer = this.segment.buffer;
    const [index, generation] = this.arrive();
    const poll = (): number | null => {
      const outcome = native.barrierPoll(buffer, generation);
      return outcome === 0 ? null : outcome;
    };
    const leave = (outcome: number | null): number => {
      if (outcome === null) outcome = native.barrierBreak(buffer, generation);
      if (outcome !== PASSED) throw new BrokenBarrierError();
      return index;
    };
    return waitAsync(buffer, poll, { timeout: ms === FOREVER ? undefined : ms, signal }).then(leave, (error) => {
      native.barrierBreak(buffer, generation);
      throw error;
    });
  }

  /** Back to the initial state; parties waiting now get BrokenBarrierError. */
  reset(): void {
    native.barrierReset(this.segment.buffer);
  }

  /** Breaks the barrier: waiters now and later get BrokenBarrierError until `reset()`. */
  abort(): void {
    native.barrierAbort(this.segment.buffer);
  }

  get parties(): number {
    return native.barrierState(this.segment.buffer)[0];
  }

  /** How many parties are waiting now. */
  get nWaiting(): number {
    return native.barrierState(this.segment.buffer)[1];
  }

  get broken(): boolean {
    return native.barrierState(this.segment.buffer)[2];
  }

  /** With the default timeout of `wait` (`null`: none), which the other side keeps. */
  get handle(): BarrierHandle {
    return { kind: 'Barrier', name: this.segment.name, timeout: this.timeout === FOREVER ? null : this.timeout };
  }

  static fromHandle(handle: BarrierHandle): Barrier {
    const timeout = (handle as Partial<BarrierHandle> | null)?.timeout ?? undefined;
    return fromHandle(handle, 'Barrier', 'Barrier', () => new Barrier(1, { timeout }));
  }

  private arrive(): [index: number, generation: number] {
    const arrived = native.barrierArrive(this.segment.buffer);
    if (arrived === null) throw new BrokenBarrierError();
    return arrived;
  }
}
