// Thread start + join: forkwise's Thread (an empty self-contained target, sent by its
// source, run and joined) against a bare worker_threads Worker (an empty script, awaited to
// its 'exit') and CPython's threading.Thread (start + join of an empty target). Each
// contender runs in its own sub-process; ROUNDS rounds of N threads one after the other; the
// table shows the median ms per thread and the ratios.
//
//   node bench/threading.mjs [--rounds N] [--threads N]
import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { median, onPath, ratio, table } from './lib.mjs';

const self = fileURLToPath(import.meta.url);
const args = process.argv.slice(2);
const option = (name, fallback) => (args.includes(name) ? Number(args[args.indexOf(name) + 1]) : fallback);
const ROUNDS = option('--rounds', 5);
const N = option('--threads', 20);

// Runners: each prints one JSON line, the ms per thread of every round.
const runners = {
  async forkwise() {
    const { Thread } = await import('../dist/threading/index.js');
    const one = async () => {
      const t = new Thread({ target: () => {} });
      t.start();
      await t.join();
    };
    return rounds(one);
  },
  async worker() {
    const { Worker } = await import('node:worker_threads');
    const one = () =>
      new Promise((resolve, reject) => {
        const w = new Worker('', { eval: true });
        w.once('error', reject);
        w.once('exit', resolve);
      });
    return rounds(one);
  },
};

async function rounds(one) {
  await one(); // warm-up
  const out = [];
  for (let r = 0; r < ROUNDS; r++) {
    const start = performance.now();
    for (let i = 0; i < N; i++) await one();
    out.push((performance.now() - start) / N);
  }
  return out;
}

const PYTHON = `
import threading, time, json
def f(): pass
def one():
    t = threading.Thread(target=f); t.start(); t.join()
one()
out = []
for r in range(${ROUNDS}):
    s = time.perf_counter()
    for i in range(${N}): one()
    out.append((time.perf_counter() - s) * 1e3 / ${N})
print(json.dumps(out))
`;

if (args[0] === '--runner') {
  console.log(JSON.stringify(await runners[args[1]]()));
  process.exit(0);
}

function run(command, commandArgs) {
  const result = spawnSync(command, commandArgs, { encoding: 'utf8', timeout: 120_000 });
  if (result.status !== 0) throw new Error(`${command} ${commandArgs.join(' ')} failed: ${result.stderr}`);
  return JSON.parse(result.stdout.trim().split('\n').pop());
}

const results = {
  'forkwise Thread': run(process.execPath, [self, '--runner', 'forkwise']),
  'new Worker (bare)': run(process.execPath, [self, '--runner', 'worker']),
};
if (onPath('python3')) results['CPython threading.Thread'] = run('python3', ['-c', PYTHON]);

const base = median(results['forkwise Thread']);
console.log(`thread start + join, ${N} threads x ${ROUNDS} rounds, median ms per thread\n`);
table(
  ['contender', 'ms per thread', 'forkwise / this'],
  Object.entries(results).map(([name, values]) => [name, median(values).toFixed(3), ratio(base, median(values)).toFixed(2)]),
);
