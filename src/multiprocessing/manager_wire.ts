/**
 * The manager's wire: frames, the request and reply layout, dictionary keys, and the
 * authentication handshake, shared by the server (manager_server.ts) and its clients
 * (manager_proxy.ts).
 *
 * - A frame is a 4-byte little-endian length and that many bytes. The server refuses a frame
 *   longer than MAX_FRAME (and a handshake frame longer than 128 bytes) by closing that
 *   connection.
 * - A request is `op (u8) | object id (u32) | blobs`, a reply `status (u8) | blobs`; a blob is
 *   a u32 length and its bytes. Values are blobs of `serialize()` that the server stores and
 *   sends back as they came, without reading them: it never deserializes what a client sends
 *   (no structured clone, no code), so a forkwise object or a proxy inside a value crosses
 *   untouched and comes back alive in whichever process reads it.
 * - Dictionary keys (and list indexes) are primitives in a small tagged form the server
 *   decodes itself: undefined, null, booleans, numbers, strings and bigints.
 * - Handshake (as CPython's `multiprocessing.connection` deliver/answer challenge, both ways):
 *   the server sends 32 random bytes; the client answers HMAC-SHA256(authkey, label + those
 *   bytes) with 32 random bytes of its own; the server checks (`timingSafeEqual`) and answers
 *   with its own HMAC of the client's bytes, under another label (a reflected answer is
 *   useless). A peer that fails closes the connection before any request is read.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { argError, ForkwiseError, invalidArgType } from '../posix/errors';

export const MAX_FRAME = 512 * 1024 * 1024;
export const MAX_HANDSHAKE_FRAME = 128;
const NONCE = 32;
const CLIENT_LABEL = 'forkwise-manager client:';
const SERVER_LABEL = 'forkwise-manager server:';

/** Request operations. */
export const enum Op {
  Create = 1,
  Get = 2,
  Set = 3,
  Has = 4,
  Delete = 5,
  Size = 6,
  Keys = 7,
  Values = 8,
  Entries = 9,
  Clear = 10,
  Pop = 11,
  SetDefault = 12,
  Update = 13,
  Push = 14,
  PopEnd = 15,
  Shift = 16,
  Unshift = 17,
  Slice = 18,
  Splice = 19,
  /** Same host only (a Unix socket): asks for a shared-memory Pipe to send requests on. */
  Attach = 20,
}

export const STATUS_OK = 0;
export const STATUS_ERROR = 1;

/** An error that the server sends back for one request (the connection goes on). */
export interface WireError {
  name: string;
  code: string;
  message: string;
}

// ---------------------------------------------------------------------------------------
// Keys

const K_UNDEFINED = 0;
const K_NULL = 1;
const K_FALSE = 2;
const K_TRUE = 3;
const K_NUMBER = 4;
const K_STRING = 5;
const K_BIGINT = 6;

export type Key = string | number | bigint | boolean | null | undefined;

/** Whether `value` may be a key of a managed dict. */
export function isKey(value: unknown): value is Key {
  const type = typeof value;
  return value === null || type === 'string' || type === 'number' || type === 'boolean' || type === 'bigint' || type === 'undefined';
}

export function validateKey(value: unknown, name = 'key'): Key {
  if (!isKey(value)) throw invalidArgType(name, 'one of type string, number, bigint, boolean, null or undefined', value);
  return value;
}

export function encodeKey(key: Key): Buffer {
  switch (typeof key) {
    case 'string': {
      const out = Buffer.allocUnsafe(1 + Buffer.byteLength(key));
      out[0] = K_STRING;
      out.write(key, 1);
      return out;
    }
    case 'number': {
      const out = Buffer.allocUnsafe(9);
      out[0] = K_NUMBER;
      out.writeDoubleLE(key, 1);
      return out;
    }
    case 'boolean':
      return Buffer.of(key ? K_TRUE : K_FALSE);
    case 'bigint':
      return Buffer.concat([Buffer.of(K_BIGINT), Buffer.from(key.toString())]);
    case 'undefined':
      return Buffer.of(K_UNDEFINED);
    default:
      return Buffer.of(K_NULL);
  }
}

/** The key `bytes` describe; a malformed key throws (the server closes that connection). */
export function decodeKey(bytes: Buffer): Key {
  switch (bytes[0]) {
    case K_STRING:
      return bytes.toString('utf8', 1);
    case K_NUMBER:
      if (bytes.length !== 9) break;
      return bytes.readDoubleLE(1);
    case K_TRUE:
    case K_FALSE:
    case K_NULL:
    case K_UNDEFINED:
      if (bytes.length !== 1) break;
      return bytes[0] === K_TRUE ? true : bytes[0] === K_FALSE ? false : bytes[0] === K_NULL ? null : undefined;
    case K_BIGINT: {
      const text = bytes.toString('latin1', 1);
      if (!/^-?\d{1,10000}$/.test(text)) break;
      return BigInt(text);
    }
    default:
  }
  throw new ForkwiseError('ERR_FORKWISE_BAD_MESSAGE', 'forkwise manager: a malformed key');
}

// ---------------------------------------------------------------------------------------
// Requests and replies

/** One frame (length prefix included) holding `head` bytes and then `blobs`. */
export function frame(head: Buffer, blobs: readonly Uint8Array[]): Buffer {
  let size = head.length;
  for (const blob of blobs) size += 4 + blob.length;
  const out = Buffer.allocUnsafe(4 + size);
  out.writeUInt32LE(size, 0);
  head.copy(out, 4);
  let at = 4 + head.length;
  for (const blob of blobs) {
    out.writeUInt32LE(blob.length, at);
    out.set(blob, at + 4);
    at += 4 + blob.length;
  }
  return out;
}

