/**
 * The program of a child started by the platform fallback (popen_fallback.ts): it takes
 * what to run from the IPC channel, runs it as spawn_main.js does, and reports a target's
 * error on the channel before it exits. It dies with its parent: the channel's end is the
 * parent's end, and a thread of its own looks for the parent every PARENT_LOOK_MS, so that a
 * child whose loop is busy (or blocked) dies too.
 */
import { inspect } from 'node:util';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';

const PARENT_LOOK_MS = 250;

process.on('disconnect', () => process.kill(process.pid, 'SIGKILL'));

// The parent is gone when this process was handed to another (POSIX) or the pid answers no
// more (Windows, where a parent's pid stays the child's ppid).
const watcher = new Worker(
  `const parent = ${process.ppid};
  setInterval(() => {
    let gone = process.ppid !== parent;
    try { process.kill(parent, 0); } catch { gone = true; }
    if (gone) process.kill(process.pid, 'SIGKILL');
  }, ${PARENT_LOOK_MS});`,
  { eval: true, execArgv: [] },
);

// The watcher starts its work only once this thread's loop has turned: a target that never
// yields must not run before. Until then it keeps this process alive; then it does not.
// (A watcher that failed to start leaves the channel's end as the only watch.)
const watching = once(watcher, 'online')
  .catch(() => undefined)
  .then(() => void watcher.unref());

// Loaded while the watcher's thread starts (tens of ms each).
/* eslint-disable @typescript-eslint/no-require-imports */
const { currentProcess } = require('./identity') as typeof import('./identity');
const { preparePayload } = require('./payload') as typeof import('./payload');
const { encodeReport } = require('./popen') as typeof import('./popen');
/* eslint-enable @typescript-eslint/no-require-imports */

process.once('message', (message: { payload: Uint8Array }) => {
  // From here on the channel does not keep this process alive: the target's work does.
  process.channel?.unref();
  const child = preparePayload(message.payload);
  void watching.then(() => run(child.run));
});

async function run(target: () => Promise<unknown>): Promise<void> {
  try {
    await target();
  } catch (error) {
    process.stderr.write(`Process ${currentProcess().name}:\n${inspect(error)}\n`);
    try {
      process.send!({ report: encodeReport(error) }, () => process.exit(1));
    } catch {
      process.exit(1);
    }
    return;
  }
  process.exit();
}
