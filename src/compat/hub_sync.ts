/**
 * The synchronization primitives of the platform fallback, as a hub keeps them (hub.ts):
 * the state `forkwise/sync` keeps in shared memory, here in the creator's service thread.
 * Waits are parked with their deadline and answered by the hub alone; a lock is owned by a
 * client (one thread of one process), and one that ends holding it leaves it to the next
 * acquirer marked recovered, as a robust pthread mutex does.
 *
 * Answers of an acquire: 0 taken, 1 taken from an owner that died, -1 not taken.
 */
import { failure, FOREVER, Waiters, type Client, type HubObject, type Reply, type WaitRegistry, type Waiter } from './hub_waits';

const notRecoverable = (kind: string): ReturnType<typeof failure> =>
  failure('ERR_LOCK_NOT_RECOVERABLE', `This ${kind}'s owner died and it was released without markConsistent(): it cannot be used any more`);

/** Mutex (recursive: false) and RLock. */
export class HubLock implements HubObject {
  #owner: Client | undefined;
  #count = 0;
  #state: 'consistent' | 'inconsistent' | 'dead' = 'consistent';
  readonly #waiters: Waiters;

  constructor(
    registry: WaitRegistry,
    private readonly recursive: boolean,
  ) {
    this.#waiters = new Waiters(registry);
  }

