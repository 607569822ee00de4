// forkwise/sync's Mutex, uncontended and contended, against the same work done with a JS spin
// lock, a C pthread mutex and CPython's multiprocessing.Lock.
//
//   node bench/sync.mjs                 both tables
//   node bench/sync.mjs --uncontended   the one-thread table only
//   node bench/sync.mjs --contended     the two-process table only
//   node bench/sync.mjs --json          summary as JSON
//
// Uncontended: ns per acquire+release pair in one thread (and, to tell the lock from the cost
// of calling into the addon at all, ns per call of two small native functions). Contended: two
// processes each add 1 to a shared counter COUNT times, taking the lock around every addition;
// the figure is ns per increment (elapsed time over 2 x COUNT), and the final counter must be
// exactly 2 x COUNT in every contender (the run aborts otherwise).
//
// As in spawn.mjs, the orchestrator (no --run) starts one sub-process per contender and reads
// one line of JSON from its stdout; the Node runners run under node --single-threaded (the
// contended one forks). Contenders run one after the other, in passes that take them in turn.
import { writeSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import {
  addonProblem, C_COMMON, check, compileC, killRunnerOnSignals, median, now, onPath,
  printSkipped, ratio, round, runCommand, runnerFor, table, verdict,
} from './lib.mjs';

const PASSES = 3;
const ROUNDS = 2; // per pass; a contender's figure is the median of its PASSES x ROUNDS rounds
const ROUND_SECONDS = 0.15; // uncontended: iterations per round are chosen for about this long
const WARMUP_MS = 60; // uncontended: the loop runs (doubling its length) for at least this first
const COUNT = 1_000_000; // contended: increments per process
const PROCESSES = 2; // contended: processes incrementing the counter (C and Python: 2, built in)
// CPython takes ~0.7 us per increment here. If a calibration round says 2 x COUNT would take
// longer than this, it counts to less (scaled per increment, and said so in the output).
const PYTHON_MAX_SECONDS = 2.5;
const TARGETS = { mutexSyncNs: 150, contendedVsPython: 10 };

// `floor`: the C row a row's "vs C" column divides by (none for locked()).
const UNCONTENDED = [
  { name: 'mutex_sync', label: 'forkwise Mutex acquire()+release()', node: true, floor: 'c_mutex' },
  { name: 'mutex_async', label: 'forkwise Mutex await acquireAsync()+release()', node: true, floor: 'c_mutex' },
  { name: 'locked', label: 'forkwise Mutex locked() (one native call)', node: true },
  { name: 'getpid', label: 'forkwise getpid() (native call + syscall)', node: true, floor: 'c_getpid' },
  { name: 'js_spin', label: 'JS spin lock (Atomics.compareExchange+store)', node: true, floor: 'c_mutex' },
  { name: 'c_mutex', label: 'C pthread_mutex_lock+unlock (floor)', floor: 'c_mutex' },
  { name: 'c_getpid', label: 'C syscall(SYS_getpid)', floor: 'c_getpid' },
];

const CONTENDED = [
  { name: 'fw_value', label: "forkwise Mutex + Value('int64', lock: false)", node: true },
  { name: 'fw_int32', label: 'forkwise Mutex + Int32Array on SharedMemory', node: true },
  { name: 'c_contended', label: 'C pthread mutex + long in MAP_SHARED (floor)' },
  { name: 'python', label: "CPython mp.Lock + mp.Value('q', lock=False)" },
].map((c) => ({ ...c, floor: 'c_contended' }));

// ---------------------------------------------------------------------------------------
// Node runners: each prints one line of JSON, { rounds: [ns per op...], iterations, ... }.

// Warms `body(n)` (n iterations; may return a promise) up for WARMUP_MS, doubling n, picks the
// iterations per round from the pace, then times the rounds. Figures are ns per iteration.
async function measureOps(body) {
  let n = 1000;
  let warmup = 0;
  const warmStart = now();
  let pace; // ms per iteration
  for (;;) {
    const start = now();
    await body(n);
    const elapsed = now() - start;
    warmup += n;
    pace = elapsed / n;
    if (now() - warmStart >= WARMUP_MS) break;
    n *= 2;
  }
  const iterations = Math.max(1000, Math.round((ROUND_SECONDS * 1000) / pace));
  const rounds = [];
  for (let r = 0; r < ROUNDS; r++) {
    const start = now();
    await body(iterations);
    rounds.push(((now() - start) * 1e6) / iterations);
  }
  return { rounds, iterations, warmup };
}

async function runMutexSync() {
  const { Mutex } = await import('forkwise/sync');
  const mutex = new Mutex();
  return measureOps((n) => {
    for (let i = 0; i < n; i++) {
      if (!mutex.acquire()) throw new Error('acquire() returned false');
      mutex.release();
    }
  });
}

async function runMutexAsync() {
  const { Mutex } = await import('forkwise/sync');
  const mutex = new Mutex();
  return measureOps(async (n) => {
    for (let i = 0; i < n; i++) {
      if (!(await mutex.acquireAsync())) throw new Error('acquireAsync() resolved to false');
      mutex.release();
    }
  });
}

async function runLocked() {
  const { Mutex } = await import('forkwise/sync');
  const mutex = new Mutex();
  return measureOps((n) => {
    let held = 0;
    for (let i = 0; i < n; i++) if (mutex.locked()) held++;
    if (held) throw new Error('locked() said true of a free Mutex');
  });
}

async function runGetpid() {
  const { getpid } = await import('forkwise');
  const pid = process.pid;
  return measureOps((n) => {
    let wrong = 0;
    for (let i = 0; i < n; i++) if (getpid() !== pid) wrong++;
    if (wrong) throw new Error('getpid() !== process.pid');
  });
}

// The lock a JS program could build itself on a SharedArrayBuffer: a CAS to take it, a store
// to give it back (no futex, so no sleeping: only good between threads of one process).
async function runJsSpin() {
  const word = new Int32Array(new SharedArrayBuffer(4));
  const acquire = () => {
    while (Atomics.compareExchange(word, 0, 0, 1) !== 0);
  };
  const release = () => Atomics.store(word, 0, 0);
  return measureOps((n) => {
    for (let i = 0; i < n; i++) {
      acquire();
      release();
    }
  });
}

// Two forked children add 1 to the counter COUNT times each, taking the Mutex around every
// addition. Both first say they are ready in a small SharedMemory and wait for the parent's go:
// the clock runs from the go to both children reaped. The parent runs the loop uncontended
// first, so that the children inherit optimised code.
async function runContended(counterKind) {
  const { fork, waitpid, _exit, isForkSafe } = await import('forkwise');
  const { Mutex, SharedMemory, Value } = await import('forkwise/sync');
  if (!isForkSafe()) throw new Error('the contended runner must run under node --single-threaded');
  const mutex = new Mutex();
  let work; // (n) => void
  let read; // () => number
  let reset;
  if (counterKind === 'value') {
    const value = new Value('int64', 0n, { lock: false });
    work = (n) => {
      for (let i = 0; i < n; i++) {
        mutex.acquire();
        value.value += 1n;
        mutex.release();
      }
    };
    read = () => Number(value.value);
    reset = () => (value.value = 0n);
  } else {
    const memory = new SharedMemory({ size: 8 });
    const cell = new Int32Array(memory.buffer, 0, 1);
    work = (n) => {
      for (let i = 0; i < n; i++) {
        mutex.acquire();
        cell[0] += 1;
        mutex.release();
      }
    };
    read = () => cell[0];
    reset = () => (cell[0] = 0);
  }
  const gate = new Int32Array(new SharedMemory({ size: 8 }).buffer, 0, 2); // [ready, go]
  const nap = new Int32Array(new SharedArrayBuffer(4)); // Atomics.wait on it = a 50 us sleep
  const sleep = () => Atomics.wait(nap, 0, 0, 0.05);

  const warmup = 100_000;
  work(warmup);
  const rounds = [];
  const counters = [];
  const seconds = [];
  for (let r = 0; r < ROUNDS; r++) {
    reset();
    Atomics.store(gate, 0, 0);
    Atomics.store(gate, 1, 0);
    const pids = [];
    for (let p = 0; p < PROCESSES; p++) {
      const pid = fork();
      if (pid === 0) {
        let code = 0;
        try {
          Atomics.add(gate, 0, 1);
          while (Atomics.load(gate, 1) === 0) sleep();
          work(COUNT);
        } catch (error) {
          writeSync(2, `contended child ${process.pid}: ${error?.stack ?? error}\n`);
          code = 1;
        }
        _exit(code);
      }
      pids.push(pid);
    }
    while (Atomics.load(gate, 0) < PROCESSES) sleep();
    const start = now();
    Atomics.store(gate, 1, 1);
    for (const pid of pids) {
      const status = waitpid(pid);
      if (status.kind !== 'exited' || status.exitCode !== 0) {
        throw new Error(`contended child ended with ${JSON.stringify(status)}`);
      }
    }
    const elapsed = now() - start;
    rounds.push((elapsed * 1e6) / (PROCESSES * COUNT));
    seconds.push(elapsed / 1000);
    counters.push(read());
  }
  return { rounds, seconds, counters, expected: PROCESSES * COUNT, count: COUNT, warmup };
}

const RUNNERS = {
  mutex_sync: runMutexSync,
  mutex_async: runMutexAsync,
  locked: runLocked,
  getpid: runGetpid,
  js_spin: runJsSpin,
  fw_value: () => runContended('value'),
  fw_int32: () => runContended('int32'),
};

// ---------------------------------------------------------------------------------------
// C and Python runners.

// One program for the three C contenders. The mutex is set up as a process-shared, robust,
// error-checking one (what a forkwise Mutex is: it survives its owner's death and refuses a
// second acquire by its owner), in MAP_SHARED memory. timed(n) returns ns per operation.
//   sync_floor mutex ROUNDS ROUND_S    lock+unlock pairs, one thread
//   sync_floor getpid ROUNDS ROUND_S   syscall(SYS_getpid), which glibc does not cache
//   sync_floor contended COUNT ROUNDS  2 forked children x COUNT increments under the mutex
const C_RUNNER = String.raw`
#define _GNU_SOURCE
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
${C_COMMON}
struct shared {
  pthread_mutex_t mutex;
  long counter;
  int ready, go;
};
static struct shared* s;
static int mode; /* 0 mutex, 1 getpid */

static void setup(void) {
  s = mmap(NULL, sizeof *s, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  if (s == MAP_FAILED) { perror("mmap"); exit(1); }
  pthread_mutexattr_t attr;
  pthread_mutexattr_init(&attr);
  pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  pthread_mutexattr_settype(&attr, PTHREAD_MUTEX_ERRORCHECK);
  int err = pthread_mutex_init(&s->mutex, &attr);
  if (err) { fprintf(stderr, "pthread_mutex_init: %s\n", strerror(err)); exit(1); }
}

static double timed(long n) {
  int err = 0;
  double start = now_ms();
  if (mode == 0) {
    for (long i = 0; i < n; i++) {
      err |= pthread_mutex_lock(&s->mutex);
      err |= pthread_mutex_unlock(&s->mutex);
    }
  } else {
    for (long i = 0; i < n; i++) err |= syscall(SYS_getpid) <= 0;
  }
  double ns = (now_ms() - start) * 1e6 / n;
  if (err) { fprintf(stderr, "lock/unlock/getpid failed\n"); exit(1); }
  return ns;
}

static void nap(void) { usleep(50); }

/* elapsed ns per increment; the final counter goes to *counter */
static double contended(long count, long* counter) {
  s->counter = 0;
  __atomic_store_n(&s->ready, 0, __ATOMIC_SEQ_CST);
  __atomic_store_n(&s->go, 0, __ATOMIC_SEQ_CST);
  pid_t pids[2];
  for (int p = 0; p < 2; p++) {
    pids[p] = fork();
    if (pids[p] < 0) { perror("fork"); exit(1); }
    if (pids[p] == 0) {
      int err = 0;
      __atomic_add_fetch(&s->ready, 1, __ATOMIC_SEQ_CST);
      while (!__atomic_load_n(&s->go, __ATOMIC_SEQ_CST)) nap();
      for (long i = 0; i < count; i++) {
        err |= pthread_mutex_lock(&s->mutex);
        s->counter++;
        err |= pthread_mutex_unlock(&s->mutex);
      }
      _exit(err ? 1 : 0);
    }
  }
  while (__atomic_load_n(&s->ready, __ATOMIC_SEQ_CST) < 2) nap();
  double start = now_ms();
  __atomic_store_n(&s->go, 1, __ATOMIC_SEQ_CST);
  for (int p = 0; p < 2; p++) {
    int status;
    if (waitpid(pids[p], &status, 0) != pids[p] || status != 0) {
      fprintf(stderr, "contended child: status %d\n", status);
      exit(1);
    }
  }
  double ns = (now_ms() - start) * 1e6 / (2.0 * count);
  *counter = s->counter;
  return ns;
}

int main(int argc, char** argv) {
  if (argc != 4) return 2;
  setup();
  if (strcmp(argv[1], "contended") == 0) {
    long count = atol(argv[2]);
    int rounds = atoi(argv[3]);
    long counter;
    contended(count / 10, &counter); /* warm-up */
    double ns[64];
    long counters[64];
    if (rounds > 64) rounds = 64;
    for (int r = 0; r < rounds; r++) ns[r] = contended(count, &counters[r]);
    printf("{\"rounds\":[");
    for (int r = 0; r < rounds; r++) printf("%s%.3f", r ? "," : "", ns[r]);
    printf("],\"seconds\":[");
    for (int r = 0; r < rounds; r++) printf("%s%.6f", r ? "," : "", ns[r] * 2.0 * count / 1e9);
    printf("],\"counters\":[");
    for (int r = 0; r < rounds; r++) printf("%s%ld", r ? "," : "", counters[r]);
    printf("],\"expected\":%ld,\"count\":%ld}\n", 2 * count, count);
    return 0;
  }
  mode = strcmp(argv[1], "getpid") == 0;
  int rounds = atoi(argv[2]);
  double round_ns = atof(argv[3]) * 1e9;
  long warmup = 200000;
  long n = (long)(round_ns / timed(warmup) + 0.5);
  if (n < 1000) n = 1000;
  print_rounds(rounds, n, warmup);
  printf("}\n");
  return 0;
}
`;

// multiprocessing.Value('q') with its default lock=True would take its own RLock on every
// .value access, under the Lock: lock=False gives the same shape as the forkwise contender
// (one lock, a bare shared int64). The 'fork' start method, as forkwise's fork().
const PYTHON_RUNNER = String.raw`
import json, multiprocessing as mp, sys, time
count, rounds, max_s = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])

def work(lock, value, n, barrier):
    barrier.wait()
    for _ in range(n):
        with lock:
            value.value += 1

ctx = mp.get_context('fork')
lock = ctx.Lock()
value = ctx.Value('q', 0, lock=False)

def timed(n):
    value.value = 0
    barrier = ctx.Barrier(3)
    procs = [ctx.Process(target=work, args=(lock, value, n, barrier)) for _ in range(2)]
    for p in procs:
        p.start()
    barrier.wait()
    start = time.perf_counter()
    for p in procs:
        p.join()
    elapsed = time.perf_counter() - start
    if any(p.exitcode != 0 for p in procs):
        raise SystemExit('a worker failed: exit codes %r' % [p.exitcode for p in procs])
    return elapsed, value.value

probe, _ = timed(20000)  # a warm-up, and the pace
n = count
if probe / 20000 * count > max_s:
    n = max(20000, int(max_s / (probe / 20000)) // 10000 * 10000)
results = [timed(n) for _ in range(rounds)]
print(json.dumps({'rounds': [s * 1e9 / (2 * n) for s, _ in results],
                  'seconds': [s for s, _ in results], 'counters': [c for _, c in results],
                  'expected': 2 * n, 'count': n, 'requested': count}))
`;

const cBinary = () => compileC('sync_floor', C_RUNNER, ['-pthread']); // once per run

const runC = (mode) => () =>
  mode === 'contended'
    ? runCommand(cBinary(), ['contended', String(COUNT), String(ROUNDS)])
    : runCommand(cBinary(), [mode, String(ROUNDS), String(ROUND_SECONDS)]);

const runPython = () =>
  runCommand('python3', ['-c', PYTHON_RUNNER, String(COUNT), String(ROUNDS), String(PYTHON_MAX_SECONDS)]);

// ---------------------------------------------------------------------------------------
// Orchestrator.

const sanitized = (file) =>
  `${file} is a sanitizer build; its timings would mean nothing (npx node-gyp rebuild)`;

// A contended round whose counter is off means the lock let two increments overlap: no
// figure from such a run can stand, so the whole run stops here.
function verifyCounters(name, result) {
  const wrong = result.counters.filter((c) => c !== result.expected);
  if (result.counters.length && !wrong.length) return;
  const lines = [
    '',
    '!'.repeat(78),
    `!!! COUNTER MISMATCH in ${name}: expected ${result.expected} after every round, got ` +
      `${JSON.stringify(result.counters)}`,
    '!!! the lock did not exclude the other process: an increment was lost or doubled. Aborting.',
    '!'.repeat(78),
  ];
  console.error(lines.join('\n'));
  process.exit(3);
}

async function orchestrate({ json, uncontended, contended }) {
  const log = json ? () => {} : (text) => process.stderr.write(text);
  const self = fileURLToPath(import.meta.url);
  const started = Date.now();
  const results = {}; // name -> runner result, rounds merged over the passes
  const skipped = {};

  const runNode = (name) => () =>
    runCommand(process.execPath, ['--single-threaded', self, '--run', name]);

  const jobs = []; // { name, run, counted }
  const problem = addonProblem(sanitized);
  const hasCc = onPath('cc');
  const add = (list, counted, extra) => {
    for (const { name, node } of list) {
      if (node && name !== 'js_spin' && problem) skipped[name] = problem;
      else if (node) jobs.push({ name, run: runNode(name), counted });
      else if (name === 'python') {
        if (onPath('python3')) jobs.push({ name, run: runPython, counted });
        else skipped[name] = 'python3 is not on PATH';
      } else if (!hasCc) skipped[name] = 'cc is not on PATH';
      else jobs.push({ name, run: extra[name], counted });
    }
  };
  if (uncontended) add(UNCONTENDED, false, { c_mutex: runC('mutex'), c_getpid: runC('getpid') });
  if (contended) add(CONTENDED, true, { c_contended: runC('contended') });

  const failed = new Set();
  for (let pass = 1; pass <= PASSES; pass++) {
    log(`pass ${pass}/${PASSES}, ns/op:`);
    for (const job of jobs) {
      if (failed.has(job)) continue;
      try {
        const result = await job.run();
        if (job.counted) verifyCounters(job.name, result);
        const previous = results[job.name];
        results[job.name] = previous
          ? {
              ...result,
              rounds: [...previous.rounds, ...result.rounds],
              seconds: result.seconds && [...previous.seconds, ...result.seconds],
              counters: result.counters && [...previous.counters, ...result.counters],
            }
          : result;
        log(` ${job.name} ${median(result.rounds).toFixed(1)}`);
      } catch (error) {
        failed.add(job);
        delete results[job.name];
        skipped[job.name] ??= error.message;
        log(` ${job.name} FAILED (${error.message})`);
      }
    }
    log('\n');
  }

  const m = (name) => (results[name] ? median(results[name].rounds) : null);
  const ratios = {
    mutexSyncOverC: ratio(m('mutex_sync'), m('c_mutex')),
    mutexAsyncOverSync: ratio(m('mutex_async'), m('mutex_sync')),
    mutexSyncOverJsSpin: ratio(m('mutex_sync'), m('js_spin')),
    mutexSyncOverLocked: ratio(m('mutex_sync'), m('locked')),
    contendedOverC: ratio(m('fw_value'), m('c_contended')),
    contendedInt32OverC: ratio(m('fw_int32'), m('c_contended')),
    contendedVsPython: ratio(m('python'), m('fw_value')),
    contendedInt32VsPython: ratio(m('python'), m('fw_int32')),
  };
  const crossingNs = m('getpid') != null && m('c_getpid') != null ? m('getpid') - m('c_getpid') : null;
  const row = ({ name, label, floor }) => ({
    name,
    label,
    medianNs: round(m(name), 2),
    roundsNs: results[name]?.rounds.map((v) => round(v, 2)) ?? null,
    iterationsPerRound: results[name]?.iterations ?? null,
    ratioToC: floor ? round(ratio(m(name), m(floor)), 2) : null,
    skipped: skipped[name] ?? null,
  });
  const contendedRow = (c) => {
    const r = results[c.name];
    return {
      ...row(c),
      iterationsPerRound: null,
      countPerProcess: r?.count ?? null,
      requestedCount: r?.requested ?? r?.count ?? null,
      processes: PROCESSES,
      secondsPerRound: r ? round(median(r.seconds), 3) : null,
      counters: r?.counters ?? null,
      expected: r?.expected ?? null,
    };
  };
  const summary = {
    node: process.version,
    platform: `${process.platform}-${process.arch}`,
    uncontended: uncontended ? UNCONTENDED.map(row) : null,
    contended: contended ? CONTENDED.map(contendedRow) : null,
    nativeCrossingNs: round(crossingNs, 1),
    ratios: Object.fromEntries(Object.entries(ratios).map(([k, v]) => [k, round(v, 2)])),
    targets: {
      mutexSyncNs: check(m('mutex_sync'), '<=', TARGETS.mutexSyncNs),
      contendedVsPython: check(ratios.contendedVsPython, '>=', TARGETS.contendedVsPython),
    },
    seconds: round((Date.now() - started) / 1000, 1),
  };

  if (json) console.log(JSON.stringify(summary, null, 2));
  else printTables(summary);
}

function printTables(summary) {
  const ns = (v) => (v == null ? 'skipped' : v < 100 ? v.toFixed(1) : v.toFixed(0));
  const spread = (c) =>
    c.roundsNs ? [Math.min(...c.roundsNs), Math.max(...c.roundsNs)].map(ns).join('-') : '';
  const x = (v) => (v == null ? '' : `${v.toFixed(2)}x`);
  const { ratios, targets } = summary;
  const say = (title, shown, goal) => console.log(`${`${title}:`.padEnd(44)}${shown.padEnd(14)} ${goal}`);
  const sayRatio = (title, value, suffix, t) =>
    say(title, value == null ? 'n/a' : `${value.toFixed(2)}x${suffix}`,
      t ? `(target ${t.target}x: ${verdict(t)})` : '(no target)');

  console.log(
    `\nforkwise sync benchmark: ${summary.node} ${summary.platform}, ` +
      `median of ${PASSES} passes x ${ROUNDS} rounds`,
  );
  if (summary.uncontended) {
    console.log(`\nUncontended, one thread (rounds of ~${ROUND_SECONDS} s):\n`);
    table(
      ['contender', 'ns/op', 'rounds min-max', 'n/round', 'vs C'],
      summary.uncontended.map((c) => [
        c.label, ns(c.medianNs), spread(c), c.iterationsPerRound == null ? '' : String(c.iterationsPerRound),
        x(c.ratioToC),
      ]),
    );
    printSkipped(summary.uncontended);
    console.log('');
    const sync = summary.uncontended.find((c) => c.name === 'mutex_sync').medianNs;
    const t = targets.mutexSyncNs;
    say('Mutex acquire()+release() per pair', sync == null ? 'n/a' : `${ns(sync)} ns`,
      `(target ${t.target} ns: ${verdict(t)})`);
    sayRatio('Mutex acquire()+release() / C', ratios.mutexSyncOverC, '');
    sayRatio('Mutex acquire()+release() / JS spin lock', ratios.mutexSyncOverJsSpin, '');
    sayRatio('Mutex acquire()+release() / locked()', ratios.mutexSyncOverLocked, '');
    sayRatio('acquireAsync() / acquire()', ratios.mutexAsyncOverSync, '');
    say('native call, JS to C (getpid() - C getpid)',
      summary.nativeCrossingNs == null ? 'n/a' : `${summary.nativeCrossingNs.toFixed(1)} ns`, '(no target)');
  }
  if (summary.contended) {
    const fw = summary.contended[0];
    console.log(
      `\nContended: ${PROCESSES} processes x ${COUNT.toLocaleString('en-US')} increments of one ` +
        'shared counter, the lock taken around each; ns per increment:\n',
    );
    table(
      ['contender', 'ns/incr', 'rounds min-max', 'count/process', 's/round', 'vs C'],
      summary.contended.map((c) => [
        c.label, ns(c.medianNs), spread(c),
        c.countPerProcess == null ? '' : c.countPerProcess.toLocaleString('en-US'),
        c.secondsPerRound == null ? '' : c.secondsPerRound.toFixed(3), x(c.ratioToC),
      ]),
    );
    printSkipped(summary.contended);
    const py = summary.contended.find((c) => c.name === 'python');
    if (py?.countPerProcess != null && py.countPerProcess !== py.requestedCount) {
      console.log(
        `\nCPython counted to ${py.countPerProcess.toLocaleString('en-US')} per process, not ` +
          `${py.requestedCount.toLocaleString('en-US')} (its calibration round said that would take ` +
          `over ${PYTHON_MAX_SECONDS} s): its ns/incr is that run's, scaled per increment.`,
      );
    }
    const exact = summary.contended
      .filter((c) => c.counters)
      .map((c) => `${c.name} ${c.counters.length}/${c.counters.length}`);
    console.log(`\nfinal counter exact (2 x count) in every round: ${exact.join(', ') || 'n/a'}`);
    console.log('');
    sayRatio(`contended ${fw.name} / C`, ratios.contendedOverC, '');
    sayRatio('contended fw_int32 / C', ratios.contendedInt32OverC, '');
    sayRatio(`contended ${fw.name} vs CPython`, ratios.contendedVsPython, ' faster', targets.contendedVsPython);
    sayRatio('contended fw_int32 vs CPython', ratios.contendedInt32VsPython, ' faster');
  }
  console.log(`\n(${summary.seconds} s)`);
}

// ---------------------------------------------------------------------------------------

const args = process.argv.slice(2);
if (args.includes('--run')) {
  console.log(JSON.stringify(await runnerFor(RUNNERS, args)()));
} else {
  killRunnerOnSignals();
  const only = args.includes('--uncontended') !== args.includes('--contended');
  await orchestrate({
    json: args.includes('--json'),
    uncontended: !only || args.includes('--uncontended'),
    contended: !only || args.includes('--contended'),
  });
}
