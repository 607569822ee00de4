/**
 * The manager's server: the process that `Manager.start()` runs (as a TaskRef, so that fork,
 * forkserver and spawn all work), holding the shared objects and answering requests on a
 * Unix socket or TCP (manager_wire.ts describes the wire).
 *
 * - One Node event loop serves every client; no request waits for anything, so none blocks
 *   another: dicts, lists, namespaces and values are plain state here, and the
 *   synchronization objects and queues are forkwise shared-memory objects that the server
 *   creates and keeps alive while clients wait on them in their own processes.
 * - Values are stored as the bytes the client serialized and sent back as they are: the
 *   server never deserializes them, so nothing a client sends can make it run code, and
 *   `__proto__` or `constructor` are keys like any other (state is in `Map`s).
 * - A connection that fails the handshake (or has not completed it within 10 s), sends an
 *   oversized or malformed frame, or names an unknown operation is closed; the others go on. A client that dies mid-request is a
 *   closed connection, nothing more.
 * - A client on a Unix socket (so on this host) may ask for a shared-memory Pipe once it has
 *   authenticated (Op.Attach), and then sends its requests there, the same bodies without the
 *   length: a round trip between two processes that do not sleep in between costs a few
 *   microseconds where the socket's costs two kernel wake-ups. The socket stays open, idle,
 *   as that client's lifetime: when either ends, both are closed.
 * - The control connection from the parent (a Pipe) ends it: a `'shutdown'` message, or its
 *   end of file when the parent is gone. It then closes every socket, removes its socket
 *   file, and exits.
 */
import { unlinkSync } from 'node:fs';
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { Connection } from '../messaging/connection';
import { JoinableQueue, Queue } from '../compat/select';
import { serialize } from '../messaging/serializer';
import { native } from '../posix/native';
import { PipeService } from './manager_pipes';
import { Barrier, BoundedSemaphore, Condition, Event, Mutex, RLock, Semaphore } from '../sync/index';
import {
  badMessage, decodeKey, encodeKey, frame, FrameReader, MAX_FRAME, MAX_HANDSHAKE_FRAME, newNonce, Op, readBlobs, serverCheck,
  STATUS_ERROR, STATUS_OK, u32, type Key, type WireError,
} from './manager_wire';

export type ManagerAddress = string | { host: string; port: number };

export interface ServerOptions {
  address: ManagerAddress;
  authkey: Uint8Array;
  /** How long a new connection has to authenticate (default HANDSHAKE_MS). */
  handshakeMs?: number;
}

/**
 * Bytes per direction of a client's Pipe: requests and replies are small, larger ones
 * stream through in pieces, and every thread of every client process holds one.
 */
const RING_BYTES = 64 * 1024;

/** A peer that has not authenticated within this time is cut off (it holds a descriptor). */
const HANDSHAKE_MS = 10_000;

type Stored =
  | { type: 'dict'; map: Map<Key, Buffer> }
  | { type: 'list'; items: Buffer[] }
  | { type: 'value'; value: Buffer }
  | { type: 'shared'; object: unknown };

