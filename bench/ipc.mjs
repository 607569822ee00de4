// Messaging between processes: 1 KB messages ({ i, s: 1000 characters }), one way (100,000
// per round) and round trip (5,000 per round), for forkwise's Connection and Queue against
// child_process IPC (json and advanced serialization), a worker_threads MessagePort and
// CPython's multiprocessing Pipe and Queue. Each contender runs in its own sub-process, three
// rounds (one sub-process each, interleaved, each sub-process making an unmeasured round
// first); the table shows medians (µs per message, or per round trip) and ratios. One more scenario times the event loop's wake-up: the peer
// works 300 µs before each answer, with the loop waiting through io_uring or a thread.
//
//   node bench/ipc.mjs [--json] [--rounds N]
import { fork as cpFork } from 'node:child_process';
import { Worker } from 'node:worker_threads';
import { fileURLToPath } from 'node:url';
import { createRequire } from 'node:module';
import {
  addonProblem, check, killRunnerOnSignals, median, onPath, printSkipped, ratio, round, runCommand, runnerFor, table,
  verdict,
} from './lib.mjs';

const require = createRequire(import.meta.url);
const self = fileURLToPath(import.meta.url);
const args = process.argv.slice(2);
const ROUNDS = Number(args[args.indexOf('--rounds') + 1]) || 3;
// Each runner process first makes an unmeasured round, as do CPython's: V8 compiles the
// messaging code (reader's, and the sender's that forked children inherit) over the first
// tens of thousands of messages. A process's first round of 1 KB objects one way took
// 1.50-1.65 µs a message with recvSync, its second 1.26-1.55.
const WARM_ROUNDS = 1;
const RUNNER_ROUNDS = ROUNDS + WARM_ROUNDS;
const ONE_WAY = 100_000;
const ROUND_TRIPS = 5_000;
const message = (i) => ({ i, s: 'x'.repeat(1000) });

const TARGETS = {
  oneWayOverChildProcess: 5, // forkwise Connection one way at least 5x child_process IPC
  oneWayOverPythonPipe: 3, // and 3x CPython's Pipe
  syncRoundTripShareOfPython: 1 / 3, // both sides blocking: at most a third of CPython's
  asyncRoundTripShareOfPython: 1, // parent awaiting recv(): no slower than CPython's
};

// ---------------------------------------------------------------------------------------
// Runners: each prints one JSON line { oneWay: [µs per message], roundTrip: [µs], ... }.

const us = (startMs, n) => ((performance.now() - startMs) * 1000) / n;

async function forkwise() {
  const { fork, waitpid } = require('../dist/index.js');
  const mp = require('../dist/multiprocessing/index.js');
  return { fork, waitpid, mp };
}

// Runs `child()` in a forked child (ends with exit code 0), `parent()` here; reaps.
async function forked(fw, child, parent) {
  const pid = fw.fork();
  if (pid === 0) {
    await child();
    process.exit(0);
  }
  const value = await parent();
  fw.waitpid(pid);
  return value;
}

async function runConnection() {
  const fw = await forkwise();
  const out = { oneWay: [], oneWayAsync: [], roundTrip: [], roundTripAsync: [] };
  for (let r = 0; r < RUNNER_ROUNDS; r++) {
    for (const mode of ['sync', 'async']) {
      const [a, b] = fw.mp.Pipe();
      out[mode === 'sync' ? 'oneWay' : 'oneWayAsync'].push(
        await forked(
          fw,
          () => {
            a.close();
            b.recvSync();
            for (let i = 0; i < ONE_WAY; i++) b.send(message(i));
          },
          async () => {
            b.close();
            a.send('go');
            const start = performance.now();
            if (mode === 'sync') for (let i = 0; i < ONE_WAY; i++) a.recvSync();
            else for (let i = 0; i < ONE_WAY; i++) await a.recv();
            const t = us(start, ONE_WAY);
            a.close();
            return t;
          },
        ),
      );
      const [c, d] = fw.mp.Pipe();
      out[mode === 'sync' ? 'roundTrip' : 'roundTripAsync'].push(
        await forked(
          fw,
          () => {
            c.close();
            for (let i = 0; i < ROUND_TRIPS; i++) d.send(d.recvSync());
          },
          async () => {
            d.close();
            const m = message(0);
            const start = performance.now();
            if (mode === 'sync') for (let i = 0; i < ROUND_TRIPS; i++) { c.send(m); c.recvSync(); }
            else for (let i = 0; i < ROUND_TRIPS; i++) { c.send(m); await c.recv(); }
            const t = us(start, ROUND_TRIPS);
            c.close();
            return t;
          },
        ),
      );
    }
  }
  return out;
}

