// A Pool over a dataset the parent loaded before it, with a live progress line:
//
//   npm run example:pool-progress   (= node --single-threaded examples/pool-progress.mjs)
//   node --single-threaded examples/pool-progress.mjs [--records N] [--processes P]
//
// 1. The parent builds N records (default 2,000,000) once. The task is a closure over them
//    and over a threshold chosen after the pool was made: with the fork start method the
//    workers read the records in place (copy-on-write), and only block numbers and small
//    results cross the pipes.
// 2. `map`'s onProgress reports each finished chunk: on a terminal the line is rewritten in
//    place with `\r`; into a pipe or a file (a CI log) it prints one line per 10 % instead.
// 3. The parent computes the same result itself and exits 1 if the pool's differs.

import { Pool, cpuCount } from 'forkwise/multiprocessing';

function option(name, fallback) {
  const at = process.argv.indexOf(name);
  if (at < 0) return fallback;
  const value = Number(process.argv[at + 1]);
  if (!Number.isSafeInteger(value) || value < 1) {
    console.error(`${name} wants a positive integer, got ${process.argv[at + 1]}`);
    process.exit(2);
  }
  return value;
}

const RECORDS = option('--records', 2_000_000);
const BLOCK = 10_000; // records per task
const processes = option('--processes', Math.max(2, cpuCount()));

let failures = 0;
function check(ok, what) {
  console.log(`   ${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures++;
}

// The preloaded state: records as objects, as a parsed file would give them.
const records = Array.from({ length: RECORDS }, (_, i) => ({ id: i, score: (i * 7919) % 1000, tag: `t${i % 17}` }));
const blocks = Array.from({ length: Math.ceil(RECORDS / BLOCK) }, (_, b) => b);

// What one task does: statistics over one block of records. Deliberately some CPU work per
// record (a square root and a string test), so that the workers have something to do.
function blockStats(threshold, b) {
  let count = 0;
  let sum = 0;
  for (let i = b * BLOCK; i < Math.min(RECORDS, (b + 1) * BLOCK); i++) {
    const r = records[i];
    if (r.score >= threshold && r.tag !== 't0') {
      count++;
      sum += Math.sqrt(r.score);
    }
  }
  return { count, sum };
}

// The progress line. A terminal gets one line rewritten in place; anything else gets a line
// each time another 10 % is done, so that a log stays short and readable.
function progressReporter(label) {
  const tty = process.stdout.isTTY;
  const started = performance.now();
  let lastTenth = 0;
  return (done, total) => {
    const fraction = done / total;
    const seconds = ((performance.now() - started) / 1000).toFixed(1);
    const text = `${label} ${String(Math.floor(fraction * 100)).padStart(3)} % (${done}/${total} blocks, ${seconds} s)`;
    if (tty) {
      process.stdout.write(`\r${text}`);
      if (done === total) process.stdout.write('\n');
    } else if (Math.floor(fraction * 10) > lastTenth) {
      lastTenth = Math.floor(fraction * 10);
      console.log(text);
    }
  };
}

console.log(`1. ${processes} workers over ${RECORDS.toLocaleString('en')} records built before the pool (${blocks.length} blocks)`);
const pool = new Pool({ processes });
try {
  const threshold = 250; // chosen after the pool was made: the closure below still works
  const t0 = performance.now();
  const parts = await pool.map((b) => blockStats(threshold, b), blocks, {
    chunksize: 2,
    onProgress: progressReporter('   progress'),
    timeout: 60_000,
  });
  const poolMs = performance.now() - t0;

  console.log('2. the same, computed by the parent alone');
  const t1 = performance.now();
  const expected = blocks.map((b) => blockStats(threshold, b));
  const serialMs = performance.now() - t1;

  const total = (list) => list.reduce((a, p) => ({ count: a.count + p.count, sum: a.sum + p.sum }), { count: 0, sum: 0 });
  const got = total(parts);
  const want = total(expected);
  check(parts.length === blocks.length, `one result per block (${parts.length})`);
  check(parts.every((p, i) => p.count === expected[i].count && p.sum === expected[i].sum), 'every block matches, in order');
  check(got.count === want.count && got.sum === want.sum, `${got.count} records kept, sum of roots ${got.sum.toFixed(1)}`);
  check(pool.stats.done === blocks.length && pool.stats.failed === 0, `the pool's stats count ${pool.stats.done} tasks done, none failed`);
  console.log(`   pool ${poolMs.toFixed(0)} ms (its forks included), parent alone ${serialMs.toFixed(0)} ms`);
} finally {
  pool.close();
  await pool.join();
}

console.log(failures === 0 ? 'all checks passed' : `${failures} check(s) FAILED`);
process.exitCode = failures === 0 ? 0 : 1;
