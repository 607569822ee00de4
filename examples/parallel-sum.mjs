// CPU parallelism over a warmed-up state, with forkwise/sync:
//
//   npm run example:parallel-sum   (= node --single-threaded examples/parallel-sum.mjs)
//
// 1. The parent builds a big array once; forked workers read it in place (copy-on-write,
//    nothing serialized) and each sums its share.
// 2. They add their results into a shared Value under a Mutex, all start together behind a
//    Barrier, and the parent waits for them with waitAsync while its timers keep running.
// 3. A worker is killed (SIGKILL) while it holds the Mutex: the parent's next acquire gets
//    the lock with `recovered`, repairs the total and marks the lock consistent.
//
// Exits 0 when every result matched what the parent expected, 1 otherwise.

import { fork, kill, waitpid, _exit } from 'forkwise';
import { cpuCount } from 'forkwise/multiprocessing';
import { Barrier, Event, Mutex, Value } from 'forkwise/sync';

let failures = 0;
function check(ok, what) {
  console.log(`   ${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures++;
}

const N = 4_000_000;
const data = Array.from({ length: N }, (_, i) => i % 1000); // the warmed-up state
const expected = data.reduce((a, b) => a + b, 0);
const workers = Math.max(2, cpuCount());

console.log(`1. ${workers} forked workers sum ${N.toLocaleString('en')} numbers built before the fork`);
const lock = new Mutex();
const total = new Value('float64', 0, { lock: false });
const start = new Barrier(workers + 1);
const finished = new Event();
const done = new Value('int32', 0, { lock: false });

const pids = [];
for (let w = 0; w < workers; w++) {
  const pid = fork();
  if (pid === 0) {
    start.wait(10_000); // everyone starts together
    let sum = 0;
    for (let i = w; i < N; i += workers) sum += data[i];
    lock.acquire();
    total.value += sum;
    done.value += 1;
    if (done.value === workers) finished.set();
    lock.release();
    _exit(0);
  }
  pids.push(pid);
}

start.wait(10_000);
let ticks = 0;
const timer = setInterval(() => ticks++, 1);
const allDone = await finished.waitAsync(30_000); // the loop keeps running meanwhile
clearInterval(timer);
const statuses = pids.map((pid) => waitpid(pid));
check(allDone, 'the last worker set the Event');
check(statuses.every((s) => s.kind === 'exited' && s.exitCode === 0), 'every worker exited 0');
check(total.value === expected, `the shared total is ${total.value} (expected ${expected})`);
console.log(`   (the parent's timer ticked ${ticks} times while it waited)`);

console.log('2. a worker dies holding the lock');
const holding = new Event();
const victim = fork();
if (victim === 0) {
  lock.acquire();
  total.value = -1; // half-way through an update...
  holding.set();
  setInterval(() => {}, 1000); // ...and killed before it finishes
} else {
  holding.wait(10_000);
  kill(victim, 'SIGKILL');
  waitpid(victim);
  const taken = await lock.acquireAsync({ timeout: 5_000 });
  check(taken && lock.recovered, 'the next acquire gets the lock, marked recovered');
  total.value = expected; // repair what the dead holder left
  lock.markConsistent();
  lock.release();
  check(lock.acquire({ timeout: 1_000 }) && !lock.recovered, 'after markConsistent() the lock is a normal lock again');
  lock.release();
  check(total.value === expected, 'the repaired total is back');

  console.log(failures === 0 ? 'all checks passed' : `${failures} check(s) FAILED`);
  process.exitCode = failures === 0 ? 0 : 1;
}
