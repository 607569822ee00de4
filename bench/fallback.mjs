// What the platform fallback costs (the Windows code path, taken here with
// FORKWISE_FORCE_FALLBACK=1) beside forkwise's shared-memory path and child_process IPC, in
// the same run: a Process's start+join ('spawn' for both forkwise paths), a queue's
// putSync+getSync in one process, and a 1 KB object's round trip to an echoing child. Each
// contender runs in its own sub-process, three rounds (one sub-process each, interleaved);
// the table shows medians.
//
//   node bench/fallback.mjs [--rounds N]
import { fork as cpFork } from 'node:child_process';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
import { killRunnerOnSignals, median, runCommand, runnerFor, table } from './lib.mjs';

const require = createRequire(import.meta.url);
const self = fileURLToPath(import.meta.url);
const args = process.argv.slice(2);
const ROUNDS = Number(args[args.indexOf('--rounds') + 1]) || 3;
const STARTS = 10;
const QUEUE_OPS = 5_000;
const ROUND_TRIPS = 2_000;
const message = { i: 0, s: 'x'.repeat(1000) };

const perOp = (startMs, n) => ((performance.now() - startMs) * 1000) / n; // µs

// forkwise, whichever path this process takes (the variable is read at load).
async function forkwise() {
  const { Process, Queue, Pipe } = require('../dist/multiprocessing/index.js');
  let t = performance.now();
  for (let i = 0; i < STARTS; i++) {
    const p = new Process({ target: () => 0, startMethod: 'spawn' });
    await p.start();
    await p.join();
  }
  const start = (performance.now() - t) / STARTS; // ms
  const q = new Queue();
  for (let i = 0; i < 200; i++) { q.putSync(i); q.getSync(); }
  t = performance.now();
  for (let i = 0; i < QUEUE_OPS; i++) { q.putSync(i); q.getSync(); }
  const queue = perOp(t, QUEUE_OPS);
  const [mine, theirs] = Pipe();
  const echo = new Process({
    target: (conn) => {
      for (;;) {
        let m;
        try { m = conn.recvSync(); } catch { return; }
        conn.send(m);
      }
    },
    args: [theirs],
    startMethod: 'spawn',
  });
  await echo.start();
  theirs.close();
  for (let i = 0; i < 100; i++) { mine.send(message); mine.recvSync(); }
  t = performance.now();
  for (let i = 0; i < ROUND_TRIPS; i++) { mine.send(message); mine.recvSync(); }
  const roundTrip = perOp(t, ROUND_TRIPS);
  mine.close();
  await echo.join();
  return { start, queue, roundTrip };
}

// child_process.fork with its IPC channel ('advanced' serialization, as the fallback uses).
async function childProcess() {
  if (process.argv.includes('--echo')) {
    process.on('message', (m) => process.send(m));
    return undefined;
  }
  const spawnOne = () => cpFork(self, ['--run', 'childProcess', '--echo'], { serialization: 'advanced', stdio: 'ignore' });
  let t = performance.now();
  for (let i = 0; i < STARTS; i++) {
    const child = spawnOne();
    await new Promise((resolve) => child.once('spawn', resolve));
    child.disconnect();
    await new Promise((resolve) => child.once('exit', resolve));
  }
  const start = (performance.now() - t) / STARTS;
  const child = spawnOne();
  const next = () => new Promise((resolve) => child.once('message', resolve));
  for (let i = 0; i < 100; i++) { child.send(message); await next(); }
  t = performance.now();
  for (let i = 0; i < ROUND_TRIPS; i++) { child.send(message); await next(); }
  const roundTrip = perOp(t, ROUND_TRIPS);
  child.disconnect();
  return { start, queue: null, roundTrip };
}

const runners = { forkwise, childProcess };

if (args.includes('--run')) {
  const result = await runnerFor(runners, args)();
  if (result) console.log(JSON.stringify(result));
} else {
  killRunnerOnSignals();
  const contenders = [
    { name: 'forkwise, shared memory (spawn)', command: [process.execPath, self, '--run', 'forkwise'] },
    { name: 'forkwise, platform fallback', command: ['env', 'FORKWISE_FORCE_FALLBACK=1', process.execPath, self, '--run', 'forkwise'] },
    { name: 'child_process.fork + IPC (await)', command: [process.execPath, self, '--run', 'childProcess'] },
  ];
  const results = contenders.map(() => []);
  for (let r = 0; r < ROUNDS; r++) {
    for (const [i, c] of contenders.entries()) results[i].push(await runCommand(c.command[0], c.command.slice(1)));
  }
  const med = (i, key) => {
    const values = results[i].map((x) => x[key]).filter((v) => v != null);
    return values.length ? median(values) : null;
  };
  const cell = (v, digits) => (v == null ? 'n/a' : v.toFixed(digits));
  console.log(`Platform fallback, medians of ${ROUNDS} rounds (Node ${process.version}, ${process.platform})\n`);
  table(
    ['contender', 'start+join ms', 'queue put+get µs', '1 KB round trip µs'],
    contenders.map((c, i) => [c.name, cell(med(i, 'start'), 1), cell(med(i, 'queue'), 1), cell(med(i, 'roundTrip'), 1)]),
  );
  const ratio = (a, b) => (a != null && b != null ? (a / b).toFixed(1) : 'n/a');
  console.log(
    `\nfallback / shared memory: start ${ratio(med(1, 'start'), med(0, 'start'))}x, queue ${ratio(med(1, 'queue'), med(0, 'queue'))}x, ` +
      `round trip ${ratio(med(1, 'roundTrip'), med(0, 'roundTrip'))}x; fallback round trip / child_process IPC ${ratio(med(1, 'roundTrip'), med(2, 'roundTrip'))}x`,
  );
}
