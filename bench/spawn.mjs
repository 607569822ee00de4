// Per-child cost of starting /bin/true and reaping it: forkwise posixSpawn (with waitpid and
// with waitpidAsync) against child_process.spawn, child_process.spawnSync, CPython
// os.posix_spawn and a C posix_spawn loop (the floor).
//
//   node bench/spawn.mjs             table: small parents, then Node parents holding 100 MB
//   node bench/spawn.mjs --no-heap   small parents only
//   node bench/spawn.mjs --json      summary as JSON
//
// As in fork.mjs, the orchestrator (no --run) starts one sub-process per contender and reads
// one line of JSON from its stdout; contenders run one after the other.
import { fileURLToPath } from 'node:url';
import {
  addonProblem, C_COMMON, check, compileC, growHeap, killRunnerOnSignals, median, now, onPath,
  printSkipped, ratio, round, rssAnon, runCommand, runnerFor, table, timingCells, verdict,
} from './lib.mjs';

const PROGRAM = '/bin/true';
const HEAP_BYTES = 100 * 1024 * 1024;
// Each contender runs once per pass, and the passes alternate the contenders: on a machine whose
// load drifts over seconds, each then meets the same quiet and busy spells. Its figure is the
// median of all its rounds (PASSES x ROUNDS).
const PASSES = 5;
const ROUNDS = 2; // per pass
const ROUND_SECONDS = 0.25; // iterations per round are chosen so that a round takes about this
const WARMUP = 20;
const TARGETS = { spawnOverC: 1.3, spawnVsChildProcess: 3 };

const CONTENDERS = [
  { name: 'posix_spawn', label: 'forkwise posixSpawn + waitpid', node: true },
  { name: 'posix_spawn_async', label: 'forkwise posixSpawn + waitpidAsync', node: true },
  { name: 'cp_spawn', label: "child_process.spawn to 'exit'", node: true },
  { name: 'cp_spawn_sync', label: 'child_process.spawnSync', node: true },
  { name: 'python', label: 'CPython os.posix_spawn + waitpid' },
  { name: 'c', label: 'C posix_spawn + waitpid (floor)' },
];

// ---------------------------------------------------------------------------------------
// Runners: each prints one line of JSON, { rounds: [ms per child...], iterations, parent }.

// With --heap, the parent first grows ~100 MB of JS heap in small objects, as fork.mjs does.
// Node marks V8's heap pages MADV_DONTFORK, so a plain fork() does not copy them. With
// --buffer it holds 100 MB outside V8's heap instead (a Buffer's backing store, every page
// touched), which a fork does copy (its page tables).
let retained;
function buildHeap() {
  retained = growHeap(HEAP_BYTES);
}

function buildBuffer() {
  retained = Buffer.alloc(HEAP_BYTES, 1);
}

// The bigger Node parents, and the contenders that run in them too.
const BIG_PARENTS = [
  { kind: 'heap', flag: '--heap', what: '100 MB of JS heap (small objects)', contenders: CONTENDERS.filter((c) => c.node) },
  { kind: 'buffer', flag: '--buffer', what: 'a 100 MB Buffer', contenders: CONTENDERS.filter((c) => c.name === 'posix_spawn' || c.name === 'cp_spawn') },
];

function parentInfo() {
  const { rss, heapUsed } = process.memoryUsage();
  return { rss, heapUsed, rssAnon: rssAnon() };
}

// Warms up, picks the iterations per round from the warm-up's pace, then times the rounds.
// `once` may return a promise (awaited) or nothing (a synchronous loop, no await per child).
async function measure(once, { maxIterations = 5000 } = {}) {
  const loop = async (n) => {
    const start = now();
    for (let i = 0; i < n; i++) {
      const pending = once();
      if (pending) await pending;
    }
    return (now() - start) / n;
  };
  const pace = await loop(WARMUP);
  const iterations = Math.max(10, Math.min(maxIterations, Math.round((ROUND_SECONDS * 1000) / pace)));
  const rounds = [];
  for (let r = 0; r < ROUNDS; r++) rounds.push(await loop(iterations));
  return { rounds, iterations, warmup: WARMUP };
}

