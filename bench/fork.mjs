// Per-child cost of create + exit + reap, with the parent holding ~100 MB of JS heap:
// forkwise fork() against child_process.fork, worker_threads, CPython os.fork and a C floor.
//
//   node bench/fork.mjs           table
//   node bench/fork.mjs --json    summary as JSON
//
// The orchestrator (no --run) starts one sub-process per contender, so each measures with its
// own freshly built parent, and reads one line of JSON from its stdout. Contenders run one
// after the other: on 2 cores, running them side by side would measure the contention.
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  addonProblem, C_COMMON, cacheDir, check, compileC, growHeap, killRunnerOnSignals, mb, median,
  now, onPath, printSkipped, ratio, root, round, rssAnon, runCommand, runnerFor, table, timingCells,
  verdict, writeCache,
} from './lib.mjs';

const layoutFile = join(cacheDir, 'node-layout.txt'); // removed after the run
const require = createRequire(import.meta.url);

const HEAP_BYTES = 100 * 1024 * 1024;
const ROUNDS = 5;
const ROUND_SECONDS = 0.6; // iterations per round are chosen so that a round takes about this
const FORK_WARMUP = 10;
const TARGETS = { forkOverC: 1.5, forkVsChildProcess: 10, forkVsWorker: 3 };

const CONTENDERS = [
  { name: 'fork', label: 'forkwise fork()+_exit+waitpid' },
  { name: 'child_process', label: 'child_process.fork' },
  { name: 'worker', label: 'new Worker (eval)' },
  { name: 'python', label: 'CPython os.fork()' },
  { name: 'c', label: 'C fork() (floor)' },
  { name: 'c_layout', label: "C fork(), Node's layout" },
];

// ---------------------------------------------------------------------------------------
// Runners: each prints one line of JSON, { rounds: [ms per child...], iterations, ... }.

// The ~100 MB the parent holds while it creates children.
let retained;
function buildHeap() {
  retained = growHeap(HEAP_BYTES);
  const { rss, heapUsed } = process.memoryUsage();
  return { rss, heapUsed, rssAnon: rssAnon(), objects: retained.length };
}

// The parent's private anonymous mappings, as "start end rss perms" lines (hex), for the C
// contender that rebuilds them at the same addresses; vmas counts every mapping.
function anonLayout() {
  const mappings = [];
  let vmas = 0;
  for (const entry of readFileSync('/proc/self/smaps', 'utf8').split(/^(?=[0-9a-f]+-)/m)) {
    const head = /^([0-9a-f]+)-([0-9a-f]+) (\S{4}) \S+ \S+ (\d+) *(.*)$/m.exec(entry);
    if (!head) continue;
    vmas++;
    const [, start, end, perms, inode, path] = head;
    const anon = path === '' || path === '[heap]' || path.startsWith('[anon:');
    if (!anon || inode !== '0' || perms[3] !== 'p') continue; // file-backed, shared, [stack]...
    const rss = Number(/^Rss:\s+(\d+) kB/m.exec(entry)[1]) * 1024;
    mappings.push(`${start} ${end} ${rss.toString(16)} ${perms}`);
  }
  return { mappings, vmas };
}

// Warms up, picks the iterations per round from the warm-up's pace, then times the rounds.
async function measure(once, { warmup, minIterations, maxIterations }) {
  let start = now();
  for (let i = 0; i < warmup; i++) await once();
  const pace = (now() - start) / warmup;
  const iterations = Math.max(
    minIterations,
    Math.min(maxIterations, Math.round((ROUND_SECONDS * 1000) / pace)),
  );
  const rounds = [];
  for (let r = 0; r < ROUNDS; r++) {
    start = now();
    for (let i = 0; i < iterations; i++) await once();
    rounds.push((now() - start) / iterations);
  }
  return { rounds, iterations, warmup };
}

async function runFork() {
  const { fork, _exit, waitpid, isForkSafe } = await import('forkwise');
  if (!isForkSafe()) throw new Error('the fork runner must run under node --single-threaded');
  // The same addon instance that forkwise loaded (node-gyp-build resolves the same file).
  const addon = require('node-gyp-build')(root);
  const parent = buildHeap();
  const before = addon.forkStats();
  let afterWarmup;
  let forks = 0;
  const result = await measure(
    () => {
      if (forks++ === FORK_WARMUP) afterWarmup = addon.forkStats();
      const pid = fork();
      if (pid === 0) _exit(0);
      const status = waitpid(pid);
      if (status.kind !== 'exited' || status.exitCode !== 0) {
        throw new Error(`child ended with ${JSON.stringify(status)}`);
      }
    },
    { warmup: FORK_WARMUP, minIterations: 10, maxIterations: 2000 },
  );
  const after = addon.forkStats();
  const timed = forks - FORK_WARMUP;
  return {
    ...result,
    parent: { ...parent, rss: process.memoryUsage().rss, rssAnon: rssAnon() },
    layout: anonLayout(),
    forkStats: {
      forks,
      smapsScansWarmup: afterWarmup.smapsScans - before.smapsScans,
      smapsScansTimed: after.smapsScans - afterWarmup.smapsScans,
      timedForks: timed,
      dontForkRanges: after.dontForkRanges,
    },
  };
}

