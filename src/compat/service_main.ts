/**
 * The service thread of the platform fallback: one worker thread per JavaScript thread that
 * uses the fallback's objects (service.ts starts it). Its event loop runs while the thread
 * it serves blocks in a `…Sync` call, so it can do for that thread what needs a loop:
 *
 * - keep the objects that thread created (hub.ts) and serve them to other processes over a
 *   local socket (a named pipe on Windows);
 * - carry that thread's calls on other processes' objects over one socket per process;
 * - start the thread's child processes (child_process.fork, with an IPC channel that
 *   carries what to run and the child's report) and see them end, so `joinSync` can wait
 *   for a child while the caller's loop stands still.
 *
 * Requests come on `port` as `{ rid, op, ... }`; answers go back on `port`, or for a
 * blocking call on `syncPort` followed by a notify on `signal[0]` (the caller waits there
 * with Atomics.wait, then takes the answer with receiveMessageOnPort).
 */
import { fork, type ChildProcess } from 'node:child_process';
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { constants } from 'node:os';
import { workerData, type MessagePort } from 'node:worker_threads';
import { Hub, type Client, type CreateOptions, type ObjectKind, type Reply, type WireError } from './hub';
import { newHubAddress, readBodies, readFrames, writeFrame } from './wire';
import type { LentHold } from './connection';

interface ServiceData {
  port: MessagePort;
  syncPort: MessagePort;
  signal: Int32Array;
}

export interface ObjectRef {
  address: string;
  key: Buffer;
  id: number;
}

export interface ChildEndRecord {
  exitCode: number;
  report?: Buffer;
}

export type Request =
  | ({ rid: number; sync: boolean; op: 'create'; kind: ObjectKind } & CreateOptions)
  | { rid: number; sync: boolean; op: 'call'; ref: ObjectRef; method: string; args: Record<string, unknown> }
  | { rid: number; sync: boolean; op: 'cancel'; target: number; address: string }
  | { rid: number; sync: boolean; op: 'spawn'; module: string; payload: Uint8Array; execArgv: string[]; lent: LentHold[] }
  | { rid: number; sync: boolean; op: 'signal'; pid: number; signal: NodeJS.Signals | number }
  | { rid: number; sync: boolean; op: 'streamOpen'; address: string | { host: string; port: number } }
  | { rid: number; sync: boolean; op: 'streamCall'; id: number; bytes?: Uint8Array }
  | { rid: number; sync: boolean; op: 'streamClose'; id: number }
  | { rid: number; sync: boolean; op: 'join'; pid: number; timeout: number }
  | { rid: number; sync: boolean; op: 'poll'; pid: number }
  | { rid: number; sync: boolean; op: 'hubSize' };

export interface Answer {
  rid: number;
  value?: unknown;
  error?: WireError;
}

const { port, syncPort, signal } = workerData as ServiceData;
const hub = new Hub();
const self: Client = { id: 0 };

function answer(request: { rid: number; sync: boolean }): Reply {
  return (result) => {
    const message: Answer = { rid: request.rid, ...result };
    if (!request.sync) return port.postMessage(message);
    syncPort.postMessage(message);
    Atomics.store(signal, 0, 1);
    Atomics.notify(signal, 0);
  };
}

// This thread's hub, listening from its first object on.
let listening: Promise<{ address: string; key: Buffer }> | undefined;
let ownAddress: string | undefined;
let nextClientId = 1;

function listen(): Promise<{ address: string; key: Buffer }> {
  listening ??= new Promise((resolve, reject) => {
    const key = randomBytes(32);
    const address = newHubAddress();
    const server: Server = createServer((socket) => serveClient(socket, key));
    server.once('error', reject);
    server.listen(address, () => {
      ownAddress = address;
      resolve({ address, key });
    });
  });
  return listening;
}

