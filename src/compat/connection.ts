/**
 * `Pipe()` and `Connection` of the platform fallback: the methods of messaging/connection.ts
 * over a pipe kept by the hub of the process that created it (hub.ts), which holds what
 * each end sent until the other reads it, and who holds each end.
 *
 * - An end is held by the thread that created the pipe, and by each thread or process that
 *   attached its handle, until it calls `close()` or ends. A read that finds nothing and no
 *   holder of the other end gets `EOFError`; what was sent before stays readable.
 * - An end on its way (serialized into a child's arguments or a message) is held by that
 *   passage until the receiver attaches it, so the sender may close its own at once (as
 *   CPython's users do after `start()`). A child's arguments give their holds back when the
 *   child ends, whether or not it attached them. A handle taken from `.handle` by hand
 *   carries no such hold: its end is held once `fromHandle` attached it.
 * - `send` returns once the hub has the message (it never waits for the reader), so
 *   messages of any size never deadlock; the pipe lives as long as its creator.
 */
import { randomBytes } from 'node:crypto';
import { invalidArgType, invalidArgValue } from '../posix/errors';
import { validateTimeout } from '../sync/waiting';
import { bytesOf, pipeDuplex, type PipeOptions } from '../messaging/connection';
import { lendingOn, noteLent } from '../messaging/lending';
import { deserialize, registerByHandle, serialize } from '../messaging/serializer';
import { ownBytes, refOf, ObjectUse, type ObjectHandle } from './object';
import { theService } from './service';
import type { ObjectRef } from './service_main';
import { untilEnd } from '../messaging/iterate';

export interface FallbackConnectionHandle extends ObjectHandle {
  kind: 'FallbackConnection';
  end: 0 | 1;
  readable: boolean;
  writable: boolean;
  /** The hold its passage made (`lend`), claimed by `fromHandle`. */
  token?: string;
}

/** A hold lent by a handle's passage, as the service thread gives it back. */
export interface LentHold {
  ref: ObjectRef;
  end: 0 | 1;
  token: string;
}

const live = new Set<Connection>();
process.on('exit', () => {
  for (const conn of [...live]) conn.close();
});

export class Connection {
  readonly readable: boolean;
  readonly writable: boolean;
  readonly #use: ObjectUse;
  readonly #end: 0 | 1;

  private constructor(ref: ObjectRef, end: 0 | 1, readable: boolean, writable: boolean) {
    this.#use = new ObjectUse(ref, 'Connection');
    this.#end = end;
    this.readable = readable;
    this.writable = writable;
    live.add(this);
  }

  /** @internal Two connected ends (Pipe). */
  static create(duplex: boolean): [Connection, Connection] {
    const ref = theService().callSync({ op: 'create', kind: 'pipe' }) as ObjectRef;
    return [new Connection(ref, 0, true, duplex), new Connection(ref, 1, duplex, true)];
  }

  static fromHandle(handle: FallbackConnectionHandle): Connection {
    if (handle === null || typeof handle !== 'object') throw invalidArgType('handle', 'an object', handle);
    const { kind, end, readable, writable } = handle;
    const ref = refOf(handle);
    if (kind !== 'FallbackConnection' || !ref || (end !== 0 && end !== 1) || typeof readable !== 'boolean' || typeof writable !== 'boolean') {
      throw invalidArgValue('handle', handle, 'is not the handle of a Connection');
    }
    const { token } = handle;
    if (token !== undefined && typeof token !== 'string') throw invalidArgValue('handle', handle, 'is not the handle of a Connection');
    theService().callSync({ op: 'call', ref, method: token ? 'claim' : 'hold', args: { end, token } });
    return new Connection(ref, end, readable, writable);
  }

  // The handle that crosses in a message or arguments: its passage holds the end.
  #lend(): FallbackConnectionHandle {
    this.#use.open();
    if (!lendingOn()) return this.handle;
    const token = randomBytes(16).toString('hex');
    this.#use.callSync('lend', { end: this.#end, token });
    const hold: LentHold = { ref: this.#use.ref, end: this.#end, token };
    noteLent({
      // The service thread gives it back itself when the child ends (even while this thread
      // blocks); this is for a child that could not start.
      giveBack: () => void theService().call({ op: 'call', ref: hold.ref, method: 'unlend', args: { end: hold.end, token } }, false).catch(() => {}),
      forService: hold,
    });
    return { ...this.handle, token };
  }

