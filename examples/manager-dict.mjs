// A dict shared by processes through a Manager, as CPython's `multiprocessing.Manager()`:
//
//   node --single-threaded examples/manager-dict.mjs [--start-method fork|forkserver|spawn]
//
// Two processes each fill their own range of keys (`d[i] = 100 + i`) and print what the
// dict holds when they are done; the parent then sees every entry. The worker is a
// self-contained function, so it works with every start method.
//
// Exits 0 when the parent saw every entry, 1 otherwise.

import { Manager, Process } from 'forkwise/multiprocessing';

const args = process.argv.slice(2);
const startMethod = args.includes('--start-method') ? args[args.indexOf('--start-method') + 1] : undefined;

async function fill(d, from, to) {
  for (let i = from; i < to; i++) await d.set(i, 100 + i);
  const mine = (await d.entries()).filter(([k]) => k >= from && k < to);
  console.log(`   process ${process.pid} set keys ${from}..${to - 1}:`, Object.fromEntries(mine));
}

const manager = await Manager.start(startMethod ? { startMethod } : {});
try {
  const d = await manager.dict();
  const workers = [
    new Process({ target: fill, args: [d, 0, 5], startMethod }),
    new Process({ target: fill, args: [d, 5, 10], startMethod }),
  ];
  for (const p of workers) p.start();
  for (const p of workers) await p.join();

  const seen = await d.toMap();
  console.log('   the parent sees:', JSON.stringify(Object.fromEntries(seen)));
  const ok = workers.every((p) => p.exitCode === 0) && seen.size === 10 && [...seen].every(([k, v]) => v === 100 + k);
  console.log(ok ? 'all checks passed' : 'FAILED');
  process.exitCode = ok ? 0 : 1;
} finally {
  await manager.shutdown();
}