async function runChildProcess() {
  const { fork } = await import('node:child_process');
  const script = writeCache('exit-at-once.cjs', 'process.exit(0);\n');
  const parent = buildHeap();
  const once = () =>
    new Promise((resolve, reject) => {
      const child = fork(script, [], { execArgv: [], stdio: 'ignore' });
      child.once('error', reject);
      child.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`exit ${code}`))));
    });
  const result = await measure(once, { warmup: 3, minIterations: 3, maxIterations: 20 });
  return { ...result, parent: { ...parent, rss: process.memoryUsage().rss } };
}

async function runWorker() {
  const { Worker } = await import('node:worker_threads');
  const parent = buildHeap();
  const once = () =>
    new Promise((resolve, reject) => {
      const worker = new Worker('// ends at once', { eval: true });
      worker.once('error', reject);
      worker.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`exit ${code}`))));
    });
  const result = await measure(once, { warmup: 3, minIterations: 3, maxIterations: 50 });
  return { ...result, parent: { ...parent, rss: process.memoryUsage().rss } };
}

// Python and C get the fork-parent's RSS in bytes and grow to it, touching every page.
const PYTHON_RUNNER = String.raw`
import json, os, sys, time
target, rounds, round_s = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
def rss():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
page = os.sysconf('SC_PAGE_SIZE')
held = bytearray(max(0, target - rss()))
held[::page] = b'\x01' * len(range(0, len(held), page))  # fault every page in
def once():
    pid = os.fork()
    if pid == 0:
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise SystemExit('child status %d' % status)
def timed(n):
    start = time.perf_counter()
    for _ in range(n):
        once()
    return (time.perf_counter() - start) * 1000 / n
warmup = 20
n = max(10, min(5000, round(round_s * 1000 / timed(warmup))))
print(json.dumps({'rounds': [timed(n) for _ in range(rounds)], 'iterations': n,
                  'warmup': warmup, 'parent': {'rss': rss()}}))
`;

function runPython(targetRss) {
  const args = [String(targetRss), String(ROUNDS), String(ROUND_SECONDS)];
  return runCommand('python3', ['-c', PYTHON_RUNNER, ...args]);
}

// The C floor memsets the bytes in one block. A second C contender rebuilds the fork parent's
// own layout instead, because the kernel's fork cost depends on how spread out the memory is,
// not only on how much there is: fork copies, and the child's exit frees, the page tables and
// VMAs of every mapping. In one block a page-table page serves 2 MB of it; V8 scatters its
// heap over the address space in hundreds of 256 KB pages, each a VMA with page tables of its
// own. With --layout FILE, the program maps each "start end rss perms" line (hex) of FILE at
// the same address, touches its first rss bytes and sets its permissions as Node had them. A
// range already taken (by the program's own libc, stack...) is skipped and counted.
const C_RUNNER = String.raw`
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
${C_COMMON}
static double timed(long n) {
  double start = now_ms();
  for (long i = 0; i < n; i++) {
    pid_t pid = fork();
    if (pid == 0) _exit(0);
    if (pid < 0) { perror("fork"); exit(1); }
    int status;
    if (waitpid(pid, &status, 0) != pid || status != 0) { perror("waitpid"); exit(1); }
  }
  return (now_ms() - start) / n;
}

static long mapped, skipped, vmas;
static unsigned long touched, skipped_bytes;

static void replicate(const char* path) {
  FILE* f = fopen(path, "r");
  if (!f) { perror(path); exit(1); }
  unsigned long start, end, rss;
  char perms[5];
  size_t page = sysconf(_SC_PAGESIZE);
  while (fscanf(f, "%lx %lx %lx %4s", &start, &end, &rss, perms) == 4) {
    size_t len = end - start;
    char* p = mmap((void*)start, len, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    if (p != (char*)start) { /* taken; a kernel before 4.17 treats the address as a hint */
      if (p != MAP_FAILED) munmap(p, len);
      skipped++, skipped_bytes += rss;
      continue;
    }
    if (rss > len) rss = len;
    for (size_t off = 0; off < rss; off += page) p[off] = 1;
    int prot = (perms[0] == 'r' ? PROT_READ : 0) | (perms[1] == 'w' ? PROT_WRITE : 0) |
               (perms[2] == 'x' ? PROT_EXEC : 0);
    if (prot != (PROT_READ | PROT_WRITE)) mprotect(p, len, prot); /* as Node had it */
    mapped++, touched += rss;
  }
  fclose(f);
  if (!mapped) { fprintf(stderr, "no mapping of %s could be replicated\n", path); exit(1); }
  FILE* maps = fopen("/proc/self/maps", "r");
  for (int c; maps && (c = fgetc(maps)) != EOF;) vmas += c == '\n';
  if (maps) fclose(maps);
}

/* fork_floor BYTES ROUNDS ROUND_S, or fork_floor --layout FILE ROUNDS ROUND_S */
int main(int argc, char** argv) {
  int layout = argc == 5 && strcmp(argv[1], "--layout") == 0;
  if (argc != 4 && !layout) return 2;
  int rounds = atoi(argv[argc - 2]);
  double round_ms = atof(argv[argc - 1]) * 1000;
  size_t bytes = 0;
  char* held = NULL;
  if (layout) replicate(argv[2]);
  else {
    bytes = strtoull(argv[1], NULL, 10);
    held = malloc(bytes);
    if (!held) { perror("malloc"); return 1; }
    memset(held, 1, bytes);
  }
  const long warmup = 20;
  long n = (long)(round_ms / timed(warmup) + 0.5);
  if (n < 10) n = 10;
  if (n > 20000) n = 20000;
  print_rounds(rounds, n, warmup);
  if (layout) {
    printf(",\"layout\":{\"mapped\":%ld,\"touched\":%lu,\"skipped\":%ld,\"skippedBytes\":%lu,"
           "\"vmas\":%ld}", mapped, touched, skipped, skipped_bytes, vmas);
  }
  printf("}\n");
  if (layout) return 0;
  held[bytes - 1] = 0; /* keep the buffer alive */
  return held[0] == 1 ? 0 : 1;
}
`;