// The event loop's wake-up: the parent awaits recv() while the forked peer works 300 µs
// before it echoes (longer than any spin, so the loop sleeps each time); µs per round trip
// beyond the work. `--futex thread` makes the loop wait through a watcher thread instead of
// io_uring (watch.ts).
const SLOW_WORK_MS = 0.3;
const SLOW_ROUND_TRIPS = 1_000;
async function runConnectionSlowPeer() {
  if (args.includes('--futex') && args[args.indexOf('--futex') + 1] === 'thread') process.env.FORKWISE_FUTEX_THREAD = '1';
  const fw = await forkwise();
  const out = { roundTripAsync: [] };
  for (let r = 0; r < RUNNER_ROUNDS; r++) {
    const [c, d] = fw.mp.Pipe();
    out.roundTripAsync.push(
      await forked(
        fw,
        () => {
          c.close();
          for (let i = 0; i < SLOW_ROUND_TRIPS; i++) {
            const m = d.recvSync();
            const until = performance.now() + SLOW_WORK_MS;
            while (performance.now() < until);
            d.send(m);
          }
        },
        async () => {
          d.close();
          const m = message(0);
          const start = performance.now();
          for (let i = 0; i < SLOW_ROUND_TRIPS; i++) { c.send(m); await c.recv(); }
          const t = us(start, SLOW_ROUND_TRIPS) - SLOW_WORK_MS * 1000;
          c.close();
          return t;
        },
      ),
    );
  }
  return out;
}

// The transport alone: 1 KB of raw bytes (sendBytes / recvBytesSync), no structured clone.
async function runConnectionBytes() {
  const fw = await forkwise();
  const out = { oneWay: [], roundTrip: [] };
  const bytes = Buffer.alloc(1024, 7);
  for (let r = 0; r < RUNNER_ROUNDS; r++) {
    const [a, b] = fw.mp.Pipe();
    out.oneWay.push(
      await forked(
        fw,
        () => {
          a.close();
          b.recvBytesSync();
          for (let i = 0; i < ONE_WAY; i++) b.sendBytes(bytes);
        },
        async () => {
          b.close();
          a.sendBytes(bytes);
          const start = performance.now();
          for (let i = 0; i < ONE_WAY; i++) a.recvBytesSync();
          const t = us(start, ONE_WAY);
          a.close();
          return t;
        },
      ),
    );
    const [c, d] = fw.mp.Pipe();
    out.roundTrip.push(
      await forked(
        fw,
        () => {
          c.close();
          for (let i = 0; i < ROUND_TRIPS; i++) d.sendBytes(d.recvBytesSync());
        },
        async () => {
          d.close();
          const start = performance.now();
          for (let i = 0; i < ROUND_TRIPS; i++) { c.sendBytes(bytes); c.recvBytesSync(); }
          const t = us(start, ROUND_TRIPS);
          c.close();
          return t;
        },
      ),
    );
  }
  return out;
}

