// A tour of forkwise's raw POSIX layer: the same system calls a shell uses to build a
// pipeline, plus a forked JavaScript child that works on the parent's data in place.
//
//   npm run demo        (= node --single-threaded examples/pipeline.mjs)
//
// 1. `printf 'pear\napple\n...' | sort | uniq -c | sort -rn`, built by hand from
//    fork, pipe, dup2, close, execvp and waitpid. The first stage is a forked JavaScript
//    child; the other three are real programs that the children exec.
// 2. A forked JavaScript child reads a 200,000-entry Map built by the parent before the fork
//    (the child's memory is a copy-on-write copy of the parent's: nothing is serialized),
//    and sends a small JSON answer back through a pipe.
// 3. What a child does when execvp fails: report the error and _exit(127), like a shell.
//
// Exits 0 when every result matched what the parent expected, 1 otherwise.
//
// fork() must run in a process without V8 helper threads, hence `node --single-threaded`.

import fs from 'node:fs';
import { fork, pipe, dup2, close, execvp, waitpid, waitpidAsync, _exit, getpid } from 'forkwise';

let failures = 0;
function check(ok, what) {
  console.log(`   ${ok ? 'ok  ' : 'FAIL'} ${what}`);
  if (!ok) failures++;
}

/** A waitpid() result as a shell would describe it. */
function describe(result) {
  switch (result.kind) {
    case 'exited':
      return `exited with status ${result.exitCode}`;
    case 'signaled':
      return `killed by ${result.signal}${result.coreDumped ? ' (core dumped)' : ''}`;
    default:
      return result.kind; // 'stopped' / 'continued': only with WUNTRACED / WCONTINUED
  }
}

/** Reads a descriptor until EOF (read() returning 0), with blocking reads. */
function readAll(fd) {
  const chunks = [];
  const buffer = Buffer.alloc(64 * 1024);
  for (;;) {
    const n = fs.readSync(fd, buffer, 0, buffer.length, null); // position null: pipes can't seek
    if (n === 0) return Buffer.concat(chunks).toString('utf8');
    chunks.push(Buffer.from(buffer.subarray(0, n)));
  }
}

/** Writes all of `text` to a descriptor (a write may be partial, so loop). */
function writeAll(fd, text) {
  const bytes = Buffer.from(text, 'utf8');
  for (let done = 0; done < bytes.length; ) done += fs.writeSync(fd, bytes, done);
}

/**
 * Forks a child that wires `stdin`/`stdout`/`stderr` (pipe ends, or undefined to keep the
 * parent's) onto descriptors 0/1/2, closes every descriptor in `pipeFds`, then runs `body`.
 * `body` either execs (and so never returns) or is plain JavaScript, after which the child
 * ends with process.exit(0) (or `body` calls process.exit itself).
 * Whatever happens, the child never returns into the parent's code: an error (for instance
 * execvp's ENOENT) is printed on its stderr and the child ends with _exit(127).
 * Returns the child's pid, in the parent.
 */
function spawn({ stdin, stdout, stderr, pipeFds }, body) {
  const pid = fork();
  if (pid !== 0) return pid; // parent

  // ---- from here on we are the child ----
  try {
    if (stdin !== undefined) dup2(stdin, 0); // dup2 also clears close-on-exec on 0/1/2
    if (stdout !== undefined) dup2(stdout, 1);
    if (stderr !== undefined) dup2(stderr, 2);
    // Close every pipe end we inherited, now that the ones we need live on as 0/1/2.
    // forkwise's pipes are close-on-exec, so exec would close them anyway, but a JavaScript
    // child does not exec: a write end it kept open would keep its reader from seeing EOF.
    for (const fd of pipeFds) close(fd);
    body();
    process.exit(0); // a JavaScript body that simply returned
  } catch (error) {
    // Synchronous write: _exit() flushes nothing.
    fs.writeSync(2, `child ${getpid()}: ${error.message}\n`);
    _exit(127); // 127: "command not found", as in a shell
  }
}

console.log(`forkwise pipeline demo, parent pid ${getpid()}\n`);

// -------------------------------------------------------------------------------------------
// 1. printf '...' | sort | uniq -c | sort -rn
// -------------------------------------------------------------------------------------------
const words = 'pear\napple\npear\nfig\napple\npear\n';
const stages = [
  // The JavaScript stage writes straight to descriptor 1 with fs.writeSync. (console.log
  // would also work when our stdout is a pipe or a file, but not when it is a terminal:
  // process.stdout then writes through its own re-opened copy of the terminal, not fd 1.)
  { name: 'js: write the words', js: () => writeAll(1, words) },
  { name: 'sort', argv: ['sort'] },
  { name: 'uniq -c', argv: ['uniq', '-c'] },
  { name: 'sort -rn', argv: ['sort', '-rn'] },
];
console.log(`1. printf '${words.replaceAll('\n', '\\n')}' | sort | uniq -c | sort -rn`);
console.log('   (the printf stage is a forked JavaScript child; the others exec real programs)');

// One pipe between each pair of stages, plus one from the last stage back to us.
// Stage i reads from pipes[i - 1] (stage 0 keeps our stdin) and writes into pipes[i].
const pipes = stages.map(() => pipe());
const allPipeFds = pipes.flat();
console.log(`   ${pipes.length} pipes [read, write]: ${pipes.map((p) => `[${p}]`).join(' ')}`);

const children = stages.map((stage, i) => {
  const pid = spawn(
    { stdin: i > 0 ? pipes[i - 1][0] : undefined, stdout: pipes[i][1], pipeFds: allPipeFds },
    // A JavaScript stage: the child has our code and data, it just writes into its stdout.
    // An exec'd stage: execvp searches PATH; argv[0] is the program's own name.
    stage.js ?? (() => execvp(stage.argv[0], stage.argv)),
  );
  return { pid, name: stage.name };
});
console.log(`   forked ${children.map((c) => c.pid).join(', ')}`);

