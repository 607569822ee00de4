/**
 * The calling side of the fallback's service thread (service_main.ts): started on first
 * use, one per JavaScript thread, and never keeping the process alive by itself.
 *
 * - `call` answers with a Promise. While one with `keepAlive` is pending, the port is
 *   referenced, so an awaited `get()` or `join()` keeps the loop alive as it would on POSIX.
 * - `callSync` blocks the thread: the request goes out on the port, the answer comes back on
 *   a second port that nobody listens to, announced by a notify on a shared word.
 */
import { join } from 'node:path';
import { MessageChannel, receiveMessageOnPort, Worker, type MessagePort } from 'node:worker_threads';
import { ForkwiseError } from '../posix/errors';
import { EOFError, QueueEmpty, QueueFull, TimeoutError } from '../messaging/errors';
import { BrokenBarrierError } from '../sync/barrier';
import type { WireError } from './hub';
import type { Answer, Request } from './service_main';

type Fields<R> = R extends unknown ? Omit<R, 'rid' | 'sync'> : never;
export type RequestFields = Fields<Request>;

interface Pending {
  resolve(value: unknown): void;
  reject(error: Error): void;
  keepAlive: boolean;
}

/** The Error that a wire error stands for, of the class its code names. */
export function rebuildError(error: WireError): Error {
  switch (error.code) {
    case 'ERR_QUEUE_EMPTY':
      return new QueueEmpty(error.message);
    case 'ERR_QUEUE_FULL':
      return new QueueFull(error.message);
    case 'ERR_EOF':
      return new EOFError(error.message);
    case 'ERR_TIMEOUT':
      return new TimeoutError(error.message);
    case 'ERR_BARRIER_BROKEN':
      return new BrokenBarrierError();
    case 'ABORT_ERR': {
      const abort = new ForkwiseError(error.code, error.message);
      abort.name = 'AbortError';
      return abort;
    }
    default:
      return new ForkwiseError(error.code, error.message);
  }
}

class Service {
  readonly #worker: Worker;
  readonly #port: MessagePort;
  readonly #syncPort: MessagePort;
  readonly #signal = new Int32Array(new SharedArrayBuffer(4));
  readonly #pending = new Map<number, Pending>();
  #nextRid = 1;
  #holding = 0;

  constructor() {
    const channel = new MessageChannel();
    const syncChannel = new MessageChannel();
    this.#port = channel.port1;
    this.#syncPort = syncChannel.port1;
    this.#worker = new Worker(join(__dirname, 'service_main.js'), {
      workerData: { port: channel.port2, syncPort: syncChannel.port2, signal: this.#signal },
      transferList: [channel.port2, syncChannel.port2],
      // The service thread takes no part in this process's lifetime, nor in its options.
      execArgv: [],
    });
    this.#worker.unref();
    this.#port.on('message', (answer: Answer) => this.#settle(answer));
    this.#port.unref();
  }

  /** Sends `fields` and answers with the result; `keepAlive: false` for waits that must not hold the loop. */
  call(fields: RequestFields, keepAlive = true): Promise<unknown> {
    return this.start(fields, keepAlive).result;
  }

  /** `call`, with the request's id, by which a `cancel` request names it. */
  start(fields: RequestFields, keepAlive = true): { rid: number; result: Promise<unknown> } {
    const rid = this.#nextRid++;
    const result = new Promise((resolve, reject) => {
      this.#pending.set(rid, { resolve, reject, keepAlive });
      if (keepAlive && this.#holding++ === 0) this.#port.ref();
      this.#port.postMessage({ ...fields, rid, sync: false });
    });
    return { rid, result };
  }

  callSync(fields: RequestFields): unknown {
    const rid = this.#nextRid++;
    Atomics.store(this.#signal, 0, 0);
    this.#port.postMessage({ ...fields, rid, sync: true });
    for (;;) {
      Atomics.wait(this.#signal, 0, 0);
      const received = receiveMessageOnPort(this.#syncPort);
      if (!received) continue;
      const answer = received.message as Answer;
      if (answer.error) throw rebuildError(answer.error);
      return answer.value;
    }
  }

  async stop(): Promise<void> {
    this.#port.close();
    this.#syncPort.close();
    await this.#worker.terminate();
  }

  #settle(answer: Answer): void {
    const pending = this.#pending.get(answer.rid);
    if (!pending) return;
    this.#pending.delete(answer.rid);
    if (pending.keepAlive && --this.#holding === 0) this.#port.unref();
    if (answer.error) pending.reject(rebuildError(answer.error));
    else pending.resolve(answer.value);
  }
}

let service: Service | undefined;

/** This thread's service, started on first use. */
export function theService(): Service {
  service ??= new Service();
  return service;
}

/**
 * @internal Ends this thread's service thread (a test suite's last step, so that it leaves
 * no descriptor): the objects it kept are gone for every process, its children are ended.
 */
export async function stopService(): Promise<void> {
  const stopping = service;
  service = undefined;
  await stopping?.stop();
}
