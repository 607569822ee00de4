// Per-child cost of starting a Process whose target returns at once and joining it, the parent
// holding ~100 MB: forkwise/multiprocessing's three start methods against child_process.fork
// and CPython's multiprocessing.Process with the same three.
//
//   node bench/process.mjs           table
//   node bench/process.mjs --json    summary as JSON
//
// As in spawn.mjs, the orchestrator (no --run) starts one sub-process per contender and reads
// one line of JSON from its stdout; contenders run one after the other, in passes that take
// them in turn. Each sub-process builds its ~100 MB parent afresh.
import { availableParallelism } from 'node:os';
import { fileURLToPath } from 'node:url';
import {
  addonProblem, growHeap, killRunnerOnSignals, mb, median, now, onPath, printSkipped, ratio,
  round, rssAnon, runCommand, runnerFor, table, timingCells, writeCache,
  pythonVersion,
} from './lib.mjs';

const HEAP_BYTES = 100 * 1024 * 1024; // what every parent holds (JS heap, or Python objects)
const SETTLE_MS = 300; // the parent idles this long after growing, before the first child
const PASSES = 2;
const ROUNDS = 3; // per pass; a contender's figure is the median of its PASSES x ROUNDS rounds
const ROUND_SECONDS = 0.35; // iterations per round are chosen so that a round takes about this
const WARMUP = 2; // children started and joined before the pace is taken (the first is timed alone)
const MIN_ITERATIONS = 3;
const MAX_ITERATIONS = 200;

// `method`: the start method, which the ratios pair forkwise and CPython by. `flags`: node's.
const CONTENDERS = [
  { name: 'fw_fork', label: 'forkwise Process, fork', method: 'fork', flags: ['--single-threaded'] },
  { name: 'fw_forkserver', label: 'forkwise Process, forkserver', method: 'forkserver', flags: [] },
  { name: 'fw_spawn', label: 'forkwise Process, spawn', method: 'spawn', flags: [] },
  { name: 'child_process', label: 'child_process.fork', flags: [] },
  { name: 'py_fork', label: 'CPython Process, fork', method: 'fork', python: true },
  { name: 'py_forkserver', label: 'CPython Process, forkserver', method: 'forkserver', python: true },
  { name: 'py_spawn', label: 'CPython Process, spawn', method: 'spawn', python: true },
];
const FORKWISE = CONTENDERS.filter((c) => c.name.startsWith('fw_'));
const PEERS = CONTENDERS.filter((c) => !c.name.startsWith('fw_'));

// ---------------------------------------------------------------------------------------
// Node runners: each prints one line of JSON, { rounds: [ms per child...], firstMs, ... }.

// The ~100 MB the parent holds while it starts children; then it idles a moment, so that
// what growing left to do (sweeping, the last scavenges) is not in the timings.
let retained;
async function buildParent() {
  retained = growHeap(HEAP_BYTES);
  await new Promise((resolve) => setTimeout(resolve, SETTLE_MS));
  const { rss, heapUsed } = process.memoryUsage();
  return { rss, heapUsed, rssAnon: rssAnon(), objects: retained.length };
}

// Times the first child alone (a forkserver starts its server then), warms up, picks the
// iterations per round from the warm-up's pace, then times the rounds.
async function measure(once) {
  const loop = async (n) => {
    const start = now();
    for (let i = 0; i < n; i++) await once();
    return (now() - start) / n;
  };
  const firstMs = await loop(1);
  const pace = await loop(WARMUP);
  const iterations = Math.max(
    MIN_ITERATIONS,
    Math.min(MAX_ITERATIONS, Math.round((ROUND_SECONDS * 1000) / pace)),
  );
  const rounds = [];
  for (let r = 0; r < ROUNDS; r++) rounds.push(await loop(iterations));
  return { rounds, iterations, warmup: 1 + WARMUP, firstMs };
}

