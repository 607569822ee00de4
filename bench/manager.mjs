// Manager dict round trips: `d.set(k, v)` and `d.get(k)` from 1 and from 4 client
// processes, for forkwise's Manager (the Promise forms, awaited one by one, and the …Sync
// forms), with the default transport (a shared-memory Pipe) and `transport: 'socket'`, against CPython's
// `multiprocessing.Manager().dict()`. Each client warms up, waits
// at a barrier, then does its share; the figure is the aggregate round trips per second
// (all clients' operations over the wall time from the barrier to the last client's end).
// Each contender runs in its own sub-process, one round per sub-process, rounds
// interleaved; the table shows medians and ratios.
//
// `--busy`: instead, 8 clients each do 1,000 increments of a dict entry under a managed
// Lock beside two processes that keep both cores busy, per transport and form (seconds):
// what spinning costs when no core is free.
//
//   node bench/manager.mjs [--json] [--rounds N] [--busy]
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import {
  addonProblem, check, killRunnerOnSignals, median, onPath, printSkipped, pythonVersion, ratio, round, runCommand, runnerFor,
  table, verdict,
} from './lib.mjs';

const require = createRequire(import.meta.url);
const self = fileURLToPath(import.meta.url);
const args = process.argv.slice(2);
const ROUNDS = Number(args[args.indexOf('--rounds') + 1]) || 3;
const OPS = 20_000; // operations (half set, half get) in all per round
const WARMUP = 1_000;
const TARGET = 3; // round trips per second at least 3x CPython's, for 1 and 4 clients

// ---------------------------------------------------------------------------------------
// Runners: each prints one JSON line { opsPerSecond: [n] }.

async function runForkwise(clients, mode, transport) {
  const { fork, waitpid } = require('../dist/index.js');
  const { Manager, Barrier } = require('../dist/multiprocessing/index.js');
  const manager = await Manager.start({ startMethod: 'fork', transport });
  const d = await manager.dict();
  const barrier = new Barrier(clients + 1);
  const share = OPS / clients / 2;
  const pids = [];
  for (let c = 0; c < clients; c++) {
    const pid = fork();
    if (pid === 0) {
      const key = `k${c}`;
      if (mode === 'sync') {
        for (let i = 0; i < WARMUP; i++) d.setSync(key, i), d.getSync(key);
        barrier.wait();
        for (let i = 0; i < share; i++) d.setSync(key, i), d.getSync(key);
      } else {
        for (let i = 0; i < WARMUP; i++) await d.set(key, i), await d.get(key);
        await barrier.waitAsync();
        for (let i = 0; i < share; i++) await d.set(key, i), await d.get(key);
      }
      process.exit(0);
    }
    pids.push(pid);
  }
  await barrier.waitAsync();
  const start = performance.now();
  for (const pid of pids) waitpid(pid);
  const seconds = (performance.now() - start) / 1000;
  await manager.shutdown();
  return { opsPerSecond: [OPS / seconds] };
}

// 8 clients x BUSY_INCREMENTS locked increments beside 2 busy-looping processes.
const BUSY_INCREMENTS = 1_000;
async function runBusy(mode, transport) {
  const { fork, waitpid, kill } = require('../dist/index.js');
  const { Manager } = require('../dist/multiprocessing/index.js');
  const manager = await Manager.start({ startMethod: 'fork', transport });
  const lock = await manager.Lock();
  const d = await manager.dict({ n: 0 });
  const busy = [];
  for (let i = 0; i < 2; i++) {
    const pid = fork();
    if (pid === 0) for (;;);
    busy.push(pid);
  }
  const start = performance.now();
  const pids = [];
  for (let c = 0; c < 8; c++) {
    const pid = fork();
    if (pid === 0) {
      for (let i = 0; i < BUSY_INCREMENTS; i++) {
        if (mode === 'sync') {
          lock.acquireSync();
          d.setSync('n', d.getSync('n') + 1);
          lock.releaseSync();
        } else {
          await lock.acquire();
          await d.set('n', (await d.get('n')) + 1);
          await lock.release();
        }
      }
      process.exit(0);
    }
    pids.push(pid);
  }
  for (const pid of pids) waitpid(pid);
  const seconds = (performance.now() - start) / 1000;
  for (const pid of busy) kill(pid, 'SIGKILL'), waitpid(pid);
  const n = await d.get('n');
  await manager.shutdown();
  if (n !== 8 * BUSY_INCREMENTS) throw new Error(`lost updates: ${n}`);
  return { seconds };
}

