// What fork.mjs, spawn.mjs and sync.mjs share: the orchestrator's way of running one contender per
// sub-process, the addon check, the C compile step, and small helpers for the figures and the
// table.
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
export const root = join(here, '..');
// Generated files (C sources and binaries, scripts for the children) go here.
export const cacheDir = join(here, '.cache');
const require = createRequire(import.meta.url);

export const RUNNER_TIMEOUT_MS = 60_000;

// C both floor programs share, placed after their #includes (stdio.h, time.h and unistd.h):
// a monotonic clock in ms, and the JSON line the orchestrator reads. print_rounds leaves the
// line open, so that a program can add fields before its closing brace. Each program defines
// timed(n), the ms per child over n children.
export const C_COMMON = String.raw`
static double now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static double timed(long n);

/* {"rounds":[...],"iterations":N,"warmup":N,"parent":{"rss":BYTES} (no closing brace) */
static void print_rounds(int rounds, long n, long warmup) {
  long rss_pages = 0;
  FILE* statm = fopen("/proc/self/statm", "r");
  if (statm) { if (fscanf(statm, "%*ld %ld", &rss_pages) != 1) rss_pages = 0; fclose(statm); }
  printf("{\"rounds\":[");
  for (int r = 0; r < rounds; r++) printf("%s%.6f", r ? "," : "", timed(n));
  printf("],\"iterations\":%ld,\"warmup\":%ld,\"parent\":{\"rss\":%ld}", n, warmup,
         rss_pages * sysconf(_SC_PAGESIZE));
}
`;

export const now = () => Number(process.hrtime.bigint()) / 1e6; // ms

// Writes `text` to cacheDir/name (creating the folder) and returns the file's path.
export function writeCache(name, text) {
  mkdirSync(cacheDir, { recursive: true });
  const file = join(cacheDir, name);
  writeFileSync(file, text);
  return file;
}

// Compiles a C runner into cacheDir/name, once per run: the benchmarks time a C loop as the
// floor the others are compared to. `flags` go to cc after -O2 (sync.mjs passes -pthread).
const compiled = new Map(); // name -> binary
export function compileC(name, source, flags = []) {
  if (compiled.has(name)) return compiled.get(name);
  const file = writeCache(`${name}.c`, source);
  const binary = join(cacheDir, name);
  const cc = spawnSync('cc', ['-O2', ...flags, '-o', binary, file], { encoding: 'utf8' });
  if (cc.status !== 0) throw new Error(`cc failed: ${cc.stderr || cc.error}`);
  compiled.set(name, binary);
  return binary;
}

// The Node parents' ~100 MB: small objects, so that the heap spreads over many V8 pages as a
// real application's does. The caller keeps the array alive.
export function growHeap(bytes) {
  const retained = [];
  let i = 0;
  while (process.memoryUsage().heapUsed < bytes) {
    for (let end = i + 10_000; i < end; i++) retained.push({ i, s: `item-${i}` });
  }
  return retained;
}

export function rssAnon() {
  const match = /^RssAnon:\s+(\d+) kB/m.exec(readFileSync('/proc/self/status', 'utf8'));
  return match ? Number(match[1]) * 1024 : null;
}

// ---------------------------------------------------------------------------------------
// Running contenders.

let current; // the runner sub-process in flight, killed with its process group on exit

// Runs one contender in its own process group and parses the JSON line it prints.
export function runCommand(file, args) {
  return new Promise((resolve, reject) => {
    const stdio = ['ignore', 'pipe', 'pipe'];
    const child = spawn(file, args, { cwd: root, detached: true, stdio });
    current = child;
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk) => (stdout += chunk));
    child.stderr.on('data', (chunk) => (stderr += chunk));
    const timer = setTimeout(() => killGroup(child), RUNNER_TIMEOUT_MS);
    child.once('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    child.once('exit', () => (current = undefined));
    // 'close' waits for the pipes too, so it also waits for any child the runner left behind
    // holding them: those are still in the group when the timer kills it.
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      const line = stdout.trim().split('\n').pop();
      if (code === 0 && line) {
        try {
          resolve(JSON.parse(line));
          return;
        } catch {}
      }
      const why = signal ? `killed by ${signal}` : `exit code ${code}`;
      reject(new Error(`${why}${stderr.trim() ? `: ${lastLines(stderr, 3)}` : ''}`));
    });
  });
}

