/**
 * The queues of the platform fallback: the same classes and methods as messaging/queue.ts,
 * over a queue kept by the hub of the process that created it (hub.ts). Every process and
 * thread that holds the handle puts and gets there; waits, timeouts and cancellations are
 * decided by the hub, so an item is never lost or handed out twice.
 *
 * Unlike the shared-memory queue, this one lives as long as the process that created it:
 * once that process has ended, calls fail with `EOFError`.
 */
import { invalidArgType, invalidArgValue } from '../posix/errors';
import { validateInteger, validateObject } from '../posix/validate';
import { FOREVER, validateSignal, validateTimeout } from '../sync/waiting';
import { syncTimeout, type QueueOptions, type QueueSyncOptions, type QueueWaitOptions } from '../messaging/queue';
import { deserialize, registerByHandle, serialize } from '../messaging/serializer';
import { ownBytes, refOf, ObjectUse, type ObjectHandle } from './object';
import { theService } from './service';
import type { ObjectRef } from './service_main';
import type { QueueOrder } from './hub';
import { untilEnd } from '../messaging/iterate';

/** As the shared-memory PriorityQueue and LifoQueue take them. */
interface OrderedQueueOptions {
  maxsize?: number;
  capacity?: number;
}

// `capacity` (bytes of the shared-memory arena) is checked, and has no use here.
function orderedOptions(options: OrderedQueueOptions): QueueOptions {
  const { maxsize, capacity } = validateObject(options, 'options') as OrderedQueueOptions;
  if (capacity !== undefined) validateInteger(capacity, 'options.capacity', 1, 2 ** 31 - 1);
  return { maxsize };
}

type QueueKind = 'Queue' | 'SimpleQueue' | 'JoinableQueue' | 'PriorityQueue' | 'LifoQueue';

/** Handles name their kind apart from the shared-memory queues' (`FallbackQueue`…). */
export interface FallbackQueueHandle extends ObjectHandle {
  kind: `Fallback${QueueKind}`;
  maxsize: number;
}

let adopted: { ref: ObjectRef; maxsize: number } | undefined;

function waitOptions(options: QueueWaitOptions): { timeout: number; signal: AbortSignal | undefined } {
  const { timeout, signal } = validateObject(options, 'options') as QueueWaitOptions;
  const ms = validateTimeout(timeout, 'options.timeout');
  validateSignal(signal);
  return { timeout: ms, signal };
}

export class Queue<T = unknown> {
  readonly #use: ObjectUse;
  readonly #maxsize: number;

  constructor(options: QueueOptions = {}) {
    const kind = this.constructor as unknown as { kind: QueueKind; order: QueueOrder };
    let parts = adopted;
    adopted = undefined;
    if (!parts) {
      const { maxsize = 0 } = validateObject(options, 'options') as QueueOptions;
      validateInteger(maxsize, 'options.maxsize', 0, 2 ** 31 - 1);
      const ref = theService().callSync({ op: 'create', kind: 'queue', maxsize, order: kind.order }) as ObjectRef;
      parts = { ref, maxsize };
    }
    this.#maxsize = parts.maxsize;
    this.#use = new ObjectUse(parts.ref, kind.kind);
  }

  static readonly kind: QueueKind = 'Queue';
  /** The order items are got in (PriorityQueue and LifoQueue change it). */
  protected static readonly order: QueueOrder = 'fifo';

  /** The priority an item is ordered by (PriorityQueue). */
  protected priorityOf(_item: unknown): number {
    return 0;
  }

  /** Attaches the queue that `handle` describes (in another process or thread). */
  static fromHandle<T = unknown>(handle: FallbackQueueHandle): Queue<T> {
    return attach(handle, 'Queue', () => new Queue<T>());
  }

