// The three costs behind how fork() handles V8's MADV_DONTFORK regions, measured with the
// parent holding ~100 MB of JS heap (run with node --single-threaded):
//  1. reading /proc/self/smaps (the only place the marks can be read) against
//     /proc/self/maps (what fork() reads every time to know whether smaps must be re-read);
//  2. fork() in a row, and fork() after the heap has grown (a new V8 page must trigger a
//     rescan: a missed region would crash the child);
//  3. the synchronous part of child_process.spawn (where libuv forks) with Node's marks in
//     place, against right after a fork() in the same turn, while the marks are lifted.
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { fork, _exit, waitpid, isForkSafe } from 'forkwise';

if (!isForkSafe()) {
  console.error('run with: node --single-threaded bench/heap-marks.mjs');
  process.exit(2);
}
const addon = createRequire(import.meta.url)('node-gyp-build')(fileURLToPath(new URL('..', import.meta.url)));

const now = () => Number(process.hrtime.bigint()) / 1e6;
const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
const turn = () => new Promise((resolve) => setImmediate(resolve));
function time(n, fn) {
  const times = [];
  for (let i = 0; i < n; i++) {
    const start = now();
    fn();
    times.push(now() - start);
  }
  return median(times);
}
function forkAndReap() {
  const pid = fork();
  if (pid === 0) _exit(0);
  waitpid(pid);
}

const heap = [];
for (let i = 0; heap.length < 1_000_000; i++) heap.push({ i, s: `item-${i}` });
const rssMb = (process.memoryUsage().rss / 1e6).toFixed(0);
console.log(`parent: ${(process.memoryUsage().heapUsed / 1e6).toFixed(0)} MB heap, ${rssMb} MB RSS`);

const smapsMs = time(15, () => readFileSync('/proc/self/smaps'));
const mapsMs = time(15, () => readFileSync('/proc/self/maps'));
console.log(`read /proc/self/smaps: ${smapsMs.toFixed(3)} ms   read /proc/self/maps: ${mapsMs.toFixed(3)} ms`);

forkAndReap();
await turn();
let scans = addon.forkStats().smapsScans;
const inARow = time(30, forkAndReap);
const scansInARow = addon.forkStats().smapsScans - scans;
await turn();

scans = addon.forkStats().smapsScans;
const grown = [];
const afterGrowth = time(15, () => {
  for (let i = 0; i < 100_000; i++) grown.push({ i }); // new V8 pages
  forkAndReap();
});
const scansAfterGrowth = addon.forkStats().smapsScans - scans;
console.log(`fork+exit+reap in a row: ${inARow.toFixed(3)} ms (${scansInARow} smaps scans in 30 forks)`);
console.log(`fork+exit+reap after the heap grew: ${afterGrowth.toFixed(3)} ms (${scansAfterGrowth} smaps scans in 15 forks)`);
await turn();

async function spawnSyncPart(afterFork) {
  const times = [];
  for (let i = 0; i < 15; i++) {
    if (afterFork) forkAndReap(); // leaves the marks lifted until the next turn
    const start = now();
    const child = spawn('/bin/true');
    times.push(now() - start);
    await new Promise((resolve) => child.on('close', resolve));
    await turn();
  }
  return median(times);
}
const marked = await spawnSyncPart(false);
const lifted = await spawnSyncPart(true);
console.log(`child_process.spawn (synchronous part): ${marked.toFixed(3)} ms with Node's marks, ` +
  `${lifted.toFixed(3)} ms with the marks lifted (${(lifted / marked).toFixed(1)}x)`);
