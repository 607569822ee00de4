/**
 * `Manager`: a server process holding shared objects, reached through proxies, as CPython's
 * `multiprocessing.Manager()` / `BaseManager`.
 *
 * Design (measured on the 2-core development machine, see bench/manager.mjs):
 * - The server (manager_server.ts) is a Node process started like any `Process` (its code a
 *   TaskRef, so fork, forkserver and spawn all work), one event loop serving every client.
 *   It answers on a Unix socket (when no address is given, a private one: a random name in
 *   Linux's abstract namespace, so no socket file exists to leave behind) or TCP. On a
 *   Unix socket, each connection then asks for a shared-memory Pipe (manager_pipes.ts) and
 *   sends its requests there, where neither side sleeps between calls that follow each
 *   other: a dict get or set cost 6-9 µs from one client, against 90-110 µs over the
 *   socket (two wake-ups of idle vCPUs) and 66-75 µs with CPython's manager (README).
 * - dict, list, Namespace and Value live in the server as `Map`s and arrays of the bytes
 *   clients serialized; the server never deserializes a value (manager_wire.ts). Keys are
 *   primitives: string, number, bigint, boolean, null, undefined (a `Map` keyed by value:
 *   `1` and `'1'` are two keys, as in a `Map`).
 * - Lock, RLock, Semaphore, BoundedSemaphore, Event, Condition, Barrier, Queue and
 *   JoinableQueue are forkwise shared-memory objects that the server creates and keeps
 *   alive until it shuts down; proxies wait on them in their own process, so no request
 *   ever blocks the server's loop. The limit: they work on the manager's host only (a client
 *   on another machine over TCP gets dicts, lists, namespaces and values).
 * - Promise forms use one pipelined connection per thread; `…Sync` forms another, a
 *   blocking descriptor (manager_proxy.ts).
 * - Authentication: an HMAC challenge both ways with the authkey (random when not given),
 *   which travels in the proxies' handles to children and threads.
 * - Objects live until the manager shuts down (no reference counting of proxies).
 * - The server ends with `shutdown()` or SIGTERM (removing its socket file), and with its
 *   parent, as every forkwise child (SIGKILL; or its control Pipe reaching end of file).
 *   A private socket leaves no file in any case; a path given by the caller stays behind
 *   only when the parent was killed, as in CPython.
 */
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { Pipe, type Connection } from '../compat/select';
import { fallbackWhere, useFallback } from '../compat/platform';
import type { JoinableQueue, Queue } from '../messaging/queue';
import { deserialize, serialize } from '../messaging/serializer';
import { ForkwiseError, invalidArgType } from '../posix/errors';
import { validateOptions } from '../posix/validate';
import { Process } from './process';
import {
  BarrierProxy, clientFor, closeClient, ConditionProxy, DictProxy, entriesOf, EventProxy, ListProxy, LockProxy, NamespaceProxy,
  SemaphoreProxy, ValueProxy, wrapShared, type ManagerRef,
} from './manager_proxy';
import type { ManagerAddress } from './manager_server';
import { encodeKey, Op, validateAuthkey, validateKey, type Key } from './manager_wire';
import { validateStartMethod, type StartMethod } from './start_method';

export type { ManagerAddress } from './manager_server';

const serverModule = join(__dirname, 'manager_server.js');

export interface ManagerOptions {
  /** How the server process starts (default: `getStartMethod()`). */
  startMethod?: StartMethod;
  /**
   * A Unix socket path, or `{ host, port }` for TCP (`port: 0`: any free port). Default: a
   * private Unix socket in the abstract namespace (`address` starts with a NUL byte).
   */
  address?: ManagerAddress;
  /** The key clients must prove they hold (default: 32 random bytes). */
  authkey?: string | Uint8Array;
  /**
   * How requests travel once a connection is authenticated. `'pipe'` (the default on a Unix
   * socket): each connection asks the server for a shared-memory Pipe and sends them there,
   * where both sides spin briefly before they sleep: ten times faster than the socket (README,
   * "Managers"); a connection that cannot have one goes on over the socket. `'socket'`:
   * over the socket, as always over TCP.
   */
  transport?: 'socket' | 'pipe';
}

