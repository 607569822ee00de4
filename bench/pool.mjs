// What a task costs in a pool: forkwise/multiprocessing's Pool (fork, forkserver) and
// ThreadPool against piscina, workerpool and tinypool (worker_threads) and CPython's
// multiprocessing.Pool and ThreadPool, in four scenarios run side by side:
//
//   tiny       TINY tasks x => x + 1, one task per message (chunksize 1; the Node peers have
//              no chunking, so one run() or exec() per item) and with automatic chunking (map)
//   cpu        CPU_TASKS tasks of ~1 ms of CPU each (a busy loop), against the ideal: the
//              same loop's time run serially in the runner, divided by the workers. The
//              pool's first such map, then CPU_WARM_MAPS more unmeasured, then the one that
//              counts: the steady state, once V8 has compiled the pool's code
//   dataset    a map over a 1e6-object dataset built in the parent, read with imap: time to
//              the first result and to the last. forkwise fork workers inherit the data; the
//              peers' workers (and forkserver's, which share nothing with the parent) must
//              build it, each, before their first task (so do ThreadPool's threads). Then
//              again on the same pool
//   memory     during the dataset map, once every result is in and the workers idle: the
//              summed PSS (/proc/PID/smaps_rollup) of the runner and all its descendants,
//              against one process holding the dataset
//
//   node bench/pool.mjs           table
//   node bench/pool.mjs --json    summary as JSON
//   node bench/pool.mjs --full    100,000 tiny tasks (not a quarter), one pass
//   node bench/pool.mjs --quick   2,500 tiny and 200 1-ms tasks, one pass: a smoke test
//
// As in process.mjs, the orchestrator starts one sub-process per contender, scenario and
// pass, and reads one line of JSON from its stdout; a figure is the median over the passes.
import { readdirSync, readFileSync } from 'node:fs';
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import {
  addonProblem, check, killRunnerOnSignals, mb, median, now, onPath, printSkipped, ratio,
  round, runCommand, runnerFor, table, verdict, writeCache,
  pythonVersion,
} from './lib.mjs';

const args = process.argv.slice(2);
const QUICK = args.includes('--quick');
const FULL = args.includes('--full') && !QUICK;
const SCALE_ARGS = QUICK ? ['--quick'] : FULL ? ['--full'] : [];
const PARTS = ['tiny', 'cpu', 'dataset'];
const WORKERS = 2; // the tiny and cpu scenarios: one per core of the development machine
const DATASET_WORKERS = 4;
// The target counts are --full's; by default the tiny tasks are a quarter of them, so that a
// run of all contenders stays near 3 minutes on the 2-core development machine.
const TINY = QUICK ? 2_500 : FULL ? 100_000 : 25_000;
const CPU_TASKS = QUICK ? 200 : 2_000;
const SERIAL_TASKS = 100; // run in the runner itself to time one task
// V8 compiles a pool's code (the parent's and each worker's) over its first few thousand
// tasks: ~100 ms of CPU within forkwise's first map of 2,000 (--trace-opt; the compiler
// runs on the main thread under --single-threaded), some still in the second.
const CPU_WARM_MAPS = QUICK ? 0 : 2;
const DATASET = 1_000_000;
const SLICE = 5_000; // objects a dataset task reads: DATASET / SLICE tasks
const PASSES = QUICK || FULL ? 1 : 2;
const SPIN_MS = 1; // CPU per task of the cpu scenario

const CONTENDERS = [
  { name: 'fw_fork', label: 'forkwise Pool, fork', method: 'fork', flags: ['--single-threaded'] },
  { name: 'fw_forkserver', label: 'forkwise Pool, forkserver', method: 'forkserver', flags: [] },
  { name: 'fw_thread', label: 'forkwise ThreadPool', method: 'thread', flags: [] },
  { name: 'piscina', label: 'piscina', flags: [] },
  { name: 'workerpool', label: 'workerpool', flags: [] },
  { name: 'tinypool', label: 'tinypool', flags: [] },
  { name: 'python', label: 'CPython Pool, fork', python: true },
  { name: 'python_thread', label: 'CPython ThreadPool', python: 'thread' },
];