// new Process + await start() + await join(). The target is sent by its source to a spawned
// or forkserver child, so it must not read anything around it.
async function runForkwise(method) {
  const { getContext, stopForkserver } = await import('forkwise/multiprocessing');
  const { Process } = getContext(method);
  const parent = await buildParent();
  try {
    const result = await measure(async () => {
      const p = new Process({ target: () => {} });
      await p.start(); // fork: the fork is made on the next turn of the loop, pid set by then
      await p.join();
      if (p.exitCode !== 0) throw new Error(`Process ended with exit code ${p.exitCode}`);
    });
    return { ...result, parent };
  } finally {
    await stopForkserver();
  }
}

async function runChildProcess() {
  const { fork } = await import('node:child_process');
  const script = writeCache('exit-at-once.cjs', 'process.exit(0);\n');
  const parent = await buildParent();
  const result = await measure(
    () =>
      new Promise((resolve, reject) => {
        const child = fork(script, [], { execArgv: [], stdio: 'ignore' });
        child.once('error', reject);
        child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`exit ${code}`))));
      }),
  );
  return { ...result, parent };
}

const RUNNERS = {
  fw_fork: () => runForkwise('fork'),
  fw_forkserver: () => runForkwise('forkserver'),
  fw_spawn: () => runForkwise('spawn'),
  child_process: runChildProcess,
};

// ---------------------------------------------------------------------------------------
// CPython runner.

// A file, not -c: spawn and forkserver children import the parent's main module (as
// __mp_main__) to find the target, so the parent's work sits under the __main__ guard. The
// parent grows its RSS by HEAP_BYTES in small objects (tuples of an int and a str, as the
// Node parents' { i, s }), collects, and idles SETTLE_MS. The timing loop is the Node one.
const PYTHON_RUNNER = String.raw`
import json, gc, multiprocessing as mp, os, sys, time

def nothing():
    pass

def rss():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')

def main():
    method, held_bytes, settle_ms = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    rounds, round_s, warmup = int(sys.argv[4]), float(sys.argv[5]), int(sys.argv[6])
    min_n, max_n = int(sys.argv[7]), int(sys.argv[8])
    ctx = mp.get_context(method)
    start_rss = rss()
    retained = []
    while rss() - start_rss < held_bytes:
        i = len(retained)
        retained.extend((j, 'item-%d' % j) for j in range(i, i + 10000))
    gc.collect()
    time.sleep(settle_ms / 1000)
    parent = {'rss': rss(), 'objects': len(retained)}

    def once():
        p = ctx.Process(target=nothing)
        p.start()
        p.join()
        if p.exitcode != 0:
            raise SystemExit('Process ended with exit code %r' % p.exitcode)

    def loop(n):
        start = time.perf_counter()
        for _ in range(n):
            once()
        return (time.perf_counter() - start) * 1000 / n

    first = loop(1)
    n = max(min_n, min(max_n, round(round_s * 1000 / loop(warmup))))
    print(json.dumps({'rounds': [loop(n) for _ in range(rounds)], 'iterations': n,
                      'warmup': 1 + warmup, 'firstMs': first, 'parent': parent}))

if __name__ == '__main__':
    main()
`;

function runPython(method) {
  const script = writeCache('process_runner.py', PYTHON_RUNNER);
  const args = [HEAP_BYTES, SETTLE_MS, ROUNDS, ROUND_SECONDS, WARMUP, MIN_ITERATIONS, MAX_ITERATIONS];
  return runCommand('python3', [script, method, ...args.map(String)]);
}

// ---------------------------------------------------------------------------------------
// Orchestrator.

// A sanitizer build's timings would mean nothing.
const sanitized = (file) =>
  `${file} is a sanitizer build; its timings would mean nothing (npx node-gyp rebuild)`;