const cBinary = () => compileC('fork_floor', C_RUNNER); // compiled once per run

function runC(targetRss) {
  return runCommand(cBinary(), [String(targetRss), String(ROUNDS), String(ROUND_SECONDS)]);
}

async function runCLayout(mappings) {
  const args = ['--layout', layoutFile, String(ROUNDS), String(ROUND_SECONDS)];
  const binary = cBinary();
  writeFileSync(layoutFile, `${mappings.join('\n')}\n`);
  try {
    return await runCommand(binary, args);
  } finally {
    rmSync(layoutFile, { force: true });
  }
}

const RUNNERS = { fork: runFork, child_process: runChildProcess, worker: runWorker };

// ---------------------------------------------------------------------------------------
// Orchestrator.

// A sanitizer build's fork timings would mean nothing: say how to get a clean one.
const sanitized = (file) =>
  `${file} is a sanitizer build (links libasan/libubsan/libtsan); its fork timings would ` +
  'mean nothing. Rebuild it without sanitizers (npx node-gyp rebuild), or set ' +
  'FORKWISE_PREBUILD to a directory holding a clean build/Release/forkwise.node';

const runNode = (args) => runCommand(process.execPath, args);

async function orchestrate(json) {
  const log = json ? () => {} : (text) => process.stderr.write(text);
  const self = fileURLToPath(import.meta.url);
  const results = {};
  const skipped = {};
  const started = Date.now();

  const attempt = async (name, run) => {
    log(`running ${name}... `);
    try {
      results[name] = await run();
      log(`${median(results[name].rounds).toFixed(3)} ms/child\n`);
    } catch (error) {
      skipped[name] = error.message;
      log(`skipped: ${error.message}\n`);
    }
  };

  const problem = addonProblem(sanitized);
  if (problem) skipped.fork = problem;
  else await attempt('fork', () => runNode(['--single-threaded', self, '--run', 'fork']));
  await attempt('child_process', () => runNode([self, '--run', 'child_process']));
  await attempt('worker', () => runNode([self, '--run', 'worker']));

  // Python and C match the RSS of the fork parent (or, without it, of another Node parent).
  const nodeParent = (results.fork ?? results.child_process ?? results.worker)?.parent;
  const targetRss = nodeParent?.rss ?? 170 * 1048576;
  if (onPath('python3')) await attempt('python', () => runPython(targetRss));
  else skipped.python = 'python3 is not on PATH';
  const layout = results.fork?.layout;
  if (!onPath('cc')) skipped.c = skipped.c_layout = 'cc is not on PATH';
  else {
    await attempt('c', () => runC(targetRss));
    if (layout) await attempt('c_layout', () => runCLayout(layout.mappings));
    else skipped.c_layout = 'needs the memory layout of the forkwise parent';
  }

  const medians = Object.fromEntries(
    Object.entries(results).map(([name, result]) => [name, median(result.rounds)]),
  );
  const ratioOf = (a, b) => ratio(medians[a], medians[b]);
  const ratios = {
    forkVsChildProcess: ratioOf('child_process', 'fork'),
    forkVsWorker: ratioOf('worker', 'fork'),
    forkOverC: ratioOf('fork', 'c'),
    forkOverCLayout: ratioOf('fork', 'c_layout'),
  };
  const summary = {
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    seconds: round((Date.now() - started) / 1000, 1),
    nodeParent: nodeParent ?? null,
    targetRss,
    forkStats: results.fork?.forkStats ?? null,
    layout: layout
      ? {
          nodeMappings: layout.mappings.length,
          nodeVmas: layout.vmas,
          ...results.c_layout?.layout, // mapped, touched (bytes), skipped, skippedBytes, vmas
        }
      : null,
    contenders: CONTENDERS.map(({ name, label }) => ({
      name,
      label,
      medianMs: round(medians[name] ?? null, 4),
      roundsMs: results[name]?.rounds.map((ms) => round(ms, 4)) ?? null,
      iterationsPerRound: results[name]?.iterations ?? null,
      parentRss: results[name]?.parent?.rss ?? null,
      ratioToC: round(ratioOf(name, 'c'), 2),
      skipped: skipped[name] ?? null,
    })),
    ratios: Object.fromEntries(Object.entries(ratios).map(([k, v]) => [k, round(v, 2)])),
    targets: {
      forkOverC: check(ratios.forkOverC, '<=', TARGETS.forkOverC),
      forkVsChildProcess: check(ratios.forkVsChildProcess, '>=', TARGETS.forkVsChildProcess),
      forkVsWorker: check(ratios.forkVsWorker, '>=', TARGETS.forkVsWorker),
    },
  };

  if (json) console.log(JSON.stringify(summary, null, 2));
  else printTable(summary);
}