// Whether connections to `address` use a Pipe: by default on a Unix socket; over TCP never
// ('pipe' asked for with a TCP address is refused where the address is chosen).
function validateTransport(value: unknown, name: string, address: ManagerAddress | undefined): boolean {
  if (value !== undefined && value !== 'socket' && value !== 'pipe') throw invalidArgType(name, "'socket' or 'pipe'", value);
  // The Pipe is shared memory: on the platform fallback, every call goes over the socket.
  if (useFallback) {
    if (value === 'pipe') throw new ForkwiseError('ERR_FORKWISE_UNSUPPORTED_PLATFORM', `forkwise manager: transport 'pipe' is not available ${fallbackWhere()}`);
    return false;
  }
  if (value === 'pipe' && address !== undefined && typeof address !== 'string') {
    throw invalidArgType(name, "'socket' with a TCP address ('pipe' needs a Unix socket)", value);
  }
  return value !== 'socket' && (address === undefined || typeof address === 'string');
}

function validateAddress(value: unknown, name = 'address'): ManagerAddress {
  if (typeof value === 'string') {
    if (value.length === 0 || Buffer.byteLength(value) > 107) {
      throw invalidArgType(name, 'a Unix socket path of 1 to 107 bytes or { host, port }', value);
    }
    return value;
  }
  if (value !== null && typeof value === 'object') {
    const { host = '127.0.0.1', port } = value as { host?: unknown; port?: unknown };
    if (typeof host !== 'string' || host === '') throw invalidArgType(`${name}.host`, 'a non-empty string', host);
    if (typeof port !== 'number' || !Number.isInteger(port) || port < 0 || port > 65535) {
      throw invalidArgType(`${name}.port`, 'an integer from 0 to 65535', port);
    }
    return { host, port };
  }
  throw invalidArgType(name, 'a Unix socket path or { host, port }', value);
}

/**
 * A manager: a server process holding dicts, lists, namespaces, values, locks and queues
 * shared by every process and thread that holds one of its proxies.
 *
 * @example
 * import { Manager, Process } from 'forkwise/multiprocessing';
 * await using manager = await Manager.start();
 * const d = await manager.dict();
 * const p = new Process({ target: async (d) => d.set('from', 'child'), args: [d] });
 * p.start();
 * await p.join();
 * await d.get('from'); // 'child'
 */
export class Manager {
  /** Where the server listens (with the real port when `port: 0` was asked). */
  readonly address: ManagerAddress;
  /** The key proxies prove they hold. */
  readonly authkey: Buffer;
  readonly #ref: ManagerRef;
  readonly #server: Process | undefined;
  readonly #control: Connection | undefined;
  #shutdown: Promise<void> | undefined;

  private constructor(address: ManagerAddress, authkey: Buffer, pipe: boolean, server?: Process, control?: Connection) {
    this.address = address;
    this.authkey = authkey;
    this.#ref = pipe ? { address, authkey: authkey.toString('hex'), pipe } : { address, authkey: authkey.toString('hex') };
    this.#server = server;
    this.#control = control;
  }

