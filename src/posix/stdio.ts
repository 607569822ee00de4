/**
 * Writes out, blocking, what stdout and stderr still hold: first the requests queued in
 * libuv, then the chunks still buffered by the JavaScript stream. Used where the process is
 * about to end or be replaced without Node's shutdown (a forked child's exit, exec).
 */
import { native } from './native';

interface BufferedChunk {
  chunk: unknown;
  encoding: BufferEncoding | 'buffer';
}

export function flushStdio(): void {
  flushStream(process.stdout, 1);
  flushStream(process.stderr, 2);
}

function flushStream(stream: NodeJS.WriteStream, fd: number): void {
  if (stream.writableLength === 0) return;
  native.flushQueuedWrites(fd);
  // Chunks that the stream had not yet handed to libuv (it sends one request at a time).
  const state = (stream as unknown as { _writableState?: { buffered?: BufferedChunk[]; bufferedIndex?: number } })
    ._writableState;
  const buffered = state?.buffered ?? [];
  for (const { chunk, encoding } of buffered.slice(state?.bufferedIndex ?? 0)) {
    const bytes =
      typeof chunk === 'string'
        ? Buffer.from(chunk, encoding === 'buffer' ? 'utf8' : encoding)
        : Buffer.from(chunk as Uint8Array);
    native.writeAll(fd, bytes);
  }
}
