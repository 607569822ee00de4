/**
 * The manager's side of its clients' Pipes (transport 'pipe'): one loop serves them all.
 *
 * - Each pass takes the requests that are there on every Pipe and answers them; when none
 *   is left it spins looking at all the Pipes at once (ring.ts's spin and its rules: a
 *   client that calls again at once is served without a wake-up on either side), and only
 *   then sleeps, with a watch per Pipe. Awaiting each Pipe on its own spun on the one that
 *   had just been answered while the others' requests waited: 4 blocking clients got
 *   2.5-3.0x CPython's round trips that way.
 * - A reply is written with `trySendBytes`; one that does not fit (a client that does not
 *   read what it asked for) goes with `sendBytesAsync`, and that client's next requests
 *   wait for it: it stalls only itself.
 * - The loop gives the event loop a turn at least every TURN_MS, so that sockets, new
 *   connections and the control connection are served while clients keep it busy.
 */
import type { Connection } from '../messaging/connection';
import { spin, SPIN_MS, SPIN_REACH } from '../messaging/ring';

const TURN_MS = 2;
/** Requests of one client answered in a row before the others' turn (pipelined calls). */
const IN_A_ROW = 16;

interface Client {
  readonly conn: Connection;
  /** Called at each request (the first proves the client attached). */
  readonly onRequest: () => void;
  /** Called once when the client is gone or sent something malformed. */
  readonly onEnd: () => void;
  cancelWait: (() => void) | undefined;
  replying: boolean;
}

export class PipeService {
  readonly #clients = new Set<Client>();
  readonly #answer: (body: Buffer) => Buffer | null;
  #serving = false;
  #spinWorthIt = true;
  #asleepSince = 0;
  #turnPending = false;

  constructor(answer: (body: Buffer) => Buffer | null) {
    this.#answer = answer;
  }

  /** Serves `conn`'s requests until it ends or `remove` is called; returns the remover. */
  add(conn: Connection, onRequest: () => void, onEnd: () => void): () => void {
    const client: Client = { conn, onRequest, onEnd, cancelWait: undefined, replying: false };
    this.#clients.add(client);
    this.#arm(client);
    return () => this.#remove(client);
  }

  #remove(client: Client): void {
    if (this.#clients.delete(client)) this.#disarm(client);
  }

  #end(client: Client): void {
    if (!this.#clients.has(client)) return;
    this.#remove(client);
    client.onEnd();
  }

  #arm(client: Client): void {
    if (client.cancelWait || client.replying || !this.#clients.has(client)) return;
    client.cancelWait = client.conn.whenReadable(() => {
      client.cancelWait = undefined;
      this.#woken();
    });
  }

  #disarm(client: Client): void {
    client.cancelWait?.();
    client.cancelWait = undefined;
  }

  #woken(): void {
    if (this.#serving || this.#turnPending) return;
    this.#spinWorthIt = performance.now() - this.#asleepSince < SPIN_MS * SPIN_REACH;
    this.#serve();
  }

  #serve(): void {
    this.#serving = true;
    const turnEnds = performance.now() + TURN_MS;
    let yieldTurn = false;
    try {
      for (;;) {
        let served = false;
        for (const client of this.#clients) if (this.#drain(client)) served = true;
        if (served) {
          this.#spinWorthIt = true;
          if (performance.now() < turnEnds) continue;
          yieldTurn = true;
          break;
        }
        if (!spin(() => this.#anyReady(), this.#spinWorthIt)) break;
      }
    } finally {
      this.#serving = false;
    }
    if (yieldTurn) {
      this.#turnPending = true;
      setImmediate(() => {
        this.#turnPending = false;
        this.#serve();
      });
      return;
    }
    this.#asleepSince = performance.now();
    for (const client of this.#clients) this.#arm(client);
  }

  #anyReady(): boolean {
    for (const client of this.#clients) if (!client.replying && client.conn.pollSync(0)) return true;
    return false;
  }

  // Answers what `client` has sent; true if it answered anything.
  #drain(client: Client): boolean {
    let served = false;
    for (let n = 0; n < IN_A_ROW && !client.replying; n++) {
      let body: Buffer | null;
      try {
        body = client.conn.tryRecvBytes();
      } catch {
        this.#end(client); // end of file: the client is gone
        return served;
      }
      if (!body) break;
      served = true;
      client.onRequest();
      const reply = this.#answer(body);
      if (!reply) {
        this.#end(client); // malformed
        return served;
      }
      if (!client.conn.trySendBytes(reply, 4)) this.#replyLater(client, reply);
    }
    return served;
  }

  #replyLater(client: Client, reply: Buffer): void {
    client.replying = true;
    this.#disarm(client);
    client.conn.sendBytesAsync(reply, 4).then(
      () => {
        client.replying = false;
        this.#arm(client);
        this.#woken();
      },
      () => this.#end(client),
    );
  }
}