  /** Starts a manager's server process; resolves once it listens. */
  static async start(options: ManagerOptions = {}): Promise<Manager> {
    validateOptions(options);
    const startMethod = options.startMethod === undefined ? undefined : validateStartMethod(options.startMethod, 'options.startMethod');
    const authkey = options.authkey === undefined ? randomBytes(32) : validateAuthkey(options.authkey, 'options.authkey');
    let address = options.address === undefined ? undefined : validateAddress(options.address, 'options.address');
    const pipe = validateTransport(options.transport, 'options.transport', address);
    // A private socket: a random name in Linux's abstract namespace, which leaves no file
    // behind whatever way the server ends (a named pipe on Windows).
    const name = `forkwise-manager-${process.pid}-${randomBytes(12).toString('hex')}`;
    address ??= process.platform === 'win32' ? `\\\\.\\pipe\\${name}` : `\0${name}`;
    const [ours, theirs] = Pipe();
    const server = new Process({
      target: { module: serverModule, name: 'serveManager' },
      args: [theirs, { address, authkey }],
      daemon: true,
      name: 'Manager',
      ...(startMethod === undefined ? {} : { startMethod }),
    });
    type Reply = { address?: ManagerAddress; error?: { message: string; code?: string; errno?: number; syscall?: string } };
    let reply: Reply;
    try {
      // Awaited: a forked server is made on the loop's next turn, and must not inherit a
      // recv() already waiting on `ours`. `theirs` stays open until the server answered;
      // the server's end, not EOF, says that it failed to start.
      await server.start();
      const ended = server.join().then((): Reply => ({
        error: { message: `forkwise manager: the server process ended before it listened (exit code ${server.exitCode})` },
      }));
      reply = await Promise.race([ours.recv() as Promise<Reply>, ended]);
    } finally {
      theirs.close();
    }
    if (reply.error || reply.address === undefined) {
      ours.close();
      await server.join(5000);
      if (server.isAlive()) server.kill();
      await server.join();
      const e = reply.error!;
      const error: Error & { code?: string; errno?: number; syscall?: string } = new Error(e.message);
      if (e.code !== undefined) error.code = e.code;
      if (e.errno !== undefined) error.errno = e.errno;
      if (e.syscall !== undefined) error.syscall = e.syscall;
      throw error;
    }
    return new Manager(reply.address, authkey, pipe, server, ours);
  }

