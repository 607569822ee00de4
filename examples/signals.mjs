// The signal model of forkwise, shown with real signals:
//
//   npm run example:signals     (= node --single-threaded examples/signals.mjs)
//
// 1. A JavaScript handler receives the sender's pid and uid, which process.on('SIGx') cannot
//    give: a forked child sends us SIGUSR2.
// 2. A blocked signal stays pending until it is unblocked; only then does the handler run.
// 3. SIGCHLD with noCldStop: the handler hears a child exit, but not a child stop.
//
// Handlers run on the event loop, never inside the signal handler itself. Exits 0 when every
// step behaved as described, 1 otherwise.

import {
  fork, _exit, kill, raise, getpid, getppid, waitpid, WUNTRACED,
  sigaction, sigprocmask, sigpending,
} from 'forkwise';

let failures = 0;
function check(ok, what) {
  console.log(`   ${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures++;
}

/**
 * Resolves with the (signal, info) of the next delivery of `sig`, then puts back the default.
 * A handler does not keep the process alive (neither does process.on('SIGx')): the timer
 * does while we wait, and fails the step if nothing comes.
 */
function nextDelivery(sig, flags) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no ${sig} within 5 s`)), 5000);
  });
  const delivery = new Promise((resolve) => {
    sigaction(sig, {
      handler: (name, info) => {
        sigaction(sig, { handler: 'default' });
        resolve({ name, info });
      },
      flags,
    });
  });
  return Promise.race([delivery, timeout]).finally(() => clearTimeout(timer));
}

console.log(`forkwise signals demo, pid ${getpid()}\n`);

// 1. Who sent it.
console.log('1. a handler learns who sent the signal');
{
  const delivered = nextDelivery('SIGUSR2');
  const child = fork();
  if (child === 0) {
    kill(getppid(), 'SIGUSR2');
    _exit(0);
  }
  const { name, info } = await delivered;
  console.log(`   ${name} from pid ${info.pid}, uid ${info.uid} (code ${info.code})`);
  check(info.pid === child, 'the sender is the child we forked');
  waitpid(child);
}

// 2. Blocked, pending, then delivered.
console.log('\n2. a blocked signal stays pending until it is unblocked');
{
  let ran = false;
  const delivered = nextDelivery('SIGUSR1').then((d) => ((ran = true), d));
  sigprocmask('block', ['SIGUSR1']);
  raise('SIGUSR1'); // to this thread, which blocks it
  await new Promise((resolve) => setImmediate(resolve));
  const pending = sigpending();
  console.log(`   after raise: pending ${JSON.stringify(pending)}, handler ran: ${ran}`);
  check(pending.includes('SIGUSR1') && !ran, 'pending, and the handler has not run');
  sigprocmask('unblock', ['SIGUSR1']);
  await delivered;
  check(ran && !sigpending().includes('SIGUSR1'), 'unblocked: delivered once, nothing pending');
}

// 3. SIGCHLD with noCldStop.
console.log('\n3. SIGCHLD with noCldStop: exits are heard, stops are not');
{
  const heard = [];
  const sigchld = nextDelivery('SIGCHLD', { noCldStop: true }).then(({ info }) => heard.push(info.code));
  const child = fork();
  if (child === 0) {
    raise('SIGSTOP'); // stops until the parent sends SIGCONT
    _exit(7);
  }
  const stopped = waitpid(child, WUNTRACED);
  console.log(`   child ${child} ${stopped.kind} by ${stopped.signal}; SIGCHLD deliveries so far: ${heard.length}`);
  kill(child, 'SIGCONT');
  await sigchld;
  const status = waitpid(child);
  // si_code of the delivery: CLD_EXITED is 1; a stop (CLD_STOPPED, 5) would have come first.
  console.log(`   child ${status.kind} with ${status.exitCode}; first SIGCHLD had code ${heard[0]}`);
  check(stopped.kind === 'stopped' && heard[0] === 1, 'the first SIGCHLD is for the exit, not the stop');
}

console.log(failures === 0 ? '\nall checks passed' : `\n${failures} check(s) failed`);
process.exitCode = failures === 0 ? 0 : 1;
