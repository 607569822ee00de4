// Per-child cost of create + exit + reap, with the parent holding a dataset of 1e6 small
// objects: forkwise fork() in three parent states (right after building the data, after
// warmup(), quiet), with a child that exits at once and one that first allocates 10 MB of
// garbage, against child_process.fork, worker_threads, CPython os.fork and a C floor. Then
// the private memory of a child that reads the whole dataset, beside CPython's.
//
//   node bench/fork.mjs           table
//   node bench/fork.mjs --json    summary as JSON
//
// The orchestrator (no --run) starts one sub-process per contender, so each measures with its
// own freshly built parent, and reads one line of JSON from its stdout. Contenders run one
// after the other: on 2 cores, running them side by side would measure the contention.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  addonProblem, C_COMMON, cacheDir, check, compileC, killRunnerOnSignals, mb, median, ms,
  now, onPath, printSkipped, ratio, root, round, rssAnon, runCommand, runnerFor, table,
  verdict, writeCache,
} from './lib.mjs';

const layoutFile = join(cacheDir, 'node-layout.txt'); // removed after the run
const require = createRequire(import.meta.url);

const OBJECTS = 1_000_000;
const GARBAGE_BYTES = 10 * 1024 * 1024;
const ROUNDS = 5;
const ROUND_SECONDS = 0.4; // iterations per round are chosen so that a round takes about this
const FORK_WARMUP = 10;
const TARGETS = { forkOverC: 1.5, forkVsChildProcess: 10, forkVsWorker: 3, readingChildShare: 0.05 };

// Parent states of the forkwise parent: right after building the data (its young generation
// full of it: the first fork empties it, once, timed apart, and the children measured are
// the ones forked in a row after it), after warmup(), and quiet (the data built, then a pause
// and a few forks: nothing left to collect).
const STATES = {
  built: 'just built (nursery full)',
  warm: 'after warmup()',
  quiet: 'quiet',
};
// What the child does before it exits: nothing, or allocate 10 MB of garbage.
const KINDS = ['exit', 'garbage'];

const CONTENDERS = [
  ...Object.entries(STATES).map(([state, what]) => ({ name: `fork_${state}`, label: `forkwise fork(), ${what}` })),
  { name: 'child_process', label: 'child_process.fork', kinds: ['exit'] },
  { name: 'worker', label: 'new Worker (eval)', kinds: ['exit'] },
  { name: 'python', label: 'CPython os.fork()' },
  { name: 'c', label: 'C fork() (floor)' },
  { name: 'c_layout', label: "C fork(), Node's layout", kinds: ['exit'] },
];

// ---------------------------------------------------------------------------------------
// Runners: each prints one line of JSON, { rounds: [ms per child...], iterations, ... }.

// The dataset every Node parent holds: 1e6 small objects, spread over many V8 pages as a
// real application's data is. Returns its size as heapUsed grew.
let data;
function buildDataset() {
  const before = process.memoryUsage().heapUsed;
  data = [];
  for (let i = 0; i < OBJECTS; i++) data.push({ i, s: `item-${i}` });
  const { rss, heapUsed } = process.memoryUsage();
  return { rss, heapUsed, rssAnon: rssAnon(), objects: data.length, dataBytes: heapUsed - before };
}

// 10 MB of short-lived 1 KB arrays, as a child that works allocates.
let sink;
function makeGarbage() {
  for (let i = 0; i < GARBAGE_BYTES / 1024; i++) sink = new Array(126).fill(i);
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
    if (perms === '---p') continue; // address space reserved, no memory (native/heap_layout.cc)
    const rss = Number(/^Rss:\s+(\d+) kB/m.exec(entry)[1]) * 1024;
    mappings.push(`${start} ${end} ${rss.toString(16)} ${perms}`);
  }
  return { mappings, vmas };
}

// Warms up, picks the iterations per round from the warm-up's pace, then times the rounds.
// CPU time used so far by this process and by its reaped children, in ms: on a machine
// shared with other work, the wall-clock time of a fork depends on when the scheduler runs
// the child, the CPU time much less. Children's times come from /proc/self/stat (cutime and
// cstime, in clock ticks of 10 ms: a round of 0.4 s holds about 40 of them).
const TICK_MS = 10;
function cpuMs() {
  const { user, system } = process.cpuUsage();
  const fields = readFileSync('/proc/self/stat', 'utf8').split(') ')[1].split(' ');
  return (user + system) / 1000 + (Number(fields[13]) + Number(fields[14])) * TICK_MS;
}