function serveClient(socket: Socket, key: Buffer): void {
  const client: Client = { id: nextClientId++ };
  let authenticated = false;
  // Values handed out by a get or recv and not yet acknowledged: if the client dies before
  // its service thread had them, they go back to the front for the others.
  const lent = new Map<number, { id: number; end?: unknown; bytes: Uint8Array }>();
  socket.on('error', () => socket.destroy());
  socket.on('close', () => {
    hub.dropClient(client);
    for (const { id, end, bytes } of lent.values()) hub.call(client, -1, id, 'unget', { end, bytes }, () => {});
    lent.clear();
  });
  readFrames(socket, (message) => {
    const frame = message as {
      key?: Uint8Array;
      rid?: number;
      id?: number;
      method?: string;
      args?: Record<string, unknown>;
      cancel?: number;
      ack?: number;
    };
    if (!authenticated) {
      if (!(frame.key instanceof Uint8Array) || frame.key.length !== key.length || !timingSafeEqual(frame.key, key)) return socket.destroy();
      authenticated = true;
      return;
    }
    if (typeof frame.ack === 'number') return void lent.delete(frame.ack);
    if (typeof frame.cancel === 'number') return hub.cancel(client, frame.cancel);
    const { rid, id, method, args = {} } = frame as Required<typeof frame>;
    hub.call(client, rid, id, method, args, (result) => {
      if (socket.destroyed) {
        if (result.value instanceof Uint8Array) hub.call(client, -1, id, 'unget', { end: args.end, bytes: result.value }, () => {});
        return;
      }
      if (result.value instanceof Uint8Array) lent.set(rid, { id, end: args.end, bytes: result.value });
      writeFrame(socket, { rid, ...result });
    });
  });
}

// Other processes' hubs this thread uses, one socket each.
class Remote {
  readonly #socket: Socket;
  readonly #pending = new Map<number, Reply>();
  #gone = false;

  constructor(address: string, key: Buffer, onClose: () => void) {
    this.#socket = connect(address);
    this.#socket.on('error', () => this.#socket.destroy());
    this.#socket.on('close', () => {
      this.#gone = true;
      onClose();
      for (const reply of this.#pending.values()) reply(gone());
      this.#pending.clear();
    });
    writeFrame(this.#socket, { key });
    readFrames(this.#socket, (message) => {
      const { rid, ...result } = message as Answer;
      // A value taken from a queue or pipe is this process's from now on.
      if (result.value instanceof Uint8Array) writeFrame(this.#socket, { ack: rid });
      const reply = this.#pending.get(rid);
      this.#pending.delete(rid);
      reply?.(result);
    });
  }

