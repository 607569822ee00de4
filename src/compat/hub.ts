/**
 * The objects of the platform fallback (queues and pipes), kept by the process that created
 * them, in its service thread (service_main.ts), and used by every process and thread that
 * holds a handle: over a local socket from other processes, directly from its own threads.
 *
 * - Values are the bytes the user's thread serialized; the hub never deserializes them.
 * - Every wait (a `get` on an empty queue, a `put` on a full one, a `recv` with nothing to
 *   read, a `join`) is parked here with its deadline: the hub alone decides whether a wait
 *   ended with a value, a timeout or a cancellation, so a value is never handed to a waiter
 *   that gave up (nothing lost) nor to two (nothing duplicated).
 * - A client is one thread of one process (a socket, or this process's own thread). When it
 *   goes (its socket closes: an exit or a SIGKILL), its parked waits are dropped and the pipe
 *   ends it held are released: a peer reading an end that nobody holds any more gets EOF once
 *   what was sent is read.
 */

import { failure, Fifo, FOREVER, Waiters, type Client, type HubObject, type Reply, type WaitRegistry, type Waiter, type WireError } from './hub_waits';

import { HubBarrier, HubCondition, HubEvent, HubLock, HubSemaphore } from './hub_sync';

export type { Client, Reply, WireError } from './hub_waits';

export type QueueOrder = 'fifo' | 'lifo' | 'priority';

/** A queue's items in the order they are got. */
interface Store {
  readonly length: number;
  add(bytes: Buffer, priority: number): void;
  take(): Buffer | undefined;
  /** An item taken by a getter that died or gave up: first in line again. */
  putBack(bytes: Buffer): void;
}

class FifoStore extends Fifo<Buffer> implements Store {
  add(bytes: Buffer): void {
    this.push(bytes);
  }
  take(): Buffer | undefined {
    return this.shift();
  }
  putBack(bytes: Buffer): void {
    this.unshift(bytes);
  }
}

class LifoStore implements Store {
  readonly #items: Buffer[] = [];
  get length(): number {
    return this.#items.length;
  }
  add(bytes: Buffer): void {
    this.#items.push(bytes);
  }
  take(): Buffer | undefined {
    return this.#items.pop();
  }
  putBack(bytes: Buffer): void {
    this.#items.push(bytes);
  }
}

interface Entry {
  priority: number;
  order: number;
  bytes: Buffer;
}

/** Lowest priority first, then first put first (a binary heap). */
class PriorityStore implements Store {
  readonly #heap: Entry[] = [];
  // Where an item taken came from, so that a put back goes where it was.
  readonly #keys = new WeakMap<Buffer, Entry>();
  #added = 0;
  #putBacks = 0;

  get length(): number {
    return this.#heap.length;
  }
  add(bytes: Buffer, priority: number): void {
    this.#insert({ priority, order: this.#added++, bytes });
  }
  take(): Buffer | undefined {
    const heap = this.#heap;
    const top = heap[0];
    if (!top) return undefined;
    const last = heap.pop()!;
    if (heap.length > 0) {
      heap[0] = last;
      this.#down(0);
    }
    this.#keys.set(top.bytes, top);
    return top.bytes;
  }
  putBack(bytes: Buffer): void {
    this.#insert(this.#keys.get(bytes) ?? { priority: -Infinity, order: --this.#putBacks, bytes });
  }
  #insert(entry: Entry): void {
    const heap = this.#heap;
    heap.push(entry);
    let i = heap.length - 1;
    while (i > 0) {
      const parent = (i - 1) >> 1;
      if (!before(heap[i]!, heap[parent]!)) break;
      [heap[i], heap[parent]] = [heap[parent]!, heap[i]!];
      i = parent;
    }
  }
  #down(i: number): void {
    const heap = this.#heap;
    for (;;) {
      const left = 2 * i + 1;
      const right = left + 1;
      let least = i;
      if (left < heap.length && before(heap[left]!, heap[least]!)) least = left;
      if (right < heap.length && before(heap[right]!, heap[least]!)) least = right;
      if (least === i) return;
      [heap[i], heap[least]] = [heap[least]!, heap[i]!];
      i = least;
    }
  }
}

