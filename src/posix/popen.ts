/** `popen`, as CPython's `os.popen`: a shell command's stdout or stdin as a Node stream. */
import { Socket } from 'node:net';
import { invalidArgValue } from './errors';
import { close, pipe } from './fd';
import { posixSpawn } from './spawn';
import { waitpidAsync } from './wait';
import { validateCString } from './validate';

/**
 * The stream of {@link popen}: readable (the command's stdout) for mode `'r'`, writable (its
 * stdin) for mode `'w'`. It is a `net.Socket` over the pipe, so reading and writing never
 * block the event loop whatever the command's output size, and the descriptor is closed
 * once, when the stream is destroyed.
 */
export class PopenFile extends Socket {
  /** The pid of the shell running the command. */
  readonly pid: number;
  readonly #mode: 'r' | 'w';
  #closing: Promise<number | null> | undefined;

  /** @internal */
  constructor(fd: number, mode: 'r' | 'w', pid: number) {
    super({ fd, readable: mode === 'r', writable: mode === 'w' });
    this.pid = pid;
    this.#mode = mode;
  }

  /**
   * Ends the stream (mode `'w'`: after what was written has reached the pipe, so that the
   * command then reads end-of-file; mode `'r'`: at once, unread output is dropped), waits for
   * the command without blocking the event loop and reaps it. Resolves `null` if it exited
   * with 0, else the raw wait status (`exit 3` gives 768, a death by SIGTERM 15): decode it
   * with the W* helpers. CPython agrees for exits; for a signal death it returns
   * `-signo << 8` (-3840), which its own documentation does not describe, and the raw
   * status keeps the same meaning as system()'s. Rejects with the stream's error
   * (such as EPIPE when the command stopped reading) after the command has been reaped.
   * Calling it again returns the same promise. Call it once done: until then the command,
   * once it ends, stays a zombie.
   */
  close(): Promise<number | null> {
    this.#closing ??= this.#close();
    return this.#closing;
  }

  async #close(): Promise<number | null> {
    let failure: unknown;
    const onError = (error: unknown): void => {
      failure ??= error;
    };
    this.on('error', onError);
    try {
      if (!this.closed) {
        // Not events.once: it rejects on 'error', and the child must be reaped anyway.
        const closed = new Promise((resolve) => this.once('close', resolve));
        if (this.#mode === 'w') this.end();
        else this.destroy();
        await closed;
      }
    } finally {
      this.off('error', onError);
    }
    const { status } = await waitpidAsync(this.pid);
    if (failure !== undefined) throw failure;
    return status === 0 ? null : status;
  }
}

/**
 * Runs `/bin/sh -c command` with its stdout (`mode` `'r'`) or its stdin (`'w'`) on a pipe to
 * the returned stream, as CPython's `os.popen`; its other descriptors 0-2 are this process's.
 * Call {@link PopenFile.close} when done: it reaps the command and gives its status.
 * Nothing else of this process is inherited (the pipe ends are close-on-exec).
 *
 * @example
 * import { popen } from 'forkwise';
 * const ls = popen('ls /tmp');
 * let out = '';
 * for await (const chunk of ls) out += chunk;
 * await ls.close(); // null: exit status 0
 *
 * const sort = popen('sort > /tmp/sorted.txt', 'w');
 * sort.write('b\na\n');
 * await sort.close(); // null
 */
export function popen(command: string, mode: 'r' | 'w' = 'r'): PopenFile {
  validateCString(command, 'command');
  if (mode !== 'r' && mode !== 'w') throw invalidArgValue('mode', mode, "must be 'r' or 'w'");
  const [readFd, writeFd] = pipe();
  const [mine, theirs] = mode === 'r' ? [readFd, writeFd] : [writeFd, readFd];
  let pid: number;
  try {
    pid = posixSpawn('/bin/sh', ['sh', '-c', command], undefined, {
      fileActions: [['dup2', theirs, mode === 'r' ? 1 : 0]],
    });
  } catch (error) {
    close(mine);
    throw error;
  } finally {
    close(theirs);
  }
  return new PopenFile(mine, mode, pid);
}
