/** RWLock: a process-shared pthread read-write lock. */
import { constants } from 'node:os';
import { PosixError } from '../posix/errors';
import { native } from '../posix/native';
import { fromHandle, segmentFor, type PrimitiveHandle } from './primitive';
import type { SharedMemory } from './shared_memory';
import { acquireTimeout, processId, runHolding, waitAsync, type AcquireOptions, type AsyncWaitOptions } from './waiting';

/**
 * Many readers or one writer, across threads and processes. Writers are not starved: readers
 * arriving while a writer waits queue behind it. Not robust: a process that dies holding it
 * leaves it held (use a Mutex where holders may die).
 *
 * @example
 * import { RWLock } from 'forkwise/sync';
 * const rw = new RWLock();
 * rw.acquireRead(); try { read(); } finally { rw.releaseRead(); }
 */
export class RWLock {
  private readonly segment: SharedMemory;
  // What this object's thread holds: a reader count, or the write lock, in process `pid` (a
  // forked child does not hold what its parent held). pthread does not check a reader's
  // unlock, so an unmatched release is refused here.
  private readers = 0;
  private writer = false;
  private pid = 0;

  constructor() {
    this.segment = segmentFor('RWLock');
  }

  acquireRead(options?: AcquireOptions | null): boolean {
    return this.took(false, native.rwlockAcquire(this.segment.buffer, false, acquireTimeout(options)));
  }

  acquireWrite(options?: AcquireOptions | null): boolean {
    return this.took(true, native.rwlockAcquire(this.segment.buffer, true, acquireTimeout(options)));
  }

  acquireReadAsync(options: AsyncWaitOptions | null = {}): Promise<boolean> {
    return this.acquireAsyncAs(false, options);
  }

  acquireWriteAsync(options: AsyncWaitOptions | null = {}): Promise<boolean> {
    return this.acquireAsyncAs(true, options);
  }

  releaseRead(): void {
    if (this.reading === 0) throw notHeld();
    native.rwlockRelease(this.segment.buffer);
    this.readers--;
  }

  releaseWrite(): void {
    if (!this.writing) throw notHeld();
    native.rwlockRelease(this.segment.buffer);
    this.writer = false;
  }

  /** The write lock, as `acquireWrite`. */
  acquire(options?: AcquireOptions | null): boolean {
    return this.acquireWrite(options);
  }

  acquireAsync(options: AsyncWaitOptions | null = {}): Promise<boolean> {
    return this.acquireWriteAsync(options);
  }

  /** Releases what this thread holds: the write lock, or one read lock. */
  release(): void {
    if (this.writing) this.releaseWrite();
    else this.releaseRead();
  }

  /** Whether any thread holds it, to read or to write. */
  locked(): boolean {
    if (this.reading > 0 || this.writing) return true;
    if (native.rwlockAcquire(this.segment.buffer, true, 0) !== 0) return true;
    native.rwlockRelease(this.segment.buffer);
    return false;
  }

  /** Runs `fn` holding the write lock, released even on throw. */
  withLock<T>(fn: () => T | Promise<T>): Promise<T> {
    return runHolding(() => this.acquireWriteAsync(), () => this.releaseWrite(), fn);
  }

  [Symbol.dispose](): void {
    this.release();
  }

  get handle(): PrimitiveHandle<'RWLock'> {
    return { kind: 'RWLock', name: this.segment.name };
  }

  static fromHandle(handle: PrimitiveHandle): RWLock {
    return fromHandle(handle, 'RWLock', 'RWLock', () => new RWLock());
  }

  private acquireAsyncAs(write: boolean, options: AsyncWaitOptions | null): Promise<boolean> {
    const buffer = this.segment.buffer;
    const attempt = (): true | null => (this.took(write, native.rwlockAcquire(buffer, write, 0)) ? true : null);
    return waitAsync(buffer, attempt, options).then((taken) => taken === true);
  }

  private get reading(): number {
    return this.pid === processId ? this.readers : 0;
  }

  private get writing(): boolean {
    return this.pid === processId && this.writer;
  }

  private took(write: boolean, outcome: number): boolean {
    if (outcome !== 0) return false;
    if (this.pid !== processId) {
      this.pid = processId;
      this.readers = 0;
      this.writer = false;
    }
    if (write) this.writer = true;
    else this.readers++;
    return true;
  }
}

function notHeld(): PosixError {
  return new PosixError(constants.errno.EPERM, 'pthread_rwlock_unlock');
}