  /**
   * Joins a running manager at `address` (a Unix socket path or `{ host, port }`) with its
   * authkey, as CPython's `BaseManager.connect()`. Rejects with `ERR_FORKWISE_MANAGER_AUTH`
   * when the manager refuses the key.
   */
  static async connect(address: ManagerAddress, authkey: string | Uint8Array, options: { transport?: 'socket' | 'pipe' } = {}): Promise<Manager> {
    const checked = validateAddress(address);
    const key = validateAuthkey(authkey);
    validateOptions(options);
    const pipe = validateTransport(options.transport, 'options.transport', checked);
    const manager = new Manager(checked, key, pipe);
    // Proves the address and the key now rather than at the first call.
    await clientFor(manager.#ref).call(Op.Size, 0, []).catch((error: { code?: string }) => {
      if (error.code !== 'ERR_FORKWISE_MANAGER_NO_OBJECT') throw error;
    });
    return manager;
  }

  /** The server process's pid (undefined for a manager joined with `connect`). */
  get pid(): number | undefined {
    return this.#server?.pid;
  }

  async #create(type: string, blobs: Buffer[]): Promise<Buffer[]> {
    if (this.#shutdown) throw new ForkwiseError('ERR_FORKWISE_MANAGER_SHUT_DOWN', 'forkwise manager: this manager was shut down');
    return clientFor(this.#ref).call(Op.Create, 0, [Buffer.from(type), ...blobs]);
  }

  async #shared(type: string, options: Record<string, unknown> = {}): Promise<unknown> {
    const [, handle] = await this.#create(type, [Buffer.from(JSON.stringify(options))]);
    return wrapShared(type, deserialize(handle!));
  }

  /** A dict, filled from an object, a Map or an iterable of [key, value] pairs. */
  async dict<K extends Key = Key, V = unknown>(init?: object): Promise<DictProxy<K, V>> {
    const blobs: Buffer[] = [];
    if (init !== undefined) {
      for (const [k, v] of entriesOf(init, 'init')) blobs.push(encodeKey(validateKey(k, 'init key')), serialize(v, `init[${JSON.stringify(String(k))}]`));
    }
    const [id] = await this.#create('dict', blobs);
    return new DictProxy<K, V>(id!.readUInt32LE(0), this.#ref);
  }

  /** A list, filled from an iterable. */
  async list<T = unknown>(init?: Iterable<T>): Promise<ListProxy<T>> {
    if (init !== undefined && (init === null || typeof (init as Iterable<T>)[Symbol.iterator] !== 'function')) {
      throw invalidArgType('init', 'an iterable', init);
    }
    const items = init === undefined ? [] : [...init];
    const [id] = await this.#create('list', items.map((item, i) => serialize(item, `init[${i}]`)));
    return new ListProxy<T>(id!.readUInt32LE(0), this.#ref);
  }

  /** A namespace, with the attributes of `init`. */
  async Namespace(init?: Record<string, unknown>): Promise<NamespaceProxy> {
    if (init !== undefined && (init === null || typeof init !== 'object')) throw invalidArgType('init', 'an object', init);
    const blobs: Buffer[] = [];
    for (const [k, v] of Object.entries(init ?? {})) blobs.push(encodeKey(k), serialize(v, `init[${JSON.stringify(k)}]`));
    const [id] = await this.#create('Namespace', blobs);
    return new NamespaceProxy(id!.readUInt32LE(0), this.#ref);
  }

  /**
   * A value: `Value(initial)`, or CPython's `Value(typecode, initial)` (the typecode is
   * accepted and not enforced: any structured-cloneable value fits).
   */
  async Value<T = unknown>(...args: [initial?: T] | [typecode: string, initial: T]): Promise<ValueProxy<T>> {
    const initial = args.length >= 2 ? args[1] : args[0];
    const [id] = await this.#create('Value', [serialize(initial, 'initial')]);
    return new ValueProxy<T>(id!.readUInt32LE(0), this.#ref);
  }

  Lock(): Promise<LockProxy> {
    return this.#shared('Lock') as Promise<LockProxy>;
  }

  RLock(): Promise<LockProxy> {
    return this.#shared('RLock') as Promise<LockProxy>;
  }

  /** A semaphore starting at `value` (default 1, as CPython's manager). */
  Semaphore(value = 1): Promise<SemaphoreProxy> {
    return this.#shared('Semaphore', { value }) as Promise<SemaphoreProxy>;
  }

  BoundedSemaphore(value = 1): Promise<SemaphoreProxy> {
    return this.#shared('BoundedSemaphore', { value }) as Promise<SemaphoreProxy>;
  }

  Event(): Promise<EventProxy> {
    return this.#shared('Event') as Promise<EventProxy>;
  }

  Condition(): Promise<ConditionProxy> {
    return this.#shared('Condition') as Promise<ConditionProxy>;
  }

  Barrier(parties: number, options: { timeout?: number | null } = {}): Promise<BarrierProxy> {
    return this.#shared('Barrier', { parties, timeout: options?.timeout ?? undefined }) as Promise<BarrierProxy>;
  }

  /** A forkwise `Queue` kept alive by the manager (it already crosses by handle). */
  Queue<T = unknown>(options: { maxsize?: number } = {}): Promise<Queue<T>> {
    return this.#shared('Queue', { maxsize: options?.maxsize }) as Promise<Queue<T>>;
  }

  JoinableQueue<T = unknown>(options: { maxsize?: number } = {}): Promise<JoinableQueue<T>> {
    return this.#shared('JoinableQueue', { maxsize: options?.maxsize }) as Promise<JoinableQueue<T>>;
  }

  /**
   * Stops the server (a manager joined with `connect` only closes this thread's
   * connections): its process is reaped and its socket file removed. Idempotent.
   */
  shutdown(): Promise<void> {
    this.#shutdown ??= this.#stop();
    return this.#shutdown;
  }

  async #stop(): Promise<void> {
    closeClient(this.address);
    const server = this.#server;
    const control = this.#control;
    if (!server || !control) return;
    // Bounded: a server that does not answer is killed below rather than waited for.
    let timer: NodeJS.Timeout | undefined;
    try {
      control.send('shutdown');
      await Promise.race([control.recv(), new Promise((resolve) => (timer = setTimeout(resolve, 5000)))]);
    } catch {
      // the server is gone already
    } finally {
      clearTimeout(timer);
    }
    control.close();
    await server.join(5000);
    if (server.isAlive()) {
      server.kill();
      await server.join();
    }
  }

  [Symbol.asyncDispose](): Promise<void> {
    return this.shutdown();
  }
}
