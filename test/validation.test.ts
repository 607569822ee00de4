/**
 * Bad arguments thrown at every function of the raw API: each must be refused with Node's
 * error class and code before anything reaches a system call, and the process must be as
 * healthy afterwards as before. No test here may deliver a real signal to this process,
 * replace it by exec, or end it with _exit: every target is chosen so that even a
 * validation bug would only make a harmless system call fail.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { constants, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { inspect } from 'node:util';
import fc from 'fast-check';
import * as fw from 'forkwise';
import { childPids, openFds } from './helpers';

const INT32_MAX = 2 ** 31 - 1;
const INT32_MIN = -(2 ** 31);
const RUNS = { numRuns: 100 };

/** A pid (and process group) that cannot exist: pid_max is at most 2**22. */
const NO_SUCH_PID = INT32_MAX;
/** Exec targets that cannot exist, so that even an accepted bad call only fails with ENOENT. */
const NO_SUCH_PATH = '/nonexistent/forkwise-validation/prog';
const NO_SUCH_PROGRAM = 'forkwise-validation-no-such-program-xyz';
const SIGNAL_NAMES = Object.keys(constants.signals);
const isSignalName = (s: string): boolean => Object.prototype.hasOwnProperty.call(constants.signals, s);

/** Passes a deliberately wrong value where the types do not allow it. */
const u = (value: unknown): never => value as never;

// ---------------------------------------------------------------------------------------
// Assertions

/** The error `fn` throws synchronously; fails if it returns (a Promise included). */
function thrownBy(fn: () => unknown, what: string): unknown {
  let result: unknown;
  try {
    result = fn();
  } catch (error) {
    return error;
  }
  if (result instanceof Promise) result.catch(() => {});
  return assert.fail(`${what}: expected a synchronous throw, got ${inspect(result)}`);
}

type ArgErrorClass = typeof TypeError | typeof RangeError;

function argError(fn: () => unknown, cls: ArgErrorClass, code: string, what = 'call'): Error {
  const error = thrownBy(fn, what);
  assert.ok(error instanceof cls, `${what}: expected a ${cls.name} (${code}), got ${inspect(error)}`);
  assert.equal(error.name, cls.name, `${what}: name`);
  assert.equal((error as { code?: unknown }).code, code, `${what}: code of ${inspect(error)}`);
  assert.ok(!(error instanceof fw.PosixError), `${what}: an argument error is not a PosixError`);
  assert.equal(typeof error.message, 'string');
  return error;
}

const invalidType = (fn: () => unknown, what?: string): Error => argError(fn, TypeError, 'ERR_INVALID_ARG_TYPE', what);
const invalidValue = (fn: () => unknown, what?: string): Error => argError(fn, TypeError, 'ERR_INVALID_ARG_VALUE', what);
const outOfRange = (fn: () => unknown, what?: string): Error => argError(fn, RangeError, 'ERR_OUT_OF_RANGE', what);
const unknownSignal = (fn: () => unknown, what?: string): Error => argError(fn, TypeError, 'ERR_UNKNOWN_SIGNAL', what);

interface SystemErrorShape {
  code: string;
  errno: number;
  syscall: string;
  path?: string;
  message?: string;
  messageStart?: string;
}

function checkSystemError(error: unknown, expected: SystemErrorShape, what: string): void {
  assert.ok(error instanceof Error, `${what}: not an Error: ${inspect(error)}`);
  assert.ok(error instanceof fw.PosixError, `${what}: not a PosixError: ${inspect(error)}`);
  const e = error as fw.PosixError;
  assert.equal(e.code, expected.code, `${what}: code of ${inspect(error)}`);
  assert.equal(e.errno, expected.errno, `${what}: errno`);
  assert.equal(e.syscall, expected.syscall, `${what}: syscall`);
  if ('path' in expected) assert.equal(e.path, expected.path, `${what}: path`);
  if (expected.message !== undefined) assert.equal(e.message, expected.message, `${what}: message`);
  if (expected.messageStart !== undefined) {
    assert.ok(e.message.startsWith(expected.messageStart), `${what}: message ${JSON.stringify(e.message)}`);
  }
}

function systemError(fn: () => unknown, expected: SystemErrorShape, what = 'call'): void {
  checkSystemError(thrownBy(fn, what), expected, what);
}

// ---------------------------------------------------------------------------------------
// Health of the process

function assertHealthy(): void {
  const [r, w] = fw.pipe();
  try {
    assert.equal(writeSync(w, 'alive'), 5);
    const buf = Buffer.alloc(5);
    assert.equal(readSync(r, buf, 0, 5, null), 5);
    assert.equal(buf.toString(), 'alive');
  } finally {
    fw.close(r);
    fw.close(w);
  }
  assert.equal(fw.getpid(), process.pid);
  assert.equal(fw.getppid(), process.ppid);
  assert.equal(fw.kill(process.pid, 0), undefined);
}

type StdioState = Array<'closed' | { inheritable: boolean; blocking: boolean }>;

function stdioState(): StdioState {
  return [0, 1, 2].map((fd) => {
    try {
      return { inheritable: fw.getInheritable(fd), blocking: fw.getBlocking(fd) };
    } catch (error) {
      if ((error as { code?: string }).code === 'EBADF') return 'closed';
      throw error;
    }
  });
}

/** The main thread's signal state (SigIgn, SigBlk, SigCgt) as the kernel reports it. */
function signalState(): Record<string, string> {
  const status = readFileSync('/proc/self/status', 'utf8');
  const state: Record<string, string> = {};
  for (const field of ['SigIgn', 'SigBlk', 'SigCgt']) {
    state[field] = new RegExp(`^${field}:\\s+(\\w+)$`, 'm').exec(status)![1]!;
  }
  return state;
}

/** Runs `fn` (expected to fail an exec) and checks that stdio and signals are untouched. */
function unchangedByExec(fn: () => void): void {
  const stdio = stdioState();
  const signals = signalState();
  fn();
  assert.deepEqual(stdioState(), stdio, 'fds 0-2 flags changed by a failed exec');
  assert.deepEqual(signalState(), signals, 'signal dispositions or mask changed by a failed exec');
}

// ---------------------------------------------------------------------------------------
// Values