function printTable(summary) {
  const p = summary.nodeParent;
  console.log(
    `\nforkwise fork benchmark: ${summary.node} ${summary.platform}, ` +
      `median of ${ROUNDS} rounds of ~${ROUND_SECONDS} s each`,
  );
  if (p) {
    console.log(`Node parent: heapUsed ${mb(p.heapUsed)}, RSS ${mb(p.rss)}` +
      (p.rssAnon ? ` (anonymous ${mb(p.rssAnon)})` : '') + `, ${p.objects} objects held`);
  }
  console.log(`Python and C parents grow to ${mb(summary.targetRss)} RSS, every page touched`);
  const l = summary.layout;
  if (l?.mapped) {
    console.log(`C with Node's layout: ${l.mapped} of ${l.nodeMappings} anonymous mappings at ` +
      `Node's addresses, ${mb(l.touched)} touched, ${l.skipped} skipped (${mb(l.skippedBytes)}); ` +
      `${l.vmas} VMAs (Node: ${l.nodeVmas})`);
  }
  console.log('');

  const rows = summary.contenders.map((c) => [
    c.label,
    ...timingCells(c),
    c.ratioToC == null ? '' : `${c.ratioToC.toFixed(2)}x`,
  ]);
  table(['contender', 'ms/child', 'rounds min-max', 'n/round', 'parent RSS', 'vs C floor'], rows);
  printSkipped(summary.contenders);

  const { ratios, targets } = summary;
  console.log('');
  for (const [title, key, suffix] of [
    ['fork vs child_process.fork', 'forkVsChildProcess', ' faster'],
    ['fork vs Worker', 'forkVsWorker', ' faster'],
    ['fork / C floor', 'forkOverC', ''],
  ]) {
    const value = ratios[key] == null ? 'n/a' : `${ratios[key].toFixed(2)}x${suffix}`;
    const t = targets[key];
    const goal = `(target ${t.target}x: ${verdict(t)})`;
    console.log(`${`${title}:`.padEnd(28)}${value.padEnd(14)} ${goal}`);
  }
  if (ratios.forkOverCLayout != null) {
    const value = `${ratios.forkOverCLayout.toFixed(2)}x`;
    console.log(`${"fork / C, Node's layout:".padEnd(28)}${value.padEnd(14)} (no target)`);
  }

  const s = summary.forkStats;
  if (s) {
    console.log(`\nforkStats: ${s.smapsScansTimed} smaps scans in ${s.timedForks} timed forks ` +
      `(${s.smapsScansWarmup} in ${s.forks - s.timedForks} warm-up forks), ` +
      `${s.dontForkRanges} MADV_DONTFORK ranges`);
  }
  console.log(`(${summary.seconds} s)`);
}

// ---------------------------------------------------------------------------------------

const args = process.argv.slice(2);
if (args.includes('--run')) {
  console.log(JSON.stringify(await runnerFor(RUNNERS, args)()));
} else {
  killRunnerOnSignals(() => rmSync(layoutFile, { force: true }));
  await orchestrate(args.includes('--json'));
}