async function runQueue() {
  const fw = await forkwise();
  const out = { oneWay: [], oneWayAsync: [], roundTrip: [], roundTripAsync: [] };
  for (let r = 0; r < RUNNER_ROUNDS; r++) {
    for (const mode of ['sync', 'async']) {
      const q = new fw.mp.Queue();
      const go = new fw.mp.Queue();
      out[mode === 'sync' ? 'oneWay' : 'oneWayAsync'].push(
        await forked(
          fw,
          () => {
            go.getSync();
            for (let i = 0; i < ONE_WAY; i++) q.putSync(message(i));
          },
          async () => {
            go.putSync('go');
            const start = performance.now();
            if (mode === 'sync') for (let i = 0; i < ONE_WAY; i++) q.getSync();
            else for (let i = 0; i < ONE_WAY; i++) await q.get();
            return us(start, ONE_WAY);
          },
        ),
      );
      const there = new fw.mp.Queue();
      const back = new fw.mp.Queue();
      out[mode === 'sync' ? 'roundTrip' : 'roundTripAsync'].push(
        await forked(
          fw,
          () => {
            for (let i = 0; i < ROUND_TRIPS; i++) back.putSync(there.getSync());
          },
          async () => {
            const m = message(0);
            const start = performance.now();
            if (mode === 'sync') for (let i = 0; i < ROUND_TRIPS; i++) { there.putSync(m); back.getSync(); }
            else for (let i = 0; i < ROUND_TRIPS; i++) { await there.put(m); await back.get(); }
            return us(start, ROUND_TRIPS);
          },
        ),
      );
      for (const x of [q, go, there, back]) x.close();
    }
  }
  return out;
}

// 4 forked producers, 4 forked consumers, one queue: wall time per message.
async function runQueue4x4() {
  const fw = await forkwise();
  const out = { oneWay: [] };
  for (let r = 0; r < RUNNER_ROUNDS; r++) {
    const q = new fw.mp.Queue({ maxsize: 10_000 });
    const start = new fw.mp.Event();
    const pids = [];
    for (let p = 0; p < 4; p++) {
      const pid = fw.fork();
      if (pid === 0) {
        start.wait();
        for (let i = p; i < ONE_WAY; i += 4) q.putSync(message(i));
        process.exit(0);
      }
      pids.push(pid);
    }
    for (let c = 0; c < 4; c++) {
      const pid = fw.fork();
      if (pid === 0) {
        start.wait();
        while (q.getSync() !== null);
        process.exit(0);
      }
      pids.push(pid);
    }
    const t0 = performance.now();
    start.set();
    for (const pid of pids.slice(0, 4)) fw.waitpid(pid);
    for (let c = 0; c < 4; c++) q.putSync(null);
    for (const pid of pids.slice(4)) fw.waitpid(pid);
    out.oneWay.push(us(t0, ONE_WAY));
    q.close();
  }
  return out;
}

async function runChildProcess(serialization) {
  const out = { oneWay: [], roundTrip: [] };
  for (let r = 0; r < RUNNER_ROUNDS; r++) {
    const child = cpFork(self, ['--child-process-peer'], { serialization, stdio: 'ignore' });
    await new Promise((resolve) => child.once('message', resolve)); // ready
    let got = 0;
    let start = performance.now();
    await new Promise((resolve) => {
      child.on('message', function onMessage() {
        if (++got === ONE_WAY) {
          child.off('message', onMessage);
          resolve();
        }
      });
      start = performance.now();
      child.send({ cmd: 'oneWay', n: ONE_WAY });
    });
    out.oneWay.push(us(start, ONE_WAY));
    const m = message(0);
    start = performance.now();
    for (let i = 0; i < ROUND_TRIPS; i++) {
      const reply = new Promise((resolve) => child.once('message', resolve));
      child.send({ cmd: 'echo', m });
      await reply;
    }
    out.roundTrip.push(us(start, ROUND_TRIPS));
    child.kill();
    await new Promise((resolve) => child.once('exit', resolve));
  }
  return out;
}