const PYTHON = String.raw`
import json, sys, time
import multiprocessing as mp

OPS, WARMUP, CLIENTS = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])

def client(d, barrier, c, share):
    key = 'k%d' % c
    for i in range(WARMUP):
        d[key] = i; d[key]
    barrier.wait()
    for i in range(share):
        d[key] = i; d[key]

def main():
    ctx = mp.get_context('fork')
    with ctx.Manager() as manager:
        d = manager.dict()
        barrier = ctx.Barrier(CLIENTS + 1)
        share = OPS // CLIENTS // 2
        ps = [ctx.Process(target=client, args=(d, barrier, c, share)) for c in range(CLIENTS)]
        for p in ps: p.start()
        barrier.wait()
        t = time.perf_counter()
        for p in ps: p.join()
        print(json.dumps({'opsPerSecond': [OPS / (time.perf_counter() - t)]}))

if __name__ == '__main__':
    main()
`;

const runners = {
  async1: () => runForkwise(1, 'async'),
  async4: () => runForkwise(4, 'async'),
  sync1: () => runForkwise(1, 'sync'),
  sync4: () => runForkwise(4, 'sync'),
  async1s: () => runForkwise(1, 'async', 'socket'),
  async4s: () => runForkwise(4, 'async', 'socket'),
  sync1s: () => runForkwise(1, 'sync', 'socket'),
  sync4s: () => runForkwise(4, 'sync', 'socket'),
  busySyncSocket: () => runBusy('sync', 'socket'),
  busyAsyncSocket: () => runBusy('async', 'socket'),
  busySyncPipe: () => runBusy('sync', 'pipe'),
  busyAsyncPipe: () => runBusy('async', 'pipe'),
};

async function orchestrateBusy({ json }) {
  killRunnerOnSignals();
  const problem = addonProblem((file) => `${file} is a sanitizer build; rebuild with npx node-gyp rebuild`);
  if (problem) throw new Error(problem);
  const contenders = [
    { name: 'busySyncSocket', label: "transport: 'socket', …Sync" },
    { name: 'busySyncPipe', label: "transport: 'pipe', …Sync" },
    { name: 'busyAsyncSocket', label: "transport: 'socket', await" },
    { name: 'busyAsyncPipe', label: "transport: 'pipe', await" },
  ];
  const results = {};
  for (let r = 0; r < ROUNDS; r++) {
    for (const c of contenders) {
      const out = await runCommand(process.execPath, ['--single-threaded', self, '--run', c.name]);
      (results[c.name] ??= []).push(out.seconds);
    }
  }
  const rows = contenders.map((c) => ({ name: c.name, label: c.label, seconds: round(median(results[c.name]), 2), rounds: results[c.name].map((v) => round(v, 2)) }));
  if (json) {
    console.log(JSON.stringify({ rounds: ROUNDS, increments: 8 * BUSY_INCREMENTS, rows }, null, 2));
    return;
  }
  console.log(`8 clients x ${BUSY_INCREMENTS} locked increments beside 2 busy processes, ${ROUNDS} rounds, medians`);
  console.log('');
  table(['contender', 'seconds', 'rounds'], rows.map((row) => [row.label, row.seconds.toFixed(2), row.rounds.join(', ')]));
}

// ---------------------------------------------------------------------------------------
// The orchestrator.