  get handle(): FallbackQueueHandle {
    return { kind: `Fallback${this.#use.what as QueueKind}`, ...this.#use.ref, maxsize: this.#maxsize };
  }

  /** The number of items in the queue (a snapshot: others may put or get meanwhile). */
  qsize(): number {
    return this.#use.callSync('qsize', {}) as number;
  }

  empty(): boolean {
    return this.qsize() === 0;
  }

  full(): boolean {
    return this.#maxsize > 0 && this.qsize() >= this.#maxsize;
  }

  get maxsize(): number {
    return this.#maxsize;
  }

  async put(value: T, options: QueueWaitOptions = {}): Promise<void> {
    this.#use.open();
    const { timeout, signal } = waitOptions(options);
    const priority = this.priorityOf(value);
    const bytes = ownBytes(serialize(value, 'value'));
    await this.#use.call('put', { bytes, timeout, priority }, signal);
  }

  putSync(value: T, options: QueueSyncOptions = {}): void {
    this.#use.open();
    const timeout = syncTimeout(options);
    const priority = this.priorityOf(value);
    this.#use.callSync('put', { bytes: ownBytes(serialize(value, 'value')), timeout, priority });
  }

  putNowait(value: T): void {
    this.putSync(value, { block: false });
  }

  async get(options: QueueWaitOptions = {}): Promise<T> {
    this.#use.open();
    const { timeout, signal } = waitOptions(options);
    const bytes = await this.#use.call('get', { timeout }, signal, (late) => {
      // Taken after this thread closed the queue: back to the front, for the others.
      void theService().call({ op: 'call', ref: this.#use.ref, method: 'unget', args: { bytes: late } }, false);
    });
    return deserialize(bytes as Buffer) as T;
  }

  getSync(options: QueueSyncOptions = {}): T {
    this.#use.open();
    const timeout = syncTimeout(options);
    return deserialize(this.#use.callSync('get', { timeout }) as Buffer) as T;
  }

  getNowait(): T {
    return this.getSync({ block: false });
  }

  /** Ends this thread's use of the queue: pending waits reject; others keep using it. */
  close(): void {
    this.#use.close();
  }

  get closed(): boolean {
    return this.#use.closed;
  }

  [Symbol.asyncIterator](): AsyncGenerator<T, void, undefined> {
    return untilEnd(() => this.get(), ['ERR_FORKWISE_CLOSED']);
  }

  protected get use(): ObjectUse {
    return this.#use;
  }
}

export class SimpleQueue<T = unknown> extends Queue<T> {
  static override readonly kind: QueueKind = 'SimpleQueue';

  constructor() {
    super({});
  }

  static override fromHandle<T = unknown>(handle: FallbackQueueHandle): SimpleQueue<T> {
    return attach(handle, 'SimpleQueue', () => new SimpleQueue<T>());
  }
}

export class JoinableQueue<T = unknown> extends Queue<T> {
  static override readonly kind: QueueKind = 'JoinableQueue';

  static override fromHandle<T = unknown>(handle: FallbackQueueHandle): JoinableQueue<T> {
    return attach(handle, 'JoinableQueue', () => new JoinableQueue<T>());
  }

  /** One item got earlier is handled. Throws `ERR_QUEUE_TASK_DONE_TOO_MANY` past the count. */
  taskDone(): void {
    this.use.callSync('taskDone', {});
  }

  unfinished(): number {
    return this.use.callSync('unfinished', {}) as number;
  }

  async join(): Promise<void> {
    await this.use.call('join', { timeout: FOREVER });
  }

  joinSync(timeout?: number): boolean {
    return this.use.callSync('join', { timeout: validateTimeout(timeout, 'timeout') }) as boolean;
  }
}

/** CPython's `queue.PriorityQueue` (entries `[priority, value]`, lowest first, ties in the order put). */
// Typed loosely: users see the shared-memory class's type (compat/select.ts, threading/index.ts).
export class PriorityQueue<T = [number, unknown]> extends JoinableQueue<T> {
  static override readonly kind: QueueKind = 'PriorityQueue';
  protected static override readonly order: QueueOrder = 'priority';

  constructor(options: OrderedQueueOptions = {}) {
    super(orderedOptions(options));
  }

  static override fromHandle<T = [number, unknown]>(handle: FallbackQueueHandle): PriorityQueue<T> {
    return attach(handle, 'PriorityQueue', () => new PriorityQueue<T>());
  }

  protected override priorityOf(entry: unknown): number {
    if (!Array.isArray(entry) || typeof entry[0] !== 'number' || Number.isNaN(entry[0])) {
      throw invalidArgType('entry', 'an array [priority, value] whose priority is a number (not NaN)', entry);
    }
    return entry[0];
  }
}

/** CPython's `queue.LifoQueue`: the last item put is the first got. */
export class LifoQueue<T = unknown> extends JoinableQueue<T> {
  static override readonly kind: QueueKind = 'LifoQueue';
  protected static override readonly order: QueueOrder = 'lifo';

  constructor(options: OrderedQueueOptions = {}) {
    super(orderedOptions(options));
  }

  static override fromHandle<T = unknown>(handle: FallbackQueueHandle): LifoQueue<T> {
    return attach(handle, 'LifoQueue', () => new LifoQueue<T>());
  }
}

function attach<Q>(handle: unknown, kind: QueueKind, build: () => Q): Q {
  if (handle === null || typeof handle !== 'object') throw invalidArgType('handle', 'an object', handle);
  const { kind: actual, maxsize } = handle as Partial<FallbackQueueHandle>;
  if (actual !== `Fallback${kind}`) throw invalidArgValue('handle', handle, `is not the handle of a ${kind}`);
  const ref = refOf(handle);
  if (!ref || !Number.isInteger(maxsize)) throw invalidArgValue('handle', handle, 'does not name a queue');
  adopted = { ref, maxsize: maxsize! };
  try {
    return build();
  } finally {
    adopted = undefined;
  }
}

registerByHandle(Queue, ['FallbackQueue'], (handle: FallbackQueueHandle) => Queue.fromHandle(handle));
registerByHandle(SimpleQueue, ['FallbackSimpleQueue'], (handle: FallbackQueueHandle) => SimpleQueue.fromHandle(handle));
registerByHandle(JoinableQueue, ['FallbackJoinableQueue'], (handle: FallbackQueueHandle) => JoinableQueue.fromHandle(handle));
registerByHandle(PriorityQueue, ['FallbackPriorityQueue'], (handle: FallbackQueueHandle) => PriorityQueue.fromHandle(handle));
registerByHandle(LifoQueue, ['FallbackLifoQueue'], (handle: FallbackQueueHandle) => LifoQueue.fromHandle(handle));