const NON_NUMBERS: Array<[string, unknown]> = [
  ["'3'", '3'],
  ["''", ''],
  ['null', null],
  ['undefined', undefined],
  ['{}', {}],
  ['[]', []],
  ['[3]', [3]],
  ['3n', 3n],
  ['true', true],
  ['false', false],
  ['Symbol', Symbol('fd')],
  ['function', () => 3],
  ['new Number(3)', new Number(3)],
  ['Date', new Date(3)],
  ['null-prototype object', Object.create(null)],
];

const HOSTILE_OBJECTS: Array<[string, unknown]> = [
  ['object whose constructor.name is a null-prototype object', { constructor: { name: Object.create(null) } }],
  ['object whose constructor.name is a Symbol', { constructor: { name: Symbol('x') } }],
  [
    'object whose constructor getter throws',
    {
      get constructor(): never {
        throw new Error('getter ran');
      },
    },
  ],
];

const NON_INTEGERS = [1.5, 0.1, -0.5, Number.EPSILON, NaN, Infinity, -Infinity];
const BAD_FD_NUMBERS = [-1, -2, INT32_MIN, 2 ** 31, 2 ** 32, 2 ** 53, Number.MAX_VALUE, -Number.MAX_VALUE, ...NON_INTEGERS];
const BAD_PID_NUMBERS = [INT32_MIN - 1, 2 ** 31, 2 ** 32, -(2 ** 53), 2 ** 53, Number.MAX_VALUE, ...NON_INTEGERS];

const anything = fc.anything({
  withBigInt: true,
  withBoxedValues: true,
  withDate: true,
  withMap: true,
  withSet: true,
  withTypedArray: true,
  withNullPrototype: true,
  withSparseArray: true,
  withObjectString: true,
  withUnicodeString: true,
});
const exotic = fc.constantFrom<unknown>(Symbol('x'), () => 3, new Number(3), new String('3'), 3n, Buffer.from('3'));
const anyValue = fc.oneof(anything, exotic, fc.integer().map(String));
const nonNumber = anyValue.filter((v) => typeof v !== 'number');
const nonString = fc.oneof(anything, exotic, fc.integer()).filter((v) => typeof v !== 'string');
const nonBoolean = fc.oneof(anything, exotic, fc.constantFrom('true', 1, 0)).filter((v) => typeof v !== 'boolean');
/** What validateObject must refuse; undefined is left out (it selects the default options). */
const nonObject = fc
  .oneof(anything, exotic, fc.array(fc.string()))
  .filter((v) => v !== undefined && (v === null || typeof v !== 'object' || Array.isArray(v)));
/** What an options argument must refuse: null, as undefined, selects the defaults there. */
const nonOptions = nonObject.filter((v) => v !== null);
const nonInteger = fc.oneof(fc.double().filter((x) => !Number.isInteger(x)), fc.constantFrom(NaN, Infinity, -Infinity));
const aboveInt32 = fc.bigInt({ min: 2n ** 31n, max: 2n ** 53n }).map(Number);
const belowInt32 = fc.bigInt({ min: -(2n ** 53n), max: -(2n ** 31n) - 1n }).map(Number);
const badFdNumber = fc.oneof(fc.integer({ min: INT32_MIN, max: -1 }), aboveInt32, belowInt32, nonInteger);
const badPidNumber = fc.oneof(aboveInt32, belowInt32, nonInteger);
const binaryString = fc.string({ unit: 'binary' });
const withNul = fc.tuple(binaryString, binaryString).map(([a, b]) => `${a}\0${b}`);
const cString = fc.string({ unit: 'binary', minLength: 1 }).filter((s) => !s.includes('\0'));
const envName = cString.filter((s) => !s.includes('='));

// ---------------------------------------------------------------------------------------