function expectTrue(status) {
  if (status.kind !== 'exited' || status.exitCode !== 0) {
    throw new Error(`${PROGRAM} ended with ${JSON.stringify(status)}`);
  }
}

async function runPosixSpawn() {
  const { posixSpawn, waitpid } = await import('forkwise');
  return measure(() => {
    expectTrue(waitpid(posixSpawn(PROGRAM, ['true'])));
  });
}

async function runPosixSpawnAsync() {
  const { posixSpawn, waitpidAsync } = await import('forkwise');
  return measure(async () => {
    expectTrue(await waitpidAsync(posixSpawn(PROGRAM, ['true'])));
  });
}

// stdio 'ignore' (/dev/null) rather than pipes: /bin/true writes nothing, and pipes would add
// three pipe pairs and their stream objects to every child.
async function runChildProcessSpawn() {
  const { spawn } = await import('node:child_process');
  return measure(
    () =>
      new Promise((resolve, reject) => {
        const child = spawn(PROGRAM, [], { stdio: 'ignore' });
        child.once('error', reject);
        child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`exit ${code}`))));
      }),
  );
}

async function runChildProcessSpawnSync() {
  const { spawnSync } = await import('node:child_process');
  return measure(() => {
    const result = spawnSync(PROGRAM, [], { stdio: 'ignore' });
    if (result.error) throw result.error;
    if (result.status !== 0) throw new Error(`exit ${result.status}`);
  });
}

const RUNNERS = {
  posix_spawn: runPosixSpawn,
  posix_spawn_async: runPosixSpawnAsync,
  cp_spawn: runChildProcessSpawn,
  cp_spawn_sync: runChildProcessSpawnSync,
};

const PYTHON_RUNNER = String.raw`
import json, os, sys, time
program, rounds, round_s, warmup = sys.argv[1], int(sys.argv[2]), float(sys.argv[3]), int(sys.argv[4])
def rss():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
env = os.environ
def timed(n):
    start = time.perf_counter()
    for _ in range(n):
        pid = os.posix_spawn(program, ['true'], env)
        _, status = os.waitpid(pid, 0)
        if status != 0:
            raise SystemExit('child status %d' % status)
    return (time.perf_counter() - start) * 1000 / n
n = max(10, min(5000, round(round_s * 1000 / timed(warmup))))
print(json.dumps({'rounds': [timed(n) for _ in range(rounds)], 'iterations': n,
                  'warmup': warmup, 'parent': {'rss': rss()}}))
`;

const C_RUNNER = String.raw`
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
${C_COMMON}
extern char** environ;
static const char* program;

static double timed(long n) {
  char* argv[] = {"true", NULL};
  double start = now_ms();
  for (long i = 0; i < n; i++) {
    pid_t pid;
    int err = posix_spawn(&pid, program, NULL, NULL, argv, environ);
    if (err) { fprintf(stderr, "posix_spawn: error %d\n", err); exit(1); }
    int status;
    if (waitpid(pid, &status, 0) != pid || status != 0) { perror("waitpid"); exit(1); }
  }
  return (now_ms() - start) / n;
}

/* spawn_floor PROGRAM ROUNDS ROUND_S WARMUP */
int main(int argc, char** argv) {
  if (argc != 5) return 2;
  program = argv[1];
  int rounds = atoi(argv[2]);
  double round_ms = atof(argv[3]) * 1000;
  long warmup = atol(argv[4]);
  long n = (long)(round_ms / timed(warmup) + 0.5);
  if (n < 10) n = 10;
  if (n > 5000) n = 5000;
  print_rounds(rounds, n, warmup);
  printf("}\n");
  return 0;
}
`;

const runnerArgs = [PROGRAM, String(ROUNDS), String(ROUND_SECONDS), String(WARMUP)];

