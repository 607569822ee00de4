// Producers and consumers on threads, with forkwise/threading:
//
//   npm run example:threads   (= node examples/threads-producer-consumer.mjs)
//
// 1. Three producer threads put numbered jobs into one bounded Queue (maxsize 8): a producer
//    that gets ahead waits in putSync until a consumer makes room.
// 2. Two consumer threads take jobs with getSync, add their results into a SharedArray
//    (shared memory, one slot per consumer: no lock needed) and mark each job done.
// 3. Clean shutdown, as in CPython: once the producers are joined, the main thread puts one
//    `null` per consumer, awaits queue.join() (every job handled) and joins the consumers.
//    Meanwhile its own event loop keeps running (a timer samples the queue's size).
//
// The targets are sent to the threads by their source: they read nothing from the
// module around them, and get everything they need as arguments (the queue and the
// SharedArray arrive as the same shared objects). Exits 0 when every check passed.

import { Thread, Queue, SharedArray } from 'forkwise/threading';

const PRODUCERS = 3;
const CONSUMERS = 2;
const JOBS = 2000; // per producer

let failures = 0;
function check(ok, what) {
  console.log(`   ${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures++;
}

function produce(queue, producer, jobs) {
  for (let n = 1; n <= jobs; n++) queue.putSync({ producer, n });
}

function consume(queue, id, sums, counts) {
  for (;;) {
    const job = queue.getSync();
    if (job === null) {
      queue.taskDone();
      return;
    }
    sums[id] += job.n * job.n; // the "work"
    counts[id] += 1;
    queue.taskDone();
  }
}

const queue = new Queue({ maxsize: 8 });
const sums = new SharedArray('float64', CONSUMERS, { lock: false });
const counts = new SharedArray('int32', CONSUMERS, { lock: false });

console.log(`1. ${PRODUCERS} producers and ${CONSUMERS} consumers share a Queue of maxsize ${queue.maxsize}`);
const started = performance.now();
const consumers = Array.from({ length: CONSUMERS }, (_, id) => new Thread({ target: consume, args: [queue, id, sums, counts], name: `consumer-${id}` }));
const producers = Array.from({ length: PRODUCERS }, (_, p) => new Thread({ target: produce, args: [queue, p, JOBS], name: `producer-${p}` }));
for (const thread of [...consumers, ...producers]) thread.start();

let ticks = 0;
let largest = 0;
const sampler = setInterval(() => {
  ticks++;
  largest = Math.max(largest, queue.qsize());
}, 5);

for (const producer of producers) await producer.join();
console.log('2. producers joined; one null per consumer tells them to stop');
for (let i = 0; i < CONSUMERS; i++) await queue.put(null);
await queue.join();
for (const consumer of consumers) await consumer.join();
clearInterval(sampler);
const elapsed = performance.now() - started;

console.log(`3. every job handled in ${elapsed.toFixed(0)} ms; per consumer: ${[...counts].join(', ')} jobs`);
let expected = 0;
for (let n = 1; n <= JOBS; n++) expected += n * n;
expected *= PRODUCERS;
check(sums.reduce((a, b) => a + b, 0) === expected, `the results add up to ${expected}`);
check(counts.reduce((a, b) => a + b, 0) === PRODUCERS * JOBS, `${PRODUCERS * JOBS} jobs, none lost or repeated`);
check(largest <= queue.maxsize, `the queue never held more than maxsize (largest seen: ${largest})`);
check(ticks > 0, `the main thread's timers kept running (${ticks} ticks)`);
check([...producers, ...consumers].every((t) => !t.isAlive() && t.error === undefined), 'every thread ended without an error');
check(queue.empty() && queue.unfinished() === 0, 'the queue is empty and nothing is unfinished');
queue.close();

console.log(failures === 0 ? 'all checks passed' : `${failures} check(s) failed`);
process.exitCode = failures === 0 ? 0 : 1;