  call(rid: number, id: number, method: string, args: Record<string, unknown>, reply: Reply): void {
    if (this.#gone) return reply(gone());
    this.#pending.set(rid, reply);
    writeFrame(this.#socket, { rid, id, method, args });
  }

  cancel(rid: number): void {
    if (!this.#gone && this.#pending.has(rid)) writeFrame(this.#socket, { cancel: rid });
  }
}

function gone(): { error: WireError } {
  return { error: { code: 'ERR_EOF', message: 'The process that created this object has ended' } };
}

const remotes = new Map<string, Remote>();

function remote(ref: ObjectRef): Remote {
  let r = remotes.get(ref.address);
  if (!r) {
    r = new Remote(ref.address, ref.key, () => remotes.delete(ref.address));
    remotes.set(ref.address, r);
  }
  return r;
}

// Children of the thread this service serves.
interface Child {
  /** Until it has ended (its record stays, for a late join or poll). */
  process: ChildProcess | undefined;
  report: Buffer | undefined;
  end: ChildEndRecord | undefined;
  joiners: Array<() => void>;
}
const children = new Map<number, Child>();
// Request ids of this thread's own calls, apart from the caller's (which count up from 1).
let ownRid = -1;

function spawnChild(request: Extract<Request, { op: 'spawn' }>, reply: Reply): void {
  const child = fork(request.module, [], {
    execArgv: request.execArgv,
    serialization: 'advanced',
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
  });
  if (child.pid === undefined) {
    child.once('error', (error: NodeJS.ErrnoException) => reply({ error: { code: error.code ?? 'ERR_FORKWISE_SPAWN', message: error.message } }));
    return;
  }
  const entry: Child = { process: child, report: undefined, end: undefined, joiners: [] };
  children.set(child.pid, entry);
  child.on('error', () => {}); // a send to a child that has gone: its 'close' tells the end
  child.on('message', (message: { report?: Uint8Array }) => {
    if (message?.report) entry.report = Buffer.from(message.report);
  });
  child.once('close', (code, signalName) => {
    const signo = signalName ? (constants.signals as Record<string, number>)[signalName] ?? 0 : 0;
    entry.end = { exitCode: signalName ? -signo : (code ?? 1), ...(entry.report ? { report: entry.report } : {}) };
    entry.process = undefined;
    for (const wake of entry.joiners.splice(0)) wake();
    // Pipe ends in its arguments that it did not attach are held no more.
    for (const { ref, end, token } of request.lent) callObject(ownRid--, ref, 'unlend', { end, token }, () => {});
  });
  child.send({ payload: request.payload });
  reply({ value: child.pid });
}

function joinChild(pid: number, timeout: number, reply: Reply): void {
  const entry = children.get(pid);
  if (!entry) return reply({ error: { code: 'ECHILD', message: `no child process ${pid}` } });
  if (entry.end || timeout === 0) return reply({ value: entry.end ?? null });
  let timer: NodeJS.Timeout | undefined;
  const wake = (): void => {
    if (timer) clearTimeout(timer);
    reply({ value: entry.end ?? null });
  };
  entry.joiners.push(wake);
  if (timeout >= 0) {
    timer = setTimeout(() => {
      entry.joiners.splice(entry.joiners.indexOf(wake), 1);
      reply({ value: null });
    }, timeout);
  }
}

// Sockets that this thread uses as blocking streams of length-prefixed frames (a Manager's
// …Sync calls): the caller writes a request and waits for the next whole frame.
interface Stream {
  socket: Socket;
  frames: Uint8Array[];
  readers: Reply[];
  ended: boolean;
}
const streams = new Map<number, Stream>();
let nextStreamId = 1;

function openStream(address: string | { host: string; port: number }, reply: Reply): void {
  const socket = typeof address === 'string' ? connect(address) : connect(address.port, address.host);
  const id = nextStreamId++;
  const stream: Stream = { socket, frames: [], readers: [], ended: false };
  socket.once('connect', () => {
    streams.set(id, stream);
    reply({ value: id });
  });
  readBodies(socket, (view) => {
    const body = new Uint8Array(view); // its own memory: posting a view clones all of its buffer
    const reader = stream.readers.shift();
    if (reader) reader({ value: body });
    else stream.frames.push(body);
  });
  socket.on('error', (error: NodeJS.ErrnoException) => {
    if (!streams.has(id)) reply({ error: { code: error.code ?? 'ECONNREFUSED', message: error.message } });
    socket.destroy();
  });
  socket.on('close', () => {
    stream.ended = true;
    for (const reader of stream.readers.splice(0)) reader({ error: { code: 'ECONNRESET', message: 'the peer closed the connection' } });
  });
}

function callStream(id: number, bytes: Uint8Array | undefined, reply: Reply): void {
  const stream = streams.get(id);
  if (!stream || stream.ended) return reply({ error: { code: 'ECONNRESET', message: 'the peer closed the connection' } });
  if (bytes) stream.socket.write(bytes);
  if (stream.frames.length > 0) return reply({ value: stream.frames.shift() });
  stream.readers.push(reply);
}

function callObject(rid: number, ref: ObjectRef, method: string, args: Record<string, unknown>, reply: Reply): void {
  if (ref.address === ownAddress) hub.call(self, rid, ref.id, method, args, reply);
  else remote(ref).call(rid, ref.id, method, args, reply);
}

async function handle(request: Request): Promise<void> {
  const reply = answer(request);
  try {
    switch (request.op) {
      case 'create': {
        const { address, key } = await listen();
        const id = hub.create(self, request.kind, request);
        return reply({ value: { address, key, id } satisfies ObjectRef });
      }
      case 'call':
        return callObject(request.rid, request.ref, request.method, request.args, reply);
      case 'cancel': {
        if (request.address === ownAddress) hub.cancel(self, request.target);
        else remotes.get(request.address)?.cancel(request.target);
        return reply({});
      }
      case 'spawn':
        return spawnChild(request, reply);
      case 'join':
        return joinChild(request.pid, request.timeout, reply);
      case 'poll':
        return reply({ value: children.get(request.pid)?.end ?? null });
      case 'streamOpen':
        return openStream(request.address, reply);
      case 'streamCall':
        return callStream(request.id, request.bytes, reply);
      case 'streamClose':
        streams.get(request.id)?.socket.destroy();
        streams.delete(request.id);
        return reply({});
      case 'hubSize':
        return reply({ value: hub.size });
      case 'signal': {
        const child = children.get(request.pid);
        // A child that has ended is not signalled (its pid may be another process's now).
        child?.process?.kill(request.signal);
        return reply({});
      }
    }
  } catch (error) {
    const e = error as NodeJS.ErrnoException;
    reply({ error: { code: e.code ?? 'ERR_FORKWISE_SERVICE', message: e.message } });
  }
}

port.on('message', (request: Request) => void handle(request));
// The thread it serves has ended (a worker thread terminated): so does this one, with its
// hub and sockets; its children see their channel close and end.
port.once('close', () => process.exit(0));