function childProcessPeer() {
  process.on('message', (msg) => {
    if (msg.cmd === 'oneWay') for (let i = 0; i < msg.n; i++) process.send(message(i));
    else process.send(msg.m);
  });
  process.send('ready');
}

async function runWorkerPort() {
  const out = { oneWay: [], roundTrip: [] };
  const code = `
    const { parentPort } = require('node:worker_threads');
    const message = (i) => ({ i, s: 'x'.repeat(1000) });
    parentPort.on('message', (msg) => {
      if (msg.cmd === 'oneWay') for (let i = 0; i < msg.n; i++) parentPort.postMessage(message(i));
      else parentPort.postMessage(msg.m);
    });`;
  for (let r = 0; r < RUNNER_ROUNDS; r++) {
    const worker = new Worker(code, { eval: true });
    let got = 0;
    let start = 0;
    await new Promise((resolve) => {
      worker.on('message', function onMessage() {
        if (++got === ONE_WAY) {
          worker.off('message', onMessage);
          resolve();
        }
      });
      start = performance.now();
      worker.postMessage({ cmd: 'oneWay', n: ONE_WAY });
    });
    out.oneWay.push(us(start, ONE_WAY));
    const m = message(0);
    start = performance.now();
    for (let i = 0; i < ROUND_TRIPS; i++) {
      const reply = new Promise((resolve) => worker.once('message', resolve));
      worker.postMessage({ cmd: 'echo', m });
      await reply;
    }
    out.roundTrip.push(us(start, ROUND_TRIPS));
    await worker.terminate();
  }
  return out;
}

const PYTHON = String.raw`
import json, sys, time
import multiprocessing as mp

ONE_WAY, ROUND_TRIPS, ROUNDS = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
def message(i): return {'i': i, 's': 'x' * 1000}

def pipe_sender(conn, n):
    conn.recv()
    for i in range(n): conn.send(message(i))

def pipe_echo(conn, n):
    for _ in range(n): conn.send(conn.recv())

def queue_sender(q, go, n):
    go.get()
    for i in range(n): q.put(message(i))

def queue_echo(there, back, n):
    for _ in range(n): back.put(there.get())

def main():
    ctx = mp.get_context('fork')
    out = {'pipe': {'oneWay': [], 'roundTrip': []}, 'queue': {'oneWay': [], 'roundTrip': []}}
    for _ in range(ROUNDS):
        a, b = ctx.Pipe()
        p = ctx.Process(target=pipe_sender, args=(b, ONE_WAY)); p.start()
        a.send('go'); t = time.perf_counter()
        for _ in range(ONE_WAY): a.recv()
        out['pipe']['oneWay'].append((time.perf_counter() - t) * 1e6 / ONE_WAY); p.join()
        a, b = ctx.Pipe()
        p = ctx.Process(target=pipe_echo, args=(b, ROUND_TRIPS)); p.start()
        m = message(0); t = time.perf_counter()
        for _ in range(ROUND_TRIPS): a.send(m); a.recv()
        out['pipe']['roundTrip'].append((time.perf_counter() - t) * 1e6 / ROUND_TRIPS); p.join()
        q, go = ctx.Queue(), ctx.Queue()
        p = ctx.Process(target=queue_sender, args=(q, go, ONE_WAY)); p.start()
        go.put('go'); t = time.perf_counter()
        for _ in range(ONE_WAY): q.get()
        out['queue']['oneWay'].append((time.perf_counter() - t) * 1e6 / ONE_WAY); p.join()
        there, back = ctx.Queue(), ctx.Queue()
        p = ctx.Process(target=queue_echo, args=(there, back, ROUND_TRIPS)); p.start()
        t = time.perf_counter()
        for _ in range(ROUND_TRIPS): there.put(m); back.get()
        out['queue']['roundTrip'].append((time.perf_counter() - t) * 1e6 / ROUND_TRIPS); p.join()
    print(json.dumps(out))

if __name__ == '__main__':
    main()
`;