  get #kind(): string {
    return this.recursive ? 'RLock' : 'Mutex';
  }

  call(client: Client, rid: number, method: string, args: Record<string, unknown>, reply: Reply): void {
    switch (method) {
      case 'acquire': {
        if (this.#state === 'dead') return reply(notRecoverable(this.#kind));
        if (this.#owner === client && this.recursive) {
          this.#count++;
          return reply({ value: 0 });
        }
        // A Mutex taken twice by one thread: a deadlock, unless the attempt is one of its
        // async tasks (`queued`), which waits for the other task's release.
        if (this.#owner === client && args.queued !== true) {
          return reply(failure('EDEADLK', 'EDEADLK: resource deadlock avoided, pthread_mutex_lock'));
        }
        if (this.#owner === undefined) return reply({ value: this.#take(client) });
        const timeout = (args.timeout as number | undefined) ?? FOREVER;
        if (timeout === 0) return reply({ value: -1 });
        return this.#waiters.park({ client, rid, reply, timer: undefined }, timeout, () => ({ value: -1 }));
      }
      case 'release':
        if (this.#owner !== client) return reply(failure('EPERM', 'EPERM: operation not permitted, pthread_mutex_unlock'));
        if (--this.#count === 0) {
          this.#owner = undefined;
          if (this.#state === 'inconsistent') this.#die();
          else this.#handOn();
        }
        return reply({});
      case 'markConsistent':
        if (this.#owner !== client || this.#state !== 'inconsistent') return reply(failure('EINVAL', 'EINVAL: invalid argument, pthread_mutex_consistent'));
        this.#state = 'consistent';
        return reply({});
      case 'locked':
        return reply({ value: this.#owner !== undefined });
      default:
        return reply(failure('ERR_FORKWISE_BAD_MESSAGE', `unknown lock method ${method}`));
    }
  }

  dropClient(client: Client): void {
    if (this.#owner !== client) return;
    this.#owner = undefined;
    this.#count = 0;
    if (this.#state === 'consistent') this.#state = 'inconsistent';
    this.#handOn();
  }

  #take(client: Client): 0 | 1 {
    this.#owner = client;
    this.#count = 1;
    return this.#state === 'inconsistent' ? 1 : 0;
  }

  #handOn(): void {
    const next = this.#waiters.take();
    if (next) next.reply({ value: this.#take(next.client) });
  }

  // Released by the thread that recovered it without markConsistent(): unusable for all.
  #die(): void {
    this.#state = 'dead';
    for (const waiter of this.#waiters.takeAll()) waiter.reply(notRecoverable(this.#kind));
  }
}

/** Semaphore and BoundedSemaphore (`bound` >= 0: release may not pass it). */
export class HubSemaphore implements HubObject {
  readonly #waiters: Waiters;

  constructor(
    registry: WaitRegistry,
    private value: number,
    private readonly bound: number,
  ) {
    this.#waiters = new Waiters(registry);
  }

  call(client: Client, rid: number, method: string, args: Record<string, unknown>, reply: Reply): void {
    switch (method) {
      case 'acquire': {
        if (this.value > 0) {
          this.value--;
          return reply({ value: 0 });
        }
        const timeout = (args.timeout as number | undefined) ?? FOREVER;
        if (timeout === 0) return reply({ value: -1 });
        return this.#waiters.park({ client, rid, reply, timer: undefined }, timeout, () => ({ value: -1 }));
      }
      case 'release': {
        const n = args.n as number;
        if (this.bound >= 0 && this.value + n > this.bound) {
          return reply(failure('ERR_SEMAPHORE_RELEASED_TOO_MANY_TIMES', 'Semaphore released too many times'));
        }
        this.value += n;
        for (let w = this.value > 0 ? this.#waiters.take() : undefined; w; w = this.value > 0 ? this.#waiters.take() : undefined) {
          this.value--;
          w.reply({ value: 0 });
        }
        return reply({});
      }
      case 'value':
        return reply({ value: this.value });
      default:
        return reply(failure('ERR_FORKWISE_BAD_MESSAGE', `unknown semaphore method ${method}`));
    }
  }
}

export class HubEvent implements HubObject {
  #set = false;
  readonly #waiters: Waiters;

  constructor(registry: WaitRegistry) {
    this.#waiters = new Waiters(registry);
  }

  call(client: Client, rid: number, method: string, args: Record<string, unknown>, reply: Reply): void {
    switch (method) {
      case 'set':
        this.#set = true;
        for (const w of this.#waiters.takeAll()) w.reply({ value: true });
        return reply({});
      case 'clear':
        this.#set = false;
        return reply({});
      case 'isSet':
        return reply({ value: this.#set });
      case 'wait': {
        if (this.#set) return reply({ value: true });
        const timeout = (args.timeout as number | undefined) ?? FOREVER;
        if (timeout === 0) return reply({ value: false });
        return this.#waiters.park({ client, rid, reply, timer: undefined }, timeout, () => ({ value: false }));
      }
      default:
        return reply(failure('ERR_FORKWISE_BAD_MESSAGE', `unknown event method ${method}`));
    }
  }
}

/**
 * A Condition's waiters (its lock is an object of its own): a waiter takes a ticket while it
 * still holds the lock (`prepare`), so a notify between its release and its wait is not
 * lost; `notify` marks the oldest tickets; `wait` answers true once its ticket is marked.
 */
export class HubCondition implements HubObject {
  #nextTicket = 1;
  readonly #waiting: number[] = []; // tickets not yet notified, oldest first
  readonly #notified = new Set<number>();
  readonly #parked = new Map<number, Waiter>();
  readonly #waiters: Waiters;

  constructor(registry: WaitRegistry) {
    this.#waiters = new Waiters(registry);
  }

  call(client: Client, rid: number, method: string, args: Record<string, unknown>, reply: Reply): void {
    const ticket = args.ticket as number;
    switch (method) {
      case 'prepare': {
        const mine = this.#nextTicket++;
        this.#waiting.push(mine);
        return reply({ value: mine });
      }
      case 'wait': {
        if (this.#notified.delete(ticket)) return reply({ value: true });
        if (!this.#waiting.includes(ticket)) return reply({ value: false });
        const timeout = (args.timeout as number | undefined) ?? FOREVER;
        if (timeout === 0) return reply({ value: false });
        // Timed out, cancelled or its thread gone: no longer a waiter to notify.
        const onDrop = (): void => {
          this.#parked.delete(ticket);
          const index = this.#waiting.indexOf(ticket);
          if (index >= 0) this.#waiting.splice(index, 1);
        };
        const waiter: Waiter = { client, rid, reply, timer: undefined, onDrop };
        this.#parked.set(ticket, waiter);
        return this.#waiters.park(waiter, timeout, () => ({ value: false }));
      }
      case 'giveUp': {
        // A waiter leaving (timed out, aborted): true if it was notified meanwhile.
        const index = this.#waiting.indexOf(ticket);
        if (index >= 0) this.#waiting.splice(index, 1);
        return reply({ value: this.#notified.delete(ticket) });
      }
      case 'notify': {
        for (let n = args.n as number; n > 0 && this.#waiting.length > 0; n--) {
          const woken = this.#waiting.shift()!;
          const waiter = this.#parked.get(woken);
          this.#parked.delete(woken);
          if (waiter) waiter.onDrop = undefined;
          if (waiter && this.#waiters.drop(waiter)) waiter.reply({ value: true });
          else this.#notified.add(woken);
        }
        return reply({});
      }
      default:
        return reply(failure('ERR_FORKWISE_BAD_MESSAGE', `unknown condition method ${method}`));
    }
  }
}

export class HubBarrier implements HubObject {
  #arrived: Waiter[] = [];
  #broken = false;
  readonly #waiters: Waiters;

  constructor(
    registry: WaitRegistry,
    private readonly parties: number,
  ) {
    this.#waiters = new Waiters(registry);
  }

  call(client: Client, rid: number, method: string, args: Record<string, unknown>, reply: Reply): void {
    switch (method) {
      case 'wait': {
        if (this.#broken) return reply(broken());
        const index = this.#arrived.length;
        if (index + 1 === this.parties) {
          const all = this.#arrived;
          this.#arrived = [];
          for (const [i, w] of all.entries()) {
            w.onDrop = undefined;
            if (this.#waiters.drop(w)) w.reply({ value: i });
          }
          return reply({ value: index });
        }
        const timeout = (args.timeout as number | undefined) ?? FOREVER;
        const waiter: Waiter = { client, rid, reply, timer: undefined };
        this.#arrived.push(waiter);
        // A timeout (or a cancelled wait) breaks the barrier for everyone, as in CPython.
        waiter.onDrop = () => this.#break(waiter);
        return this.#waiters.park(waiter, timeout, () => broken());
      }
      case 'reset':
        this.#break(undefined);
        this.#broken = false;
        return reply({});
      case 'abort':
        this.#break(undefined);
        return reply({});
      case 'state':
        return reply({ value: [this.parties, this.#arrived.length, this.#broken] });
      default:
        return reply(failure('ERR_FORKWISE_BAD_MESSAGE', `unknown barrier method ${method}`));
    }
  }

  #break(leaving: Waiter | undefined): void {
    this.#broken = true;
    const others = this.#arrived.filter((w) => w !== leaving);
    this.#arrived = [];
    for (const w of others) {
      w.onDrop = undefined;
      if (this.#waiters.drop(w)) w.reply(broken());
    }
  }
}

function broken(): ReturnType<typeof failure> {
  return failure('ERR_BARRIER_BROKEN', 'The barrier is broken');
}
