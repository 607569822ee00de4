// A preforking HTTP server: load once, then fork the workers, which share the listening
// socket and the loaded data copy-on-write. Compared with Node's `cluster`, whose workers are
// fresh processes that must each load the data themselves.
//
//   npm run example:prefork-server   (= node --single-threaded examples/prefork-server.mjs)
//   node --single-threaded examples/prefork-server.mjs [--mb 200] [--workers 2]
//                                                      [--requests 20000] [--seconds 5]
//
// For each way it prints: the start-up time, from starting the workers to the first request
// served (for cluster, that includes each worker loading the data); the workers' summed PSS
// (proportional set size, /proc/PID/smaps_rollup: shared pages are divided among the
// processes sharing them, so the sum is what the workers really cost; this process's own
// PSS is added after it, since here it holds its share of the data); and requests/s from a
// load generator on loopback (a child process with a keep-alive http.Agent, bounded by
// --requests and --seconds).
//
// 1. cluster: the primary forks N workers running this file with --cluster-worker; each loads
//    the data and listens; the primary hands out connections.
// 2. forkwise: this process loads the data, calls warmup() (a compacting collection, so the
//    data sits in few pages shared by every child), listens on 127.0.0.1 port 0, and starts
//    N `Process`es with the fork method: each child keeps the server it inherited and accepts
//    on the same socket; the parent closes its own copy.
// Every worker and the load generator are ended and reaped before the script exits (and the
// forked ones have a parent-death signal, should this process be killed).
//
// Exits 0 when both ways served correct answers from every worker, 1 otherwise.

import cluster from 'node:cluster';
import http from 'node:http';
import { spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { once } from 'node:events';
import { setTimeout as sleep } from 'node:timers/promises';
import * as forkwise from 'forkwise';
import { Process } from 'forkwise/multiprocessing';

const self = fileURLToPath(import.meta.url);

function option(name, fallback) {
  const at = process.argv.indexOf(name);
  if (at < 0) return fallback;
  const value = Number(process.argv[at + 1]);
  if (!Number.isFinite(value) || value <= 0) {
    console.error(`${name} wants a positive number, got ${process.argv[at + 1]}`);
    process.exit(2);
  }
  return value;
}

// The preloaded state: records as a parsed file or a database dump would give them, built
// until the JS heap has grown by about `mb` megabytes.
function loadData(mb) {
  const base = process.memoryUsage().heapUsed;
  const records = [];
  while (process.memoryUsage().heapUsed - base < mb * 1e6) {
    for (let n = 0; n < 10_000; n++) {
      const id = records.length;
      records.push({ id, name: `user-${id}`, score: (id * 7919) % 1000, tags: [`t${id % 17}`, `g${id % 5}`] });
    }
  }
  return records;
}

// One request: the record whose id is in the path, and who served it.
function handler(records) {
  return (req, res) => {
    const id = Number(req.url.slice(1)) || 0;
    const record = records[id % records.length];
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ pid: process.pid, record }));
  };
}

// --- the load generator (a child process) ------------------------------------------------
if (process.argv[2] === '--load') {
  const [port, count, seconds, concurrency] = process.argv.slice(3).map(Number);
  // Its stdin is a pipe from the parent: end-of-file means the parent is gone, so stop.
  process.stdin.on('end', () => process.exit(1)).resume();
  const agent = new http.Agent({ keepAlive: true, maxSockets: concurrency });
  const deadline = performance.now() + seconds * 1000;
  const byPid = {};
  let done = 0;
  let errors = 0;
  let wrong = 0;
  let issued = 0;
  const get = (id) =>
    new Promise((resolve) => {
      const req = http.get({ host: '127.0.0.1', port, path: `/${id}`, agent }, (res) => {
        let body = '';
        res.setEncoding('utf8').on('data', (d) => (body += d));
        res.on('end', () => {
          const { pid, record } = JSON.parse(body);
          byPid[pid] = (byPid[pid] ?? 0) + 1;
          if (record.name !== `user-${record.id}`) wrong++;
          resolve();
        });
      });
      req.on('error', () => {
        errors++;
        resolve();
      });
    });
  const started = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (issued < count && performance.now() < deadline) {
        await get(issued++ * 7);
        done++;
      }
    }),
  );
  const ms = performance.now() - started;
  agent.destroy();
  console.log(JSON.stringify({ done, errors, wrong, ms, byPid }));
  process.exit(0);
}

// --- a cluster worker ---------------------------------------------------------------------
if (process.argv[2] === '--cluster-worker') {
  const records = loadData(Number(process.argv[3]));
  http.createServer(handler(records)).listen(0, '127.0.0.1');
}

