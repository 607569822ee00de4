/**
 * Length-prefixed frames of serialized values over a stream (the forkserver's socket):
 * a 32-bit little-endian length, then the bytes of `serialize`.
 */
import type { Socket } from 'node:net';
import { deserialize, serialize } from '../messaging/serializer';

export function writeFrame(socket: Socket, message: unknown): void {
  const body = serialize(message, 'message');
  const head = Buffer.allocUnsafe(4);
  head.writeUInt32LE(body.length);
  socket.write(Buffer.concat([head, body]));
}

/** Cuts a byte stream into the messages it carries. */
export class FrameReader {
  #buffered: Buffer = Buffer.alloc(0);

  push(chunk: Buffer): unknown[] {
    this.#buffered = this.#buffered.length === 0 ? chunk : Buffer.concat([this.#buffered, chunk]);
    const messages: unknown[] = [];
    while (this.#buffered.length >= 4) {
      const length = this.#buffered.readUInt32LE(0);
      if (this.#buffered.length < 4 + length) break;
      messages.push(deserialize(this.#buffered.subarray(4, 4 + length)));
      this.#buffered = this.#buffered.subarray(4 + length);
    }
    return messages;
  }
}
