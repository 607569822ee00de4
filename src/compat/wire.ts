/**
 * Frames between the service threads of two processes (service_main.ts): a 4-byte
 * little-endian length, then a message in V8's serialization (plain objects, numbers,
 * strings, Buffers: the user's values are already bytes). A client's first frame is the
 * hub's key; a peer that sends anything else, or a frame too large, is cut off.
 */
import { randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Socket } from 'node:net';
import { deserialize, serialize } from 'node:v8';

/** Large enough for a message of hundreds of MB; a length past it is a broken peer. */
export const MAX_FRAME = 2 ** 32 - 1;

export function writeFrame(socket: Socket, message: unknown): void {
  const body = serialize(message);
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32LE(body.length, 0);
  socket.write(head);
  socket.write(body);
}

/** Calls `onBody` with the body of each whole length-prefixed frame that arrives on `socket`. */
export function readBodies(socket: Socket, onBody: (body: Buffer) => void): void {
  let chunks: Buffer[] = [];
  let buffered = 0;
  let need = -1;
  socket.on('data', (chunk: Buffer) => {
    chunks.push(chunk);
    buffered += chunk.length;
    for (;;) {
      if (need < 0) {
        if (buffered < 4) return;
        const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
        need = all.readUInt32LE(0);
        chunks = [all.subarray(4)];
        buffered -= 4;
      }
      if (buffered < need) return;
      const all = chunks.length === 1 ? chunks[0]! : Buffer.concat(chunks);
      const body = all.subarray(0, need);
      chunks = [all.subarray(need)];
      buffered -= need;
      need = -1;
      onBody(body);
      if (socket.destroyed) return;
    }
  });
}

/** Calls `onFrame` with each whole message that arrives on `socket` (a peer sending garbage is cut off). */
export function readFrames(socket: Socket, onFrame: (message: unknown) => void): void {
  readBodies(socket, (body) => {
    let message: unknown;
    try {
      message = deserialize(body);
    } catch {
      socket.destroy();
      return;
    }
    onFrame(message);
  });
}

/**
 * A new, unguessable address for a hub: a named pipe on Windows, an abstract Unix socket on
 * Linux (no file to remove, even after a SIGKILL), a socket file in the temporary folder
 * elsewhere.
 */
export function newHubAddress(): string {
  const name = `forkwise-${process.pid}-${randomBytes(8).toString('hex')}`;
  if (process.platform === 'win32') return `\\\\.\\pipe\\${name}`;
  if (process.platform === 'linux') return `\0${name}`;
  return join(tmpdir(), `${name}.sock`);
}