// A runner's figures without its warm-up rounds.
function measured(out) {
  return Object.fromEntries(Object.entries(out).map(([field, values]) => [field, values.slice(WARM_ROUNDS)]));
}

const runners = {
  connection: runConnection,
  connectionBytes: runConnectionBytes,
  connectionSlowPeer: runConnectionSlowPeer,
  queue: runQueue,
  queue4x4: runQueue4x4,
  cpJson: () => runChildProcess('json'),
  cpAdvanced: () => runChildProcess('advanced'),
  worker: runWorkerPort,
};

// ---------------------------------------------------------------------------------------
// The orchestrator.

async function orchestrate({ json }) {
  killRunnerOnSignals();
  const problem = addonProblem((file) => `${file} is a sanitizer build; rebuild with npx node-gyp rebuild`);
  const contenders = [
    { name: 'connection', label: 'forkwise Connection (fork)', node: true },
    { name: 'connectionBytes', label: 'forkwise Connection, raw bytes (fork)', node: true },
    { name: 'connectionSlowPeer', label: 'forkwise Connection, peer works 300 µs, io_uring (fork)', node: true },
    { name: 'connectionSlowPeerThread', label: 'forkwise Connection, peer works 300 µs, thread (fork)', node: true, run: 'connectionSlowPeer', extra: ['--futex', 'thread'] },
    { name: 'queue', label: 'forkwise Queue 1P/1C (fork)', node: true },
    { name: 'queue4x4', label: 'forkwise Queue 4P/4C (fork)', node: true },
    { name: 'cpJson', label: "child_process IPC 'json'" },
    { name: 'cpAdvanced', label: "child_process IPC 'advanced'" },
    { name: 'worker', label: 'worker_threads MessagePort' },
  ];
  // One round per sub-process, contenders interleaved round by round: a load that comes and
  // goes on the machine spreads over all of them.
  const results = {};
  const merge = (name, out) => {
    results[name] ??= {};
    for (const [field, values] of Object.entries(out)) (results[name][field] ??= []).push(...values);
  };
  const python = { name: 'python', label: 'CPython multiprocessing Pipe / Queue (fork)' };
  if (!onPath('python3')) python.skipped = 'python3 is not on PATH';
  for (let r = 0; r < ROUNDS; r++) {
    for (const c of contenders) {
      if (c.node && problem) c.skipped = problem;
      if (c.skipped) continue;
      try {
        const argv = ['--single-threaded', self, '--run', c.run ?? c.name, '--rounds', '1', ...(c.extra ?? [])];
        merge(c.name, await runCommand(process.execPath, argv));
      } catch (error) {
        c.skipped = error.message;
      }
    }
    if (python.skipped) continue;
    try {
      const out = await runCommand('python3', ['-c', PYTHON, String(ONE_WAY), String(ROUND_TRIPS), String(1 + WARM_ROUNDS)]);
      merge('pyPipe', measured(out.pipe));
      merge('pyQueue', measured(out.queue));
    } catch (error) {
      python.skipped = error.message;
    }
  }
  const m = (name, field) => (results[name]?.[field]?.length ? median(results[name][field]) : null);
  const rows = [
    ['forkwise Connection, recvSync', m('connection', 'oneWay'), m('connection', 'roundTrip')],
    ['forkwise Connection, await recv()', m('connection', 'oneWayAsync'), m('connection', 'roundTripAsync')],
    ['forkwise Connection, raw 1 KB bytes, sync', m('connectionBytes', 'oneWay'), m('connectionBytes', 'roundTrip')],
    ['forkwise Connection, await recv(), slow peer *', null, m('connectionSlowPeer', 'roundTripAsync')],
    ['  the same, loop woken by a thread *', null, m('connectionSlowPeerThread', 'roundTripAsync')],
    ['forkwise Queue 1P/1C, getSync', m('queue', 'oneWay'), m('queue', 'roundTrip')],
    ['forkwise Queue 1P/1C, await get()', m('queue', 'oneWayAsync'), m('queue', 'roundTripAsync')],
    ['forkwise Queue 4P/4C (wall time)', m('queue4x4', 'oneWay'), null],
    ["child_process IPC 'json'", m('cpJson', 'oneWay'), m('cpJson', 'roundTrip')],
    ["child_process IPC 'advanced'", m('cpAdvanced', 'oneWay'), m('cpAdvanced', 'roundTrip')],
    ['worker_threads MessagePort', m('worker', 'oneWay'), m('worker', 'roundTrip')],
    ['CPython mp.Pipe', m('pyPipe', 'oneWay'), m('pyPipe', 'roundTrip')],
    ['CPython mp.Queue', m('pyQueue', 'oneWay'), m('pyQueue', 'roundTrip')],
  ];
  const bestCp = Math.min(...[m('cpJson', 'oneWay'), m('cpAdvanced', 'oneWay')].filter((x) => x != null));
  const ratios = {
    oneWayOverChildProcess: ratio(Number.isFinite(bestCp) ? bestCp : null, m('connection', 'oneWay')),
    oneWayAsyncOverChildProcess: ratio(Number.isFinite(bestCp) ? bestCp : null, m('connection', 'oneWayAsync')),
    oneWayOverPythonPipe: ratio(m('pyPipe', 'oneWay'), m('connection', 'oneWay')),
    queueOneWayOverPythonQueue: ratio(m('pyQueue', 'oneWay'), m('queue', 'oneWay')),
    syncRoundTripShareOfPython: ratio(m('connection', 'roundTrip'), m('pyPipe', 'roundTrip')),
    asyncRoundTripShareOfPython: ratio(m('connection', 'roundTripAsync'), m('pyPipe', 'roundTrip')),
  };
  const targets = {
    oneWayOverChildProcess: check(ratios.oneWayOverChildProcess, '>=', TARGETS.oneWayOverChildProcess),
    oneWayOverPythonPipe: check(ratios.oneWayOverPythonPipe, '>=', TARGETS.oneWayOverPythonPipe),
    syncRoundTripShareOfPython: check(ratios.syncRoundTripShareOfPython, '<=', round(TARGETS.syncRoundTripShareOfPython, 3)),
    asyncRoundTripShareOfPython: check(ratios.asyncRoundTripShareOfPython, '<=', TARGETS.asyncRoundTripShareOfPython),
  };
  if (json) {
    console.log(JSON.stringify({ results, ratios, targets }, null, 2));
    return;
  }
  const cell = (v) => (v == null ? 'n/a' : v.toFixed(2));
  console.log(
    `1 KB messages, medians of ${ROUNDS} rounds (each after one unmeasured in the same process): ` +
      `one way over ${ONE_WAY} messages, round trip over ${ROUND_TRIPS}\n`,
  );
  table(['contender', 'one way µs/msg', 'round trip µs'], rows.map(([label, a, b]) => [label, cell(a), cell(b)]));
  console.log(`* the peer works ${SLOW_WORK_MS * 1000} µs before each answer: the round trip beyond that work, over ${SLOW_ROUND_TRIPS}`);
  console.log('');
  for (const [key, value] of Object.entries(ratios)) {
    const t = targets[key];
    console.log(`${key}: ${value == null ? 'n/a' : value.toFixed(2)}${t ? `  (target ${t.target}: ${verdict(t)})` : ''}`);
  }
  printSkipped([...contenders, python]);
}

if (args.includes('--child-process-peer')) {
  childProcessPeer();
} else if (args.includes('--run')) {
  const run = runnerFor(runners, args);
  console.log(JSON.stringify(measured(await run())));
  process.exit(0);
} else {
  await orchestrate({ json: args.includes('--json') });
}