// `afterRound`, when given, runs untimed after each round. Each round's CPU time per child
// (this process's and its children's) goes into cpuRounds.
async function measure(once, { warmup, minIterations, maxIterations, afterRound }) {
  let start = now();
  for (let i = 0; i < warmup; i++) await once();
  const pace = (now() - start) / warmup;
  const iterations = Math.max(
    minIterations,
    Math.min(maxIterations, Math.round((ROUND_SECONDS * 1000) / pace)),
  );
  const rounds = [];
  const cpuRounds = [];
  for (let r = 0; r < ROUNDS; r++) {
    const cpu = cpuMs();
    start = now();
    for (let i = 0; i < iterations; i++) await once();
    rounds.push((now() - start) / iterations);
    cpuRounds.push((cpuMs() - cpu) / iterations);
    afterRound?.();
  }
  return { rounds, cpuRounds, iterations, warmup };
}

// One round of the C floor (fork + _exit + waitpid from a C parent of `rss` bytes, every
// page touched), in ms per child, timed while this process waits. The forkwise runners take
// one after each of their rounds: on a shared machine the load drifts within seconds, and a
// ratio of neighbouring rounds is steadier than one of runs a minute apart.
function cFloorRound(rss, kind) {
  const binary = join(cacheDir, 'fork_floor'); // compiled by the orchestrator
  if (!existsSync(binary)) return null;
  const garbage = kind === 'garbage' ? ['--garbage', String(GARBAGE_BYTES)] : [];
  const out = spawnSync(binary, [...garbage, String(rss), '1', String(ROUND_SECONDS)], { encoding: 'utf8' });
  if (out.status !== 0) return null;
  const { rounds, cpuRounds } = JSON.parse(out.stdout);
  return { ms: rounds[0], cpuMs: cpuRounds[0] };
}

async function forkwiseModules() {
  const forkwise = await import('forkwise');
  if (!forkwise.isForkSafe()) throw new Error('the fork runner must run under node --single-threaded');
  // The same instances that forkwise loaded (node-gyp-build resolves the same file; the
  // heap module is forkwise's own, not exported).
  const addon = require('node-gyp-build')(root);
  // (Absent from forkwise before warmup() existed: the bench also times older checkouts.)
  const heapFile = join(root, 'dist', 'posix', 'heap.js');
  const heap = existsSync(heapFile) ? require(heapFile) : null;
  return { ...forkwise, addon, heap };
}

async function runFork(state, kind) {
  const { fork, _exit, waitpid, warmup, addon, heap } = await forkwiseModules();
  const parent = buildDataset();
  const young = addon.youngGenerationSize?.() ?? { used: null };
  let warmupMs = null;
  if (state === 'warm' && !warmup) throw new Error('this forkwise has no warmup()');
  if (state === 'warm') {
    const start = now();
    warmup();
    warmupMs = now() - start;
  }
  if (state === 'quiet') await new Promise((resolve) => setTimeout(resolve, 200));
  let collectionMs = null;
  if (state === 'built' && heap) {
    // What the first fork() does first, timed apart from the fork.
    const start = now();
    heap.emptyYoungGeneration();
    collectionMs = now() - start;
  }
  const before = addon.forkStats();
  const child = kind === 'garbage' ? () => (makeGarbage(), _exit(0)) : () => _exit(0);
  const cRounds = [];
  const rss = process.memoryUsage().rss;
  const result = await measure(
    () => {
      const pid = fork();
      if (pid === 0) child();
      const status = waitpid(pid);
      if (status.kind !== 'exited' || status.exitCode !== 0) {
        throw new Error(`child ended with ${JSON.stringify(status)}`);
      }
    },
    {
      warmup: FORK_WARMUP,
      minIterations: 10,
      maxIterations: 2000,
      afterRound: () => cRounds.push(cFloorRound(rss, kind)),
    },
  );
  // Per round: forkwise's time over the C floor's timed right after it.
  const paired = result.rounds.map((ms, r) => ratio(ms, cRounds[r]?.ms));
  const pairedCpu = result.cpuRounds.map((ms, r) => ratio(ms, cRounds[r]?.cpuMs));
  const after = addon.forkStats();
  return {
    ...result,
    parent: { ...parent, rss: process.memoryUsage().rss, rssAnon: rssAnon(), youngAfterBuild: young.used },
    layout: state === 'quiet' && kind === 'exit' ? anonLayout() : undefined,
    warmupMs,
    collectionMs,
    pairedRatio: paired.every((x) => x != null) ? median(paired) : null,
    pairedCpuRatio: pairedCpu.every((x) => x != null) ? median(pairedCpu) : null,
    smapsScans: after.smapsScans - before.smapsScans,
    dontForkRanges: after.dontForkRanges,
  };
}

