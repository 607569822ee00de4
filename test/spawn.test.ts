import assert from 'node:assert/strict';
import { chmodSync, constants as fsConstants, mkdtempSync, readFileSync, readSync, realpathSync, rmSync, writeFileSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { join } from 'node:path';
import * as fw from 'forkwise';
import { childPids, runNode } from './helpers';

const NO_SUCH_PATH = '/nonexistent/forkwise-spawn/prog';
const { O_WRONLY, O_CREAT, O_TRUNC } = fsConstants;
const WRITE = O_WRONLY | O_CREAT | O_TRUNC;

/** Passes a deliberately wrong value where the types do not allow it. */
const u = (value: unknown): never => value as never;

type Spawn = typeof fw.posixSpawn;

interface Captured {
  pid: number;
  out: string;
  result: fw.WaitResult;
}

/** Spawns with the child's stdout on a pipe (after the caller's file actions), reads to EOF, reaps. */
function capture(
  spawn: Spawn,
  file: string,
  argv: string[],
  env?: Record<string, string>,
  options: fw.PosixSpawnOptions = {},
): Captured {
  const [r, w] = fw.pipe();
  let pid: number;
  try {
    pid = spawn(file, argv, env, { ...options, fileActions: [...(options.fileActions ?? []), ['dup2', w, 1]] });
  } finally {
    fw.close(w);
  }
  let out = '';
  try {
    const buf = Buffer.alloc(4096);
    for (let n; (n = readSync(r, buf)) > 0; ) out += buf.toString('utf8', 0, n);
  } finally {
    fw.close(r);
  }
  const result = fw.waitpid(pid)!;
  assert.equal(result.kind, 'exited', `child ${pid} did not exit normally`);
  return { pid, out, result };
}

const sh = (script: string, options: fw.PosixSpawnOptions = {}, env?: Record<string, string>): Captured =>
  capture(fw.posixSpawn, '/bin/sh', ['sh', '-c', script], env, options);

/** pgrp and session of the spawned shell, from its /proc/<pid>/stat. */
function ids(options: fw.PosixSpawnOptions): { pid: number; pgrp: number; session: number } {
  const { pid, out } = sh('cat /proc/$$/stat', options);
  const fields = out.slice(out.lastIndexOf(')') + 2).split(' ');
  return { pid, pgrp: Number(fields[2]), session: Number(fields[3]) };
}

/** SigBlk and SigIgn of a spawned grep reading its own status (sh would reset its mask). */
function signalMasks(options: fw.PosixSpawnOptions = {}): { blocked: bigint; ignored: bigint } {
  const { out } = capture(fw.posixSpawn, '/bin/grep', ['grep', '-E', '^(SigBlk|SigIgn)', '/proc/self/status'], undefined, options);
  const field = (name: string): bigint => BigInt(`0x${new RegExp(`^${name}:\\s+(\\w+)$`, 'm').exec(out)![1]}`);
  return { blocked: field('SigBlk'), ignored: field('SigIgn') };
}

const bit = (signal: NodeJS.Signals): bigint => 1n << BigInt(constants.signals[signal] - 1);

describe('posixSpawn / posixSpawnp', () => {
  let dir: string;
  let childrenBefore: number[];

  beforeEach(() => {
    dir = realpathSync(mkdtempSync(join(tmpdir(), 'forkwise-spawn-')));
    childrenBefore = childPids();
  });

  afterEach(() => {
    rmSync(dir, { recursive: true, force: true });
    assert.deepEqual(childPids(), childrenBefore, 'a spawned child was not reaped');
  });

  it('returns the pid of the running program, reaped with waitpidAsync', async () => {
    const pid = fw.posixSpawn('/bin/sh', ['sh', '-c', 'exit 7']);
    assert.ok(pid > 0 && pid !== process.pid);
    assert.deepEqual(await fw.waitpidAsync(pid), { pid, status: 7 << 8, kind: 'exited', exitCode: 7 });
  });

  it('passes argv, with argv[0] as the program name', () => {
    const { out } = sh('echo "$0|$1|$2"', {}, undefined);
    assert.equal(out, 'sh||\n');
    const argv = ['my-name', '-c', 'cat /proc/$$/cmdline', 'a b'];
    assert.equal(capture(fw.posixSpawn, '/bin/sh', argv).out, `${argv.join('\0')}\0`);
    const args = capture(fw.posixSpawn, '/bin/sh', ['x', '-c', 'echo "$0|$1"', 'zero', 'one']);
    assert.equal(args.out, 'zero|one\n');
  });

  it('env replaces the environment; without it the environment is inherited', () => {
    const given = capture(fw.posixSpawn, '/usr/bin/env', ['env'], { FOO: 'bar', EMPTY: '' });
    assert.equal(given.out, 'FOO=bar\nEMPTY=\n');
    process.env.FORKWISE_SPAWN_MARK = 'inherited';
    try {
      const inherited = capture(fw.posixSpawn, '/usr/bin/env', ['env']);
      assert.match(inherited.out, /^FORKWISE_SPAWN_MARK=inherited$/m);
      const withOptions = capture(fw.posixSpawn, '/usr/bin/env', ['env'], undefined, { cwd: dir });
      assert.match(withOptions.out, /^FORKWISE_SPAWN_MARK=inherited$/m);
    } finally {
      delete process.env.FORKWISE_SPAWN_MARK;
    }
  });

  it('posixSpawnp searches PATH: this process\'s PATH, not env\'s', () => {
    const { out } = capture(fw.posixSpawnp, 'sh', ['sh', '-c', 'echo "found|$PATH"'], { PATH: '/nonexistent' });
    assert.equal(out, 'found|/nonexistent\n');
    const script = join(dir, 'forkwise-spawn-script');
    writeFileSync(script, '#!/bin/sh\necho from-script\n', { mode: 0o755 });
    const saved = process.env.PATH;
    process.env.PATH = `${dir}:${saved}`;
    try {
      assert.equal(capture(fw.posixSpawnp, 'forkwise-spawn-script', ['s']).out, 'from-script\n');
    } finally {
      process.env.PATH = saved;
    }
    // posixSpawn does not search.
    assert.throws(() => fw.posixSpawn('sh', ['sh', '-c', 'exit 0']), { code: 'ENOENT', syscall: 'posix_spawn', path: 'sh' });
  });

  it('setpgroup: 0 makes a new group led by the child; a pgid joins that group', () => {
    const own = fw.getpgid(0);
    const plain = ids({});
    assert.equal(plain.pgrp, own);
    const leader = ids({ setpgroup: 0 });
    assert.equal(leader.pgrp, leader.pid);
    assert.equal(leader.session, fw.getsid(0));

    const group = fw.posixSpawn('/bin/sleep', ['sleep', '30'], undefined, { setpgroup: 0 });
    try {
      const member = ids({ setpgroup: group });
      assert.equal(member.pgrp, group);
      assert.notEqual(member.pid, group);
    } finally {
      fw.kill(group, 'SIGKILL');
      assert.equal(fw.waitpid(group)!.kind, 'signaled');
    }
  });

  it('setsid makes the child the leader of a new session and group', () => {
    const leader = ids({ setsid: true });
    assert.equal(leader.session, leader.pid);
    assert.equal(leader.pgrp, leader.pid);
    assert.equal(ids({ setsid: false }).session, fw.getsid(0));
  });

  it('the program starts with an empty signal mask and SIGPIPE/SIGXFSZ at default', () => {
    // Node ignores both; the child must not.
    const ours = BigInt(`0x${/^SigIgn:\s+(\w+)$/m.exec(readFileSync('/proc/self/status', 'utf8'))![1]}`);
    assert.notEqual(ours & bit('SIGPIPE'), 0n, 'this test expects Node to ignore SIGPIPE');
    const { blocked, ignored } = signalMasks();
    assert.equal(blocked, 0n);
    assert.equal(ignored & (bit('SIGPIPE') | bit('SIGXFSZ')), 0n);
  });

  it('setsigmask sets the mask; setsigdef adds to the signals reset to default', () => {
    const masked = signalMasks({ setsigmask: ['SIGUSR1', constants.signals.SIGTERM] });
    assert.equal(masked.blocked, bit('SIGUSR1') | bit('SIGTERM'));
    const reset = signalMasks({ setsigdef: ['SIGUSR2', 'SIGPIPE'] });
    assert.equal(reset.ignored & (bit('SIGPIPE') | bit('SIGXFSZ') | bit('SIGUSR2')), 0n);
    assert.equal(reset.blocked, 0n);
  });

  it('resetids runs the program with effective ids set to the real ones', () => {
    const { out } = capture(fw.posixSpawn, '/bin/grep', ['grep', '-E', '^(Uid|Gid):', '/proc/self/status'], undefined, {
      resetids: true,
    });
    for (const line of out.trim().split('\n')) {
      const [real, effective] = line.split(/\s+/).slice(1);
      assert.equal(effective, real, line);
    }
  });

  it('cwd: the program runs there, and relative paths (program, open actions) resolve there', () => {
    assert.equal(sh('pwd', { cwd: dir }).out, `${dir}\n`);
    writeFileSync(join(dir, 'tool'), '#!/bin/sh\necho tool-ran\n', { mode: 0o755 });
    const { out } = capture(fw.posixSpawn, './tool', ['tool'], undefined, { cwd: dir });
    assert.equal(out, 'tool-ran\n');
    const pid = fw.posixSpawn('/bin/sh', ['sh', '-c', 'echo relative'], undefined, {
      cwd: dir,
      fileActions: [['open', 1, 'out.txt', WRITE, 0o644]],
    });
    fw.waitpid(pid);
    assert.equal(readFileSync(join(dir, 'out.txt'), 'utf8'), 'relative\n');
    assert.throws(() => fw.posixSpawn('/bin/sh', ['sh'], undefined, { cwd: join(dir, 'missing') }), {
      code: 'ENOENT',
      syscall: 'posix_spawn',
      path: '/bin/sh',
    });
  });

  it('fileActions open, dup2 and close run in order, after the stdio fix-up', () => {
    const file = join(dir, 'out.txt');
    const pid = fw.posixSpawn('/bin/sh', ['sh', '-c', 'echo out; [ -e /proc/self/fd/7 ] && echo has7 || echo no7'], undefined, {
      fileActions: [
        ['open', 7, file, WRITE, 0o600],
        ['dup2', 7, 1],
        ['close', 7],
      ],
    });
    assert.equal(fw.waitpid(pid)!.status, 0);
    assert.equal(readFileSync(file, 'utf8'), 'out\nno7\n');

    // Closing a stdio descriptor wins over the fix-up that made it inheritable.
    const errFile = join(dir, 'err.txt');
    const closed = fw.posixSpawn('/bin/sh', ['sh', '-c', '[ -e /proc/self/fd/1 ] && echo has1 >&2 || echo no1 >&2'], undefined, {
      fileActions: [
        ['open', 2, errFile, WRITE, 0o600],
        ['close', 1],
      ],
    });
    fw.waitpid(closed);
    assert.equal(readFileSync(errFile, 'utf8'), 'no1\n');

    // An 'open' reads too: stdin from a file.
    writeFileSync(join(dir, 'in.txt'), 'from-file\n');
    const read = sh('read x; echo "got:$x"', { fileActions: [['open', 0, join(dir, 'in.txt'), fsConstants.O_RDONLY, 0]] });
    assert.equal(read.out, 'got:from-file\n');
  });

  it('inheritable descriptors are inherited, close-on-exec ones are not; close removes one', () => {
    const [ir, iw] = fw.pipe({ cloexec: false });
    const [cr, cw] = fw.pipe();
    try {
      const script = `[ -e /proc/self/fd/${iw} ] && printf i; [ -e /proc/self/fd/${cw} ] && printf c; exit 0`;
      assert.equal(sh(script).out, 'i');
      assert.equal(sh(script, { fileActions: [['close', iw]] }).out, '');
    } finally {
      for (const fd of [ir, iw, cr, cw]) fw.close(fd);
    }
  });

  it('from a Node process the program reads the inherited stdin and writes stdout/stderr (fact 10)', async () => {
    const out = await runNode('spawn-stdio.js', [], { input: 'hello\n' });
    assert.equal(out.code, 0, out.stderr);
    assert.equal(out.stdout, 'got:hello\nexit:0\nno0\nexit:0\n');
    assert.equal(out.stderr, 'err\n');
  });

  it('a program that cannot start throws in the parent and leaves no child', () => {
    assert.throws(() => fw.posixSpawn(NO_SUCH_PATH, ['prog']), {
      code: 'ENOENT',
      errno: -constants.errno.ENOENT,
      syscall: 'posix_spawn',
      path: NO_SUCH_PATH,
      message: `ENOENT: no such file or directory, posix_spawn '${NO_SUCH_PATH}'`,
    });
    assert.throws(() => fw.posixSpawnp('forkwise-spawn-no-such-program', ['x']), {
      code: 'ENOENT',
      syscall: 'posix_spawnp',
      path: 'forkwise-spawn-no-such-program',
    });
    const data = join(dir, 'data');
    writeFileSync(data, 'data', { mode: 0o644 });
    assert.throws(() => fw.posixSpawn(data, ['data']), { code: 'EACCES', errno: -constants.errno.EACCES, syscall: 'posix_spawn', path: data });
    assert.throws(() => fw.posixSpawnp(data, ['data']), { code: 'EACCES', syscall: 'posix_spawnp', path: data });

    // Executable but no valid header: a shell would run it as a script; posix_spawn and
    // posix_spawnp (glibc >= 2.15) do not, they report ENOEXEC.
    const script = join(dir, 'no-header');
    writeFileSync(script, 'echo ran-by-a-shell\n');
    chmodSync(script, 0o755);
    assert.throws(() => fw.posixSpawn(script, ['x']), {
      code: 'ENOEXEC',
      errno: -constants.errno.ENOEXEC,
      syscall: 'posix_spawn',
      path: script,
      message: `ENOEXEC: exec format error, posix_spawn '${script}'`,
    });
    const saved = process.env.PATH;
    process.env.PATH = `${dir}:${saved}`;
    try {
      assert.throws(() => fw.posixSpawnp('no-header', ['x']), { code: 'ENOEXEC', syscall: 'posix_spawnp', path: 'no-header' });
    } finally {
      process.env.PATH = saved;
    }

    // A failed file action is reported the same way, naming the program.
    assert.throws(
      () => fw.posixSpawn('/bin/sh', ['sh'], undefined, { fileActions: [['open', 3, NO_SUCH_PATH, fsConstants.O_RDONLY, 0]] }),
      { code: 'ENOENT', syscall: 'posix_spawn', path: '/bin/sh' },
    );
    assert.throws(() => fw.posixSpawn('/bin/sh', ['sh'], undefined, { fileActions: [['dup2', 900, 5]] }), {
      code: 'EBADF',
    });
    // A descriptor number above the process's limit is refused before the spawn.
    assert.throws(() => fw.posixSpawn('/bin/sh', ['sh'], undefined, { fileActions: [['close', 2 ** 31 - 1]] }), {
      code: 'EBADF',
      syscall: 'posix_spawn_file_actions_addclose',
    });
  });

  describe('bad arguments', () => {
    const spawnOf = (options: unknown) => () => fw.posixSpawn(NO_SUCH_PATH, ['prog'], undefined, u(options));
    const type = { name: 'TypeError', code: 'ERR_INVALID_ARG_TYPE' };
    const value = { name: 'TypeError', code: 'ERR_INVALID_ARG_VALUE' };
    const range = { name: 'RangeError', code: 'ERR_OUT_OF_RANGE' };
    const signal = { name: 'TypeError', code: 'ERR_UNKNOWN_SIGNAL' };
    const table: Array<[string, () => unknown, { name: string; code: string }]> = [
      ['path not a string', () => fw.posixSpawn(u(42), ['prog']), type],
      ['file not a string', () => fw.posixSpawnp(u(null), ['prog']), type],
      ['NUL in path', () => fw.posixSpawn('/bin/sh\0x', ['sh']), value],
      ['NUL in file', () => fw.posixSpawnp('sh\0', ['sh']), value],
      ['argv not an array', () => fw.posixSpawn(NO_SUCH_PATH, u('prog')), type],
      ['argv empty', () => fw.posixSpawn(NO_SUCH_PATH, []), value],
      ['argv[0] empty', () => fw.posixSpawn(NO_SUCH_PATH, ['']), value],
      ['argv item not a string', () => fw.posixSpawn(NO_SUCH_PATH, u(['prog', 1])), type],
      ['argv item with NUL', () => fw.posixSpawn(NO_SUCH_PATH, ['prog', 'a\0b']), value],
      ['env an array', () => fw.posixSpawn(NO_SUCH_PATH, ['prog'], u(['A=1'])), type],
      ['env value not a string', () => fw.posixSpawn(NO_SUCH_PATH, ['prog'], u({ A: 1 })), type],
      ['env key with =', () => fw.posixSpawn(NO_SUCH_PATH, ['prog'], { 'A=B': 'x' }), value],
      ['env value with NUL', () => fw.posixSpawnp(NO_SUCH_PATH, ['prog'], { A: 'x\0' }), value],
      ['options a string', spawnOf('setsid'), type],
      ['fileActions not an array', spawnOf({ fileActions: 'close' }), type],
      ['file action not an array', spawnOf({ fileActions: [42] }), type],
      ['file action a hole', spawnOf({ fileActions: [, ['close', 3]] }), type],
      ['unknown file action', spawnOf({ fileActions: [['chdir', '/']] }), value],
      ['file action name not a string', spawnOf({ fileActions: [[1, 3]] }), value],
      ['file action empty', spawnOf({ fileActions: [[]] }), value],
      ['close without fd', spawnOf({ fileActions: [['close']] }), value],
      ['close with an extra field', spawnOf({ fileActions: [['close', 3, 4]] }), value],
      ['dup2 with one fd', spawnOf({ fileActions: [['dup2', 3]] }), value],
      ['open without mode', spawnOf({ fileActions: [['open', 3, '/x', 0]] }), value],
      ['close fd negative', spawnOf({ fileActions: [['close', -1]] }), range],
      ['close fd a string', spawnOf({ fileActions: [['close', '3']] }), type],
      ['dup2 newFd not an integer', spawnOf({ fileActions: [['dup2', 3, 1.5]] }), range],
      ['dup2 fd above int32', spawnOf({ fileActions: [['dup2', 2 ** 31, 3]] }), range],
      ['open path not a string', spawnOf({ fileActions: [['open', 3, 7, 0, 0]] }), type],
      ['open path with NUL', spawnOf({ fileActions: [['open', 3, '/x\0', 0, 0]] }), value],
      ['open flags a string', spawnOf({ fileActions: [['open', 3, '/x', 'r', 0]] }), type],
      ['open flags not an integer', spawnOf({ fileActions: [['open', 3, '/x', 0.5, 0]] }), range],
      ['open mode out of range', spawnOf({ fileActions: [['open', 3, '/x', 0, 0o10000]] }), range],
      ['open mode negative', spawnOf({ fileActions: [['open', 3, '/x', 0, -1]] }), range],
      ['setpgroup a string', spawnOf({ setpgroup: '0' }), type],
      ['setpgroup negative', spawnOf({ setpgroup: -1 }), range],
      ['setpgroup not an integer', spawnOf({ setpgroup: 1.5 }), range],
      ['setsid a number', spawnOf({ setsid: 1 }), type],
      ['resetids a string', spawnOf({ resetids: 'yes' }), type],
      ['setsigmask a string', spawnOf({ setsigmask: 'SIGUSR1' }), type],
      ['setsigmask unknown name', spawnOf({ setsigmask: ['SIGNOPE'] }), signal],
      ['setsigmask signal 0', spawnOf({ setsigmask: [0] }), range],
      ['setsigmask signal 65', spawnOf({ setsigmask: [65] }), range],
      ['setsigmask reserved signal 32', spawnOf({ setsigmask: [32] }), range],
      ['setsigmask a Symbol', spawnOf({ setsigmask: [Symbol('SIGUSR1')] }), type],
      ['setsigdef a hole', spawnOf({ setsigdef: [, 'SIGUSR1'] }), type],
      ['setsigdef unknown name', spawnOf({ setsigdef: ['sigterm'] }), signal],
      ['setsigdef signal 1.5', spawnOf({ setsigdef: [1.5] }), range],
      ['cwd a number', spawnOf({ cwd: 1 }), type],
      ['cwd with NUL', spawnOf({ cwd: '/tmp\0' }), value],
    ];
    for (const [what, fn, expected] of table) {
      it(`${what}: ${expected.name} ${expected.code}`, () => {
        assert.throws(fn, (error: unknown) => {
          assert.ok(!(error instanceof fw.PosixError), `a system error instead: ${String(error)}`);
          assert.equal((error as Error).name, expected.name);
          assert.equal((error as { code?: unknown }).code, expected.code, String(error));
          return true;
        });
      });
    }

    it('the same checks guard posixSpawnp', () => {
      assert.throws(() => fw.posixSpawnp('sh', ['sh'], undefined, u({ fileActions: [['nope']] })), value);
      assert.throws(() => fw.posixSpawnp('sh', ['sh'], undefined, u({ setsigdef: [0] })), range);
    });
  });
});
