/**
 * The errors of the messaging layer, named as CPython names them: `EOFError` (a closed or
 * dead peer), `QueueEmpty` / `QueueFull` (`queue.Empty` / `queue.Full`, also what a timed
 * out `get` / `put` throws, as in CPython).
 */
import { ForkwiseError } from '../posix/errors';

/** The other end of a Connection is closed or its holders are dead, and nothing is left to read. */
export class EOFError extends ForkwiseError {
  constructor(message = 'The other end of the connection is closed') {
    super('ERR_EOF', message);
    this.name = 'EOFError';
  }
}

/** `getNowait()` on an empty queue, or a `get` whose timeout passed. */
export class QueueEmpty extends ForkwiseError {
  constructor(message = 'The queue is empty') {
    super('ERR_QUEUE_EMPTY', message);
    this.name = 'QueueEmpty';
  }
}

/** `putNowait()` on a full queue, or a `put` whose timeout passed. */
export class QueueFull extends ForkwiseError {
  constructor(message = 'The queue is full') {
    super('ERR_QUEUE_FULL', message);
    this.name = 'QueueFull';
  }
}

/** A method of a Connection or queue that this thread closed. */
export function closedError(what: string): ForkwiseError {
  return new ForkwiseError('ERR_FORKWISE_CLOSED', `This ${what} is closed`);
}

/** `recvSync(timeout)` / `pollSync` found nothing within the timeout. */
export class TimeoutError extends ForkwiseError {
  constructor(message: string) {
    super('ERR_TIMEOUT', message);
    this.name = 'TimeoutError';
  }
}