async function runChildProcess() {
  const { fork } = await import('node:child_process');
  const script = writeCache('exit-at-once.cjs', 'process.exit(0);\n');
  const parent = buildDataset();
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
  const parent = buildDataset();
  const once = () =>
    new Promise((resolve, reject) => {
      const worker = new Worker('// ends at once', { eval: true });
      worker.once('error', reject);
      worker.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`exit ${code}`))));
    });
  const result = await measure(once, { warmup: 3, minIterations: 3, maxIterations: 50 });
  return { ...result, parent: { ...parent, rss: process.memoryUsage().rss } };
}

// ---------------------------------------------------------------------------------------
// Memory: what a child copies of its parent, as Private_Dirty in /proc/PID/smaps_rollup.
// The child reads every object of the dataset (a sum over its fields), or reads it while
// allocating garbage and collecting it (a realistic worker); then it reports, and waits
// until the parent has read its smaps_rollup. The parent waits, doing nothing, meanwhile:
// a page the parent wrote would become the child's alone and count as the child's.

function privateDirty(pid) {
  const text = readFileSync(`/proc/${pid}/smaps_rollup`, 'utf8');
  return Number(/^Private_Dirty:\s+(\d+) kB/m.exec(text)[1]) * 1024;
}

function readDataset(withGarbage) {
  let total = 0;
  const kept = new Array(1000);
  for (let i = 0; i < data.length; i++) {
    const o = data[i];
    total = (total + o.i + o.s.length) | 0; // stays a small integer: no allocation
    if (withGarbage) kept[i % kept.length] = [o.i, `${o.s}!`]; // garbage, a few survive a while
  }
  return total;
}

async function runMemory(state) {
  const { fork, _exit, waitpid, warmup, pipe, close } = await forkwiseModules();
  const { PerformanceObserver } = await import('node:perf_hooks');
  const { readSync, writeSync } = await import('node:fs');
  const parent = buildDataset();
  if (state === 'warm' && !warmup) throw new Error('this forkwise has no warmup()');
  if (state === 'warm') warmup();
  if (state === 'quiet') await new Promise((resolve) => setTimeout(resolve, 200));
  const results = {};
  for (const kind of ['idle', 'read', 'garbage']) {
    const [parentReads, childWrites] = pipe();
    const [childReads, parentWrites] = pipe();
    const pid = fork();
    if (pid === 0) {
      const collections = [];
      new PerformanceObserver((list) => {
        for (const e of list.getEntries()) collections.push({ kind: e.detail?.kind, ms: e.duration });
      }).observe({ entryTypes: ['gc'] });
      const start = now();
      if (kind !== 'idle') readDataset(kind === 'garbage');
      const workMs = now() - start;
      setTimeout(() => {
        // gc entries arrive on a later turn of the loop
        writeSync(childWrites, `${JSON.stringify({ ms: workMs, collections })}\n`);
        readSync(childReads, Buffer.alloc(1));
        _exit(0);
      }, 20);
      await new Promise(() => {}); // the child goes no further
    } else {
      close(childWrites);
      close(childReads);
      const buffer = Buffer.alloc(65536);
      let text = '';
      while (!text.endsWith('\n')) {
        const n = readSync(parentReads, buffer);
        if (n === 0) throw new Error('the memory child ended early');
        text += buffer.toString('utf8', 0, n);
      }
      const report = JSON.parse(text);
      const dirty = privateDirty(pid);
      writeSync(parentWrites, 'x');
      close(parentReads);
      close(parentWrites);
      waitpid(pid);
      const minor = report.collections.filter((c) => c.kind === 1);
      results[kind] = {
        privateDirty: dirty,
        ms: report.ms,
        collections: report.collections.length,
        firstCollectionMs: report.collections[0]?.ms ?? null,
        minorMs: minor.reduce((sum, c) => sum + c.ms, 0),
      };
    }
  }
  return { parent, children: results };
}