  /** @internal For the serializer. */
  static lend(conn: Connection): FallbackConnectionHandle {
    return conn.#lend();
  }

  get handle(): FallbackConnectionHandle {
    return { kind: 'FallbackConnection', ...this.#use.ref, end: this.#end, readable: this.readable, writable: this.writable };
  }

  get closed(): boolean {
    return this.#use.closed;
  }

  send(value: unknown): void {
    this.#writable();
    this.#use.callSync('send', { end: this.#end, bytes: ownBytes(serialize(value, 'value')) });
  }

  sendBytes(data: ArrayBufferView | ArrayBuffer, offset = 0, size?: number): void {
    this.#writable();
    this.#use.callSync('send', { end: this.#end, bytes: new Uint8Array(bytesOf(data, offset, size)) });
  }

  async sendBytesAsync(data: ArrayBufferView | ArrayBuffer, offset = 0, size?: number): Promise<void> {
    this.#writable();
    await this.#use.call('send', { end: this.#end, bytes: new Uint8Array(bytesOf(data, offset, size)) });
  }

  /** As `sendBytes` (the hub always has room); true. */
  trySendBytes(data: ArrayBufferView | ArrayBuffer, offset = 0, size?: number): boolean {
    this.sendBytes(data, offset, size);
    return true;
  }

  async recv(): Promise<unknown> {
    return deserialize(await this.recvBytes());
  }

  async recvBytes(): Promise<Buffer> {
    this.#readable();
    return (await this.#use.call('recv', { end: this.#end })) as Buffer;
  }

  tryRecvBytes(): Buffer | null {
    this.#readable();
    try {
      return this.#use.callSync('recv', { end: this.#end, timeout: 0 }) as Buffer;
    } catch (error) {
      if ((error as { code?: string }).code === 'ERR_TIMEOUT') return null;
      throw error;
    }
  }

  recvSync(timeout?: number): unknown {
    return deserialize(this.recvBytesSync(timeout));
  }

  recvBytesSync(timeout?: number): Buffer {
    this.#readable();
    const ms = validateTimeout(timeout, 'timeout');
    return this.#use.callSync('recv', { end: this.#end, timeout: ms }) as Buffer;
  }

  async poll(timeout = 0): Promise<boolean> {
    this.#readable();
    const ms = validateTimeout(timeout, 'timeout');
    try {
      return (await this.#use.call('poll', { end: this.#end, timeout: ms })) as boolean;
    } catch (error) {
      if ((error as { code?: string }).code === 'ERR_FORKWISE_CLOSED') return false;
      throw error;
    }
  }

  pollSync(timeout = 0): boolean {
    this.#readable();
    return this.#use.callSync('poll', { end: this.#end, timeout: validateTimeout(timeout, 'timeout') }) as boolean;
  }

  /** Closes this end in this thread: the peer sees EOF once no other holder is left. */
  close(): void {
    if (this.#use.closed) return;
    this.#use.close();
    live.delete(this);
    try {
      theService().callSync({ op: 'call', ref: this.#use.ref, method: 'release', args: { end: this.#end } });
    } catch {
      // The creator is gone: nothing is held there any more.
    }
  }

  [Symbol.dispose](): void {
    this.close();
  }

  [Symbol.asyncIterator](): AsyncGenerator<unknown, void, undefined> {
    return untilEnd(() => this.recv(), ['ERR_EOF', 'ERR_FORKWISE_CLOSED']);
  }

  #writable(): void {
    this.#use.open();
    if (!this.writable) throw new TypeError('This Connection is read-only');
  }

  #readable(): void {
    this.#use.open();
    if (!this.readable) throw new TypeError('This Connection is write-only');
  }
}

export function Pipe(options: PipeOptions = {}): [Connection, Connection] {
  return Connection.create(pipeDuplex(options));
}

registerByHandle(
  Connection,
  ['FallbackConnection'],
  (handle: FallbackConnectionHandle) => Connection.fromHandle(handle),
  (conn: Connection) => Connection.lend(conn),
);