// --- the comparison (the primary) ---------------------------------------------------------
else if (cluster.isPrimary) {
  const MB = option('--mb', 200);
  const WORKERS = Math.round(option('--workers', 2));
  const REQUESTS = Math.round(option('--requests', 20_000));
  const SECONDS = option('--seconds', 5);

  if (!forkwise.isForkSafe()) forkwise.reexecSingleThreaded(); // the fork method wants it

  let failures = 0;
  const check = (ok, what) => {
    console.log(`   ${ok ? 'ok  ' : 'FAIL'} ${what}`);
    if (!ok) failures++;
  };

  const pss = (pid) => Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))[1]) * 1024;
  const rss = (pid) => Number(/^Rss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))[1]) * 1024;
  const mib = (bytes) => `${(bytes / 2 ** 20).toFixed(0)} MiB`;

  // Asks until a request is answered (connection refused while nobody listens yet).
  async function firstResponse(port) {
    for (;;) {
      try {
        const res = await new Promise((resolve, reject) => {
          const req = http.get({ host: '127.0.0.1', port, path: '/1', agent: false }, resolve);
          req.on('error', reject);
        });
        res.resume();
        await once(res, 'end');
        if (res.statusCode === 200) return;
      } catch {
        await sleep(5);
      }
    }
  }

  async function load(port) {
    const child = spawn(process.execPath, [self, '--load', port, REQUESTS, SECONDS, 32], {
      stdio: ['pipe', 'pipe', 'inherit'], // stdin: see --load
      timeout: (SECONDS + 30) * 1000, // SIGTERM if it overruns, whatever happens
    });
    let out = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    const [code] = await once(child, 'close');
    if (code !== 0) throw new Error(`the load generator exited with ${code}`);
    return JSON.parse(out);
  }

  async function measure(label, port, pids, startMs) {
    const loadResult = await load(port);
    const perSecond = (loadResult.done / loadResult.ms) * 1000;
    const served = Object.keys(loadResult.byPid).map(Number);
    const sumPss = pids.reduce((a, pid) => a + pss(pid), 0);
    const sumRss = pids.reduce((a, pid) => a + rss(pid), 0);
    console.log(`   start-up to the first request: ${startMs.toFixed(0)} ms`);
    console.log(`   workers' PSS summed: ${mib(sumPss)} (RSS summed: ${mib(sumRss)}); with this process's PSS: ${mib(sumPss + pss(process.pid))}`);
    console.log(`   ${loadResult.done} requests in ${loadResult.ms.toFixed(0)} ms: ${perSecond.toFixed(0)} requests/s`);
    check(loadResult.errors === 0 && loadResult.wrong === 0 && loadResult.done > 0, `${label}: every answer correct (${loadResult.errors} errors)`);
    check(served.every((pid) => pids.includes(pid)) && served.length === pids.length, `${label}: all ${pids.length} workers served (${served.map((p) => loadResult.byPid[p]).join(' + ')})`);
    return { startMs, sumPss, perSecond };
  }

  console.log(`1. cluster: ${WORKERS} workers, each loading ~${MB} MB`);
  cluster.setupPrimary({ exec: self, args: ['--cluster-worker', String(MB)], silent: false });
  const workers = [];
  try {
    let listening = 0;
    let allListening;
    const allUp = new Promise((resolve) => (allListening = resolve));
    cluster.on('listening', () => ++listening === WORKERS && allListening());
    const t0 = performance.now();
    for (let i = 0; i < WORKERS; i++) workers.push(cluster.fork());
    const [, address] = await once(cluster, 'listening');
    await firstResponse(address.port);
    const startMs = performance.now() - t0;
    await allUp; // every worker serves before the load starts
    await measure('cluster', address.port, workers.map((w) => w.process.pid), startMs);
  } finally {
    for (const w of workers) {
      if (w.process.exitCode === null && w.process.signalCode === null) {
        const gone = once(w, 'exit');
        w.process.kill('SIGTERM');
        await gone;
      }
    }
  }

  console.log(`2. forkwise: one load of ~${MB} MB, then ${WORKERS} forked workers`);
  let t = performance.now();
  const records = loadData(MB);
  console.log(`   loaded ${records.length.toLocaleString('en')} records in ${(performance.now() - t).toFixed(0)} ms`);
  if (typeof forkwise.warmup === 'function') {
    t = performance.now();
    forkwise.warmup();
    console.log(`   warmup() in ${(performance.now() - t).toFixed(0)} ms`);
  }
  const server = http.createServer(handler(records));
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  const { port } = server.address();
  const procs = [];
  try {
    const t0 = performance.now();
    for (let i = 0; i < WORKERS; i++) {
      // The child keeps the server it inherited; the never-settling target keeps it serving
      // until it is terminated. daemon: it gets SIGTERM should this process exit first.
      const p = new Process({ target: () => new Promise(() => {}), daemon: true });
      procs.push(p);
      await p.start();
    }
    server.close(); // this process's copy of the socket; the workers keep theirs
    await firstResponse(port);
    const startMs = performance.now() - t0;
    await measure('forkwise', port, procs.map((p) => p.pid), startMs);
  } finally {
    server.close();
    for (const p of procs) {
      if (p.pid === undefined) continue;
      p.terminate();
      await p.join(5_000);
      if (p.exitCode === null) {
        p.kill();
        await p.join();
      }
    }
  }

  console.log(failures === 0 ? 'all checks passed' : `${failures} check(s) FAILED`);
  process.exitCode = failures === 0 ? 0 : 1;
}
