// A small process supervisor: starts a program, restarts it when it dies (with a growing
// delay and a limit), forwards SIGTERM and SIGINT to it, and on either signal stops it,
// reaps it and exits 0. With --daemon it first detaches itself from the terminal the
// classic way: fork, setsid, fork again.
//
//   npm run example:supervisor          (= node examples/supervisor.mjs --max-restarts 2)
//   node examples/supervisor.mjs [options] [-- program [args...]]
//
// Options:
//   --max-restarts N   give up after N restarts (default 5); 0: run the program once
//   --daemon           run in the background: prints the daemon's pid, then logs to --log
//   --log FILE         the daemon's log (default /tmp/forkwise-supervisor.log); the program's
//                      stdout and stderr go there too
//   --kill-after S     after forwarding a signal, SIGKILL the program if it has not ended
//                      within S seconds (default 5)
//
// The default program is `sh -c 'echo child $$ started; sleep 1; exit 3'`, a program that
// dies every second. Try `node examples/supervisor.mjs` and press Ctrl-C, or
// `node examples/supervisor.mjs --daemon -- sleep 30`, then `kill <pid it printed>`.
//
// The program is started with posixSpawnp (no JavaScript runs in the new process) and
// reaped with waitpidAsync, so the supervisor's event loop stays free for the signals and
// the restart timer. The program gets a process group of its own, and signals go to that
// whole group (killpg): a shell's children get them as well as the shell, and a Ctrl-C on
// the terminal reaches the program only through the supervisor, once.
//
// Only --daemon forks a JavaScript process, and fork() wants a node without V8 helper
// threads: with --daemon, the script re-executes itself under `node --single-threaded`
// first (reexecSingleThreaded keeps the pid). Without it, plain node is fine.

import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  _exit,
  dup2,
  fork,
  getpid,
  killpg,
  posixSpawnp,
  reexecSingleThreaded,
  setsid,
  waitpid,
  waitpidAsync,
} from 'forkwise';

const FIRST_DELAY_MS = 500; // the delay before the first restart, doubled at each one after
const MAX_DELAY_MS = 8_000;
const STABLE_MS = 10_000; // a program that ran this long starts the delays over

// ---- command line ------------------------------------------------------------------------
function usage(message) {
  process.stderr.write(
    `${message}\nusage: node examples/supervisor.mjs [--daemon] [--log FILE] ` +
      '[--max-restarts N] [--kill-after S] [-- program [args...]]\n',
  );
  process.exit(2);
}

const options = { daemon: false, log: '/tmp/forkwise-supervisor.log', maxRestarts: 5, killAfter: 5 };
let command = ['sh', '-c', 'echo child $$ started; sleep 1; exit 3'];
const argv = process.argv.slice(2);
for (let i = 0; i < argv.length; i++) {
  const arg = argv[i];
  const value = () => {
    if (i + 1 >= argv.length) usage(`${arg} needs a value`);
    return argv[++i];
  };
  const number = (text) => {
    const n = Number(text);
    if (!Number.isFinite(n) || n < 0) usage(`${arg}: not a number >= 0: ${text}`);
    return n;
  };
  if (arg === '--daemon') options.daemon = true;
  else if (arg === '--log') options.log = value();
  else if (arg === '--max-restarts') options.maxRestarts = Math.floor(number(value()));
  else if (arg === '--kill-after') options.killAfter = number(value());
  else if (arg === '--') {
    if (i + 1 < argv.length) command = argv.slice(i + 1);
    break;
  } else if (arg.startsWith('-')) usage(`unknown option ${arg}`);
  else {
    command = argv.slice(i); // a program without `--` before it
    break;
  }
}

// Lines go straight to descriptor 1 with fs.writeSync: after the daemon's dup2 below, that is
// the log file, whatever process.stdout had opened before.
function log(message) {
  const time = new Date().toISOString().slice(11, 23);
  fs.writeSync(1, `${time} supervisor ${getpid()}: ${message}\n`);
}

