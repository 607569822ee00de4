/** Test helpers: run a scenario in a fresh node with a time limit, and look at leftovers. */
import { spawn } from 'node:child_process';
import { readdirSync, readlinkSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { _exit, fork } from 'forkwise';

export const fixtures = join(__dirname, '..', 'test', 'fixtures');

export interface Outcome {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/**
 * Runs `node [nodeArgs] fixtures/<script> [args]` and resolves when it ends; kills it and
 * rejects after `timeoutMs`, so that a hang fails the test instead of stalling the run.
 * `wrapper` is a command that runs node (`['stdbuf', '-o0']`).
 */
export function runNode(
  script: string,
  args: string[] = [],
  options: { nodeArgs?: string[]; timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv; wrapper?: string[] } = {},
): Promise<Outcome> {
  const { nodeArgs = ['--single-threaded'], timeoutMs = 15000, input, env, wrapper = [] } = options;
  const scriptPath = script.includes('/') ? script : join(fixtures, script);
  return new Promise((resolve, reject) => {
    // Its own process group, so that a timeout ends the scenario's children too.
    const argv = [...wrapper, process.execPath, ...nodeArgs, scriptPath, ...args];
    const child = spawn(argv[0]!, argv.slice(1), {
      stdio: ['pipe', 'pipe', 'pipe'],
      env: env ?? process.env,
      detached: true,
    });
    let stdout = '';
    let stderr = '';
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => {
      process.kill(-child.pid!, 'SIGKILL');
      reject(new Error(`${script} did not finish within ${timeoutMs} ms\nstdout: ${stdout}\nstderr: ${stderr}`));
    }, timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.end(input ?? '');
  });
}

/**
 * True when the addon runs under AddressSanitizer. Its allocator is not fork-safe: a child
 * forked while another thread allocates can block for ever on the allocator's lock (seen in
 * gdb: __sanitizer::SizeClassAllocator64::GetFromAllocator), which glibc's malloc prevents.
 */
export const underAsan = readFileSync('/proc/self/maps', 'utf8').includes('libasan');

/** Descriptors open in this process, with what they point to. */
export function openFds(): Map<number, string> {
  const fds = new Map<number, string>();
  for (const name of readdirSync('/proc/self/fd')) {
    try {
      fds.set(Number(name), readlinkSync(join('/proc/self/fd', name)));
    } catch {
      // the descriptor used by readdir itself is gone by now
    }
  }
  return fds;
}

/**
 * forkwise's owned segments in /dev/shm whose creator is gone (names carry the creator's pid
 * and start time): what a process that died without exiting leaves until the next sweep.
 */
export function orphanedSegments(): string[] {
  return readdirSync('/dev/shm').filter((name) => {
    const match = /^forkwise-(\d+)-(\d+)-[0-9a-f]{32}$/.exec(name);
    if (!match) return false;
    try {
      const stat = readFileSync(`/proc/${match[1]}/stat`, 'utf8');
      return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[19] !== match[2];
    } catch {
      return true;
    }
  });
}

/** Pids of this process's children (any state), from /proc. */
export function childPids(): number[] {
  const children: number[] = [];
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) === process.pid) children.push(Number(name));
    } catch {
      // the process ended while we looked
    }
  }
  return children;
}

/** The state letter of a process (`Z` for a zombie), or undefined when it is gone. */
export function processState(pid: number): string | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return stat.slice(stat.lastIndexOf(')') + 2).split(' ')[0];
  } catch {
    return undefined;
  }
}

/** Forks a child that runs `body` and then always ends with _exit. */
export function forkChild(body: () => number | void): number {
  const pid = fork();
  if (pid === 0) {
    let code = 0;
    try {
      code = body() ?? 0;
    } finally {
      _exit(code);
    }
  }
  return pid;
}