function runPython() {
  return runCommand('python3', ['-c', PYTHON_RUNNER, ...runnerArgs]);
}

function runC() {
  return runCommand(compileC('spawn_floor', C_RUNNER), runnerArgs); // compiled once per run
}

// ---------------------------------------------------------------------------------------
// Orchestrator.

// A sanitizer build's timings would mean nothing.
const sanitized = (file) =>
  `${file} is a sanitizer build; its timings would mean nothing (npx node-gyp rebuild)`;

async function orchestrate({ json, bigPass }) {
  const log = json ? () => {} : (text) => process.stderr.write(text);
  const self = fileURLToPath(import.meta.url);
  const started = Date.now();
  const results = {}; // name -> result, small parents
  const bigResults = Object.fromEntries(BIG_PARENTS.map((b) => [b.kind, {}])); // kind -> name -> result
  const skipped = {};

  const runNode = (name, flag) => () =>
    runCommand(process.execPath, [self, '--run', name, ...(flag ? [flag] : [])]);

  const jobs = []; // { into, name, title, run }
  const problem = addonProblem(sanitized);
  for (const { name, node } of CONTENDERS) {
    if (!node) continue;
    if (problem && name.startsWith('posix_spawn')) skipped[name] = problem;
    else jobs.push({ into: results, name, title: name, run: runNode(name) });
  }
  if (onPath('python3')) jobs.push({ into: results, name: 'python', title: 'python', run: runPython });
  else skipped.python = 'python3 is not on PATH';
  if (onPath('cc')) jobs.push({ into: results, name: 'c', title: 'c', run: runC });
  else skipped.c = 'cc is not on PATH';
  for (const { kind, flag, contenders } of bigPass ? BIG_PARENTS : []) {
    for (const { name } of contenders) {
      if (skipped[name]) continue;
      jobs.push({ into: bigResults[kind], name, title: `${name}+${kind}`, run: runNode(name, flag) });
    }
  }

  const failed = new Set();
  for (let pass = 1; pass <= PASSES; pass++) {
    log(`pass ${pass}/${PASSES}, ms/child:`);
    for (const job of jobs) {
      if (failed.has(job)) continue;
      try {
        const result = await job.run();
        const previous = job.into[job.name];
        job.into[job.name] = previous
          ? { ...result, rounds: [...previous.rounds, ...result.rounds] }
          : result;
        log(` ${job.title} ${median(result.rounds).toFixed(3)}`);
      } catch (error) {
        failed.add(job);
        delete job.into[job.name];
        skipped[job.name] ??= error.message;
        log(` ${job.title} skipped (${error.message})`);
      }
    }
    log('\n');
  }

  const medianOf = (set, name) => (set[name] ? median(set[name].rounds) : null);
  const m = (name) => medianOf(results, name);
  const ratios = {
    spawnOverC: ratio(m('posix_spawn'), m('c')),
    spawnAsyncOverC: ratio(m('posix_spawn_async'), m('c')),
    spawnVsChildProcess: ratio(m('cp_spawn'), m('posix_spawn')),
    spawnAsyncVsChildProcess: ratio(m('cp_spawn'), m('posix_spawn_async')),
    spawnVsSpawnSync: ratio(m('cp_spawn_sync'), m('posix_spawn')),
    spawnOverPython: ratio(m('posix_spawn'), m('python')),
  };
  const row = (set, { name, label }) => ({
    name,
    label,
    medianMs: round(medianOf(set, name), 4),
    roundsMs: set[name]?.rounds.map((v) => round(v, 4)) ?? null,
    iterationsPerRound: set[name]?.iterations ?? null,
    parentRss: set[name]?.parent?.rss ?? null,
    ratioToC: round(ratio(medianOf(set, name), m('c')), 2),
  });
  const summary = {
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    program: PROGRAM,
    contenders: CONTENDERS.map((c) => ({ ...row(results, c), skipped: skipped[c.name] ?? null })),
    bigParents: bigPass
      ? BIG_PARENTS.flatMap(({ kind, what, contenders }) =>
          contenders
            .filter((c) => bigResults[kind][c.name])
            .map((c) => ({
              ...row(bigResults[kind], c),
              parent: kind,
              parentHolds: what,
              heapUsed: bigResults[kind][c.name].parent?.heapUsed ?? null,
              // how much slower each child got when the parent went from small to big
              overSmall: round(ratio(medianOf(bigResults[kind], c.name), m(c.name)), 2),
            })),
        )
      : null,
    ratios: Object.fromEntries(Object.entries(ratios).map(([k, v]) => [k, round(v, 2)])),
    targets: {
      spawnOverC: check(ratios.spawnOverC, '<=', TARGETS.spawnOverC),
      spawnVsChildProcess: check(ratios.spawnVsChildProcess, '>=', TARGETS.spawnVsChildProcess),
    },
    seconds: round((Date.now() - started) / 1000, 1),
  };

  if (json) console.log(JSON.stringify(summary, null, 2));
  else printTable(summary);
}