async function orchestrate(json) {
  const log = json ? () => {} : (text) => process.stderr.write(text);
  const self = fileURLToPath(import.meta.url);
  const started = Date.now();
  const results = {};
  const skipped = {};

  const jobs = []; // { name, run }
  const problem = addonProblem(sanitized);
  const hasPython = onPath('python3');
  for (const { name, method, flags, python } of CONTENDERS) {
    if (python) {
      if (hasPython) jobs.push({ name, run: () => runPython(method) });
      else skipped[name] = 'python3 is not on PATH';
    } else if (problem && name.startsWith('fw_')) {
      skipped[name] = problem;
    } else {
      jobs.push({ name, run: () => runCommand(process.execPath, [...flags, self, '--run', name]) });
    }
  }

  const failed = new Set();
  for (let pass = 1; pass <= PASSES; pass++) {
    log(`pass ${pass}/${PASSES}, ms/child:`);
    for (const job of jobs) {
      if (failed.has(job)) continue;
      try {
        const result = await job.run();
        const previous = results[job.name] ?? { rounds: [], firsts: [] };
        results[job.name] = {
          ...result,
          rounds: [...previous.rounds, ...result.rounds],
          firsts: [...previous.firsts, result.firstMs],
        };
        log(` ${job.name} ${median(result.rounds).toFixed(2)}`);
      } catch (error) {
        failed.add(job);
        delete results[job.name];
        skipped[job.name] ??= error.message;
        log(` ${job.name} skipped (${error.message})`);
      }
    }
    log('\n');
  }

  const m = (name) => (results[name] ? median(results[name].rounds) : null);
  // For each forkwise method, how many times faster it is than each peer (peer / forkwise).
  const ratios = Object.fromEntries(
    FORKWISE.map((fw) => [
      fw.name,
      Object.fromEntries(PEERS.map((peer) => [peer.name, round(ratio(m(peer.name), m(fw.name)), 2)])),
    ]),
  );
  const summary = {
    node: process.version,
    python: hasPython ? pythonVersion() : null,
    platform: `${process.platform}-${process.arch}`,
    cpus: availableParallelism(),
    heldBytes: HEAP_BYTES,
    contenders: CONTENDERS.map(({ name, label, method }) => ({
      name,
      label,
      method: method ?? null,
      medianMs: round(m(name), 3),
      roundsMs: results[name]?.rounds.map((v) => round(v, 3)) ?? null,
      iterationsPerRound: results[name]?.iterations ?? null,
      firstMs: results[name] ? round(median(results[name].firsts), 1) : null,
      parentRss: results[name]?.parent?.rss ?? null,
      parentHeapUsed: results[name]?.parent?.heapUsed ?? null,
      skipped: skipped[name] ?? null,
    })),
    ratios,
    seconds: round((Date.now() - started) / 1000, 1),
  };

  if (json) console.log(JSON.stringify(summary, null, 2));
  else printTable(summary);
}

function printTable(summary) {
  console.log(
    `\nforkwise Process benchmark: start + join, target returns at once; node ${summary.node}, ` +
      `python ${summary.python ?? 'absent'}, ${summary.platform}, ${summary.cpus} CPUs`,
  );
  console.log(
    `Every parent holds ~${mb(summary.heldBytes)} (Node: JS heap in small objects; CPython: ` +
      `tuples, RSS grown by as much); median of ${PASSES} passes x ${ROUNDS} rounds of ` +
      `~${ROUND_SECONDS} s; "first" is the first child of a parent (a forkserver starts then)\n`,
  );
  table(
    ['contender', 'ms/child', 'rounds min-max', 'n/round', 'parent RSS', 'first ms'],
    summary.contenders.map((c) => [c.label, ...timingCells(c), c.firstMs?.toFixed(1) ?? '']),
  );
  printSkipped(summary.contenders);

  // Rows: forkwise methods; columns: peers; the same method's CPython column is starred.
  console.log('\nHow many times faster forkwise is (peer ms / forkwise ms; * same start method):\n');
  const peerHeader = PEERS.map((p) => p.label.replace('Process, ', ''));
  table(
    ['forkwise', ...peerHeader],
    FORKWISE.map((fw) => [
      fw.method,
      ...PEERS.map((peer) => {
        const value = summary.ratios[fw.name][peer.name];
        const same = peer.method === fw.method ? '*' : ' ';
        return value == null ? 'n/a ' : `${value.toFixed(2)}x${same}`;
      }),
    ]),
  );
  console.log(`\n(${summary.seconds} s)`);
}

// ---------------------------------------------------------------------------------------

const args = process.argv.slice(2);
if (args.includes('--run')) {
  console.log(JSON.stringify(await runnerFor(RUNNERS, args)()));
} else {
  killRunnerOnSignals();
  await orchestrate(args.includes('--json'));
}