// Python and C get the fork-parent's RSS in bytes and grow to it, touching every page.
const PYTHON_RUNNER = String.raw`
import json, os, resource, sys, time
target, rounds, round_s = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
garbage = int(sys.argv[4])  # bytes of short-lived 1 KB lists the child makes first
def rss():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
page = os.sysconf('SC_PAGE_SIZE')
held = bytearray(max(0, target - rss()))
held[::page] = b'\x01' * len(range(0, len(held), page))  # fault every page in
def once():
    pid = os.fork()
    if pid == 0:
        if garbage:
            junk = [[i] * 126 for i in range(garbage // 1024)]
            del junk
        os._exit(0)
    _, status = os.waitpid(pid, 0)
    if status != 0:
        raise SystemExit('child status %d' % status)
def cpu():
    return sum(resource.getrusage(who).ru_utime + resource.getrusage(who).ru_stime
               for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN))
cpu_rounds = []
def timed(n):
    start, start_cpu = time.perf_counter(), cpu()
    for _ in range(n):
        once()
    cpu_rounds.append((cpu() - start_cpu) * 1000 / n)
    return (time.perf_counter() - start) * 1000 / n
warmup = 20
n = max(10, min(5000, round(round_s * 1000 / timed(warmup))))
cpu_rounds.clear()
wall = [timed(n) for _ in range(rounds)]
print(json.dumps({'rounds': wall, 'cpuRounds': cpu_rounds, 'iterations': n,
                  'warmup': warmup, 'parent': {'rss': rss()}}))
`;

function runPython(targetRss, kind) {
  const garbage = kind === 'garbage' ? GARBAGE_BYTES : 0;
  const args = [String(targetRss), String(ROUNDS), String(ROUND_SECONDS), String(garbage)];
  return runCommand('python3', ['-c', PYTHON_RUNNER, ...args]);
}

// CPython's side of the memory figures: a dict of as many entries as the Node dataset, each
// child reads it (or reads it while allocating garbage), and the parent reads the child's
// Private_Dirty while it waits. Reference counts live in the objects, so reading writes.
const PYTHON_MEMORY = String.raw`
import json, os, sys
n = int(sys.argv[1])
def rss():
    with open('/proc/self/statm') as f:
        return int(f.read().split()[1]) * os.sysconf('SC_PAGE_SIZE')
before = rss()
data = {i: 'item-%d' % i for i in range(n)}
data_bytes = rss() - before
def private_dirty(pid):
    with open('/proc/%d/smaps_rollup' % pid) as f:
        for line in f:
            if line.startswith('Private_Dirty:'):
                return int(line.split()[1]) * 1024
children = {}
for kind in ('idle', 'read', 'garbage'):
    to_parent, from_child = os.pipe()
    from_parent, to_child = os.pipe()
    pid = os.fork()
    if pid == 0:
        total = 0
        kept = [None] * 1000
        if kind != 'idle':
            for k, v in data.items():
                total += k + len(v)
                if kind == 'garbage':
                    kept[k % 1000] = [k, v + '!']
        os.write(from_child, b'x')
        os.read(from_parent, 1)
        os._exit(0)
    os.close(from_child); os.close(from_parent)
    os.read(to_parent, 1)
    children[kind] = {'privateDirty': private_dirty(pid)}
    os.write(to_child, b'x')
    os.waitpid(pid, 0)
    os.close(to_parent); os.close(to_child)
print(json.dumps({'parent': {'rss': rss(), 'objects': n, 'dataBytes': data_bytes}, 'children': children}))
`;