// ---------------------------------------------------------------------------------------
// The work, the same in every Node contender. Self-contained functions: forkserver workers
// and the peers' worker modules get them by their source.

const inc = (x) => x + 1;
const spin = (n) => {
  let x = 0;
  for (let i = 0; i < n; i++) x = (x + i * 7) % 1000003;
  return x;
};
const buildDataset = (n) => Array.from({ length: n }, (_, i) => ({ i, s: `item-${i}`, v: i * 1.5 }));
const sumSlice = (data, k, size) => {
  let sum = 0;
  for (let i = k * size; i < (k + 1) * size; i++) sum += data[i].v + data[i].s.length;
  return sum;
};

// Loop iterations that take SPIN_MS of CPU here: the orchestrator finds them once and hands
// them to every runner, so that all do the same work.
function calibrateSpin() {
  let n = 100_000;
  for (;;) {
    const start = process.cpuUsage();
    spin(n);
    const { user, system } = process.cpuUsage(start);
    const used = (user + system) / 1000;
    if (used > 50) return Math.round((n * SPIN_MS) / used);
    n *= 2;
  }
}

// Summed PSS of this process and all its descendants (workers, a forkserver), in bytes.
function treePss(pid = process.pid) {
  let total = 0;
  try {
    total += Number(/^Pss:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8'))[1]) * 1024;
    for (const tid of readdirSync(`/proc/${pid}/task`)) {
      for (const child of readFileSync(`/proc/${pid}/task/${tid}/children`, 'utf8').split(' ')) {
        if (child.trim()) total += treePss(Number(child));
      }
    }
  } catch {} // the process ended meanwhile
  return total;
}

const timed = async (fn) => {
  const start = now();
  await fn();
  return now() - start;
};

// The cpu scenario's ideal: SERIAL_TASKS loops timed here, scaled to CPU_TASKS over WORKERS.
function idealCpuMs(spinN) {
  const start = now();
  for (let i = 0; i < SERIAL_TASKS; i++) spin(spinN);
  return ((now() - start) / SERIAL_TASKS) * CPU_TASKS / WORKERS;
}

// Runs the dataset scenario given a pool's imap over the slice numbers, twice: first on a
// pool that imap makes (its time included), then again on the same pool, its workers up and
// knowing the function. Times to the first result and to the last, and the tree's PSS once
// all are in (the workers still alive).
async function datasetRun(imap) {
  const keys = Array.from({ length: DATASET / SLICE }, (_, k) => k);
  const once = async () => {
    const start = now();
    let firstMs;
    let sum = 0;
    for await (const r of imap(keys)) {
      firstMs ??= now() - start;
      sum += r;
    }
    return { firstMs, allMs: now() - start, sum };
  };
  const cold = await once();
  const pss = treePss();
  const warm = await once();
  if (warm.sum !== cold.sum) throw new Error(`dataset sums differ: ${cold.sum}, ${warm.sum}`);
  return { ...cold, pss, warmFirstMs: warm.firstMs, warmAllMs: warm.allMs };
}

// ---------------------------------------------------------------------------------------
// forkwise runners.

// `part`: 'tiny', 'cpu' or 'dataset', each in a fresh runner.
async function runForkwise(method, part, spinN) {
  const { Pool, ThreadPool, stopForkserver } = await import('forkwise/multiprocessing');
  const makePool = (options) => (method === 'thread' ? new ThreadPool(options) : new Pool({ ...options, startMethod: method }));
  const result = {};
  let pool;
  try {
    if (part === 'dataset') return await forkwiseDataset(makePool, method);
    pool = makePool({ processes: WORKERS });
    // Warm-up: a worker forked before a function was first handed to the pool is replaced by
    // one that knows it, on its first task of that function.
    const warm = (fn, arg) => pool.map(fn, Array.from({ length: 8 * WORKERS }, () => arg), { chunksize: 1 });
    if (part === 'tiny') {
      const items = Array.from({ length: TINY }, (_, i) => i);
      await warm(inc, 0);
      result.tinyOneMs = await timed(() => pool.map(inc, items, { chunksize: 1 }));
      result.tinyAutoMs = await timed(() => pool.map(inc, items));
    } else {
      await warm(spin, spinN);
      const spins = Array.from({ length: CPU_TASKS }, () => spinN);
      const cpuMap = () => pool.map(spin, spins, { chunksize: 1 });
      result.cpuFirstMs = await timed(cpuMap);
      for (let i = 0; i < CPU_WARM_MAPS; i++) await cpuMap();
      result.cpuMs = await timed(cpuMap);
      result.idealCpuMs = idealCpuMs(spinN);
    }
    return result;
  } finally {
    pool?.close();
    await pool?.join();
    await stopForkserver();
  }
}

// fork workers read the parent's dataset; forkserver workers and threads build their own in
// an initializer (they share nothing with this process), as the peers' do.
async function forkwiseDataset(makePool, method) {
  const data = buildDataset(DATASET);
  const onePss = treePss(); // one process holding the dataset
  let pool;
  let task;
  const imap = (keys) => {
    if (method === 'fork') {
      pool ??= makePool({ processes: DATASET_WORKERS });
      task ??= (k) => sumSlice(data, k, SLICE);
    } else {
      const setup = `globalThis.data = (${buildDataset})(${DATASET}); globalThis.sumSliceOf = ${sumSlice};`;
      pool ??= makePool({ processes: DATASET_WORKERS, initializer: new Function(setup) });
      task ??= new Function('k', `return globalThis.sumSliceOf(globalThis.data, k, ${SLICE});`);
    }
    return pool.imap(task, keys, { chunksize: 1 });
  };
  try {
    return { onePss, ...(await datasetRun(imap)), objects: data.length };
  } finally {
    pool?.close();
    await pool?.join();
  }
}

// ---------------------------------------------------------------------------------------
// The peers: worker_threads pools over a worker module written to bench/.cache/. With
// DATASET set in workerData, a worker builds the dataset when it loads.

const WORKER_SOURCE = (kind) => `
import { workerData } from 'node:worker_threads';
${kind === 'workerpool' ? "import workerpool from 'workerpool';" : ''}
const buildDataset = ${buildDataset};
const sumSliceOf = ${sumSlice};
// tinypool hands a worker [its own data, the pool's workerData].
const dataset = (Array.isArray(workerData) ? workerData[1] : workerData)?.dataset;
const data = dataset ? buildDataset(dataset) : null;
export const inc = ${inc};
export const spin = ${spin};
export const sumSlice = (k) => sumSliceOf(data, k, ${SLICE});
${kind === 'workerpool' ? 'workerpool.worker({ inc, spin, sumSlice });' : 'export default inc;'}
`;

// Each peer as { open(dataset) -> pool, run(pool, name, arg) -> promise, close(pool) }.
const PEERS = {
  piscina: async () => {
    const { Piscina } = await import('piscina');
    const filename = writeCache('pool-worker-piscina.mjs', WORKER_SOURCE('piscina'));
    return {
      open: (threads, dataset) =>
        new Piscina({ filename, minThreads: threads, maxThreads: threads, workerData: { dataset } }),
      run: (pool, name, arg) => pool.run(arg, { name }),
      close: (pool) => pool.destroy(),
    };
  },
  tinypool: async () => {
    const { Tinypool } = await import('tinypool');
    const filename = writeCache('pool-worker-tinypool.mjs', WORKER_SOURCE('tinypool'));
    return {
      open: (threads, dataset) =>
        new Tinypool({ filename, minThreads: threads, maxThreads: threads, workerData: { dataset } }),
      run: (pool, name, arg) => pool.run(arg, { name }),
      close: (pool) => pool.destroy(),
    };
  },
  workerpool: async () => {
    const workerpool = (await import('workerpool')).default;
    const file = writeCache('pool-worker-workerpool.mjs', WORKER_SOURCE('workerpool'));
    return {
      open: (threads, dataset) =>
        workerpool.pool(file, {
          minWorkers: threads,
          maxWorkers: threads,
          workerType: 'thread',
          workerThreadOpts: { workerData: { dataset } },
        }),
      run: (pool, name, arg) => pool.exec(name, [arg]),
      close: (pool) => pool.terminate(),
    };
  },
};

async function runPeer(name, part, spinN) {
  const peer = await PEERS[name]();
  const result = {};
  const all = (pool, fn, items) => Promise.all(items.map((x) => peer.run(pool, fn, x)));
  if (part === 'dataset') {
    // One process holding the dataset, to compare with: this one, for a moment.
    let data = buildDataset(DATASET);
    result.onePss = treePss();
    data = null;
    // In submission order, as imap: the first result is the first task's.
    let pool;
    const imap = async function* (keys) {
      pool ??= peer.open(DATASET_WORKERS, DATASET);
      const pending = keys.map((k) => peer.run(pool, 'sumSlice', k));
      for (const p of pending) yield await p;
    };
    Object.assign(result, await datasetRun(imap));
    await peer.close(pool);
    return result;
  }
  const pool = peer.open(WORKERS, 0);
  if (part === 'tiny') {
    await all(pool, 'inc', Array.from({ length: 8 * WORKERS }, () => 0)); // the workers are up
    result.tinyOneMs = await timed(() => all(pool, 'inc', Array.from({ length: TINY }, (_, i) => i)));
  } else {
    await all(pool, 'spin', Array.from({ length: 8 * WORKERS }, () => spinN));
    const cpuMap = () => all(pool, 'spin', Array.from({ length: CPU_TASKS }, () => spinN));
    result.cpuFirstMs = await timed(cpuMap);
    for (let i = 0; i < CPU_WARM_MAPS; i++) await cpuMap();
    result.cpuMs = await timed(cpuMap);
    result.idealCpuMs = idealCpuMs(spinN);
  }
  await peer.close(pool);
  return result;
}

const RUNNERS = {
  fw_fork: (part, spinN) => runForkwise('fork', part, spinN),
  fw_forkserver: (part, spinN) => runForkwise('forkserver', part, spinN),
  fw_thread: (part, spinN) => runForkwise('thread', part, spinN),
  piscina: (part, spinN) => runPeer('piscina', part, spinN),
  workerpool: (part, spinN) => runPeer('workerpool', part, spinN),
  tinypool: (part, spinN) => runPeer('tinypool', part, spinN),
};

// ---------------------------------------------------------------------------------------
// CPython runner: the tiny scenario, map with chunksize=1 and with its automatic chunksize,
// on a Pool (fork) or a ThreadPool.

const PYTHON_RUNNER = String.raw`
import json, multiprocessing as mp, multiprocessing.pool, sys, time

def inc(x):
    return x + 1

def main():
    n, workers, kind = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
    items = list(range(n))
    make = mp.pool.ThreadPool if kind == 'thread' else mp.get_context('fork').Pool
    with make(workers) as pool:
        pool.map(inc, [0, 1, 2, 3])
        start = time.perf_counter()
        pool.map(inc, items, chunksize=1)
        one = (time.perf_counter() - start) * 1000
        start = time.perf_counter()
        pool.map(inc, items)
        auto = (time.perf_counter() - start) * 1000
    print(json.dumps({'tinyOneMs': one, 'tinyAutoMs': auto}))

if __name__ == '__main__':
    main()
`;

function runPython(kind) {
  const script = writeCache('pool_runner.py', PYTHON_RUNNER);
  return runCommand('python3', [script, String(TINY), String(WORKERS), kind]);
}

// ---------------------------------------------------------------------------------------
// Orchestrator.

const sanitized = (file) =>
  `${file} is a sanitizer build; its timings would mean nothing (npx node-gyp rebuild)`;

const FIELDS = ['tinyOneMs', 'tinyAutoMs', 'cpuFirstMs', 'cpuMs', 'idealCpuMs', 'firstMs', 'allMs', 'warmFirstMs', 'warmAllMs', 'pss', 'onePss'];

async function orchestrate(json) {
  const log = json ? () => {} : (text) => process.stderr.write(text);
  const self = fileURLToPath(import.meta.url);
  const started = Date.now();
  const spinN = calibrateSpin();
  const runs = {}; // name -> [result per pass]
  const skipped = {};

  const jobs = [];
  const problem = addonProblem(sanitized);
  const hasPython = onPath('python3');
  for (const { name, flags, python } of CONTENDERS) {
    if (python) {
      if (hasPython) jobs.push({ name, part: 'tiny', run: () => runPython(python === 'thread' ? 'thread' : 'process') });
      else skipped[name] = 'python3 is not on PATH';
    } else if (problem && name.startsWith('fw_')) {
      skipped[name] = problem;
    } else {
      for (const part of PARTS) {
        const argv = [...flags, self, '--run', name, '--part', part, '--spin', String(spinN), ...SCALE_ARGS];
        jobs.push({ name, part, run: () => runCommand(process.execPath, argv) });
      }
    }
  }

  // A pass runs each part of each contender once; a contender's figures for a part are the
  // medians over the passes.
  const failed = new Set();
  for (let pass = 1; pass <= PASSES; pass++) {
    for (const part of PARTS) {
      log(`pass ${pass}/${PASSES}, ${part}:`);
      for (const job of jobs.filter((j) => j.part === part)) {
        if (failed.has(job.name)) continue;
        try {
          (runs[job.name] ??= []).push(await job.run());
          log(` ${job.name}`);
        } catch (error) {
          failed.add(job.name);
          delete runs[job.name];
          skipped[job.name] ??= `${part}: ${error.message}`;
          log(` ${job.name} skipped (${error.message})`);
        }
      }
      log('\n');
    }
  }

  // name -> { field: median over the passes, or null }
  const m = Object.fromEntries(
    CONTENDERS.map(({ name }) => [
      name,
      Object.fromEntries(
        FIELDS.map((f) => {
          const values = (runs[name] ?? []).map((r) => r[f]).filter((v) => v != null);
          return [f, values.length ? median(values) : null];
        }),
      ),
    ]),
  );
  const fork = m.fw_fork;
  const best = (field) => {
    const values = ['piscina', 'workerpool', 'tinypool'].map((n) => m[n][field]).filter((v) => v != null);
    return values.length ? Math.min(...values) : null;
  };
  const targets = {
    tinyOneVsPiscina: { value: round(ratio(m.piscina.tinyOneMs, fork.tinyOneMs), 2), ...check(ratio(m.piscina.tinyOneMs, fork.tinyOneMs), '>=', 3) },
    tinyOneVsPython: { value: round(ratio(m.python.tinyOneMs, fork.tinyOneMs), 2), ...check(ratio(m.python.tinyOneMs, fork.tinyOneMs), '>=', 2) },
    tinyAutoVsPython: { value: round(ratio(m.python.tinyAutoMs, fork.tinyAutoMs), 2), ...check(ratio(m.python.tinyAutoMs, fork.tinyAutoMs), '>=', 1) },
    cpuEfficiency: { value: round(ratio(fork.idealCpuMs, fork.cpuMs), 3), ...check(ratio(fork.idealCpuMs, fork.cpuMs), '>=', 0.95) },
    datasetFirstMs: { value: round(fork.firstMs, 1), ...check(fork.firstMs, '<=', 50) },
    datasetWarmFirstMs: { value: round(fork.warmFirstMs, 1), ...check(fork.warmFirstMs, '<=', 50) },
    memoryVsOne: { value: round(ratio(fork.pss, fork.onePss), 2), ...check(ratio(fork.pss, fork.onePss), '<=', 1.3) },
  };
  const summary = {
    node: process.version,
    python: hasPython ? pythonVersion() : null,
    platform: `${process.platform}-${process.arch}`,
    cpus: availableParallelism(),
    quick: QUICK,
    passes: PASSES,
    counts: { tiny: TINY, cpuTasks: CPU_TASKS, cpuWarmMaps: CPU_WARM_MAPS, spinIterations: spinN, dataset: DATASET, slice: SLICE, workers: WORKERS, datasetWorkers: DATASET_WORKERS },
    contenders: CONTENDERS.map(({ name, label }) => ({
      name,
      label,
      ...Object.fromEntries(FIELDS.map((f) => [f, round(m[name][f], f.endsWith('ss') ? 0 : 1)])),
      cpuEfficiency: round(ratio(m[name].idealCpuMs, m[name].cpuMs), 3),
      cpuFirstEfficiency: round(ratio(m[name].idealCpuMs, m[name].cpuFirstMs), 3),
      memoryVsOne: round(ratio(m[name].pss, fork.onePss ?? m[name].onePss), 2),
      skipped: skipped[name] ?? null,
    })),
    bestPeer: { tinyOneMs: best('tinyOneMs'), firstMs: best('firstMs') },
    targets,
    seconds: round((Date.now() - started) / 1000, 1),
  };
  if (json) console.log(JSON.stringify(summary, null, 2));
  else printTable(summary);
}

function printTable(s) {
  const c = s.counts;
  console.log(
    `\nPool benchmark: node ${s.node}, python ${s.python ?? 'absent'}, ${s.platform}, ${s.cpus} CPUs; ` +
      `median of ${s.passes} pass(es)${s.quick ? ' (--quick: a smoke test)' : ''}`,
  );
  console.log(
    `tiny: ${c.tiny} tasks x => x + 1, ${c.workers} workers; cpu: ${c.cpuTasks} tasks of ~1 ms ` +
      `(${c.spinIterations} loop turns), ${c.workers} workers, ideal = serial time / ${c.workers}, ` +
      `"first map" the pool's first, "cpu ms" one after ${c.cpuWarmMaps} more; ` +
      `dataset: ${c.dataset} objects, ${c.dataset / c.slice} tasks of ${c.slice}, imap, ` +
      `${c.datasetWorkers} workers, the pool made in the time, then "again" on the same pool; PSS ` +
      `summed over the process and its descendants, all results in\n`,
  );
  const cell = (v, digits = 1) => (v == null ? 'n/a' : v.toFixed(digits));
  const percent = (v) => (v == null ? 'n/a' : `${(v * 100).toFixed(1)}%`);
  table(
    ['contender', 'tiny cs=1 ms', 'tiny auto ms', 'first map', 'cpu ms', 'of ideal', 'first ms', 'all ms', 'again: first', 'all', 'PSS', 'vs one'],
    s.contenders.map((x) => [
      x.label,
      cell(x.tinyOneMs, 0),
      cell(x.tinyAutoMs, 0),
      percent(x.cpuFirstEfficiency),
      cell(x.cpuMs, 0),
      percent(x.cpuEfficiency),
      cell(x.firstMs),
      cell(x.allMs, 0),
      cell(x.warmFirstMs),
      cell(x.warmAllMs, 0),
      x.pss == null ? 'n/a' : mb(x.pss),
      x.memoryVsOne == null ? 'n/a' : `${x.memoryVsOne.toFixed(2)}x`,
    ]),
  );
  printSkipped(s.contenders);
  const fork = s.contenders[0];
  console.log(`\none process holding the dataset: ${mb(fork.onePss)} PSS ("vs one" divides by it)`);
  console.log('\nforkwise Pool (fork) against the targets:\n');
  const t = s.targets;
  const row = (what, x, unit = 'x') => [what, x.value == null ? 'n/a' : `${x.value}${unit}`, x.target, verdict(x)];
  table(['target', 'value', 'wanted', ''], [
    row('tiny, chunksize 1: piscina ms / forkwise ms', t.tinyOneVsPiscina),
    row('tiny, chunksize 1: CPython ms / forkwise ms', t.tinyOneVsPython),
    row('tiny, automatic: CPython ms / forkwise ms', t.tinyAutoVsPython),
    row(`1 ms tasks: ideal / actual, the pool's map ${c.cpuWarmMaps + 2}`, t.cpuEfficiency, ''),
    row('dataset: first result, pool made in the time', t.datasetFirstMs, ' ms'),
    row('dataset: first result, pool already up', t.datasetWarmFirstMs, ' ms'),
    row('memory: 4 workers + parent / one process', t.memoryVsOne),
  ]);
  console.log(`\n(${s.seconds} s)`);
}

// ---------------------------------------------------------------------------------------

if (args.includes('--run')) {
  const part = args[args.indexOf('--part') + 1];
  const spinN = Number(args[args.indexOf('--spin') + 1]);
  console.log(JSON.stringify(await runnerFor(RUNNERS, args)(part, spinN)));
} else {
  killRunnerOnSignals();
  await orchestrate(args.includes('--json'));
}
