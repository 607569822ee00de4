/**
 * The Worker side of a `Thread`: take on the thread's identity, wait out a Timer's delay
 * (unless cancelled), run the target, leave the outcome on the port, mark the control word,
 * and end (a CPython thread ends when `run()` returns).
 */
import { workerData } from 'node:worker_threads';
import { loadTarget } from '../messaging/task';
import { becomeThread, CANCELLED, DONE, type ThreadData } from './thread';
import { failure, type Outcome } from './outcome';

const data = workerData as ThreadData;
becomeThread(data);

async function run(): Promise<void> {
  if (data.delay !== undefined) {
    // Blocks only this thread; cancel() stores 1 and wakes it.
    Atomics.wait(data.control, CANCELLED, 0, data.delay);
    if (Atomics.load(data.control, CANCELLED) === 1) return;
  }
  if (data.target === null) return;
  const fn = await loadTarget(data.target);
  // The serializer (and forkwise/sync with it) only when there are objects to attach; the
  // messaging layer and ordered_queue register the kinds of their own (Queue, Connection,
  // PriorityQueue, LifoQueue).
  let call = data.call;
  if (data.handles) {
    require('../messaging/index');
    require('./ordered_queue');
    call = (require('../messaging/serializer') as typeof import('../messaging/serializer')).fromHandles(call);
  }
  const [thisArg, args] = call as [unknown, unknown[]];
  await fn.apply(thisArg, args);
}

void run().then(
  () => finish({ ok: true }),
  (error: unknown) => finish(failure(error)),
);

function finish(outcome: Outcome): void {
  data.outcome.postMessage(outcome);
  Atomics.store(data.control, DONE, 1);
  Atomics.notify(data.control, DONE);
  process.exit(0);
}