function runPythonMemory() {
  return runCommand('python3', ['-c', PYTHON_MEMORY, String(OBJECTS)]);
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
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
${C_COMMON}
/* CPU time of this process and its reaped children, in ms. */
static double cpu_ms(void) {
  struct rusage self, children;
  getrusage(RUSAGE_SELF, &self);
  getrusage(RUSAGE_CHILDREN, &children);
  double us = 0;
  struct timeval* tv[] = {&self.ru_utime, &self.ru_stime, &children.ru_utime, &children.ru_stime};
  for (int i = 0; i < 4; i++) us += tv[i]->tv_sec * 1e6 + tv[i]->tv_usec;
  return us / 1e3;
}

static size_t garbage; /* bytes the child mallocs and touches (every page) before it exits */

static double timed(long n) {
  double start = now_ms();
  for (long i = 0; i < n; i++) {
    pid_t pid = fork();
    if (pid == 0) {
      /* volatile: a compiler would drop writes to memory that is never read */
      volatile char* junk = garbage ? malloc(garbage) : NULL;
      for (size_t off = 0; junk && off < garbage; off += 4096) junk[off] = 1;
      _exit(0);
    }
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

/* fork_floor [--garbage N] BYTES ROUNDS ROUND_S, or fork_floor --layout FILE ROUNDS ROUND_S */
int main(int argc, char** argv) {
  if (argc > 2 && strcmp(argv[1], "--garbage") == 0) {
    garbage = strtoull(argv[2], NULL, 10);
    argc -= 2, argv += 2;
  }
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
  /* wall and CPU time per child, round by round */
  double wall[64], cpu[64];
  if (rounds > 64) rounds = 64;
  for (int r = 0; r < rounds; r++) {
    double start_cpu = cpu_ms();
    wall[r] = timed(n);
    cpu[r] = (cpu_ms() - start_cpu) / n;
  }
  long rss_pages = 0;
  FILE* statm = fopen("/proc/self/statm", "r");
  if (statm) { if (fscanf(statm, "%*ld %ld", &rss_pages) != 1) rss_pages = 0; fclose(statm); }
  printf("{\"rounds\":[");
  for (int r = 0; r < rounds; r++) printf("%s%.6f", r ? "," : "", wall[r]);
  printf("],\"cpuRounds\":[");
  for (int r = 0; r < rounds; r++) printf("%s%.6f", r ? "," : "", cpu[r]);
  printf("],\"iterations\":%ld,\"warmup\":%ld,\"parent\":{\"rss\":%ld}", n, warmup,
         rss_pages * sysconf(_SC_PAGESIZE));
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

function runC(targetRss, kind) {
  const garbage = kind === 'garbage' ? ['--garbage', String(GARBAGE_BYTES)] : [];
  return runCommand(cBinary(), [...garbage, String(targetRss), String(ROUNDS), String(ROUND_SECONDS)]);
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

// `--run NAME [ARGS...]`: fork takes a state and a kind, memory a state.
const runArgs = process.argv.slice(process.argv.indexOf('--run') + 2);
const RUNNERS = {
  fork: () => runFork(runArgs[0], runArgs[1]),
  memory: () => runMemory(runArgs[0]),
  child_process: runChildProcess,
  worker: runWorker,
};

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
  const results = {}; // by `${name}:${kind}`
  const skipped = {};
  const memory = {}; // forkwise by state, and python
  const started = Date.now();

  const attempt = async (key, run, into = results) => {
    log(`running ${key}... `);
    try {
      into[key] = await run();
      log(into[key].rounds ? `${median(into[key].rounds).toFixed(3)} ms/child\n` : 'done\n');
    } catch (error) {
      skipped[key] = error.message;
      log(`skipped: ${error.message}\n`);
    }
  };

  // The forkwise runners time a round of the C floor after each of theirs (cFloorRound).
  if (onPath('cc')) cBinary();
  const problem = addonProblem(sanitized);
  for (const state of Object.keys(STATES)) {
    for (const kind of KINDS) {
      const key = `fork_${state}:${kind}`;
      if (problem) skipped[key] = problem;
      else await attempt(key, () => runNode(['--single-threaded', self, '--run', 'fork', state, kind]));
    }
  }
  await attempt('child_process:exit', () => runNode([self, '--run', 'child_process']));
  await attempt('worker:exit', () => runNode([self, '--run', 'worker']));

  // Python and C match the RSS of the quiet fork parent (or, without it, of another one).
  const nodeParent = Object.values(results).find((r) => r.parent)?.parent;
  const quietParent = results['fork_quiet:exit']?.parent ?? nodeParent;
  const targetRss = quietParent?.rss ?? 170 * 1048576;
  for (const kind of KINDS) {
    if (onPath('python3')) await attempt(`python:${kind}`, () => runPython(targetRss, kind));
    else skipped[`python:${kind}`] = 'python3 is not on PATH';
  }
  const layout = results['fork_quiet:exit']?.layout;
  if (!onPath('cc')) {
    for (const key of ['c:exit', 'c:garbage', 'c_layout:exit']) skipped[key] = 'cc is not on PATH';
  } else {
    for (const kind of KINDS) await attempt(`c:${kind}`, () => runC(targetRss, kind));
    if (layout) await attempt('c_layout:exit', () => runCLayout(layout.mappings));
    else skipped['c_layout:exit'] = 'needs the memory layout of the forkwise parent';
  }

  for (const state of Object.keys(STATES)) {
    if (problem) skipped[`memory_${state}`] = problem;
    else await attempt(state, () => runNode(['--single-threaded', self, '--run', 'memory', state]), memory);
  }
  if (onPath('python3')) await attempt('python', runPythonMemory, memory);

  const medians = Object.fromEntries(
    Object.entries(results).map(([key, result]) => [key, median(result.rounds)]),
  );
  const cpuMedians = Object.fromEntries(
    Object.entries(results).map(([key, result]) => [key, result.cpuRounds ? median(result.cpuRounds) : null]),
  );
  const ratioOf = (a, b) => ratio(medians[a], medians[b]);
  const cpuRatioOf = (a, b) => ratio(cpuMedians[a], cpuMedians[b]);
  const worstOf = (values) => {
    const known = values.filter((x) => x != null);
    return known.length ? Math.max(...known) : null;
  };
  const stateKeys = Object.keys(STATES).map((state) => `fork_${state}:exit`);
  const worstForkOverC = Math.max(
    ...Object.keys(STATES).map((state) => ratioOf(`fork_${state}:exit`, 'c:exit') ?? -Infinity),
  );
  const slowestFork = Math.max(...Object.keys(STATES).map((state) => medians[`fork_${state}:exit`] ?? -Infinity));
  const pairedRatios = Object.fromEntries(
    Object.keys(STATES).flatMap((state) => KINDS.map((kind) => [
      `${state}:${kind}`, round(results[`fork_${state}:${kind}`]?.pairedRatio ?? null, 2),
    ])),
  );
  const pairedCpuRatios = Object.fromEntries(
    Object.keys(STATES).flatMap((state) => KINDS.map((kind) => [
      `${state}:${kind}`, round(results[`fork_${state}:${kind}`]?.pairedCpuRatio ?? null, 2),
    ])),
  );
  const pairedValues = Object.entries(pairedRatios)
    .filter(([key, v]) => key.endsWith(':exit') && v != null)
    .map(([, v]) => v);
  const ratios = {
    forkOverC: Number.isFinite(worstForkOverC) ? worstForkOverC : null,
    forkOverCPaired: pairedValues.length ? Math.max(...pairedValues) : null,
    forkVsChildProcess: Number.isFinite(slowestFork) ? ratio(medians['child_process:exit'], slowestFork) : null,
    forkVsWorker: Number.isFinite(slowestFork) ? ratio(medians['worker:exit'], slowestFork) : null,
    forkOverCLayout: ratioOf('fork_quiet:exit', 'c_layout:exit'),
    cpuForkOverC: worstOf(stateKeys.map((key) => cpuRatioOf(key, 'c:exit'))),
    cpuForkOverCPaired: worstOf(stateKeys.map((key) => results[key]?.pairedCpuRatio ?? null)),
    cpuForkVsChildProcess: ratio(cpuMedians['child_process:exit'], worstOf(stateKeys.map((k) => cpuMedians[k] ?? null))),
  };
  const share = (m, kind) => ratio(m?.children?.[kind]?.privateDirty, m?.parent?.dataBytes);
  const readingShares = Object.keys(STATES).map((state) => share(memory[state], 'read')).filter((x) => x != null);
  const worstReadingShare = readingShares.length ? Math.max(...readingShares) : null;
  const row = (name, kind) => {
    const key = `${name}:${kind}`;
    const result = results[key];
    return result
      ? {
          medianMs: round(medians[key], 4),
          roundsMs: result.rounds.map((x) => round(x, 4)),
          iterationsPerRound: result.iterations,
          parentRss: result.parent?.rss ?? null,
          ratioToC: round(ratioOf(key, `c:${kind}`), 2),
          cpuMedianMs: round(cpuMedians[key], 4),
          cpuRoundsMs: result.cpuRounds?.map((x) => round(x, 4)) ?? null,
          cpuRatioToC: round(cpuRatioOf(key, `c:${kind}`), 2),
        }
      : { skipped: skipped[key] ?? null };
  };
  const summary = {
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    seconds: round((Date.now() - started) / 1000, 1),
    nodeParent: quietParent ?? null,
    targetRss,
    garbageBytes: GARBAGE_BYTES,
    parentStates: Object.fromEntries(
      Object.keys(STATES).map((state) => {
        const r = results[`fork_${state}:exit`];
        return [state, r ? {
          youngAfterBuild: r.parent.youngAfterBuild,
          collectionMs: round(r.collectionMs, 3),
          warmupMs: round(r.warmupMs, 1),
          smapsScans: r.smapsScans,
          dontForkRanges: r.dontForkRanges,
          rss: r.parent.rss,
        } : null];
      }),
    ),
    layout: layout
      ? { nodeMappings: layout.mappings.length, nodeVmas: layout.vmas, ...results['c_layout:exit']?.layout }
      : null,
    contenders: CONTENDERS.map(({ name, label, kinds = KINDS }) => ({
      name,
      label,
      ...Object.fromEntries(kinds.map((kind) => [kind, row(name, kind)])),
    })),
    memory: Object.fromEntries(
      Object.entries(memory).map(([who, m]) => [who, {
        dataBytes: m.parent.dataBytes,
        parentRss: m.parent.rss,
        children: Object.fromEntries(Object.entries(m.children).map(([kind, c]) => [kind, {
          ...c,
          share: round(ratio(c.privateDirty, m.parent.dataBytes), 4),
        }])),
      }]),
    ),
    ratios: Object.fromEntries(Object.entries(ratios).map(([k, v]) => [k, round(v, 2)])),
    pairedForkOverC: pairedRatios,
    pairedCpuForkOverC: pairedCpuRatios,
    readingChildShare: { forkwise: round(worstReadingShare, 4), python: round(share(memory.python, 'read'), 4) },
    targets: {
      forkOverC: check(ratios.forkOverC, '<=', TARGETS.forkOverC),
      forkOverCPaired: check(ratios.forkOverCPaired, '<=', TARGETS.forkOverC),
      cpuForkOverC: check(ratios.cpuForkOverC, '<=', TARGETS.forkOverC),
      cpuForkOverCPaired: check(ratios.cpuForkOverCPaired, '<=', TARGETS.forkOverC),
      cpuForkVsChildProcess: check(ratios.cpuForkVsChildProcess, '>=', TARGETS.forkVsChildProcess),
      forkVsChildProcess: check(ratios.forkVsChildProcess, '>=', TARGETS.forkVsChildProcess),
      forkVsWorker: check(ratios.forkVsWorker, '>=', TARGETS.forkVsWorker),
      readingChildShare: check(worstReadingShare, '<=', TARGETS.readingChildShare),
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
    console.log(`Node parent: ${p.objects} objects (${mb(p.dataBytes)} of heap), heapUsed ` +
      `${mb(p.heapUsed)}, RSS ${mb(p.rss)}` + (p.rssAnon ? ` (anonymous ${mb(p.rssAnon)})` : ''));
  }
  console.log(`Python and C parents grow to ${mb(summary.targetRss)} RSS, every page touched; ` +
    `the garbage child allocates ${mb(summary.garbageBytes)} before it exits`);
  const l = summary.layout;
  if (l?.mapped) {
    console.log(`C with Node's layout: ${l.mapped} of ${l.nodeMappings} anonymous mappings at ` +
      `Node's addresses, ${mb(l.touched)} touched, ${l.skipped} skipped (${mb(l.skippedBytes)}); ` +
      `${l.vmas} VMAs (Node: ${l.nodeVmas})`);
  }
  console.log('');

  const x = (r) => (r == null ? '' : ` (${r.toFixed(2)}x)`);
  const cells = (c) => (c
    ? [c.medianMs == null ? 'skipped' : `${ms(c.medianMs)}${x(c.ratioToC)}`,
      c.cpuMedianMs == null ? '' : `${ms(c.cpuMedianMs)}${x(c.cpuRatioToC)}`]
    : ['', '']);
  const rows = summary.contenders.map((c) => [c.label, ...cells(c.exit), ...cells(c.garbage)]);
  table(['contender (ratios: vs C)', 'exit: ms/child', 'CPU ms', '+10 MB garbage: ms', 'CPU ms'], rows);
  const skippedRows = summary.contenders.flatMap((c) =>
    KINDS.filter((k) => c[k]?.skipped).map((k) => ({ name: `${c.name}:${k}`, skipped: c[k].skipped })));
  printSkipped(skippedRows);

  const s = summary.parentStates;
  console.log('');
  if (s.built) {
    console.log(`just built: young generation ${mb(s.built.youngAfterBuild)} after building; ` +
      `the first fork() empties it: ${s.built.collectionMs} ms in the parent, once (not in the figures above)`);
  }
  if (s.warm) console.log(`warmup(): ${s.warm.warmupMs} ms once; parent RSS ${mb(s.warm.rss)} (quiet: ${mb(s.quiet?.rss)})`);
  const scans = Object.entries(s).filter(([, v]) => v).map(([k, v]) => `${k} ${v.smapsScans}`).join(', ');
  console.log(`smaps scans during the measured forks: ${scans}`);

  const { ratios, targets } = summary;
  console.log('');
  for (const [title, key, suffix] of [
    ['slowest state vs child_process.fork', 'forkVsChildProcess', ' faster'],
    ['slowest state vs Worker', 'forkVsWorker', ' faster'],
    ['worst state / C floor', 'forkOverC', ''],
    ['worst state / C floor, paired rounds', 'forkOverCPaired', ''],
    ['CPU: worst state / C floor', 'cpuForkOverC', ''],
    ['CPU: same, paired rounds', 'cpuForkOverCPaired', ''],
    ['CPU: slowest vs child_process.fork', 'cpuForkVsChildProcess', ' less'],
  ]) {
    const value = ratios[key] == null ? 'n/a' : `${ratios[key].toFixed(2)}x${suffix}`;
    const t = targets[key];
    console.log(`${`${title}:`.padEnd(38)}${value.padEnd(14)} (target ${t.target}x: ${verdict(t)})`);
  }
  const pr = Object.entries(summary.pairedForkOverC).filter(([, v]) => v != null);
  if (pr.length) console.log(`paired rounds (forkwise round / C round right after), wall: ${pr.map(([k, v]) => `${k} ${v.toFixed(2)}x`).join(', ')}`);
  const pc = Object.entries(summary.pairedCpuForkOverC).filter(([, v]) => v != null);
  if (pc.length) console.log(`paired rounds, CPU: ${pc.map(([k, v]) => `${k} ${v.toFixed(2)}x`).join(', ')}`);
  if (ratios.forkOverCLayout != null) {
    console.log(`${"quiet / C, Node's layout:".padEnd(38)}${`${ratios.forkOverCLayout.toFixed(2)}x`.padEnd(14)} (no target)`);
  }

  const m = summary.memory;
  if (Object.keys(m).length) {
    console.log('\nPrivate_Dirty of one child (/proc/PID/smaps_rollup), and its share of the dataset:');
    const pct = (c) => (c ? `${mb(c.privateDirty)} (${(100 * c.share).toFixed(1)}%)` : '');
    const gcs = (c) => (c?.collections == null ? '' : `${c.collections}, first ${c.firstCollectionMs == null ? '-' : `${c.firstCollectionMs.toFixed(1)} ms`}`);
    const rows2 = Object.entries(m).map(([who, r]) => [
      who === 'python' ? 'CPython dict' : `forkwise, ${STATES[who]}`,
      mb(r.dataBytes),
      pct(r.children.idle),
      pct(r.children.read),
      pct(r.children.garbage),
      gcs(r.children.garbage),
    ]);
    table(['parent', 'dataset', 'idle child', 'reading child', 'reading + garbage', 'its collections'], rows2);
    const t = summary.targets.readingChildShare;
    const v = summary.readingChildShare;
    console.log(`reading child, worst state: ${v.forkwise == null ? 'n/a' : `${(100 * v.forkwise).toFixed(1)}%`} of the dataset ` +
      `(target ${(100 * TARGETS.readingChildShare).toFixed(0)}%: ${verdict(t)}); CPython: ` +
      `${v.python == null ? 'n/a' : `${(100 * v.python).toFixed(1)}%`}`);
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