/** An error sent back for one request; the connection goes on. */
class RequestError extends Error {
  constructor(
    readonly errorName: 'Error' | 'TypeError' | 'RangeError',
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

const OK = Buffer.of(STATUS_OK);
const ERROR = Buffer.of(STATUS_ERROR);
const NONE: Buffer[] = [];
const TRUE = [Buffer.of(1)];
const FALSE = [Buffer.of(0)];

// Shared objects that a client may ask for, with the numeric options each takes.
const SHARED: Record<string, (options: Record<string, unknown>) => unknown> = {
  Lock: () => new Mutex(),
  RLock: () => new RLock(),
  Semaphore: (o) => new Semaphore(numberOption(o.value, 1)),
  BoundedSemaphore: (o) => new BoundedSemaphore(numberOption(o.value, 1)),
  Event: () => new Event(),
  Condition: () => new Condition(),
  Barrier: (o) => new Barrier(numberOption(o.parties, 1), { timeout: o.timeout === undefined ? null : numberOption(o.timeout, 0) }),
  Queue: (o) => new Queue({ maxsize: numberOption(o.maxsize, 0) }),
  JoinableQueue: (o) => new JoinableQueue({ maxsize: numberOption(o.maxsize, 0) }),
};

function numberOption(value: unknown, fallback: number): number {
  if (value === undefined || value === null) return fallback;
  if (typeof value !== 'number') throw new RequestError('TypeError', 'ERR_INVALID_ARG_TYPE', 'forkwise manager: a numeric option is not a number');
  return value;
}

/** The objects of one manager and what each request does to them. */
export class Store {
  readonly #objects = new Map<number, Stored>();
  #nextId = 1;

  /** Runs one request; the reply's blobs. RequestError for a refused request. */
  run(op: Op, id: number, blobs: Buffer[]): Buffer[] {
    if (op === Op.Create) return this.#create(blobs);
    const stored = this.#objects.get(id);
    if (!stored) throw new RequestError('Error', 'ERR_FORKWISE_MANAGER_NO_OBJECT', `forkwise manager: no object ${id} in this manager`);
    switch (stored.type) {
      case 'dict':
        return dictOp(stored.map, op, blobs);
      case 'list':
        return listOp(stored.items, op, blobs);
      case 'value':
        if (op === Op.Get) return [stored.value];
        if (op === Op.Set) {
          stored.value = Buffer.from(arg(blobs, 0));
          return NONE;
        }
        break;
      default:
    }
    throw wrongOp(stored.type, op);
  }

  #create(blobs: Buffer[]): Buffer[] {
    const type = arg(blobs, 0).toString('latin1');
    const id = this.#nextId++;
    let stored: Stored;
    if (type === 'dict' || type === 'Namespace') {
      const map = new Map<Key, Buffer>();
      pairs(blobs, 1, (k, v) => map.set(k, Buffer.from(v)));
      stored = { type: 'dict', map };
    } else if (type === 'list') {
      stored = { type: 'list', items: blobs.slice(1).map((b) => Buffer.from(b)) };
    } else if (type === 'Value') {
      stored = { type: 'value', value: Buffer.from(arg(blobs, 1)) };
    } else if (Object.prototype.hasOwnProperty.call(SHARED, type)) {
      let options: unknown = {};
      if (blobs.length > 1) {
        try {
          options = JSON.parse(arg(blobs, 1).toString('utf8'));
        } catch {
          throw badMessage();
        }
      }
      if (options === null || typeof options !== 'object') throw badMessage();
      let object: unknown;
      try {
        object = SHARED[type]!(options as Record<string, unknown>);
      } catch (error) {
        if (error instanceof RequestError) throw error;
        const e = error as { name?: string; code?: string; message?: string };
        const name = e.name === 'TypeError' || e.name === 'RangeError' ? e.name : 'Error';
        throw new RequestError(name, e.code ?? 'ERR_FORKWISE_MANAGER', String(e.message));
      }
      this.#objects.set(id, { type: 'shared', object });
      return [u32(id), serialize(object)];
    } else {
      throw new RequestError('TypeError', 'ERR_INVALID_ARG_VALUE', `forkwise manager: no kind of object named ${JSON.stringify(type.slice(0, 40))}`);
    }
    this.#objects.set(id, stored);
    return [u32(id)];
  }

  /** Releases the shared objects (queues hold segments and watchers). */
  close(): void {
    for (const stored of this.#objects.values()) {
      if (stored.type === 'shared' && stored.object instanceof Queue) stored.object.close();
    }
    this.#objects.clear();
  }
}

function arg(blobs: Buffer[], index: number): Buffer {
  const blob = blobs[index];
  if (blob === undefined) throw badMessage();
  return blob;
}

function pairs(blobs: Buffer[], start: number, each: (key: Key, value: Buffer) => void): void {
  if ((blobs.length - start) % 2 !== 0) throw badMessage();
  for (let i = start; i < blobs.length; i += 2) each(decodeKey(blobs[i]!), blobs[i + 1]!);
}

function wrongOp(type: string, op: Op): RequestError {
  return new RequestError('TypeError', 'ERR_FORKWISE_MANAGER_WRONG_OBJECT', `forkwise manager: operation ${op} does not apply to a ${type}`);
}

function dictOp(map: Map<Key, Buffer>, op: Op, blobs: Buffer[]): Buffer[] {
  switch (op) {
    case Op.Get: {
      const value = map.get(decodeKey(arg(blobs, 0)));
      return value === undefined ? NONE : [value];
    }
    case Op.Set:
      map.set(decodeKey(arg(blobs, 0)), Buffer.from(arg(blobs, 1)));
      return NONE;
    case Op.Has:
      return map.has(decodeKey(arg(blobs, 0))) ? TRUE : FALSE;
    case Op.Delete:
      return map.delete(decodeKey(arg(blobs, 0))) ? TRUE : FALSE;
    case Op.Size:
      return [u32(map.size)];
    case Op.Keys:
      return [...map.keys()].map(encodeKey);
    case Op.Values:
      return [...map.values()];
    case Op.Entries: {
      const out: Buffer[] = [];
      for (const [k, v] of map) out.push(encodeKey(k), v);
      return out;
    }
    case Op.Clear:
      map.clear();
      return NONE;
    case Op.Pop: {
      const key = decodeKey(arg(blobs, 0));
      const value = map.get(key);
      if (value === undefined) return NONE;
      map.delete(key);
      return [value];
    }
    case Op.SetDefault: {
      const key = decodeKey(arg(blobs, 0));
      let value = map.get(key);
      if (value === undefined) map.set(key, (value = Buffer.from(arg(blobs, 1))));
      return [value];
    }
    case Op.Update:
      pairs(blobs, 0, (k, v) => map.set(k, Buffer.from(v)));
      return NONE;
    default:
      throw wrongOp('dict', op);
  }
}

// A list index: an integer, negative from the end; `allowEnd` admits `length`.
function listIndex(items: Buffer[], blob: Buffer, allowEnd = false): number {
  const raw = decodeKey(blob);
  if (typeof raw !== 'number' || !Number.isInteger(raw)) {
    throw new RequestError('TypeError', 'ERR_INVALID_ARG_TYPE', 'forkwise manager: a list index must be an integer');
  }
  const index = raw < 0 ? items.length + raw : raw;
  if (index < 0 || index > items.length || (!allowEnd && index === items.length)) {
    throw new RequestError('RangeError', 'ERR_OUT_OF_RANGE', `The value of "index" is out of range. It must be >= ${-items.length} and < ${items.length}. Received ${raw}`);
  }
  return index;
}

function sliceBound(items: Buffer[], blob: Buffer | undefined, fallback: number): number {
  if (blob === undefined) return fallback;
  const raw = decodeKey(blob);
  if (raw === undefined) return fallback;
  if (typeof raw !== 'number' || Number.isNaN(raw)) {
    throw new RequestError('TypeError', 'ERR_INVALID_ARG_TYPE', 'forkwise manager: a slice bound must be a number');
  }
  const n = Math.trunc(raw);
  return n < 0 ? Math.max(items.length + n, 0) : Math.min(n, items.length);
}

function listOp(items: Buffer[], op: Op, blobs: Buffer[]): Buffer[] {
  switch (op) {
    case Op.Get: {
      const raw = decodeKey(arg(blobs, 0));
      if (typeof raw !== 'number' || !Number.isInteger(raw)) {
        throw new RequestError('TypeError', 'ERR_INVALID_ARG_TYPE', 'forkwise manager: a list index must be an integer');
      }
      const value = items[raw < 0 ? items.length + raw : raw];
      return value === undefined ? NONE : [value];
    }
    case Op.Set:
      items[listIndex(items, arg(blobs, 0))] = Buffer.from(arg(blobs, 1));
      return NONE;
    case Op.Size:
      return [u32(items.length)];
    case Op.Values:
      return items.slice();
    case Op.Clear:
      items.length = 0;
      return NONE;
    case Op.Push:
      for (const blob of blobs) items.push(Buffer.from(blob));
      return [u32(items.length)];
    case Op.PopEnd: {
      const value = items.pop();
      return value === undefined ? NONE : [value];
    }
    case Op.Shift: {
      const value = items.shift();
      return value === undefined ? NONE : [value];
    }
    case Op.Unshift:
      items.unshift(...blobs.map((b) => Buffer.from(b)));
      return [u32(items.length)];
    case Op.Slice:
      return items.slice(sliceBound(items, blobs[0], 0), sliceBound(items, blobs[1], items.length));
    case Op.Splice: {
      const start = sliceBound(items, arg(blobs, 0), 0);
      const count = Math.max(0, Math.min(sliceBound(items, arg(blobs, 1), items.length), items.length - start));
      return items.splice(start, count, ...blobs.slice(2).map((b) => Buffer.from(b)));
    }
    default:
      throw wrongOp('list', op);
  }
}

function errorReply(error: RequestError): Buffer {
  const record: WireError = { name: error.errorName, code: error.code, message: error.message };
  return frame(ERROR, [Buffer.from(JSON.stringify(record))]);
}

/** The reply frame (length first) to one request body, or null: malformed, close. */
function answer(store: Store, body: Buffer): Buffer | null {
  if (body.length < 5 || body[0]! < Op.Create || body[0]! >= Op.Attach) return null;
  try {
    return frame(OK, store.run(body[0] as Op, body.readUInt32LE(1), readBlobs(body, 5)));
  } catch (error) {
    if (!(error instanceof RequestError)) return null;
    return errorReply(error);
  }
}

/**
 * Serves a client's requests on a Pipe until either end or the client's socket closes. The
 * client's end is held here until its first request says it has attached its own copy;
 * then nobody attaches by name any more, and the segment's name is removed (so that clients
 * that come and go leave nothing in /dev/shm while the server lives).
 */
function serveRing(socket: Socket, pipes: PipeService): Buffer {
  const [mine, theirs] = Connection.create(true, RING_BYTES);
  let theirsOpen = true;
  const letGo = (): void => {
    if (!theirsOpen) return;
    theirsOpen = false;
    theirs.close();
    try {
      native.shmUnlink(`/${mine.handle.name}`);
    } catch {
      // already removed
    }
  };
  const remove = pipes.add(mine, letGo, () => socket.destroy());
  socket.once('close', () => {
    remove();
    letGo();
    mine.close();
  });
  return serialize(theirs);
}

/** Serves one client connection: the handshake, then requests until it closes. */
function serveSocket(socket: Socket, store: Store, pipes: PipeService, authkey: Buffer, handshakeMs: number, local: boolean): void {
  socket.setNoDelay?.(true);
  const nonce = newNonce();
  let authenticated = false;
  let attached = false;
  const deadline = setTimeout(() => socket.destroy(), handshakeMs).unref();
  socket.on('close', () => clearTimeout(deadline));
  const reader = new FrameReader();
  socket.write(frame(Buffer.alloc(0), [nonce]));
  socket.on('error', () => socket.destroy());
  socket.on('data', (chunk: Buffer) => {
    reader.push(chunk);
    const replies: Buffer[] = [];
    try {
      for (;;) {
        const body = reader.next(authenticated ? MAX_FRAME : MAX_HANDSHAKE_FRAME);
        if (body === undefined) break;
        if (body === null) {
          socket.destroy(); // oversized
          return;
        }
        if (!authenticated) {
          // The answer: one blob of HMAC + client nonce.
          let reply: Buffer | undefined;
          try {
            reply = serverCheck(authkey, nonce, arg(readBlobs(body, 0), 0));
          } catch {
            reply = undefined;
          }
          if (!reply) {
            socket.destroy();
            return;
          }
          authenticated = true;
          clearTimeout(deadline);
          socket.write(frame(Buffer.alloc(0), [reply]));
          continue;
        }
        if (local && body.length === 5 && body[0] === Op.Attach && !attached) {
          attached = true;
          try {
            replies.push(frame(OK, [serveRing(socket, pipes)]));
          } catch (error) {
            // No Pipe (no room in /dev/shm, say): the client goes on over the socket.
            replies.push(errorReply(new RequestError('Error', (error as { code?: string }).code ?? 'ERR_FORKWISE_MANAGER_NO_PIPE', (error as Error).message)));
          }
          continue;
        }
        const out = answer(store, body);
        if (!out) {
          socket.destroy(); // malformed: this connection only
          return;
        }
        replies.push(out);
      }
    } finally {
      // One write for the replies to one chunk of pipelined requests.
      if (!socket.destroyed && replies.length > 0) socket.write(replies.length === 1 ? replies[0]! : Buffer.concat(replies));
    }
  });
}

function listen(server: Server, address: ManagerAddress): Promise<ManagerAddress> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    const done = (): void => {
      server.off('error', reject);
      if (typeof address === 'string') resolve(address);
      else resolve({ host: address.host, port: (server.address() as AddressInfo).port });
    };
    if (typeof address === 'string') server.listen(address, done);
    else server.listen(address.port, address.host, done);
  });
}