function printTable(summary) {
  console.log(
    `\nforkwise spawn benchmark: ${summary.program}, ${summary.node} ${summary.platform}, ` +
      `median of ${PASSES} passes x ${ROUNDS} rounds of ~${ROUND_SECONDS} s each\n`,
  );
  const cells = (c) => [
    c.label,
    ...timingCells(c),
    c.ratioToC == null ? '' : `${c.ratioToC.toFixed(2)}x`,
  ];
  const header = ['small parent', 'ms/child', 'rounds min-max', 'n/round', 'parent RSS', 'vs C floor'];
  table(header, summary.contenders.map(cells));
  printSkipped(summary.contenders);

  const { ratios, targets } = summary;
  const say = (title, value, suffix, t) => {
    const shown = value == null ? 'n/a' : `${value.toFixed(2)}x${suffix}`;
    const goal = t ? `(target ${t.target}x: ${verdict(t)})` : '(no target)';
    console.log(`${`${title}:`.padEnd(44)}${shown.padEnd(14)} ${goal}`);
  };
  console.log('');
  say('posixSpawn+waitpid / C floor', ratios.spawnOverC, '', targets.spawnOverC);
  say('posixSpawn+waitpid vs child_process.spawn', ratios.spawnVsChildProcess, ' faster', targets.spawnVsChildProcess);
  say('posixSpawn+waitpidAsync / C floor', ratios.spawnAsyncOverC, '');
  say('posixSpawn+waitpidAsync vs cp.spawn', ratios.spawnAsyncVsChildProcess, ' faster');
  say('posixSpawn+waitpid vs spawnSync', ratios.spawnVsSpawnSync, ' faster');
  say('posixSpawn+waitpid / CPython', ratios.spawnOverPython, '');

  if (summary.bigParents?.length) {
    console.log('\nThe Node contenders again, in parents that first grew:');
    for (const { kind, what } of BIG_PARENTS) console.log(`  +${kind}: ${what}`);
    console.log('');
    table(
      ['big parent', 'ms/child', 'rounds min-max', 'n/round', 'parent RSS', 'vs small parent'],
      summary.bigParents.map((c) => [
        `${c.label} +${c.parent}`,
        ...cells(c).slice(1, 5),
        c.overSmall == null ? '' : `${c.overSmall.toFixed(2)}x`,
      ]),
    );
  }
  console.log(`\n(${summary.seconds} s)`);
}

// ---------------------------------------------------------------------------------------

const args = process.argv.slice(2);
if (args.includes('--run')) {
  const run = runnerFor(RUNNERS, args);
  if (args.includes('--heap')) buildHeap();
  if (args.includes('--buffer')) buildBuffer();
  const result = await run();
  console.log(JSON.stringify({ ...result, parent: parentInfo() }));
} else {
  killRunnerOnSignals();
  await orchestrate({ json: args.includes('--json'), bigPass: !args.includes('--no-heap') });
}