describe('argument validation of the raw API', () => {
  let fdsBefore: Map<number, string>;
  let childrenBefore: number[];

  before(() => {
    // Safety: the exec targets below must not exist, or a validation bug could replace mocha.
    assert.equal(existsSync('/nonexistent'), false, '/nonexistent exists: the exec tests are unsafe here');
    for (const dir of (process.env.PATH ?? '').split(delimiter)) {
      assert.equal(existsSync(join(dir || '.', NO_SUCH_PROGRAM)), false, `${NO_SUCH_PROGRAM} found in PATH`);
    }
    fdsBefore = openFds();
    childrenBefore = childPids();
  });

  afterEach(assertHealthy);

  after(() => {
    const leaked = [...openFds()].filter(([fd, target]) => fdsBefore.get(fd) !== target);
    assert.deepEqual(leaked, [], 'descriptors leaked by the validation tests');
    for (const fd of [0, 1, 2]) assert.equal(openFds().get(fd), fdsBefore.get(fd), `fd ${fd} changed`);
    const newChildren = childPids().filter((pid) => !childrenBefore.includes(pid));
    assert.deepEqual(newChildren, [], 'child processes appeared');
  });

  describe('descriptor arguments', () => {
    let r: number;
    let w: number;
    before(() => ([r, w] = fw.pipe()));
    after(() => {
      fw.close(r);
      fw.close(w);
    });

    // `other` is a valid, open descriptor of this test, for the argument not under test.
    const FD_CALLS: Array<[string, (fd: unknown, other: number) => unknown]> = [
      ['dup(fd)', (fd) => fw.dup(u(fd))],
      ['dup2(fd, ok)', (fd, other) => fw.dup2(u(fd), other)],
      ['dup2(ok, fd2)', (fd, other) => fw.dup2(other, u(fd))],
      ['close(fd)', (fd) => fw.close(u(fd))],
      ['getInheritable(fd)', (fd) => fw.getInheritable(u(fd))],
      ['setInheritable(fd, false)', (fd) => fw.setInheritable(u(fd), false)],
      ['getBlocking(fd)', (fd) => fw.getBlocking(u(fd))],
      ['setBlocking(fd, true)', (fd) => fw.setBlocking(u(fd), true)],
      // `other` is a pipe: a call that got through would fail with ENOTSOCK, never block.
      ['sendFds(sock, data, [])', (fd) => fw.sendFds(u(fd), Buffer.from('x'), [])],
      ['sendFds(ok, data, [fd])', (fd, other) => fw.sendFds(other, Buffer.from('x'), [u(fd)])],
      ['recvFds(sock, 1, 1)', (fd) => fw.recvFds(u(fd), 1, 1)],
    ];

    for (const [name, call] of FD_CALLS) {
      it(`${name}: a non-number is ERR_INVALID_ARG_TYPE`, () => {
        for (const [label, value] of NON_NUMBERS) invalidType(() => call(value, w), `${name} with ${label}`);
        fc.assert(
          fc.property(nonNumber, (value) => void invalidType(() => call(value, w), `${name} with ${inspect(value)}`)),
          RUNS,
        );
      });

      it(`${name}: a negative, fractional or too large number is ERR_OUT_OF_RANGE`, () => {
        for (const value of BAD_FD_NUMBERS) outOfRange(() => call(value, w), `${name} with ${value}`);
        fc.assert(
          fc.property(badFdNumber, (value) => void outOfRange(() => call(value, w), `${name} with ${value}`)),
          RUNS,
        );
      });
    }

    it('messages name the argument: fd or fd2', () => {
      assert.match(invalidType(() => fw.dup2(u('1'), w)).message, /"fd"/);
      assert.match(invalidType(() => fw.dup2(w, u('1'))).message, /"fd2"/);
      assert.match(outOfRange(() => fw.dup2(-1, w)).message, /"fd"/);
      assert.match(outOfRange(() => fw.dup2(w, 1.5)).message, /"fd2"/);
    });

    // Node describes such values without running their code (fs.closeSync does).
    for (const [label, value] of HOSTILE_OBJECTS) {
      it(`an ${label} as fd is still ERR_INVALID_ARG_TYPE`, () => {
        invalidType(() => fw.close(u(value)), `close with an ${label}`);
      });
    }

    it('the largest valid descriptor number passes validation and reaches the system call', () => {
      systemError(() => fw.dup(INT32_MAX), { code: 'EBADF', errno: -9, syscall: 'dup' });
      systemError(() => fw.close(INT32_MAX), { code: 'EBADF', errno: -9, syscall: 'close' });
      systemError(() => fw.dup2(r, INT32_MAX), { code: 'EBADF', errno: -9, syscall: 'dup2' });
    });
  });

  describe('pid arguments', () => {
    // Every valid-but-wrong pid reaching the kernel here is NO_SUCH_PID and every signal 0.
    const PID_CALLS: Array<[string, (pid: unknown) => unknown, { defaultsToZero?: boolean }]> = [
      ['kill(pid, 0)', (pid) => fw.kill(u(pid), 0), {}],
      ['killpg(pgid, 0)', (pid) => fw.killpg(u(pid), 0), {}],
      ['waitpid(pid)', (pid) => fw.waitpid(u(pid)), {}],
      ['waitpid(pid, WNOHANG)', (pid) => fw.waitpid(u(pid), fw.WNOHANG), {}],
      ['getpgid(pid)', (pid) => fw.getpgid(u(pid)), { defaultsToZero: true }],
      ['setpgid(pid, 0)', (pid) => fw.setpgid(u(pid), 0), {}],
      ['setpgid(NO_SUCH_PID, pgid)', (pid) => fw.setpgid(NO_SUCH_PID, u(pid)), {}],
      ['getsid(pid)', (pid) => fw.getsid(u(pid)), { defaultsToZero: true }],
      ['waitpidAsync(pid)', (pid) => fw.waitpidAsync(u(pid)), {}],
    ];

    for (const [name, call, { defaultsToZero }] of PID_CALLS) {
      it(`${name}: a non-number is ERR_INVALID_ARG_TYPE`, () => {
        for (const [label, value] of NON_NUMBERS) {
          if (defaultsToZero && value === undefined) continue; // the documented default, 0
          invalidType(() => call(value), `${name} with ${label}`);
        }
        const values = defaultsToZero ? nonNumber.filter((v) => v !== undefined) : nonNumber;
        fc.assert(fc.property(values, (value) => void invalidType(() => call(value), `${name} with ${inspect(value)}`)), RUNS);
      });

      it(`${name}: a fractional or out-of-int32 number is ERR_OUT_OF_RANGE`, () => {
        for (const value of BAD_PID_NUMBERS) outOfRange(() => call(value), `${name} with ${value}`);
        fc.assert(fc.property(badPidNumber, (value) => void outOfRange(() => call(value), `${name} with ${value}`)), RUNS);
      });
    }

    it('waitpidAsync requires a pid >= 1 and throws synchronously', () => {
      for (const pid of [0, -1, -2, INT32_MIN, 2 ** 31]) {
        outOfRange(() => fw.waitpidAsync(pid), `waitpidAsync(${pid})`);
      }
      fc.assert(
        fc.property(fc.integer({ min: INT32_MIN, max: 0 }), (pid) => void outOfRange(() => fw.waitpidAsync(pid))),
        RUNS,
      );
    });

    it('getpgid() and getsid() default to this process, as with 0', () => {
      assert.equal(fw.getpgid(), fw.getpgid(0));
      assert.equal(fw.getpgid(u(undefined)), fw.getpgid(0));
      assert.equal(fw.getpgid(process.pid), fw.getpgid(0));
      assert.equal(fw.getsid(), fw.getsid(0));
      assert.equal(fw.getsid(u(undefined)), fw.getsid(0));
      assert.equal(fw.getsid(process.pid), fw.getsid(0));
    });

    it('messages name the argument: pid or pgid', () => {
      assert.match(invalidType(() => fw.kill(u('1'), 0)).message, /"pid"/);
      assert.match(invalidType(() => fw.killpg(u('1'), 0)).message, /"pgid"/);
      assert.match(outOfRange(() => fw.setpgid(NO_SUCH_PID, 1.5)).message, /"pgid"/);
    });
  });

  describe('signal arguments', () => {
    // kill and killpg target a pid that cannot exist: an accepted signal only yields ESRCH.
    // raise and the calls that change dispositions or the mask are only ever given values
    // that must be refused before the system call.
    const SIGNAL_CALLS: Array<[string, (sig: unknown) => unknown]> = [
      ['kill(NO_SUCH_PID, sig)', (sig) => fw.kill(NO_SUCH_PID, u(sig))],
      ['killpg(NO_SUCH_PID, sig)', (sig) => fw.killpg(NO_SUCH_PID, u(sig))],
      ['raise(sig)', (sig) => fw.raise(u(sig))],
      // Reading a disposition changes nothing; the others are only given refused values.
      ['sigaction(sig)', (sig) => fw.sigaction(u(sig))],
      ['signal(sig, handler)', (sig) => fw.signal(u(sig), 'default')],
      ["sigaction('SIGURG', { mask: [sig] })", (sig) => fw.sigaction('SIGURG', { handler: 'default', mask: [u(sig)] })],
      ["sigprocmask('block', [sig])", (sig) => fw.sigprocmask('block', [u(sig)])],
    ];
    const UNKNOWN_NAMES = ['SIGFOO', 'sigterm', 'SigTerm', '', 'SIG', 'TERM', ' SIGTERM', 'SIGTERM ', 'SIGTERM\0', '9', '0', 'toString', 'constructor', '__proto__', 'hasOwnProperty', 'valueOf'];
    const BAD_SIGNAL_NUMBERS = [-1, -9, 65, 128, 1000, 2 ** 31, -(2 ** 31), 2 ** 53, ...NON_INTEGERS];
    const NON_SIGNALS: Array<[string, unknown]> = [
      ['null', null],
      ['undefined', undefined],
      ['{}', {}],
      ["['SIGTERM']", ['SIGTERM']],
      ["new String('SIGTERM')", new String('SIGTERM')],
      ['true', true],
      ['9n', 9n],
      ['Symbol', Symbol('SIGTERM')],
      ['function', () => 9],
    ];

    for (const [name, call] of SIGNAL_CALLS) {
      it(`${name}: an unknown signal name is ERR_UNKNOWN_SIGNAL`, () => {
        for (const sig of UNKNOWN_NAMES) unknownSignal(() => call(sig), `${name} with ${JSON.stringify(sig)}`);
        fc.assert(
          fc.property(binaryString.filter((s) => !isSignalName(s)), (sig) => void unknownSignal(() => call(sig))),
          RUNS,
        );
      });

      it(`${name}: a number outside 0..64 or fractional is ERR_OUT_OF_RANGE`, () => {
        for (const sig of BAD_SIGNAL_NUMBERS) outOfRange(() => call(sig), `${name} with ${sig}`);
        const badNumber = fc.oneof(
          fc.integer({ min: INT32_MIN, max: -1 }),
          fc.integer({ min: 65, max: INT32_MAX }),
          aboveInt32,
          nonInteger,
        );
        fc.assert(fc.property(badNumber, (sig) => void outOfRange(() => call(sig), `${name} with ${sig}`)), RUNS);
      });

      it(`${name}: any other type is ERR_INVALID_ARG_TYPE`, () => {
        for (const [label, sig] of NON_SIGNALS) invalidType(() => call(sig), `${name} with ${label}`);
        const other = anyValue.filter((v) => typeof v !== 'number' && typeof v !== 'string');
        fc.assert(fc.property(other, (sig) => void invalidType(() => call(sig), `${name} with ${inspect(sig)}`)), RUNS);
      });
    }

    it('every known name and every number 0..64 is accepted (and reaches kill, to no one)', () => {
      const esrch = (syscall: string) => ({ code: 'ESRCH', errno: -3, syscall });
      for (const sig of SIGNAL_NAMES) {
        systemError(() => fw.kill(NO_SUCH_PID, sig as NodeJS.Signals), esrch('kill'), `kill with ${sig}`);
        systemError(() => fw.killpg(NO_SUCH_PID, sig as NodeJS.Signals), esrch('killpg'), `killpg with ${sig}`);
      }
      for (let sig = 0; sig <= 64; sig++) {
        systemError(() => fw.kill(NO_SUCH_PID, sig), esrch('kill'), `kill with ${sig}`);
      }
    });

    it('signal 0 checks existence without signalling', () => {
      assert.equal(fw.kill(process.pid, 0), undefined);
      assert.equal(fw.killpg(fw.getpgid(0), 0), undefined);
    });
  });

  describe('exec family arguments', () => {
    interface ExecVariant {
      name: 'execv' | 'execve' | 'execvp' | 'execvpe' | 'execl' | 'execle' | 'execlp' | 'execlpe';
      search: boolean;
      env: boolean;
      list: boolean;
      /** `args` is spread for the list variants; `env` is ignored by those without one. */
      call(path: unknown, args: unknown, env?: unknown): unknown;
    }
    const spread = (args: unknown): never[] => args as never[];
    const VARIANTS: ExecVariant[] = [
      { name: 'execv', search: false, env: false, list: false, call: (p, a) => fw.execv(u(p), u(a)) },
      { name: 'execve', search: false, env: true, list: false, call: (p, a, e) => fw.execve(u(p), u(a), u(e)) },
      { name: 'execvp', search: true, env: false, list: false, call: (p, a) => fw.execvp(u(p), u(a)) },
      { name: 'execvpe', search: true, env: true, list: false, call: (p, a, e) => fw.execvpe(u(p), u(a), u(e)) },
      { name: 'execl', search: false, env: false, list: true, call: (p, a) => fw.execl(u(p), ...spread(a)) },
      { name: 'execle', search: false, env: true, list: true, call: (p, a, e) => fw.execle(u(p), ...spread(a), u(e)) },
      { name: 'execlp', search: true, env: false, list: true, call: (p, a) => fw.execlp(u(p), ...spread(a)) },
      { name: 'execlpe', search: true, env: true, list: true, call: (p, a, e) => fw.execlpe(u(p), ...spread(a), u(e)) },
    ];
    const GOOD_ARGS = ['prog', 'first', 'second'];
    const GOOD_ENV = { PATH: '/nonexistent/forkwise-validation', LANG: 'C' };
    const NON_STRINGS: Array<[string, unknown]> = [
      ['undefined', undefined],
      ['null', null],
      ['42', 42],
      ['true', true],
      ['{}', {}],
      ['[]', []],
      ["['/bin/sh']", ['/bin/sh']],
      ['Buffer', Buffer.from('/bin/sh')],
      ["new String('/bin/sh')", new String('/bin/sh')],
      ['Symbol', Symbol('/bin/sh')],
      ['URL', new URL('file:///bin/sh')],
    ];

    for (const v of VARIANTS) {
      const target = v.search ? NO_SUCH_PROGRAM : NO_SUCH_PATH;
      const pathName = v.search ? 'file' : 'path';
      // (No default parameter for env: undefined must reach the call as undefined.)
      const exec =
        (path: unknown, args: unknown, ...env: [unknown?]) =>
        (): unknown =>
          v.call(path, args, env.length === 0 ? GOOD_ENV : env[0]);

      describe(v.name, () => {
        it(`a non-string ${pathName} is ERR_INVALID_ARG_TYPE`, () => {
          for (const [label, path] of NON_STRINGS) {
            const error = invalidType(exec(path, GOOD_ARGS), `${v.name} with ${label}`);
            assert.match(error.message, new RegExp(`"${pathName}"`));
          }
          fc.assert(fc.property(nonString, (path) => void invalidType(exec(path, GOOD_ARGS))), RUNS);
        });

        it(`a ${pathName} with a NUL byte is ERR_INVALID_ARG_VALUE`, () => {
          invalidValue(exec('/bin/sh\0', GOOD_ARGS));
          invalidValue(exec('\0', GOOD_ARGS));
          fc.assert(fc.property(withNul, (path) => void invalidValue(exec(path, GOOD_ARGS), JSON.stringify(path))), RUNS);
        });

        if (!v.list) {
          it('args that are not an array are ERR_INVALID_ARG_TYPE', () => {
            const notArrays: unknown[] = ['prog', null, undefined, 1, {}, { 0: 'prog', length: 1 }, new Set(['prog']), new String('prog')];
            for (const args of notArrays) invalidType(exec(target, args), `${v.name} args ${inspect(args)}`);
            const notArray = fc.oneof(anything, exotic).filter((a) => !Array.isArray(a));
            fc.assert(fc.property(notArray, (args) => void invalidType(exec(target, args))), RUNS);
          });

          it('a sparse args array (a hole reads as undefined) is ERR_INVALID_ARG_TYPE', () => {
            // eslint-disable-next-line no-sparse-arrays
            invalidType(exec(target, ['prog', , 'x']), `${v.name} args with a hole at 1`);
          });

          it('a sparse args array with a hole at 0 is ERR_INVALID_ARG_TYPE', () => {
            // eslint-disable-next-line no-sparse-arrays
            invalidType(exec(target, [, 'x']), `${v.name} args with a hole at 0`);
            invalidType(exec(target, new Array(2)), `${v.name} args new Array(2)`);
          });
        }

        it('empty args, or args[0] empty, are ERR_INVALID_ARG_VALUE', () => {
          invalidValue(exec(target, []), `${v.name} with no args`);
          invalidValue(exec(target, ['']), `${v.name} with args ['']`);
          invalidValue(exec(target, ['', 'x']), `${v.name} with args ['', 'x']`);
        });

        it('a non-string arg at any position is ERR_INVALID_ARG_TYPE', () => {
          for (const [label, bad] of NON_STRINGS) {
            for (let i = 0; i <= GOOD_ARGS.length; i++) {
              const args = [...GOOD_ARGS.slice(0, i), bad, ...GOOD_ARGS.slice(i)];
              invalidType(exec(target, args), `${v.name} with ${label} at args[${i}]`);
            }
          }
          fc.assert(
            fc.property(fc.array(cString, { minLength: 1, maxLength: 5 }), fc.nat(), nonString, (good, at, bad) => {
              const i = at % (good.length + 1);
              invalidType(exec(target, [...good.slice(0, i), bad, ...good.slice(i)]), `${inspect(bad)} at args[${i}]`);
            }),
            RUNS,
          );
        });

        it('an arg with a NUL byte is ERR_INVALID_ARG_VALUE', () => {
          invalidValue(exec(target, ['prog\0']));
          invalidValue(exec(target, ['prog', 'a\0b']));
          fc.assert(
            fc.property(fc.array(cString, { minLength: 1, maxLength: 5 }), fc.nat(), withNul, (good, at, bad) => {
              const i = at % (good.length + 1);
              invalidValue(exec(target, [...good.slice(0, i), bad, ...good.slice(i)]), `${JSON.stringify(bad)} at args[${i}]`);
            }),
            RUNS,
          );
        });

        if (v.env) {
          it('an env that is not an object is ERR_INVALID_ARG_TYPE', () => {
            const notObjects: unknown[] = [null, 'PATH=/bin', 42, true, [], ['PATH=/bin'], Symbol('env'), () => ({})];
            for (const env of notObjects) invalidType(exec(target, GOOD_ARGS, env), `${v.name} env ${inspect(env)}`);
            fc.assert(fc.property(nonObject, (env) => void invalidType(exec(target, GOOD_ARGS, env))), RUNS);
          });

          it('a missing (undefined) env is ERR_INVALID_ARG_TYPE, not the inherited environment', () => {
            invalidType(exec(target, GOOD_ARGS, undefined), `${v.name} with env undefined`);
          });

          it("an env name that is empty or contains '=' or NUL is ERR_INVALID_ARG_VALUE", () => {
            for (const key of ['', '=', 'A=B', '=A', 'A=', 'A\0B']) {
              invalidValue(exec(target, GOOD_ARGS, { ...GOOD_ENV, [key]: 'x' }), `${v.name} env key ${JSON.stringify(key)}`);
            }
            const badKey = fc.oneof(
              fc.tuple(binaryString, binaryString).map(([a, b]) => `${a}=${b}`),
              withNul,
              fc.constant(''),
            );
            fc.assert(
              fc.property(badKey, (key) => void invalidValue(exec(target, GOOD_ARGS, { ...GOOD_ENV, [key]: 'x' }))),
              RUNS,
            );
          });

          it('an env value that is not a string is ERR_INVALID_ARG_TYPE', () => {
            for (const [label, value] of NON_STRINGS) {
              invalidType(exec(target, GOOD_ARGS, { ...GOOD_ENV, A: value }), `${v.name} env value ${label}`);
            }
            fc.assert(
              fc.property(fc.dictionary(envName, cString, { maxKeys: 4 }), envName, nonString, (env, key, bad) => {
                invalidType(exec(target, GOOD_ARGS, Object.fromEntries([...Object.entries(env), [key, bad]])));
              }),
              RUNS,
            );
          });

          it('an env value with a NUL byte is ERR_INVALID_ARG_VALUE', () => {
            invalidValue(exec(target, GOOD_ARGS, { ...GOOD_ENV, A: 'a\0b' }));
            fc.assert(
              fc.property(fc.dictionary(envName, cString, { maxKeys: 4 }), envName, withNul, (env, key, bad) => {
                invalidValue(exec(target, GOOD_ARGS, Object.fromEntries([...Object.entries(env), [key, bad]])));
              }),
              RUNS,
            );
          });
        }

        it('leaves stdio flags and signal state alone when refusing arguments', () => {
          unchangedByExec(() => {
            invalidValue(exec(target, []));
            invalidType(exec(u(7), GOOD_ARGS));
          });
        });

        it(`a real failing ${v.name} is ENOENT with syscall '${v.name}'`, () => {
          unchangedByExec(() =>
            systemError(exec(target, GOOD_ARGS), {
              code: 'ENOENT',
              errno: -2,
              syscall: v.name,
              path: target,
              messageStart: `ENOENT: no such file or directory, ${v.name}`,
            }),
          );
        });
      });
    }

    it('execle and execlpe without any trailing env are ERR_INVALID_ARG_TYPE', () => {
      invalidType(() => (fw.execle as (...a: unknown[]) => never)(NO_SUCH_PATH), 'execle(path)');
      invalidType(() => (fw.execlpe as (...a: unknown[]) => never)(NO_SUCH_PROGRAM), 'execlpe(file)');
      // A trailing string is taken as the env, and refused.
      invalidType(() => fw.execle(NO_SUCH_PATH, 'prog', u('x')), "execle(path, 'prog', 'x')");
      invalidType(() => fw.execlpe(NO_SUCH_PROGRAM, 'prog', u('x')), "execlpe(file, 'prog', 'x')");
      // Only the env: no args at all.
      invalidValue(() => fw.execle(NO_SUCH_PATH, u(GOOD_ENV)), 'execle(path, env)');
    });
  });

  describe('exec failures (system errors)', () => {
    it("execv of a missing file: ENOENT, errno -2, syscall 'execv', path", () => {
      unchangedByExec(() =>
        systemError(() => fw.execv('/nonexistent/x', ['x']), {
          code: 'ENOENT',
          errno: -2,
          syscall: 'execv',
          path: '/nonexistent/x',
          messageStart: 'ENOENT: no such file or directory, execv',
        }),
      );
    });

    it("execvp of a program on no PATH directory: ENOENT, syscall 'execvp'", () => {
      unchangedByExec(() =>
        systemError(() => fw.execvp('no-such-program-xyz', ['x']), {
          code: 'ENOENT',
          errno: -2,
          syscall: 'execvp',
          path: 'no-such-program-xyz',
          messageStart: 'ENOENT: no such file or directory, execvp',
        }),
      );
    });

    it('execv of a file without execute permission: EACCES', () => {
      // (/etc/hostname is not necessarily mode 0644; a file of our own is.)
      const dir = mkdtempSync(join(tmpdir(), 'forkwise-validation-'));
      try {
        const file = join(dir, 'not-executable');
        writeFileSync(file, '#!/bin/sh\nexit 0\n', { mode: 0o644 });
        unchangedByExec(() =>
          systemError(() => fw.execv(file, ['x']), { code: 'EACCES', errno: -13, syscall: 'execv', path: file }),
        );
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    });

    it('a failed exec restores close-on-exec on fds 0-2 that had it', () => {
      const open = [0, 1, 2].filter((fd) => stdioState()[fd] !== 'closed');
      const before = open.map((fd) => fw.getInheritable(fd));
      try {
        for (const fd of open) fw.setInheritable(fd, false);
        unchangedByExec(() => systemError(() => fw.execv(NO_SUCH_PATH, ['x']), { code: 'ENOENT', errno: -2, syscall: 'execv' }));
        for (const fd of open) assert.equal(fw.getInheritable(fd), false, `fd ${fd} made inheritable by a failed exec`);
      } finally {
        open.forEach((fd, i) => fw.setInheritable(fd, before[i]!));
      }
    });
  });

  describe('system errors', () => {
    it('close of a closed descriptor: EBADF, syscall close, errno -9', () => {
      const [r, w] = fw.pipe();
      fw.close(r);
      fw.close(w);
      systemError(() => fw.close(r), {
        code: 'EBADF',
        errno: -9,
        syscall: 'close',
        message: 'EBADF: bad file descriptor, close',
      });
    });

    it('dup of a descriptor that is not open: EBADF', () => {
      systemError(() => fw.dup(999999), { code: 'EBADF', errno: -9, syscall: 'dup' });
      systemError(() => fw.dup2(999999, 999998), { code: 'EBADF', errno: -9, syscall: 'dup2' });
      assert.equal((thrownBy(() => fw.getInheritable(999999), 'getInheritable') as fw.PosixError).code, 'EBADF');
      assert.equal((thrownBy(() => fw.getBlocking(999999), 'getBlocking') as fw.PosixError).code, 'EBADF');
    });

    it('waitpid of a process that is not a child: ECHILD', () => {
      systemError(() => fw.waitpid(1), {
        code: 'ECHILD',
        errno: -10,
        syscall: 'waitpid',
        message: 'ECHILD: no child processes, waitpid',
      });
      systemError(() => fw.waitpid(1, fw.WNOHANG), { code: 'ECHILD', errno: -10, syscall: 'waitpid' });
      systemError(() => fw.waitpid(NO_SUCH_PID), { code: 'ECHILD', errno: -10, syscall: 'waitpid' });
    });

    it('wait() without children: ECHILD', function () {
      if (childPids().length > 0) this.skip(); // would reap someone else's child
      systemError(() => fw.wait(), { code: 'ECHILD', errno: -10, syscall: 'waitpid' });
    });

    it('waitpidAsync of a process that is not a child rejects with ECHILD', async () => {
      for (const pid of [1, NO_SUCH_PID]) {
        const promise = fw.waitpidAsync(pid);
        assert.ok(promise instanceof Promise);
        const error = await promise.then(
          (result) => assert.fail(`resolved with ${inspect(result)}`),
          (e: unknown) => e,
        );
        checkSystemError(error, { code: 'ECHILD', errno: -10, syscall: 'waitpid' }, `waitpidAsync(${pid})`);
      }
    });

    it('kill, getpgid, getsid, setpgid of a pid that cannot exist: ESRCH', () => {
      systemError(() => fw.kill(NO_SUCH_PID, 0), { code: 'ESRCH', errno: -3, syscall: 'kill' });
      systemError(() => fw.getpgid(NO_SUCH_PID), { code: 'ESRCH', errno: -3, syscall: 'getpgid' });
      systemError(() => fw.getsid(NO_SUCH_PID), { code: 'ESRCH', errno: -3, syscall: 'getsid' });
      systemError(() => fw.setpgid(NO_SUCH_PID, 0), { code: 'ESRCH', errno: -3, syscall: 'setpgid' });
    });

    it('the functions without arguments ignore extra ones', () => {
      assert.equal((fw.getpid as (...a: unknown[]) => number)('x', -1), process.pid);
      assert.equal((fw.getppid as (...a: unknown[]) => number)(null), process.ppid);
      assert.equal(typeof fw.isForkSafe(), 'boolean');
      if (fw.isForkSafe()) assert.equal(fw.reexecSingleThreaded(), undefined); // returns at once
    });
  });

  describe('option objects and flags', () => {
    let r: number;
    let w: number;
    let spare: number;
    before(() => {
      [r, w] = fw.pipe();
      spare = fw.dup(w);
    });
    after(() => {
      for (const fd of [r, w, spare]) fw.close(fd);
    });

    it('pipe(): options must be an object of booleans', () => {
      const cases: unknown[] = ['x', 1, true, [], ['cloexec'], () => ({})];
      for (const options of cases) invalidType(() => fw.pipe(u(options)), `pipe(${inspect(options)})`);
      invalidType(() => fw.pipe(u({ cloexec: 'yes' })), "pipe({ cloexec: 'yes' })");
      invalidType(() => fw.pipe(u({ nonblock: 1 })), 'pipe({ nonblock: 1 })');
      fc.assert(fc.property(nonOptions, (options) => void invalidType(() => fw.pipe(u(options)))), RUNS);
      fc.assert(
        fc.property(nonBoolean.filter((v) => v != null), fc.boolean(), (bad, which) => {
          invalidType(() => fw.pipe(u(which ? { cloexec: bad } : { nonblock: bad })));
        }),
        RUNS,
      );
    });

    it('dup2(): options must be an object with a boolean inheritable', () => {
      for (const options of ['x', 1, [], true]) {
        invalidType(() => fw.dup2(r, spare, u(options)), `dup2 options ${inspect(options)}`);
      }
      invalidType(() => fw.dup2(r, spare, u({ inheritable: 1 })), 'dup2 { inheritable: 1 }');
      invalidType(() => fw.dup2(r, spare, u({ inheritable: 'yes' })), "dup2 { inheritable: 'yes' }");
      fc.assert(
        fc.property(nonBoolean.filter((v) => v != null), (bad) => {
          invalidType(() => fw.dup2(r, spare, u({ inheritable: bad })));
        }),
        RUNS,
      );
      // spare still refers to the pipe's write end: nothing was duplicated onto it.
      writeSync(spare, 'w');
      const buf = Buffer.alloc(1);
      assert.equal(readSync(r, buf, 0, 1, null), 1);
    });

    it('setInheritable() and setBlocking(): the flag must be a boolean', () => {
      const inheritable = fw.getInheritable(spare);
      const blocking = fw.getBlocking(spare);
      for (const bad of [undefined, null, 1, 0, 'true', 'false', {}, []]) {
        invalidType(() => fw.setInheritable(spare, u(bad)), `setInheritable(fd, ${inspect(bad)})`);
        invalidType(() => fw.setBlocking(spare, u(bad)), `setBlocking(fd, ${inspect(bad)})`);
      }
      fc.assert(
        fc.property(nonBoolean, (bad) => {
          invalidType(() => fw.setInheritable(spare, u(bad)));
          invalidType(() => fw.setBlocking(spare, u(bad)));
        }),
        RUNS,
      );
      assert.equal(fw.getInheritable(spare), inheritable);
      assert.equal(fw.getBlocking(spare), blocking);
    });

    it('waitpid(): options must be a non-negative int32', () => {
      for (const options of [-1, 1.5, NaN, Infinity, 2 ** 31, INT32_MIN]) {
        outOfRange(() => fw.waitpid(NO_SUCH_PID, options), `waitpid options ${options}`);
      }
      for (const options of ['0', null, {}, [], true, 1n]) {
        invalidType(() => fw.waitpid(NO_SUCH_PID, u(options)), `waitpid options ${inspect(options)}`);
      }
      fc.assert(
        fc.property(fc.oneof(fc.integer({ min: INT32_MIN, max: -1 }), nonInteger, aboveInt32), (options) => {
          outOfRange(() => fw.waitpid(NO_SUCH_PID, options));
        }),
        RUNS,
      );
    });

    it('waitpidAsync(): options must be an object whose signal is an AbortSignal', () => {
      for (const options of ['x', 1, [], true]) {
        invalidType(() => fw.waitpidAsync(NO_SUCH_PID, u(options)), `waitpidAsync options ${inspect(options)}`);
      }
      for (const signal of ['x', {}, 1, new AbortController(), { aborted: false, addEventListener() {} }]) {
        invalidType(() => fw.waitpidAsync(NO_SUCH_PID, u({ signal })), `waitpidAsync signal ${inspect(signal)}`);
      }
      fc.assert(
        fc.property(anyValue.filter((v) => v != null), (signal) => {
          invalidType(() => fw.waitpidAsync(NO_SUCH_PID, u({ signal })));
        }),
        RUNS,
      );
    });
  });

  describe('_exit', () => {
    // Only codes that must be refused: a valid one would end mocha here. (undefined is the
    // documented default, 0, and therefore never passed.)
    it('a code outside 0..255 or fractional is ERR_OUT_OF_RANGE and does not exit', () => {
      for (const code of [-1, 256, 1.5, 0.5, NaN, Infinity, -Infinity, 2 ** 31, -(2 ** 31)]) {
        outOfRange(() => fw._exit(code), `_exit(${code})`);
      }
    });

    it('a code that is not a number is ERR_INVALID_ARG_TYPE and does not exit', () => {
      for (const code of ['0', '1', null, {}, [], [0], true, false, 0n, Symbol('0'), new Number(0)]) {
        invalidType(() => fw._exit(u(code)), `_exit(${inspect(code)})`);
      }
    });
  });

  describe('wait status helpers', () => {
    const HELPERS: Array<[string, (status: number) => unknown]> = [
      ['WIFEXITED', fw.WIFEXITED],
      ['WEXITSTATUS', fw.WEXITSTATUS],
      ['WIFSIGNALED', fw.WIFSIGNALED],
      ['WTERMSIG', fw.WTERMSIG],
      ['WIFSTOPPED', fw.WIFSTOPPED],
      ['WSTOPSIG', fw.WSTOPSIG],
      ['WIFCONTINUED', fw.WIFCONTINUED],
      ['WCOREDUMP', fw.WCOREDUMP],
      ['waitstatusToExitcode', fw.waitstatusToExitcode],
    ];

    for (const [name, helper] of HELPERS) {
      it(`${name}: a non-number is ERR_INVALID_ARG_TYPE`, () => {
        for (const [label, value] of NON_NUMBERS) invalidType(() => helper(u(value)), `${name}(${label})`);
        fc.assert(fc.property(nonNumber, (value) => void invalidType(() => helper(u(value)))), RUNS);
      });

      it(`${name}: a negative, fractional or > 0xffff status is ERR_OUT_OF_RANGE`, () => {
        for (const value of [-1, 0x10000, 0x10300, 2 ** 31, 1.5, NaN, Infinity, -Infinity]) {
          outOfRange(() => helper(value), `${name}(${value})`);
        }
        const bad = fc.oneof(fc.integer({ min: INT32_MIN, max: -1 }), fc.integer({ min: 0x10000, max: INT32_MAX }), nonInteger);
        fc.assert(fc.property(bad, (value) => void outOfRange(() => helper(value), `${name}(${value})`)), RUNS);
      });
    }

    it('decode statuses as the C macros do', () => {
      assert.equal(fw.waitstatusToExitcode(0x300), 3);
      assert.equal(fw.waitstatusToExitcode(0), 0);
      assert.equal(fw.waitstatusToExitcode(0xff00), 255);
      assert.equal(fw.waitstatusToExitcode(9), -9);
      assert.equal(fw.waitstatusToExitcode(0x86), -6); // SIGABRT with a core dump
      assert.equal(fw.WCOREDUMP(0x86), true);
      assert.equal(fw.WCOREDUMP(0x06), false);
      assert.equal(fw.WCOREDUMP(0x300), false);
      assert.equal(fw.WIFEXITED(0x300), true);
      assert.equal(fw.WEXITSTATUS(0x300), 3);
      assert.equal(fw.WIFSIGNALED(0x300), false);
      assert.equal(fw.WIFSIGNALED(9), true);
      assert.equal(fw.WTERMSIG(9), 9);
      assert.equal(fw.WIFSTOPPED(0x137f), true);
      assert.equal(fw.WSTOPSIG(0x137f), 19);
      assert.equal(fw.WIFSIGNALED(0x137f), false);
      assert.equal(fw.WIFCONTINUED(0xffff), true);
      assert.equal(fw.WIFCONTINUED(0x137f), false);
    });

    it('waitstatusToExitcode of a stopped or continued status is a RangeError ERR_INVALID_ARG_VALUE', () => {
      for (const status of [0x137f, 0x117f, 0x7f, 0xffff]) {
        argError(() => fw.waitstatusToExitcode(status), RangeError, 'ERR_INVALID_ARG_VALUE', `waitstatusToExitcode(${status})`);
      }
    });

    it('every status in 0..0xffff: exit code, -signal, or refused if stopped/continued', () => {
      fc.assert(
        fc.property(fc.integer({ min: 0, max: 0xffff }), (status) => {
          const low = status & 0x7f;
          assert.equal(fw.WIFEXITED(status), low === 0);
          assert.equal(fw.WIFSIGNALED(status), low !== 0 && low !== 0x7f);
          assert.equal(fw.WIFSTOPPED(status), (status & 0xff) === 0x7f);
          assert.equal(fw.WEXITSTATUS(status), (status >> 8) & 0xff);
          assert.equal(fw.WTERMSIG(status), low);
          if (low === 0) assert.equal(fw.waitstatusToExitcode(status), status >> 8);
          else if (low !== 0x7f) assert.equal(fw.waitstatusToExitcode(status), -low);
          else argError(() => fw.waitstatusToExitcode(status), RangeError, 'ERR_INVALID_ARG_VALUE');
        }),
        { numRuns: 300 },
      );
      for (let code = 0; code <= 255; code++) assert.equal(fw.waitstatusToExitcode(code << 8), code);
      for (let sig = 1; sig < 0x7f; sig++) {
        assert.equal(fw.waitstatusToExitcode(sig), -sig);
        assert.equal(fw.waitstatusToExitcode(sig | 0x80), -sig);
        assert.equal(fw.WCOREDUMP(sig | 0x80), true);
      }
    });
  });

  describe('afterwards', () => {
    it('the process is healthy and can still make pipes, dup and close them', () => {
      assertHealthy();
      const [r, w] = fw.pipe({ cloexec: false, nonblock: true });
      const d = fw.dup(w);
      try {
        assert.equal(fw.getInheritable(r), true);
        assert.equal(fw.getBlocking(r), false);
        assert.equal(fw.getInheritable(d), false);
        writeSync(d, 'x');
        const buf = Buffer.alloc(1);
        assert.equal(readSync(r, buf, 0, 1, null), 1);
        assert.equal(buf.toString(), 'x');
      } finally {
        for (const fd of [r, w, d]) fw.close(fd);
      }
    });
  });
});