/**
 * Gathers a stream's chunks into frames. Chunks are joined only once a whole frame is there,
 * so a large frame arriving in many chunks is copied once, not once per chunk.
 */
export class FrameReader {
  #chunks: Buffer[] = [];
  #size = 0;

  push(chunk: Buffer): void {
    this.#chunks.push(chunk);
    this.#size += chunk.length;
  }

  /** The next frame's body; undefined while incomplete; null when it announces more than `limit` bytes. */
  next(limit: number): Buffer | undefined | null {
    if (this.#size < 4) return undefined;
    let head = this.#chunks[0]!;
    if (head.length < 4) head = this.#join();
    const size = head.readUInt32LE(0);
    if (size > limit) return null;
    if (this.#size < 4 + size) return undefined;
    if (head.length < 4 + size) head = this.#join();
    const body = head.subarray(4, 4 + size);
    if (head.length === 4 + size) this.#chunks.shift();
    else this.#chunks[0] = head.subarray(4 + size);
    this.#size -= 4 + size;
    return body;
  }

  #join(): Buffer {
    const joined = Buffer.concat(this.#chunks, this.#size);
    this.#chunks = [joined];
    return joined;
  }
}

export function requestFrame(op: Op, id: number, blobs: readonly Uint8Array[]): Buffer {
  const head = Buffer.allocUnsafe(5);
  head[0] = op;
  head.writeUInt32LE(id, 1);
  return frame(head, blobs);
}

/** The blobs of a frame's body from `start`; malformed bodies throw. */
export function readBlobs(body: Buffer, start: number): Buffer[] {
  const blobs: Buffer[] = [];
  let at = start;
  while (at < body.length) {
    if (at + 4 > body.length) throw badMessage();
    const size = body.readUInt32LE(at);
    if (at + 4 + size > body.length) throw badMessage();
    blobs.push(body.subarray(at + 4, at + 4 + size));
    at += 4 + size;
  }
  return blobs;
}

export function badMessage(): Error {
  return new ForkwiseError('ERR_FORKWISE_BAD_MESSAGE', 'forkwise manager: a malformed message');
}

export function u32(n: number): Buffer {
  const out = Buffer.allocUnsafe(4);
  out.writeUInt32LE(n, 0);
  return out;
}

/** The error a reply describes, as an Error of its kind in the caller. */
export function wireErrorToError(bytes: Buffer): Error {
  let record: Partial<WireError> = {};
  try {
    record = JSON.parse(bytes.toString('utf8')) as WireError;
  } catch {
    // fall through with a generic message
  }
  const message = typeof record.message === 'string' ? record.message : 'forkwise manager: the request failed';
  const code = typeof record.code === 'string' ? record.code : 'ERR_FORKWISE_MANAGER';
  if (record.name === 'TypeError' || record.name === 'RangeError') {
    return argError(record.name === 'TypeError' ? TypeError : RangeError, code, message);
  }
  return new ForkwiseError(code, message);
}

// ---------------------------------------------------------------------------------------
// Authentication

export function validateAuthkey(value: unknown, name = 'authkey'): Buffer {
  if (typeof value === 'string') {
    if (value.length === 0) throw argError(TypeError, 'ERR_INVALID_ARG_VALUE', `The argument '${name}' must not be empty.`);
    return Buffer.from(value);
  }
  if (value instanceof Uint8Array) {
    if (value.length === 0) throw argError(TypeError, 'ERR_INVALID_ARG_VALUE', `The argument '${name}' must not be empty.`);
    return Buffer.from(value);
  }
  throw invalidArgType(name, 'of type string or an instance of Buffer or Uint8Array', value);
}

export function newNonce(): Buffer {
  return randomBytes(NONCE);
}

function digest(authkey: Buffer, label: string, nonce: Buffer): Buffer {
  return createHmac('sha256', authkey).update(label).update(nonce).digest();
}

/** The client's answer to the server's challenge, with a challenge of its own. */
export function clientAnswer(authkey: Buffer, serverNonce: Buffer, clientNonce: Buffer): Buffer {
  if (serverNonce.length !== NONCE) throw authError();
  return Buffer.concat([digest(authkey, CLIENT_LABEL, serverNonce), clientNonce]);
}

/** Server side: checks the client's answer; the reply for it, or undefined to refuse. */
export function serverCheck(authkey: Buffer, serverNonce: Buffer, answer: Buffer): Buffer | undefined {
  if (answer.length !== 2 * NONCE) return undefined;
  const expected = digest(authkey, CLIENT_LABEL, serverNonce);
  if (!timingSafeEqual(expected, answer.subarray(0, NONCE))) return undefined;
  return digest(authkey, SERVER_LABEL, answer.subarray(NONCE));
}

/** Client side: whether the server proved that it holds the key. */
export function clientCheck(authkey: Buffer, clientNonce: Buffer, reply: Buffer): boolean {
  return reply.length === NONCE && timingSafeEqual(reply, digest(authkey, SERVER_LABEL, clientNonce));
}

export function authError(): Error {
  return new ForkwiseError(
    'ERR_FORKWISE_MANAGER_AUTH',
    'forkwise manager: authentication failed (the manager refused the key, or the peer is not a manager that holds it)',
  );
}