// ---- --daemon: fork, setsid, fork ----------------------------------------------------------
if (options.daemon) {
  reexecSingleThreaded(); // returns at once when node already runs --single-threaded
  const logFd = fs.openSync(options.log, 'a'); // before forking: an error shows on the terminal
  const first = fork();
  if (first !== 0) {
    // The original process: wait for the middle process, which exits once the daemon exists.
    const result = waitpid(first);
    process.exit(result.kind === 'exited' ? result.exitCode : 1);
  }
  // The middle process: a new session without a controlling terminal, then fork once more so
  // that the daemon is not a session leader and can never acquire a terminal again.
  setsid();
  const daemon = fork();
  if (daemon !== 0) {
    fs.writeSync(1, `supervisor daemon started, pid ${daemon}, log ${options.log}\n`);
    _exit(0); // the daemon is re-parented to init (or the nearest subreaper)
  }
  // The daemon: stdin from /dev/null, stdout and stderr into the log, out of the way of any
  // directory the terminal session was in.
  const devNull = fs.openSync('/dev/null', 'r');
  dup2(devNull, 0);
  dup2(logFd, 1);
  dup2(logFd, 2);
  fs.closeSync(devNull);
  fs.closeSync(logFd);
  process.chdir('/');
}

// ---- the supervisor ------------------------------------------------------------------------
let child = 0; // pid of the running program, 0 when none
let stopping = null; // the signal that asked us to stop
const stopped = new AbortController(); // cuts a restart delay short
let killTimer;

function describe(result) {
  if (result.kind === 'exited') return `exited with status ${result.exitCode}`;
  return `killed by ${result.signal}${result.coreDumped ? ' (core dumped)' : ''}`;
}

function onSignal(signal) {
  if (!child) {
    log(`${signal}: no program running, stopping`);
  } else if (stopping) {
    log(`${signal} again: forwarding it to process group ${child}`);
  } else {
    log(`${signal}: forwarding it to process group ${child} and stopping`);
  }
  stopping ??= signal;
  stopped.abort();
  if (!child) return;
  killpg(child, signal);
  if (!killTimer && options.killAfter > 0) {
    killTimer = setTimeout(() => {
      if (!child) return;
      log(`program still running after ${options.killAfter} s: SIGKILL to process group ${child}`);
      killpg(child, 'SIGKILL');
    }, options.killAfter * 1000);
  }
}
process.on('SIGTERM', onSignal);
process.on('SIGINT', onSignal);

// If the supervisor itself dies of a bug, the program must not outlive it unsupervised.
process.on('exit', () => {
  if (!child) return;
  try {
    killpg(child, 'SIGKILL');
    waitpid(child);
  } catch {}
});

log(`supervising: ${command.join(' ')} (at most ${options.maxRestarts} restarts)`);
let restarts = 0;
let delay = FIRST_DELAY_MS;
for (;;) {
  const started = Date.now();
  try {
    child = posixSpawnp(command[0], command, undefined, { setpgroup: 0 });
  } catch (error) {
    log(`cannot start ${command[0]}: ${error.message}`);
    process.exitCode = 1;
    break;
  }
  log(`started pid ${child}`);
  const result = await waitpidAsync(child); // reaps it: no zombie left behind
  const ran = Date.now() - started;
  log(`pid ${child} ${describe(result)} after ${(ran / 1000).toFixed(1)} s`);
  child = 0;
  if (stopping) break;
  if (restarts >= options.maxRestarts) {
    log(`restart limit reached (${options.maxRestarts}), giving up`);
    break;
  }
  if (ran >= STABLE_MS) delay = FIRST_DELAY_MS; // it had been running fine: start over
  restarts++;
  log(`restart ${restarts} of ${options.maxRestarts} in ${(delay / 1000).toFixed(1)} s`);
  try {
    await sleep(delay, undefined, { signal: stopped.signal });
  } catch {
    break; // a signal came during the delay: nothing to stop, nothing to reap
  }
  delay = Math.min(delay * 2, MAX_DELAY_MS);
}

clearTimeout(killTimer);
log(stopping ? `stopped by ${stopping}, exiting` : 'exiting');
process.removeListener('SIGTERM', onSignal);
process.removeListener('SIGINT', onSignal);