async function orchestrate({ json }) {
  killRunnerOnSignals();
  const problem = addonProblem((file) => `${file} is a sanitizer build; rebuild with npx node-gyp rebuild`);
  const contenders = [
    { name: 'async1', clients: 1, label: 'forkwise Manager, await d.set/get', node: true },
    { name: 'sync1', clients: 1, label: 'forkwise Manager, d.setSync/getSync', node: true },
    { name: 'async1s', clients: 1, label: "  transport: 'socket', await", node: true },
    { name: 'sync1s', clients: 1, label: "  transport: 'socket', …Sync", node: true },
    { name: 'py1', clients: 1, label: 'CPython Manager().dict()' },
    { name: 'async4', clients: 4, label: 'forkwise Manager, await d.set/get', node: true },
    { name: 'sync4', clients: 4, label: 'forkwise Manager, d.setSync/getSync', node: true },
    { name: 'async4s', clients: 4, label: "  transport: 'socket', await", node: true },
    { name: 'sync4s', clients: 4, label: "  transport: 'socket', …Sync", node: true },
    { name: 'py4', clients: 4, label: 'CPython Manager().dict()' },
  ];
  const hasPython = onPath('python3');
  const results = {};
  for (let r = 0; r < ROUNDS; r++) {
    for (const c of contenders) {
      if (c.node && problem) c.skipped = problem;
      if (!c.node && !hasPython) c.skipped = 'python3 is not on PATH';
      if (c.skipped) continue;
      try {
        const out = c.node
          ? await runCommand(process.execPath, ['--single-threaded', self, '--run', c.name])
          : await runCommand('python3', ['-c', PYTHON, String(OPS), String(WARMUP), String(c.clients)]);
        (results[c.name] ??= []).push(...out.opsPerSecond);
      } catch (error) {
        c.skipped = error.message;
      }
    }
  }
  const m = (name) => (results[name]?.length ? median(results[name]) : null);
  const summary = { rounds: ROUNDS, opsPerRound: OPS, python: hasPython ? pythonVersion() : null, rows: [], targets: {} };
  for (const c of contenders) {
    const py = m(`py${c.clients}`);
    summary.rows.push({
      name: c.name,
      label: c.label,
      clients: c.clients,
      opsPerSecond: round(m(c.name), 0),
      roundsOpsPerSecond: (results[c.name] ?? []).map((v) => round(v, 0)),
      vsPython: c.node ? round(ratio(m(c.name), py), 2) : null,
    });
  }
  for (const n of [1, 4]) {
    summary.targets[`async${n}`] = check(ratio(m(`async${n}`), m(`py${n}`)), '>=', TARGET);
    summary.targets[`sync${n}`] = check(ratio(m(`sync${n}`), m(`py${n}`)), '>=', TARGET);
  }
  if (json) {
    console.log(JSON.stringify(summary, null, 2));
    return;
  }
  console.log(`Manager dict round trips (set + get), ${OPS.toLocaleString('en')} per round, ${ROUNDS} rounds, medians`);
  if (summary.python) console.log(`CPython ${summary.python}`);
  console.log('');
  table(
    ['contender', 'clients', 'round trips/s', 'rounds min-max', 'µs each', 'vs CPython'],
    summary.rows.map((row) => [
      row.label,
      String(row.clients),
      row.opsPerSecond == null ? 'skipped' : row.opsPerSecond.toLocaleString('en'),
      row.roundsOpsPerSecond.length ? `${Math.min(...row.roundsOpsPerSecond)}-${Math.max(...row.roundsOpsPerSecond)}` : '',
      row.opsPerSecond == null ? '' : ((1e6 * row.clients) / row.opsPerSecond).toFixed(1),
      row.vsPython == null ? '' : `${row.vsPython.toFixed(2)}x`,
    ]),
  );
  console.log('');
  for (const [name, t] of Object.entries(summary.targets)) console.log(`target ${name} vs CPython ${t.target}x: ${verdict(t)}`);
  printSkipped(contenders);
}

if (args.includes('--run')) {
  const out = await runnerFor(runners, args)();
  console.log(JSON.stringify(out));
  process.exit(0);
} else if (args.includes('--busy')) {
  await orchestrateBusy({ json: args.includes('--json') });
} else {
  await orchestrate({ json: args.includes('--json') });
}
