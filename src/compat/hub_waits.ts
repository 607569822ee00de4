/**
 * What every object of a hub (hub.ts) is made of: waits parked with their deadline, each
 * ended exactly once (answered by its object, timed out, cancelled, or dropped with its
 * client), and the errors as they cross.
 */

export type Reply = (result: { value?: unknown; error?: WireError }) => void;

/** An error as it crosses: the classes are rebuilt from `code` on the calling side. */
export interface WireError {
  code: string;
  message: string;
}

export interface Client {
  readonly id: number;
}

export interface Waiter {
  client: Client;
  rid: number;
  reply: Reply;
  timer: NodeJS.Timeout | undefined;
  /** A pipe's poll: answered `true` without taking the message. */
  peek?: boolean;
  /** A put waiting for room in a queue: its item and priority. */
  put?: [bytes: Buffer, priority: number];
  /** Called when the wait ends without being answered by its object (timeout, cancel, drop). */
  onDrop?: () => void;
}

export const FOREVER = -1;

export function failure(code: string, message: string): { error: WireError } {
  return { error: { code, message } };
}

export class Fifo<T> {
  #items: T[] = [];
  #head = 0;
  get length(): number {
    return this.#items.length - this.#head;
  }
  push(item: T): void {
    this.#items.push(item);
  }
  unshift(item: T): void {
    if (this.#head > 0) this.#items[--this.#head] = item;
    else this.#items.unshift(item);
  }
  shift(): T | undefined {
    if (this.#head === this.#items.length) return undefined;
    const item = this.#items[this.#head]!;
    this.#items[this.#head++] = undefined as T;
    if (this.#head > 1024 && this.#head * 2 > this.#items.length) {
      this.#items = this.#items.slice(this.#head);
      this.#head = 0;
    }
    return item;
  }
  remove(predicate: (item: T) => boolean): T[] {
    const kept: T[] = [];
    const removed: T[] = [];
    for (let i = this.#head; i < this.#items.length; i++) (predicate(this.#items[i]!) ? removed : kept).push(this.#items[i]!);
    this.#items = kept;
    this.#head = 0;
    return removed;
  }
}

/** Where a hub keeps its parked waits by client and request (for cancel and dropClient). */
export interface WaitRegistry {
  remember(waiter: Waiter, waiters: Waiters): void;
  forget(waiter: Waiter): void;
}

/** The waits of one kind (getters of a queue…), each ended exactly once. */
export class Waiters {
  readonly #queue = new Fifo<Waiter>();

  constructor(private readonly hub: WaitRegistry) {}

  get length(): number {
    return this.#queue.length;
  }

  /** Parks `waiter` up to `timeout` ms (FOREVER: no limit); `onTimeout` answers then. */
  park(waiter: Waiter, timeout: number, onTimeout: () => { value?: unknown; error?: WireError }): void {
    if (timeout !== FOREVER) {
      waiter.timer = setTimeout(() => {
        if (this.#queue.remove((w) => w === waiter).length === 0) return;
        this.hub.forget(waiter);
        waiter.onDrop?.();
        waiter.reply(onTimeout());
      }, timeout);
    }
    this.#queue.push(waiter);
    this.hub.remember(waiter, this);
  }

  /** The longest-waiting waiter, taken off the list (the caller answers it). */
  take(): Waiter | undefined {
    const waiter = this.#queue.shift();
    if (waiter) this.#end(waiter);
    return waiter;
  }

  /** Takes every waiter off (the caller answers them). */
  takeAll(): Waiter[] {
    const all: Waiter[] = [];
    for (let w = this.take(); w; w = this.take()) all.push(w);
    return all;
  }

  /** Removes `waiter` if still parked: true when it was. */
  drop(waiter: Waiter): boolean {
    if (this.#queue.remove((w) => w === waiter).length === 0) return false;
    this.#end(waiter);
    waiter.onDrop?.();
    return true;
  }

  #end(waiter: Waiter): void {
    if (waiter.timer) clearTimeout(waiter.timer);
    this.hub.forget(waiter);
  }
}

export interface HubObject {
  call(client: Client, rid: number, method: string, args: Record<string, unknown>, reply: Reply): void;
  dropClient?(client: Client): void;
}

