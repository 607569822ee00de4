// Producers and consumers in separate processes, with forkwise/multiprocessing:
//
//   npm run example:processes   (= node --single-threaded examples/processes-producer-consumer.mjs)
//
// 1. Three producer processes put numbered jobs into one bounded JoinableQueue (maxsize 16):
//    a producer that gets ahead waits in putSync until a consumer makes room.
// 2. Two consumer processes take jobs with getSync, send each result to the parent through a
//    second Queue and mark the job done.
// 3. Clean shutdown, as in CPython: once the producers are joined, the parent puts one `null`
//    per consumer, awaits jobs.join() (every job handled) and joins the consumers. All along
//    it reads the results as they come (`for await` over the results queue).
//
// The processes are forked: their targets are closures over this module (JOBS, the queues)
// and see the parent's state as it was at start(). Exits 0 when every check passed.

import { Process, JoinableQueue, Queue, activeChildren } from 'forkwise/multiprocessing';

const PRODUCERS = 3;
const CONSUMERS = 2;
const JOBS = 2000; // per producer

let failures = 0;
function check(ok, what) {
  console.log(`   ${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures++;
}

const jobs = new JoinableQueue({ maxsize: 16 });
const results = new Queue();

function produce(producer) {
  for (let n = 1; n <= JOBS; n++) jobs.putSync({ producer, n });
}

function consume(consumer) {
  for (;;) {
    const job = jobs.getSync();
    if (job === null) {
      jobs.taskDone();
      results.putSync(null); // tells the parent this consumer is through
      return;
    }
    results.putSync({ consumer, producer: job.producer, n: job.n, square: job.n * job.n });
    jobs.taskDone();
  }
}

console.log(`1. ${PRODUCERS} producer and ${CONSUMERS} consumer processes share a JoinableQueue of maxsize ${jobs.maxsize}`);
const started = performance.now();
const consumers = Array.from({ length: CONSUMERS }, (_, c) => new Process({ target: consume, args: [c], name: `consumer-${c}` }));
const producers = Array.from({ length: PRODUCERS }, (_, p) => new Process({ target: produce, args: [p], name: `producer-${p}` }));
for (const proc of [...consumers, ...producers]) await proc.start();

// The parent reads results while the others work; a consumer's `null` says it is through.
const seen = new Set();
let sum = 0;
const perConsumer = new Array(CONSUMERS).fill(0);
const reading = (async () => {
  let through = 0;
  for await (const result of results) {
    if (result === null) {
      if (++through === CONSUMERS) return;
      continue;
    }
    seen.add(`${result.producer}:${result.n}`);
    sum += result.square;
    perConsumer[result.consumer]++;
  }
})();

for (const producer of producers) await producer.join();
console.log(`2. producers joined (pids ${producers.map((p) => p.pid).join(', ')}); one null per consumer tells them to stop`);
for (let i = 0; i < CONSUMERS; i++) await jobs.put(null);
await jobs.join();
for (const consumer of consumers) await consumer.join();
await reading;
const elapsed = performance.now() - started;

console.log(`3. every job handled in ${elapsed.toFixed(0)} ms; per consumer: ${perConsumer.join(', ')} jobs`);
let expected = 0;
for (let n = 1; n <= JOBS; n++) expected += n * n;
expected *= PRODUCERS;
check(sum === expected, `the results add up to ${expected}`);
check(seen.size === PRODUCERS * JOBS && perConsumer.reduce((a, b) => a + b, 0) === PRODUCERS * JOBS, `${PRODUCERS * JOBS} jobs, none lost or repeated`);
check([...producers, ...consumers].every((p) => p.exitCode === 0), 'every process exited with code 0');
check(activeChildren().length === 0, 'no child process is left');
check(jobs.empty() && results.empty(), 'both queues are empty');
jobs.close();
results.close();

console.log(failures === 0 ? 'all checks passed' : `${failures} check(s) failed`);
process.exitCode = failures === 0 ? 0 : 1;
