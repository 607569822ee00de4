/**
 * The client side of a manager: one connection per manager per thread for the Promise forms
 * (a `net.Socket`; requests are pipelined and answered in order), one more for the `…Sync`
 * forms (a blocking socket descriptor from the raw layer's `connect(2)`, read with
 * `fs.readSync`, so the thread really sleeps in the kernel), and the proxies over them.
 *
 * A proxy's handle names its manager (address and authkey) and its object, so a proxy
 * crosses by handle to forked and spawned children and to threads, or inside a value stored
 * in the manager itself, and connects on first use wherever it lands. A forked child never
 * uses the connections it inherited (they are the parent's conversations): it closes its
 * copies and opens its own.
 *
 * The Promise forms and the `…Sync` forms of one thread use different connections: a
 * request not yet awaited may be overtaken by a `…Sync` one (await it first).
 *
 * With `transport: 'pipe'` (a Unix socket: the manager is on this host) each connection asks
 * for a shared-memory Pipe once authenticated, and its requests and replies go there
 * (manager_server.ts); the socket stays open as the connection's lifetime.
 *
 * The synchronization objects and queues are forkwise shared-memory objects created by the
 * server; their proxies call them directly (same host only).
 */
import { closeSync, readSync, writeSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { isIP } from 'node:net';
import { inspect } from 'node:util';
import { Connection } from '../messaging/connection';
import { JoinableQueue, Queue } from '../messaging/queue';
import { deserialize, registerByHandle, serialize } from '../messaging/serializer';
import { afterForkInChild } from '../posix/child';
import { ForkwiseError, invalidArgType } from '../posix/errors';
import { native } from '../posix/native';
import { theService } from '../compat/service';
import { useFallback } from '../compat/platform';
import type { Barrier } from '../sync/barrier';
import type { Condition } from '../sync/condition';
import type { Event } from '../sync/event';
import type { Mutex, RLock, Semaphore } from '../sync/locks';
import type { AcquireOptions, AsyncWaitOptions } from '../sync/waiting';
import type { ManagerAddress } from './manager_server';
import {
  authError, clientAnswer, clientCheck, decodeKey, encodeKey, FrameReader, MAX_FRAME, newNonce, Op, readBlobs, requestFrame, STATUS_OK,
  validateKey, wireErrorToError, type Key,
} from './manager_wire';

/** Where a manager is and how to prove we may talk to it; part of every proxy's handle. */
export interface ManagerRef {
  address: ManagerAddress;
  /** The authkey, hex. */
  authkey: string;
  /** Same host only: requests go on a shared-memory Pipe (Manager.start's `transport`). */
  pipe?: boolean;
}

// A thread has one client per manager address and transport.
function clientKey(address: ManagerAddress, pipe: boolean): string {
  const where = typeof address === 'string' ? `unix:${address}` : `tcp:${address.host}:${address.port}`;
  return pipe ? `pipe:${where}` : where;
}

function goneError(detail: string): Error {
  return new ForkwiseError('ERR_FORKWISE_MANAGER_GONE', `forkwise manager: the connection to the manager ended (${detail})`);
}

// ---------------------------------------------------------------------------------------
// Connections

interface Waiter {
  resolve(blobs: Buffer[]): void;
  reject(error: Error): void;
}

/** The Promise-form connection of this thread to one manager. */
class AsyncChannel {
  readonly #socket: Socket;
  readonly #waiting: Waiter[] = [];
  // Requests waiting for the handshake to finish (undefined once it has).
  #queued: Buffer[] | undefined = [];
  readonly #reader = new FrameReader();
  #closed: Error | undefined;
  #onFrame: (body: Buffer) => void;
  #pipe: Connection | undefined;

  constructor(ref: ManagerRef) {
    const authkey = Buffer.from(ref.authkey, 'hex');
    const address = ref.address;
    this.#socket = typeof address === 'string' ? connect(address) : connect({ host: address.host, port: address.port, noDelay: true });
    const clientNonce = newNonce();
    let step = 0;
    // Handshake frames first, then replies.
    this.#onFrame = (body) => {
      if (step === 0) {
        step = 1;
        const [serverNonce] = readBlobs(body, 0);
        const answer = clientAnswer(authkey, serverNonce ?? Buffer.alloc(0), clientNonce);
        this.#socket.write(requestFrameRaw(answer));
        return;
      }
      if (step === 1) {
        const [proof] = readBlobs(body, 0);
        if (!proof || !clientCheck(authkey, clientNonce, proof)) throw authError();
        step = 2;
        if (usePipe(ref)) {
          this.#socket.write(ATTACH);
          return;
        }
        this.#flush();
        return;
      }
      if (step === 2 && usePipe(ref)) {
        step = 3;
        this.#pipe = attachedPipe(body);
        this.#flush();
        return;
      }
      if (this.#waiting.length === 0) throw goneError('a reply that nobody asked for');
      this.#reply(body);
    };
    this.#socket.on('data', (chunk: Buffer) => {
      try {
        this.#take(chunk);
      } catch (error) {
        this.#fail(error as Error);
      }
    });
    this.#socket.on('error', (error) => this.#fail(error));
    this.#socket.on('close', () => this.#fail(step < 2 ? authError() : goneError('closed')));
  }

  get closed(): boolean {
    return this.#closed !== undefined;
  }

  // Requests made during the handshake go now, in order (over the socket, in one write).
  #flush(): void {
    const queued = this.#queued!;
    this.#queued = undefined;
    if (queued.length === 0) return;
    if (this.#pipe) for (const request of queued) this.#send(request);
    else this.#socket.write(queued.length === 1 ? queued[0]! : Buffer.concat(queued));
  }

  #send(request: Buffer): void {
    const pipe = this.#pipe;
    if (!pipe) {
      this.#socket.write(request);
      return;
    }
    try {
      pipe.sendBytes(request, 4);
    } catch (error) {
      this.#fail(pipeError(error));
      return;
    }
    pipe.recvBytes().then(
      (body) => this.#reply(body),
      (error: unknown) => this.#fail(pipeError(error)),
    );
  }

  #reply(body: Buffer): void {
    const waiter = this.#waiting.shift();
    if (!waiter) return;
    if (this.#waiting.length === 0) this.#socket.unref();
    try {
      waiter.resolve(replyBlobs(body));
    } catch (error) {
      waiter.reject(error as Error);
    }
  }

  #take(chunk: Buffer): void {
    this.#reader.push(chunk);
    for (;;) {
      const body = this.#reader.next(MAX_FRAME);
      if (body === undefined) return;
      if (body === null) throw goneError('an oversized reply');
      this.#onFrame(body);
    }
  }

  #fail(error: Error): void {
    if (this.#closed) return;
    this.#closed = error;
    for (const waiter of this.#waiting.splice(0)) waiter.reject(error);
    this.#socket.destroy();
    this.#pipe?.close();
  }

  /** Sends a request; resolves with its reply's blobs. */
  call(request: Buffer): Promise<Buffer[]> {
    if (this.#closed) return Promise.reject(this.#closed);
    return new Promise<Buffer[]>((resolve, reject) => {
      // Referenced while a call is under way: the process waits for its answer, and only
      // for that.
      if (this.#waiting.length === 0) this.#socket.ref();
      this.#waiting.push({ resolve, reject });
      if (this.#queued) this.#queued.push(request);
      else this.#send(request);
    });
  }

  /** Closes this thread's connection (a forked child's copy: the parent's stays open). */
  close(): void {
    this.#fail(goneError('closed by this process'));
  }
}

// The Pipe a server handed over (Op.Attach's reply), or undefined when it could not make
// one (no room in /dev/shm, say) or this process cannot map it (a socket shared between
// containers that do not share /dev/shm): the connection then goes on over the socket.
function attachedPipe(body: Buffer): Connection | undefined {
  if (body[0] !== STATUS_OK) return undefined;
  let end: unknown;
  try {
    end = deserialize(readBlobs(body, 1)[0] ?? Buffer.alloc(0));
  } catch {
    return undefined;
  }
  if (!(end instanceof Connection)) throw goneError('no pipe in the reply');
  return end;
}

// The Pipe's end of file is the manager gone, as the socket's.
function pipeError(error: unknown): Error {
  return (error as { code?: string }).code === 'ERR_EOF' ? goneError('end of file') : (error as Error);
}

// A reply body (status, blobs) as the blobs, or its error thrown.
function replyBlobs(body: Buffer): Buffer[] {
  if (body[0] === STATUS_OK) return readBlobs(body, 1);
  throw wireErrorToError(readBlobs(body, 1)[0] ?? Buffer.alloc(0));
}

const ATTACH = requestFrame(Op.Attach, 0, []);

function usePipe(ref: ManagerRef): boolean {
  return ref.pipe === true && typeof ref.address === 'string';
}

function requestFrameRaw(blob: Buffer): Buffer {
  const out = Buffer.allocUnsafe(8 + blob.length);
  out.writeUInt32LE(4 + blob.length, 0);
  out.writeUInt32LE(blob.length, 4);
  blob.copy(out, 8);
  return out;
}

/** The `…Sync`-form connection: a blocking descriptor, read and written synchronously. */
// A blocking stream of length-prefixed frames to the server: the socket's descriptor read and
// written with blocking calls, or on the platform fallback the service thread's socket.
interface FrameStream {
  write(bytes: Buffer): void;
  readFrame(): Buffer;
  close(): void;
}

class DescriptorStream implements FrameStream {
  readonly #fd: number;
  #buffer = Buffer.allocUnsafe(64 * 1024);
  #start = 0;
  #end = 0;

  constructor(address: ManagerAddress) {
    this.#fd = typeof address === 'string' ? native.connectUnix(Buffer.from(address)) : native.connectInet(address.host, address.port);
  }

  write(bytes: Buffer): void {
    let at = 0;
    while (at < bytes.length) at += writeSync(this.#fd, bytes, at, bytes.length - at);
  }

  // Reads until `count` bytes are buffered after #start.
  #fill(count: number): void {
    if (this.#buffer.length - this.#start < count) {
      const bigger = Buffer.allocUnsafe(Math.max(count, this.#buffer.length));
      this.#buffer.copy(bigger, 0, this.#start, this.#end);
      this.#end -= this.#start;
      this.#start = 0;
      this.#buffer = bigger;
    }
    while (this.#end - this.#start < count) {
      const n = readSync(this.#fd, this.#buffer, this.#end, this.#buffer.length - this.#end, null);
      if (n === 0) throw goneError('end of file');
      this.#end += n;
    }
  }

  readFrame(): Buffer {
    this.#fill(4);
    const size = this.#buffer.readUInt32LE(this.#start);
    if (size > MAX_FRAME) throw goneError('an oversized reply');
    this.#fill(4 + size);
    // A copy: the buffer is reused by the next read.
    const body = Buffer.from(this.#buffer.subarray(this.#start + 4, this.#start + 4 + size));
    this.#start += 4 + size;
    if (this.#start === this.#end) this.#start = this.#end = 0;
    return body;
  }

  close(): void {
    closeSync(this.#fd);
  }
}

class ServiceStream implements FrameStream {
  readonly #id: number;
  #unread: Buffer | undefined;

  constructor(address: ManagerAddress) {
    this.#id = theService().callSync({ op: 'streamOpen', address }) as number;
  }

  write(bytes: Buffer): void {
    // Written with the read that follows every write here, in one round trip.
    this.#unread = this.#unread ? Buffer.concat([this.#unread, bytes]) : bytes;
  }

  readFrame(): Buffer {
    const bytes = this.#unread;
    this.#unread = undefined;
    try {
      const frame = theService().callSync({ op: 'streamCall', id: this.#id, ...(bytes ? { bytes } : {}) }) as Uint8Array;
      return Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength);
    } catch (error) {
      if ((error as { code?: string }).code === 'ECONNRESET') throw goneError('end of file');
      throw error;
    }
  }

  close(): void {
    theService().callSync({ op: 'streamClose', id: this.#id });
  }
}

class SyncChannel {
  readonly #stream: FrameStream;
  #pipe: Connection | undefined;
  closed = false;

  constructor(ref: ManagerRef) {
    let address = ref.address;
    if (typeof address !== 'string') {
      const host = address.host === 'localhost' ? '127.0.0.1' : address.host;
      if (isIP(host) === 0) {
        throw new ForkwiseError(
          'ERR_FORKWISE_MANAGER_SYNC_HOST',
          `forkwise manager: the …Sync forms need a numeric host address (got ${JSON.stringify(address.host)}); use the Promise forms`,
        );
      }
      address = { host, port: address.port };
    }
    this.#stream = useFallback ? new ServiceStream(address) : new DescriptorStream(address);
    try {
      const authkey = Buffer.from(ref.authkey, 'hex');
      const [serverNonce] = readBlobs(this.#stream.readFrame(), 0);
      const clientNonce = newNonce();
      this.#stream.write(requestFrameRaw(clientAnswer(authkey, serverNonce ?? Buffer.alloc(0), clientNonce)));
      const [proof] = readBlobs(this.#stream.readFrame(), 0);
      if (!proof || !clientCheck(authkey, clientNonce, proof)) throw authError();
      if (usePipe(ref)) {
        this.#stream.write(ATTACH);
        this.#pipe = attachedPipe(this.#stream.readFrame());
      }
    } catch (error) {
      this.close();
      throw (error as { code?: string }).code === 'ERR_FORKWISE_MANAGER_GONE' ? authError() : error;
    }
  }

  call(request: Buffer): Buffer[] {
    if (this.closed) throw goneError('closed');
    try {
      const pipe = this.#pipe;
      if (pipe) {
        pipe.sendBytes(request, 4);
        return replyBlobs(pipe.recvBytesSync());
      }
      this.#stream.write(request);
      return replyBlobs(this.#stream.readFrame());
    } catch (error) {
      const code = (error as { code?: string }).code;
      if (code === 'ERR_EOF') {
        this.close();
        throw pipeError(error);
      }
      if (code === 'EPIPE' || code === 'ECONNRESET') {
        this.close();
        throw goneError(code);
      }
      if (code === 'ERR_FORKWISE_MANAGER_GONE') this.close();
      throw error;
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.#pipe?.close();
    this.#stream.close();
  }
}

/** This thread's connections to one manager. */
class Client {
  #async: AsyncChannel | undefined;
  #sync: SyncChannel | undefined;
  constructor(readonly ref: ManagerRef) {}

  call(op: Op, id: number, blobs: Buffer[]): Promise<Buffer[]> {
    if (!this.#async || this.#async.closed) this.#async = new AsyncChannel(this.ref);
    return this.#async.call(requestFrame(op, id, blobs));
  }

  callSync(op: Op, id: number, blobs: Buffer[]): Buffer[] {
    if (!this.#sync || this.#sync.closed) this.#sync = new SyncChannel(this.ref);
    return this.#sync.call(requestFrame(op, id, blobs));
  }

  close(): void {
    this.#async?.close();
    this.#sync?.close();
    this.#async = this.#sync = undefined;
  }
}

const clients = new Map<string, Client>();

// A thread's descriptors outlive it unless closed: close this thread's connections when it
// (or the process) exits.
let exitHooked = false;
function closeAtExit(): void {
  if (exitHooked) return;
  exitHooked = true;
  process.on('exit', () => {
    for (const client of clients.values()) client.close();
    clients.clear();
  });
}

afterForkInChild((rehearsal) => {
  if (rehearsal) return;
  for (const client of clients.values()) client.close();
  clients.clear();
});

/** This thread's client of the manager `ref` names. */
export function clientFor(ref: ManagerRef): Client {
  const key = clientKey(ref.address, usePipe(ref));
  let client = clients.get(key);
  if (!client || client.ref.authkey !== ref.authkey) {
    client?.close();
    client = new Client(ref);
    clients.set(key, client);
    closeAtExit();
  }
  return client;
}

/** Closes this thread's connections to the manager at `address`. */
export function closeClient(address: ManagerAddress): void {
  for (const pipe of [true, false]) {
    const key = clientKey(address, pipe);
    clients.get(key)?.close();
    clients.delete(key);
  }
}

// ---------------------------------------------------------------------------------------
// Proxies of server-held state

export interface ProxyHandle {
  kind: 'ManagerDict' | 'ManagerList' | 'ManagerNamespace' | 'ManagerValue';
  id: number;
  manager: ManagerRef;
}

const NO_VALUE = Symbol('no value');

function value(blobs: Buffer[]): unknown {
  return blobs.length === 0 ? NO_VALUE : deserialize(blobs[0]!);
}

function count(blobs: Buffer[]): number {
  return blobs[0]!.readUInt32LE(0);
}

function pairBlobs(entries: Iterable<readonly [unknown, unknown]>, path: string): Buffer[] {
  const blobs: Buffer[] = [];
  for (const [k, v] of entries) blobs.push(encodeKey(validateKey(k)), serialize(v, `${path}[${JSON.stringify(String(k))}]`));
  return blobs;
}

/** The entries of an object, a Map or an iterable of pairs (dict's `update`). */
export function entriesOf(other: unknown, name: string): Iterable<readonly [unknown, unknown]> {
  if (other instanceof Map) return other;
  if (other !== null && typeof other === 'object') {
    if (Symbol.iterator in other) return other as Iterable<readonly [unknown, unknown]>;
    return Object.entries(other);
  }
  throw invalidArgType(name, 'an object, a Map or an iterable of [key, value] pairs', other);
}

abstract class ServerProxy {
  /** @internal */
  readonly id: number;
  /** @internal */
  readonly manager: ManagerRef;
  #client: Client | undefined;
  #pid = 0;

  constructor(id: number, manager: ManagerRef) {
    this.id = id;
    this.manager = manager;
  }

  protected abstract readonly kind: ProxyHandle['kind'];

  get handle(): ProxyHandle {
    return { kind: this.kind, id: this.id, manager: this.manager };
  }

  // Printed without the manager's authkey.
  [inspect.custom](): string {
    return `${this.constructor.name} { id: ${this.id} }`;
  }

  #c(): Client {
    // A forked child opens its own connections.
    if (!this.#client || this.#pid !== process.pid) {
      this.#client = clientFor(this.manager);
      this.#pid = process.pid;
    }
    return this.#client;
  }

  protected call(op: Op, blobs: Buffer[] = []): Promise<Buffer[]> {
    return this.#c().call(op, this.id, blobs);
  }

  protected callSync(op: Op, blobs: Buffer[] = []): Buffer[] {
    return this.#c().callSync(op, this.id, blobs);
  }
}

/**
 * A dict held by a manager: a `Map`'s methods, each a Promise, with `…Sync` twins that
 * block. Keys are primitives (string, number, bigint, boolean, null, undefined); values are
 * anything structured clone carries, forkwise objects and proxies by handle.
 *
 * @example
 * const d = await manager.dict({ a: 1 });
 * await d.set('b', 2);
 * await d.get('b'); // 2
 */
export class DictProxy<K extends Key = Key, V = unknown> extends ServerProxy {
  protected readonly kind = 'ManagerDict' as const;

  /** The value at `key`, or `fallback` (undefined) when there is none. */
  async get(key: K, fallback?: V): Promise<V | undefined> {
    const v = value(await this.call(Op.Get, [encodeKey(validateKey(key))]));
    return v === NO_VALUE ? fallback : (v as V);
  }
  getSync(key: K, fallback?: V): V | undefined {
    const v = value(this.callSync(Op.Get, [encodeKey(validateKey(key))]));
    return v === NO_VALUE ? fallback : (v as V);
  }
  async set(key: K, v: V): Promise<void> {
    await this.call(Op.Set, [encodeKey(validateKey(key)), serialize(v, 'value')]);
  }
  setSync(key: K, v: V): void {
    this.callSync(Op.Set, [encodeKey(validateKey(key)), serialize(v, 'value')]);
  }
  async has(key: K): Promise<boolean> {
    return (await this.call(Op.Has, [encodeKey(validateKey(key))]))[0]![0] === 1;
  }
  hasSync(key: K): boolean {
    return this.callSync(Op.Has, [encodeKey(validateKey(key))])[0]![0] === 1;
  }
  /** Removes `key`; true if it was there. */
  async delete(key: K): Promise<boolean> {
    return (await this.call(Op.Delete, [encodeKey(validateKey(key))]))[0]![0] === 1;
  }
  deleteSync(key: K): boolean {
    return this.callSync(Op.Delete, [encodeKey(validateKey(key))])[0]![0] === 1;
  }
  /** Removes `key` and returns its value (or `fallback`), in one step. */
  async pop(key: K, fallback?: V): Promise<V | undefined> {
    const v = value(await this.call(Op.Pop, [encodeKey(validateKey(key))]));
    return v === NO_VALUE ? fallback : (v as V);
  }
  popSync(key: K, fallback?: V): V | undefined {
    const v = value(this.callSync(Op.Pop, [encodeKey(validateKey(key))]));
    return v === NO_VALUE ? fallback : (v as V);
  }
  /** The value at `key`, after setting it to `v` if there was none (one step, as CPython's). */
  async setdefault(key: K, v: V): Promise<V> {
    return value(await this.call(Op.SetDefault, [encodeKey(validateKey(key)), serialize(v, 'value')])) as V;
  }
  setdefaultSync(key: K, v: V): V {
    return value(this.callSync(Op.SetDefault, [encodeKey(validateKey(key)), serialize(v, 'value')])) as V;
  }
  async size(): Promise<number> {
    return count(await this.call(Op.Size));
  }
  sizeSync(): number {
    return count(this.callSync(Op.Size));
  }
  async keys(): Promise<K[]> {
    return (await this.call(Op.Keys)).map(decodeKey) as K[];
  }
  keysSync(): K[] {
    return this.callSync(Op.Keys).map(decodeKey) as K[];
  }
  async values(): Promise<V[]> {
    return (await this.call(Op.Values)).map((b) => deserialize(b) as V);
  }
  valuesSync(): V[] {
    return this.callSync(Op.Values).map((b) => deserialize(b) as V);
  }
  async entries(): Promise<Array<[K, V]>> {
    return toEntries(await this.call(Op.Entries));
  }
  entriesSync(): Array<[K, V]> {
    return toEntries(this.callSync(Op.Entries));
  }
  async clear(): Promise<void> {
    await this.call(Op.Clear);
  }
  clearSync(): void {
    this.callSync(Op.Clear);
  }
  /** Sets every pair of `other` (an object, a Map, or an iterable of pairs), in one step. */
  async update(other: object): Promise<void> {
    await this.call(Op.Update, pairBlobs(entriesOf(other, 'other'), 'other'));
  }
  updateSync(other: object): void {
    this.callSync(Op.Update, pairBlobs(entriesOf(other, 'other'), 'other'));
  }
  /** A copy as a `Map`. */
  async toMap(): Promise<Map<K, V>> {
    return new Map(await this.entries());
  }
  toMapSync(): Map<K, V> {
    return new Map(this.entriesSync());
  }
  /** A copy as a plain object (keys as strings). */
  async toJSON(): Promise<Record<string, V>> {
    return toObject(await this.entries());
  }
  toJSONSync(): Record<string, V> {
    return toObject(this.entriesSync());
  }
  async *[Symbol.asyncIterator](): AsyncGenerator<[K, V]> {
    yield* await this.entries();
  }
}

function toEntries<K, V>(blobs: Buffer[]): Array<[K, V]> {
  const out: Array<[K, V]> = [];
  for (let i = 0; i + 1 < blobs.length; i += 2) out.push([decodeKey(blobs[i]!) as K, deserialize(blobs[i + 1]!) as V]);
  return out;
}

function toObject<V>(entries: Array<[unknown, V]>): Record<string, V> {
  const out: Record<string, V> = {};
  // defineProperty: a key "__proto__" is data, not the prototype.
  for (const [k, v] of entries) Object.defineProperty(out, String(k), { value: v, enumerable: true, writable: true, configurable: true });
  return out;
}

function validateIndex(index: unknown, name = 'index'): number {
  if (typeof index !== 'number' || !Number.isInteger(index)) throw invalidArgType(name, 'an integer', index);
  return index;
}

function bound(value: unknown, name: string): Buffer {
  if (value === undefined) return encodeKey(undefined);
  if (typeof value !== 'number' || Number.isNaN(value)) throw invalidArgType(name, 'of type number', value);
  return encodeKey(value);
}

function serializeAll(items: unknown[], path: string): Buffer[] {
  return items.map((item, i) => serialize(item, `${path}[${i}]`));
}

/**
 * A list held by a manager: an Array's methods, each a Promise, with `…Sync` twins.
 *
 * @example
 * const l = await manager.list([1, 2]);
 * await l.push(3);
 * await l.at(-1); // 3
 */
export class ListProxy<T = unknown> extends ServerProxy {
  protected readonly kind = 'ManagerList' as const;

  /** The item at `index` (negative counts from the end), or undefined. */
  async at(index: number): Promise<T | undefined> {
    const v = value(await this.call(Op.Get, [encodeKey(validateIndex(index))]));
    return v === NO_VALUE ? undefined : (v as T);
  }
  atSync(index: number): T | undefined {
    const v = value(this.callSync(Op.Get, [encodeKey(validateIndex(index))]));
    return v === NO_VALUE ? undefined : (v as T);
  }
  /** Replaces the item at `index` (RangeError outside the list). */
  async set(index: number, item: T): Promise<void> {
    await this.call(Op.Set, [encodeKey(validateIndex(index)), serialize(item, 'item')]);
  }
  setSync(index: number, item: T): void {
    this.callSync(Op.Set, [encodeKey(validateIndex(index)), serialize(item, 'item')]);
  }
  async length(): Promise<number> {
    return count(await this.call(Op.Size));
  }
  lengthSync(): number {
    return count(this.callSync(Op.Size));
  }
  /** Appends the items; the new length. */
  async push(...items: T[]): Promise<number> {
    return count(await this.call(Op.Push, serializeAll(items, 'items')));
  }
  pushSync(...items: T[]): number {
    return count(this.callSync(Op.Push, serializeAll(items, 'items')));
  }
  async pop(): Promise<T | undefined> {
    const v = value(await this.call(Op.PopEnd));
    return v === NO_VALUE ? undefined : (v as T);
  }
  popSync(): T | undefined {
    const v = value(this.callSync(Op.PopEnd));
    return v === NO_VALUE ? undefined : (v as T);
  }
  async shift(): Promise<T | undefined> {
    const v = value(await this.call(Op.Shift));
    return v === NO_VALUE ? undefined : (v as T);
  }
  shiftSync(): T | undefined {
    const v = value(this.callSync(Op.Shift));
    return v === NO_VALUE ? undefined : (v as T);
  }
  async unshift(...items: T[]): Promise<number> {
    return count(await this.call(Op.Unshift, serializeAll(items, 'items')));
  }
  unshiftSync(...items: T[]): number {
    return count(this.callSync(Op.Unshift, serializeAll(items, 'items')));
  }
  /** Items from `start` to `end` (exclusive), as `Array.prototype.slice`. */
  async slice(start?: number, end?: number): Promise<T[]> {
    return (await this.call(Op.Slice, [bound(start, 'start'), bound(end, 'end')])).map((b) => deserialize(b) as T);
  }
  sliceSync(start?: number, end?: number): T[] {
    return this.callSync(Op.Slice, [bound(start, 'start'), bound(end, 'end')]).map((b) => deserialize(b) as T);
  }
  /** As `Array.prototype.splice`: removes `deleteCount` items at `start`, inserts `items`; the removed items. */
  async splice(start: number, deleteCount?: number, ...items: T[]): Promise<T[]> {
    const blobs = [bound(start, 'start'), bound(deleteCount, 'deleteCount'), ...serializeAll(items, 'items')];
    return (await this.call(Op.Splice, blobs)).map((b) => deserialize(b) as T);
  }
  spliceSync(start: number, deleteCount?: number, ...items: T[]): T[] {
    const blobs = [bound(start, 'start'), bound(deleteCount, 'deleteCount'), ...serializeAll(items, 'items')];
    return this.callSync(Op.Splice, blobs).map((b) => deserialize(b) as T);
  }
  async clear(): Promise<void> {
    await this.call(Op.Clear);
  }
  clearSync(): void {
    this.callSync(Op.Clear);
  }
  /** A copy as an Array. */
  async toArray(): Promise<T[]> {
    return (await this.call(Op.Values)).map((b) => deserialize(b) as T);
  }
  toArraySync(): T[] {
    return this.callSync(Op.Values).map((b) => deserialize(b) as T);
  }
  toJSON(): Promise<T[]> {
    return this.toArray();
  }
  toJSONSync(): T[] {
    return this.toArraySync();
  }
  async *[Symbol.asyncIterator](): AsyncGenerator<T> {
    yield* await this.toArray();
  }
}

function validateName(name: unknown): string {
  if (typeof name !== 'string') throw invalidArgType('name', 'of type string', name);
  return name;
}

/**
 * A namespace held by a manager (CPython's `manager.Namespace()`): named attributes, read
 * with `get(name)` and written with `set(name, value)`, each a Promise, with `…Sync` twins.
 *
 * @example
 * const ns = await manager.Namespace({ x: 1 });
 * await ns.set('y', 2);
 * await ns.toJSON(); // { x: 1, y: 2 }
 */
export class NamespaceProxy extends ServerProxy {
  protected readonly kind = 'ManagerNamespace' as const;

  async get(name: string): Promise<unknown> {
    const v = value(await this.call(Op.Get, [encodeKey(validateName(name))]));
    return v === NO_VALUE ? undefined : v;
  }
  getSync(name: string): unknown {
    const v = value(this.callSync(Op.Get, [encodeKey(validateName(name))]));
    return v === NO_VALUE ? undefined : v;
  }
  async set(name: string, v: unknown): Promise<void> {
    await this.call(Op.Set, [encodeKey(validateName(name)), serialize(v, name)]);
  }
  setSync(name: string, v: unknown): void {
    this.callSync(Op.Set, [encodeKey(validateName(name)), serialize(v, name)]);
  }
  async has(name: string): Promise<boolean> {
    return (await this.call(Op.Has, [encodeKey(validateName(name))]))[0]![0] === 1;
  }
  hasSync(name: string): boolean {
    return this.callSync(Op.Has, [encodeKey(validateName(name))])[0]![0] === 1;
  }
  async delete(name: string): Promise<boolean> {
    return (await this.call(Op.Delete, [encodeKey(validateName(name))]))[0]![0] === 1;
  }
  deleteSync(name: string): boolean {
    return this.callSync(Op.Delete, [encodeKey(validateName(name))])[0]![0] === 1;
  }
  async keys(): Promise<string[]> {
    return (await this.call(Op.Keys)).map(decodeKey) as string[];
  }
  keysSync(): string[] {
    return this.callSync(Op.Keys).map(decodeKey) as string[];
  }
  /** A copy of every attribute as a plain object. */
  async toJSON(): Promise<Record<string, unknown>> {
    return toObject(toEntries(await this.call(Op.Entries)));
  }
  toJSONSync(): Record<string, unknown> {
    return toObject(toEntries(this.callSync(Op.Entries)));
  }
}

/**
 * One value held by a manager (CPython's `manager.Value(typecode, value)`): any
 * structured-cloneable value, read with `get()` and replaced with `set(v)`.
 *
 * @example
 * const v = await manager.Value(0);
 * await v.set((await v.get()) + 1); // not atomic: take a manager Lock around it when shared
 */
export class ValueProxy<T = unknown> extends ServerProxy {
  protected readonly kind = 'ManagerValue' as const;

  async get(): Promise<T> {
    return value(await this.call(Op.Get)) as T;
  }
  getSync(): T {
    return value(this.callSync(Op.Get)) as T;
  }
  async set(v: T): Promise<void> {
    await this.call(Op.Set, [serialize(v, 'value')]);
  }
  setSync(v: T): void {
    this.callSync(Op.Set, [serialize(v, 'value')]);
  }
}

// ---------------------------------------------------------------------------------------
// Proxies of the shared-memory objects the server created

/** A shared proxy's handle: its inner object, serialized (it crosses by its own handle). */
export interface SharedProxyHandle {
  kind: 'ManagerLock' | 'ManagerSemaphore' | 'ManagerEvent' | 'ManagerCondition' | 'ManagerBarrier';
  inner: Uint8Array;
}

/**
 * A manager's Lock or RLock. `acquire` resolves when held (or false on timeout),
 * `acquireSync` blocks the thread; the lock lives in shared memory created by the manager.
 *
 * @example
 * const lock = await manager.Lock();
 * await lock.withLock(async () => d.set('n', (await d.get('n')) + 1));
 */
export class LockProxy {
  constructor(readonly inner: Mutex | RLock) {}
  acquire(options?: AsyncWaitOptions | null): Promise<boolean> {
    return this.inner.acquireAsync(options);
  }
  acquireSync(options?: AcquireOptions | null): boolean {
    return this.inner.acquire(options);
  }
  async release(): Promise<void> {
    this.inner.release();
  }
  releaseSync(): void {
    this.inner.release();
  }
  locked(): boolean {
    return this.inner.locked();
  }
  withLock<R>(fn: () => R | Promise<R>): Promise<R> {
    return this.inner.withLock(fn);
  }
}

/** A manager's Semaphore (starts at 1) or BoundedSemaphore. */
export class SemaphoreProxy {
  constructor(readonly inner: Semaphore) {}
  acquire(options?: AsyncWaitOptions | null): Promise<boolean> {
    return this.inner.acquireAsync(options);
  }
  acquireSync(options?: AcquireOptions | null): boolean {
    return this.inner.acquire(options);
  }
  async release(n = 1): Promise<void> {
    this.inner.release(n);
  }
  releaseSync(n = 1): void {
    this.inner.release(n);
  }
  getValue(): number {
    return this.inner.getValue();
  }
  withLock<R>(fn: () => R | Promise<R>): Promise<R> {
    return this.inner.withLock(fn);
  }
}

/** A manager's Event: `wait()` resolves true once set (false on timeout). */
export class EventProxy {
  constructor(readonly inner: Event) {}
  async set(): Promise<void> {
    this.inner.set();
  }
  setSync(): void {
    this.inner.set();
  }
  async clear(): Promise<void> {
    this.inner.clear();
  }
  clearSync(): void {
    this.inner.clear();
  }
  async isSet(): Promise<boolean> {
    return this.inner.isSet();
  }
  isSetSync(): boolean {
    return this.inner.isSet();
  }
  wait(timeout?: number | AsyncWaitOptions | null): Promise<boolean> {
    return this.inner.waitAsync(timeout);
  }
  waitSync(timeout?: number | null): boolean {
    return this.inner.wait(timeout);
  }
}

/** A manager's Condition (over its own lock). */
export class ConditionProxy {
  constructor(readonly inner: Condition) {}
  acquire(options?: AsyncWaitOptions | null): Promise<boolean> {
    return this.inner.acquireAsync(options);
  }
  acquireSync(options?: AcquireOptions | null): boolean {
    return this.inner.acquire(options);
  }
  async release(): Promise<void> {
    this.inner.release();
  }
  releaseSync(): void {
    this.inner.release();
  }
  withLock<R>(fn: () => R | Promise<R>): Promise<R> {
    return this.inner.withLock(fn);
  }
  wait(timeout?: number | AsyncWaitOptions | null): Promise<boolean> {
    return this.inner.waitAsync(timeout);
  }
  waitSync(timeout?: number | null): boolean {
    return this.inner.wait(timeout);
  }
  waitFor<R>(predicate: () => R, timeout?: number | null): Promise<R> {
    return this.inner.waitForAsync(predicate, timeout);
  }
  waitForSync<R>(predicate: () => R, timeout?: number | null): R {
    return this.inner.waitFor(predicate, timeout);
  }
  async notify(n = 1): Promise<void> {
    this.inner.notify(n);
  }
  notifySync(n = 1): void {
    this.inner.notify(n);
  }
  async notifyAll(): Promise<void> {
    this.inner.notifyAll();
  }
  notifyAllSync(): void {
    this.inner.notifyAll();
  }
}

/** A manager's Barrier: `wait()` resolves with the arrival index once all parties came. */
export class BarrierProxy {
  constructor(readonly inner: Barrier) {}
  wait(timeout?: number | AsyncWaitOptions | null): Promise<number> {
    return this.inner.waitAsync(timeout);
  }
  waitSync(timeout?: number | null): number {
    return this.inner.wait(timeout);
  }
  async reset(): Promise<void> {
    this.inner.reset();
  }
  resetSync(): void {
    this.inner.reset();
  }
  async abort(): Promise<void> {
    this.inner.abort();
  }
  abortSync(): void {
    this.inner.abort();
  }
  get parties(): number {
    return this.inner.parties;
  }
  get nWaiting(): number {
    return this.inner.nWaiting;
  }
  get broken(): boolean {
    return this.inner.broken;
  }
}

export type SharedProxy = LockProxy | SemaphoreProxy | EventProxy | ConditionProxy | BarrierProxy;

/** The proxy for a shared object the server sent (its kind decides the class). */
export function wrapShared(type: string, object: unknown): SharedProxy | Queue | JoinableQueue {
  switch (type) {
    case 'Lock':
    case 'RLock':
      return new LockProxy(object as Mutex);
    case 'Semaphore':
    case 'BoundedSemaphore':
      return new SemaphoreProxy(object as Semaphore);
    case 'Event':
      return new EventProxy(object as Event);
    case 'Condition':
      return new ConditionProxy(object as Condition);
    case 'Barrier':
      return new BarrierProxy(object as Barrier);
    default:
      return object as Queue;
  }
}

// Crossing by handle. The shared proxies carry their inner object, which the serializer
// turns into its own handle and back.
const serverKinds = { ManagerDict: DictProxy, ManagerList: ListProxy, ManagerNamespace: NamespaceProxy, ManagerValue: ValueProxy };
for (const [kind, cls] of Object.entries(serverKinds)) {
  const make = cls as unknown as new (id: number, manager: ManagerRef) => ServerProxy;
  registerByHandle(cls, [kind], (h: ProxyHandle) => new make(h.id, h.manager));
}
const sharedKinds = {
  ManagerLock: LockProxy,
  ManagerSemaphore: SemaphoreProxy,
  ManagerEvent: EventProxy,
  ManagerCondition: ConditionProxy,
  ManagerBarrier: BarrierProxy,
} as const;
for (const [kind, cls] of Object.entries(sharedKinds)) {
  registerByHandle(
    cls,
    [kind],
    (h: { inner: Uint8Array }) => new (cls as new (inner: unknown) => SharedProxy)(deserialize(h.inner)),
    (p: SharedProxy) => ({ kind, inner: serialize(p.inner) }),
  );
}