/**
 * The server process's target: listens, reports its address on `control`, serves until
 * `control` says `'shutdown'` or ends.
 */
export async function serveManager(control: Connection, options: ServerOptions): Promise<void> {
  const authkey = Buffer.from(options.authkey);
  const store = new Store();
  const pipes = new PipeService((body) => answer(store, body));
  const sockets = new Set<Socket>();
  const server = createServer((socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    serveSocket(socket, store, pipes, authkey, options.handshakeMs ?? HANDSHAKE_MS, typeof options.address === 'string');
  });
  let address: ManagerAddress;
  try {
    address = await listen(server, options.address);
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    control.send({ error: { message: e.message, code: e.code, syscall: e.syscall, errno: e.errno } });
    control.close();
    return;
  }
  const cleanup = (): void => {
    server.close();
    for (const socket of sockets) socket.destroy();
    store.close();
    if (typeof address === 'string' && !address.startsWith('\0')) {
      try {
        unlinkSync(address);
      } catch {
        // already gone
      }
    }
  };
  const onTerm = (): void => {
    cleanup();
    process.exit(0);
  };
  process.once('SIGTERM', onTerm);
  control.send({ address });
  for (;;) {
    let message: unknown;
    try {
      message = await control.recv();
    } catch {
      break; // the parent is gone
    }
    if (message === 'shutdown') break;
  }
  process.off('SIGTERM', onTerm);
  cleanup();
  try {
    control.send('done');
  } catch {
    // the parent is gone
  }
  control.close();
}