function before(a: Entry, b: Entry): boolean {
  return a.priority < b.priority || (a.priority === b.priority && a.order < b.order);
}

/** A queue: items, and the getters, putters and joiners waiting on it. */
class HubQueue implements HubObject {
  readonly #items: Store;
  readonly #getters: Waiters;
  readonly #putters: Waiters;
  readonly #joiners: Waiters;
  #unfinished = 0;

  constructor(
    hub: Hub,
    readonly maxsize: number,
    order: QueueOrder,
  ) {
    this.#items = order === 'lifo' ? new LifoStore() : order === 'priority' ? new PriorityStore() : new FifoStore();
    this.#getters = new Waiters(hub);
    this.#putters = new Waiters(hub);
    this.#joiners = new Waiters(hub);
  }

  call(client: Client, rid: number, method: string, args: Record<string, unknown>, reply: Reply): void {
    const timeout = (args.timeout as number | undefined) ?? FOREVER;
    switch (method) {
      case 'put': {
        const bytes = args.bytes as Buffer;
        const priority = (args.priority as number | undefined) ?? 0;
        if (this.#hasRoom()) {
          this.#add(bytes, priority);
          return reply({});
        }
        if (timeout === 0) return reply(failure('ERR_QUEUE_FULL', 'The queue is full'));
        return this.#putters.park({ client, rid, reply, timer: undefined, put: [bytes, priority] }, timeout, () =>
          failure('ERR_QUEUE_FULL', 'The queue is full'),
        );
      }
      case 'get': {
        const item = this.#items.take();
        if (item) {
          this.#admitPutters();
          return reply({ value: item });
        }
        if (timeout === 0) return reply(failure('ERR_QUEUE_EMPTY', 'The queue is empty'));
        return this.#getters.park({ client, rid, reply, timer: undefined }, timeout, () => failure('ERR_QUEUE_EMPTY', 'The queue is empty'));
      }
      case 'unget': // taken by a get whose caller closed the queue or died meanwhile
        this.#putBack(args.bytes as Buffer);
        return reply({});
      case 'qsize':
        return reply({ value: this.#items.length });
      case 'unfinished':
        return reply({ value: this.#unfinished });
      case 'taskDone':
        if (this.#unfinished === 0) return reply(failure('ERR_QUEUE_TASK_DONE_TOO_MANY', 'taskDone() called too many times'));
        if (--this.#unfinished === 0) for (const w of this.#joiners.takeAll()) w.reply({ value: true });
        return reply({});
      case 'join':
        if (this.#unfinished === 0) return reply({ value: true });
        if (timeout === 0) return reply({ value: false });
        return this.#joiners.park({ client, rid, reply, timer: undefined }, timeout, () => ({ value: false }));
      default:
        return reply(failure('ERR_FORKWISE_BAD_MESSAGE', `unknown queue method ${method}`));
    }
  }

  #hasRoom(): boolean {
    return this.maxsize <= 0 || this.#items.length < this.maxsize;
  }

  #add(bytes: Buffer, priority: number): void {
    this.#unfinished += 1;
    const getter = this.#getters.take();
    if (getter) getter.reply({ value: bytes });
    else this.#items.add(bytes, priority);
  }

  #putBack(bytes: Buffer): void {
    const getter = this.#getters.take();
    if (getter) getter.reply({ value: bytes });
    else this.#items.putBack(bytes);
  }

  #admitPutters(): void {
    while (this.#putters.length > 0 && this.#hasRoom()) {
      const putter = this.#putters.take()!;
      this.#add(...putter.put!);
      putter.reply({});
    }
  }
}

/** A pipe: what each end sent and not yet read, and who holds each end. */
class HubPipe implements HubObject {
  readonly #sent = [new Fifo<Buffer>(), new Fifo<Buffer>()]; // [from end 0, from end 1]
  readonly #readers: [Waiters, Waiters]; // waiting to read at end 0, at end 1
  readonly #holders = [new Map<Client, number>(), new Map<Client, number>()];
  // Handles of an end on their way to another process or thread (in a child's arguments or
  // in a message): they hold the end until claimed by whoever attaches, or given back.
  readonly #lent = new Map<string, 0 | 1>();

  /** `onUnused` runs once neither end is held: nobody can use the pipe any more. */
  constructor(
    hub: Hub,
    creator: Client,
    private readonly onUnused: () => void,
  ) {
    this.#readers = [new Waiters(hub), new Waiters(hub)];
    this.#holders[0]!.set(creator, 1);
    this.#holders[1]!.set(creator, 1);
  }

  call(client: Client, rid: number, method: string, args: Record<string, unknown>, reply: Reply): void {
    const end = args.end as 0 | 1;
    if (end !== 0 && end !== 1) return reply(failure('ERR_FORKWISE_BAD_MESSAGE', 'bad pipe end'));
    const other = (1 - end) as 0 | 1;
    const timeout = (args.timeout as number | undefined) ?? FOREVER;
    switch (method) {
      case 'send':
        if (!this.#held(other)) return reply(failure('ERR_EOF', 'The other end of the connection is closed'));
        this.#deliver(other, args.bytes as Buffer, false);
        return reply({});
      case 'recv':
      case 'poll': {
        const peek = method === 'poll';
        const ready = this.#sent[other]!.length > 0 || !this.#held(other);
        if (ready) return reply(peek ? { value: true } : this.#take(other));
        if (timeout === 0) return reply(peek ? { value: false } : failure('ERR_TIMEOUT', 'Nothing to read within the timeout'));
        return this.#readers[end].park({ client, rid, reply, timer: undefined, peek }, timeout, () =>
          peek ? { value: false } : failure('ERR_TIMEOUT', 'Nothing to read within the timeout'),
        );
      }
      case 'unget': // taken by a reader that died before it had it: first in line again
        this.#deliver(end, args.bytes as Buffer, true);
        return reply({});
      case 'hold':
        this.#holders[end]!.set(client, (this.#holders[end]!.get(client) ?? 0) + 1);
        return reply({});
      case 'lend':
        this.#lent.set(args.token as string, end);
        return reply({});
      case 'claim':
        this.#holders[end]!.set(client, (this.#holders[end]!.get(client) ?? 0) + 1);
        this.#lent.delete(args.token as string);
        return reply({});
      case 'unlend':
        if (this.#lent.delete(args.token as string)) this.#eofIfUnheld(end);
        return reply({});
      case 'release':
        this.#release(client, end, false);
        return reply({});
      default:
        return reply(failure('ERR_FORKWISE_BAD_MESSAGE', `unknown pipe method ${method}`));
    }
  }

  dropClient(client: Client): void {
    this.#release(client, 0, true);
    this.#release(client, 1, true);
  }

  // Hands `bytes` (sent to `end`) to the first recv waiting there, answering the polls before
  // it; else keeps it, at the front for a message put back.
  #deliver(end: 0 | 1, bytes: Buffer, first: boolean): void {
    for (let reader = this.#readers[end].take(); reader; reader = this.#readers[end].take()) {
      if (!reader.peek) return reader.reply({ value: bytes });
      reader.reply({ value: true });
    }
    const sent = this.#sent[1 - end]!;
    if (first) sent.unshift(bytes);
    else sent.push(bytes);
  }

  #take(from: 0 | 1): { value?: unknown; error?: WireError } {
    const bytes = this.#sent[from]!.shift();
    if (bytes) return { value: bytes };
    return failure('ERR_EOF', 'The other end of the connection is closed');
  }

  #release(client: Client, end: 0 | 1, all: boolean): void {
    const holders = this.#holders[end]!;
    const count = holders.get(client);
    if (count === undefined) return;
    if (all || count <= 1) holders.delete(client);
    else holders.set(client, count - 1);
    this.#eofIfUnheld(end);
  }

  #held(end: 0 | 1): boolean {
    if (this.#holders[end]!.size > 0) return true;
    for (const lentEnd of this.#lent.values()) if (lentEnd === end) return true;
    return false;
  }

  // Nobody holds `end` any more: whoever waits to read at the other end gets EOF now.
  #eofIfUnheld(end: 0 | 1): void {
    if (this.#held(end)) return;
    const other = (1 - end) as 0 | 1;
    for (const reader of this.#readers[other].takeAll()) reader.reply(reader.peek ? { value: true } : this.#take(end));
    if (!this.#held(other)) this.onUnused();
  }
}

export type ObjectKind = 'queue' | 'pipe' | 'Mutex' | 'RLock' | 'Semaphore' | 'Event' | 'Condition' | 'Barrier';

export interface CreateOptions {
  maxsize?: number;
  order?: QueueOrder;
  /** A Semaphore's initial value, and its bound (-1: none); a Barrier's parties. */
  value?: number;
  bound?: number;
}

/** Every object of this process, by id, and the waits parked on them. */
export class Hub implements WaitRegistry {
  readonly #objects = new Map<number, HubObject>();
  readonly #parked = new Map<Client, Map<number, [Waiter, Waiters]>>();
  #nextId = 1;

  create(client: Client, kind: ObjectKind, options: CreateOptions): number {
    const id = this.#nextId++;
    this.#objects.set(id, this.#make(id, client, kind, options));
    return id;
  }

  #make(id: number, client: Client, kind: ObjectKind, { maxsize = 0, order = 'fifo', value = 1, bound = -1 }: CreateOptions): HubObject {
    switch (kind) {
      case 'queue':
        return new HubQueue(this, maxsize, order);
      case 'pipe':
        return new HubPipe(this, client, () => this.#objects.delete(id));
      case 'Mutex':
      case 'RLock':
        return new HubLock(this, kind === 'RLock');
      case 'Semaphore':
        return new HubSemaphore(this, value, bound);
      case 'Event':
        return new HubEvent(this);
      case 'Condition':
        return new HubCondition(this);
      case 'Barrier':
        return new HubBarrier(this, value);
    }
  }

  call(client: Client, rid: number, id: number, method: string, args: Record<string, unknown>, reply: Reply): void {
    const object = this.#objects.get(id);
    if (!object) return reply(failure('ERR_FORKWISE_BAD_HANDLE', 'no such object in its process'));
    object.call(client, rid, method, args, reply);
  }

  /** How many objects this hub keeps (a pipe goes once neither end is held). */
  get size(): number {
    return this.#objects.size;
  }

  /** Ends the parked wait `rid` of `client` as cancelled; nothing if it has ended already. */
  cancel(client: Client, rid: number): void {
    const entry = this.#parked.get(client)?.get(rid);
    if (!entry) return;
    const [waiter, waiters] = entry;
    if (waiters.drop(waiter)) waiter.reply(failure('ABORT_ERR', 'The operation was aborted'));
  }

  /** `client` is gone: its waits are dropped (nobody to answer) and its pipe ends released. */
  dropClient(client: Client): void {
    for (const [waiter, waiters] of this.#parked.get(client)?.values() ?? []) waiters.drop(waiter);
    this.#parked.delete(client);
    for (const object of this.#objects.values()) object.dropClient?.(client);
  }

  remember(waiter: Waiter, waiters: Waiters): void {
    let mine = this.#parked.get(waiter.client);
    if (!mine) this.#parked.set(waiter.client, (mine = new Map()));
    mine.set(waiter.rid, [waiter, waiters]);
  }

  forget(waiter: Waiter): void {
    this.#parked.get(waiter.client)?.delete(waiter.rid);
  }
}