export function killGroup(child) {
  try {
    process.kill(-child.pid, 'SIGKILL');
  } catch {} // already gone
}

export const lastLines = (text, n) => text.trim().split('\n').slice(-n).join(' | ');

// On Ctrl-C (or SIGTERM, SIGHUP), kills the runner in flight with its group, runs `cleanup`,
// then dies of the same signal, so that no contender outlives the orchestrator.
export function killRunnerOnSignals(cleanup = () => {}) {
  const stop = (signal) => {
    if (current) killGroup(current);
    cleanup();
    process.kill(process.pid, signal);
  };
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.once(signal, stop);
}

// A sanitizer build of the addon cannot load into a plain node, and would not be worth timing.
// `sanitized(file)` says so in the caller's words.
export function addonProblem(sanitized) {
  let file;
  try {
    file = require('node-gyp-build').path(root);
  } catch (error) {
    return `no addon build found (${error.message.split('\n')[0]}); run npx node-gyp build`;
  }
  const bytes = readFileSync(file);
  if (['libasan.so', 'libubsan.so', 'libtsan.so'].some((lib) => bytes.includes(lib))) {
    return sanitized(file);
  }
  return null;
}

export const onPath = (command) => spawnSync('sh', ['-c', `command -v ${command}`]).status === 0;

/** python3's version, or null without one. */
export function pythonVersion() {
  const script = 'import platform; print(platform.python_version())';
  return spawnSync('python3', ['-c', script], { encoding: 'utf8' }).stdout?.trim() || null;
}

// ---------------------------------------------------------------------------------------
// Figures and the table.

export const check = (value, op, target) => ({
  target: `${op} ${target}`,
  met: value == null ? null : op === '<=' ? value <= target : value >= target,
});
export const verdict = (t) => (t.met == null ? 'n/a' : t.met ? 'met' : 'MISSED');
export const median = (values) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
};
/** a / b, or null when either is missing (a contender that did not run). */
export const ratio = (a, b) => (a != null && b ? a / b : null);
export const round = (value, digits = 3) => (value == null ? null : Number(value.toFixed(digits)));
export const ms = (value) => value.toFixed(3);
export const mb = (bytes) => (bytes == null ? 'n/a' : `${(bytes / 1048576).toFixed(1)} MB`);

// The cells both tables start with: ms/child, rounds min-max, n/round, parent RSS.
export const timingCells = (c) => [
  c.medianMs == null ? 'skipped' : ms(c.medianMs),
  c.roundsMs ? [Math.min(...c.roundsMs), Math.max(...c.roundsMs)].map(ms).join('-') : '',
  c.iterationsPerRound == null ? '' : String(c.iterationsPerRound),
  c.parentRss == null ? '' : mb(c.parentRss),
];

// Prints a table: the first column left-aligned, the others right-aligned.
export function table(header, rows) {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const pad = (cell, i) => (i === 0 ? cell.padEnd(widths[i]) : cell.padStart(widths[i]));
  const line = (cells) => cells.map(pad).join('  ').trimEnd();
  console.log(line(header));
  console.log(widths.map((w) => '-'.repeat(w)).join('  '));
  rows.forEach((r) => console.log(line(r)));
}

export function printSkipped(contenders) {
  const skipped = contenders.filter((c) => c.skipped);
  if (skipped.length) {
    console.log('');
    for (const c of skipped) console.log(`skipped ${c.name}: ${c.skipped}`);
  }
}

// Runs the runner that `--run NAME` names, in a contender's sub-process.
export function runnerFor(runners, args) {
  const name = args[args.indexOf('--run') + 1];
  const run = runners[name];
  if (!run) throw new Error(`unknown runner: ${name}`);
  return run;
}