// The parent closes its copies of every pipe end except the read end of the last pipe.
// This is what makes the pipeline finish: a reader sees EOF only once *every* copy of the
// write end is closed, ours included.
const [resultFd] = pipes.at(-1);
for (const fd of allPipeFds) if (fd !== resultFd) close(fd);

const output = readAll(resultFd); // blocks until `sort -rn` exits and EOF arrives
close(resultFd);
console.log('   output of the last stage:');
for (const line of output.trimEnd().split('\n')) console.log(`   | ${line || '(nothing)'}`);

// Reap every child: without waitpid they would stay zombies until we exit.
let stagesOk = 0;
for (const child of children) {
  const result = waitpid(child.pid);
  console.log(`   pid ${child.pid}  ${child.name.padEnd(20)} ${describe(result)}`);
  if (result.kind === 'exited' && result.exitCode === 0) stagesOk++;
}
check(stagesOk === children.length, `${stagesOk} of ${children.length} stages exited with status 0`);

// What the pipeline should print: each word with its count, most frequent first.
const counts = new Map();
for (const word of words.trimEnd().split('\n')) counts.set(word, (counts.get(word) ?? 0) + 1);
const expected = [...counts].sort((a, b) => b[1] - a[1]).map(([w, n]) => `${n} ${w}`);
const got = output.trimEnd().split('\n').map((line) => line.trim().replace(/\s+/, ' '));
check(JSON.stringify(got) === JSON.stringify(expected), `counts match: ${expected.join(', ')}`);

// -------------------------------------------------------------------------------------------
// 2. A JavaScript child working on the parent's data, in place
// -------------------------------------------------------------------------------------------
console.log('\n2. a forked JavaScript child reads a large Map through a closure');

// 200,000 made-up words, each with a pseudo-random count (a fixed seed: same data each run).
const syllables = ['ka', 'lo', 'mi', 'nu', 'pe', 'ra', 'si', 'to', 'vu', 'ze', 'bo', 'da'];
function wordFor(i) {
  let word = '';
  do {
    word += syllables[i % syllables.length];
    i = Math.floor(i / syllables.length);
  } while (i > 0);
  return word;
}
let seed = 12345;
const nextCount = () => ((seed = (seed * 1103515245 + 12345) % 2147483648) % 1000) + 1;
const vocabulary = new Map();
for (let i = 0; i < 200_000; i++) vocabulary.set(wordFor(i), nextCount());

// The question both processes answer: how many words contain "ra", and their total count.
const question = (map) => {
  let matches = 0;
  let total = 0;
  for (const [word, count] of map) {
    if (word.includes('ra')) {
      matches++;
      total += count;
    }
  }
  return { entries: map.size, matches, total };
};
const answerInParent = question(vocabulary);
console.log(`   parent built a Map of ${vocabulary.size} words`);

const [answerRead, answerWrite] = pipe();
const forkStart = performance.now();
const worker = spawn({ pipeFds: [answerRead] }, () => {
  // The child sees `vocabulary` because fork copied the whole process: the Map is here
  // already, in memory pages shared with the parent until one of them writes to a page.
  const answer = question(vocabulary);
  writeAll(answerWrite, JSON.stringify({ pid: getpid(), ...answer }));
  close(answerWrite); // not needed before exit, but it tells the reader "that's all"
  process.exit(0);
});
const forkMs = performance.now() - forkStart;
close(answerWrite); // ours: otherwise readAll below would wait for EOF forever
console.log(`   forked ${worker} in ${forkMs.toFixed(1)} ms; the Map was neither copied nor serialized`);

// From now on the two Maps are separate: clearing ours does not touch the child's.
vocabulary.clear();

const json = readAll(answerRead);
close(answerRead);
const answerInChild = JSON.parse(json);
console.log(`   child ${answerInChild.pid} sent ${json.length} bytes: ${json}`);
// waitpidAsync reaps the child without blocking the event loop.
const workerResult = await waitpidAsync(worker);
console.log(`   pid ${worker} ${describe(workerResult)}`);
check(workerResult.kind === 'exited' && workerResult.exitCode === 0, 'child exited cleanly');
const { pid: _, ...childAnswer } = answerInChild;
check(
  JSON.stringify(childAnswer) === JSON.stringify(answerInParent),
  `same answer as the parent: ${answerInParent.matches} words contain "ra", total ${answerInParent.total}`,
);

// -------------------------------------------------------------------------------------------
// 3. When exec fails
// -------------------------------------------------------------------------------------------
console.log('\n3. a child execs a program that does not exist');
// The child's stderr goes into a pipe so that we can show what it printed.
const [errRead, errWrite] = pipe();
const missing = spawn({ stderr: errWrite, pipeFds: [errRead, errWrite] }, () =>
  execvp('forkwise-no-such-program', ['forkwise-no-such-program']),
);
close(errWrite);
const message = readAll(errRead).trimEnd();
close(errRead);
const missingResult = waitpid(missing);
console.log(`   child's stderr: ${message}`);
console.log(`   pid ${missing} ${describe(missingResult)}`);
check(
  missingResult.kind === 'exited' && missingResult.exitCode === 127 && message.includes('ENOENT'),
  'the child reported ENOENT and exited with 127, without returning into our code',
);

console.log(failures === 0 ? '\nall checks passed' : `\n${failures} check(s) FAILED`);
process.exitCode = failures === 0 ? 0 : 1;
