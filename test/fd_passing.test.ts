import assert from 'node:assert/strict';
import { mkdtempSync, openSync, readFileSync, readlinkSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import * as fw from 'forkwise';
import { forkChild, openFds } from './helpers';

/** Passes a deliberately wrong value where the types do not allow it. */
const u = (value: unknown): never => value as never;

function readAll(fd: number): string {
  let text = '';
  const buf = Buffer.alloc(4096);
  for (let n; (n = readSync(fd, buf, 0, buf.length, null)) > 0; ) text += buf.toString('utf8', 0, n);
  return text;
}

function closeAll(fds: number[]): void {
  for (const fd of fds) fw.close(fd);
}

describe('descriptor passing', () => {
  it('socketpair() gives two connected close-on-exec stream sockets; EOF is empty', () => {
    const [a, b] = fw.socketpair();
    try {
      assert.notEqual(a, b);
      assert.equal(fw.getInheritable(a), false);
      assert.equal(fw.getInheritable(b), false);
      assert.equal(readlinkSync(`/proc/self/fd/${a}`).startsWith('socket:'), true);
      assert.equal(fw.sendFds(a, Buffer.from('ping'), []), 4);
      assert.deepEqual(fw.recvFds(b, 16, 0), { data: Buffer.from('ping'), fds: [] });
      assert.equal(fw.sendFds(b, Buffer.from('pong'), []), 4);
      assert.deepEqual(fw.recvFds(a, 2, 0), { data: Buffer.from('po'), fds: [] }); // maxLen caps it
      assert.deepEqual(fw.recvFds(a, 16, 0), { data: Buffer.from('ng'), fds: [] });
    } finally {
      fw.close(a);
    }
    try {
      const eof = fw.recvFds(b, 16, 4);
      assert.deepEqual(eof, { data: Buffer.alloc(0), fds: [] });
      assert.ok(Buffer.isBuffer(eof.data));
    } finally {
      fw.close(b);
    }
  });

  it('round trip in one process: the received fd is a new, close-on-exec descriptor for the same pipe', () => {
    const [a, b] = fw.socketpair();
    const [r, w] = fw.pipe();
    const received: number[] = [];
    try {
      const before = openFds();
      assert.equal(fw.sendFds(a, Buffer.from('the write end'), [w]), 13);
      const { data, fds } = fw.recvFds(b, 64, 4);
      received.push(...fds);
      assert.equal(data.toString(), 'the write end');
      assert.equal(fds.length, 1);
      const got = fds[0]!;
      assert.equal(before.has(got), false, `fd ${got} was already open`);
      assert.equal(fw.getInheritable(got), false);
      assert.equal(readlinkSync(`/proc/self/fd/${got}`), readlinkSync(`/proc/self/fd/${w}`));
      assert.equal(writeSync(got, 'through the passed fd'), 21);
      const buf = Buffer.alloc(64);
      assert.equal(buf.toString('utf8', 0, readSync(r, buf, 0, 64, null)), 'through the passed fd');
    } finally {
      closeAll([...received, a, b, r, w]);
    }
  });

  it('carries several fds in order, the same fd twice, and up to 253 in one message', () => {
    const [a, b] = fw.socketpair();
    const [r, w] = fw.pipe();
    const received: number[] = [];
    try {
      fw.sendFds(a, Buffer.from('x'), [r, w, r]);
      const { fds } = fw.recvFds(b, 1, 3); // exactly maxFds arrive
      received.push(...fds);
      assert.equal(fds.length, 3);
      assert.equal(new Set(fds).size, 3);
      const links = fds.map((fd) => readlinkSync(`/proc/self/fd/${fd}`));
      assert.deepEqual(links, [r, w, r].map((fd) => readlinkSync(`/proc/self/fd/${fd}`)));

      const many = new Array<number>(253).fill(w);
      fw.sendFds(a, new Uint8Array([1, 2, 3]), many);
      const big = fw.recvFds(b, 8, 253);
      received.push(...big.fds);
      assert.equal(big.fds.length, 253);
      assert.deepEqual([...big.data], [1, 2, 3]);
      assert.ok(big.fds.every((fd) => !fw.getInheritable(fd)));
    } finally {
      closeAll([...received, a, b, r, w]);
    }
  });

  it('data may be any TypedArray or DataView, including a view at an offset', () => {
    const [a, b] = fw.socketpair();
    try {
      const bytes = Buffer.from('..abc..');
      fw.sendFds(a, new DataView(bytes.buffer, bytes.byteOffset + 2, 3), []);
      assert.equal(fw.recvFds(b, 16, 0).data.toString(), 'abc');
      fw.sendFds(a, new Uint16Array([0x4241]), []);
      assert.equal(fw.recvFds(b, 16, 0).data.toString('latin1'), 'AB');
    } finally {
      closeAll([a, b]);
    }
  });

  it('across a fork: the child reads a file and writes into a pipe that it received', () => {
    const dir = mkdtempSync(join(tmpdir(), 'forkwise-fdpass-'));
    const path = join(dir, 'passed.txt');
    writeFileSync(path, 'contents of the passed file');
    const [parentEnd, childEnd] = fw.socketpair();
    const pid = forkChild(() => {
      fw.close(parentEnd);
      const { data, fds } = fw.recvFds(childEnd, 64, 2);
      const [fileFd, pipeW] = fds;
      if (fileFd === undefined || pipeW === undefined) return 2;
      try {
        const report = {
          label: data.toString(),
          text: readFileSync(fileFd, 'utf8'),
          fileLink: readlinkSync(`/proc/self/fd/${fileFd}`),
          cloexec: [!fw.getInheritable(fileFd), !fw.getInheritable(pipeW)],
        };
        writeSync(pipeW, JSON.stringify(report));
        return 0;
      } catch (error) {
        writeSync(pipeW, JSON.stringify({ error: String(error) }));
        return 1;
      }
    });
    // The child's end is the child's alone: if the child dies before receiving, the queued
    // message (and the pipe's write end in it) goes with the socket, so the read below ends.
    fw.close(childEnd);
    let file = -1;
    let r = -1;
    let w = -1;
    try {
      // Opened after the fork: the child can only have them by receiving them.
      file = openSync(path, 'r');
      [r, w] = fw.pipe();
      assert.equal(fw.sendFds(parentEnd, Buffer.from('file+pipe'), [file, w]), 9);
      fw.close(w);
      w = -1;
      const text = readAll(r);
      const status = fw.waitpid(pid);
      assert.deepEqual(status, { pid, status: 0, kind: 'exited', exitCode: 0 }, text);
      assert.deepEqual(JSON.parse(text), {
        label: 'file+pipe',
        text: 'contents of the passed file',
        fileLink: path,
        cloexec: [true, true],
      });
    } finally {
      closeAll([parentEnd, file, r, w].filter((fd) => fd >= 0));
      rmSync(dir, { recursive: true, force: true });
    }
  });

  describe('more descriptors than maxFds', () => {
    let a: number;
    let b: number;
    let r: number;
    let w: number;
    beforeEach(() => {
      [a, b] = fw.socketpair();
      [r, w] = fw.pipe();
    });
    afterEach(() => closeAll([a, b, r, w]));

    function truncated(maxFds: number, sent: number[], arrived: number): void {
      fw.sendFds(a, Buffer.from('abc'), sent);
      const before = openFds();
      assert.throws(
        () => fw.recvFds(b, 16, maxFds),
        (error: unknown) => {
          assert.ok(error instanceof fw.ForkwiseError, inspect(error));
          assert.equal(error.code, 'ERR_FORKWISE_FDS_TRUNCATED');
          assert.match(error.message, new RegExp(`maxFds \\(${maxFds}\\) was too small`));
          assert.match(error.message, new RegExp(`\\b${arrived} descriptors? arrived and (was|were) closed`));
          return true;
        },
      );
      assert.deepEqual([...openFds()], [...before], 'descriptors leaked by a truncated receive');
      // The stream goes on: the next message arrives whole.
      fw.sendFds(a, Buffer.from('next'), [r]);
      const next = fw.recvFds(b, 16, 1);
      fw.close(next.fds[0]!);
      assert.equal(next.data.toString(), 'next');
    }

    it('3 sent, maxFds 1: throws ERR_FORKWISE_FDS_TRUNCATED and leaks nothing', () => {
      truncated(1, [r, w, r], 1);
    });

    it('2 sent, maxFds 1: still refused (no extra fd slips into the alignment padding)', () => {
      truncated(1, [r, w], 1);
    });

    it('fds sent, maxFds 0: refused with none arrived', () => {
      truncated(0, [w], 0);
    });

    it('5 sent, maxFds 3', () => {
      truncated(3, [r, w, r, w, r], 3);
    });
  });

  describe('bad input', () => {
    let a: number;
    let b: number;
    let r: number;
    let w: number;
    before(() => {
      [a, b] = fw.socketpair();
      [r, w] = fw.pipe();
    });
    after(() => closeAll([a, b, r, w]));

    const one = Buffer.from('x');
    const TYPE = { cls: TypeError, code: 'ERR_INVALID_ARG_TYPE' };
    const VALUE = { cls: TypeError, code: 'ERR_INVALID_ARG_VALUE' };
    const RANGE = { cls: RangeError, code: 'ERR_OUT_OF_RANGE' };
    // eslint-disable-next-line no-sparse-arrays
    const sparse = [, 0];
    const cases: Array<[string, () => unknown, { cls: typeof TypeError | typeof RangeError; code: string }, RegExp]> = [
      ["sendFds('3', ...)", () => fw.sendFds(u('3'), one, []), TYPE, /"sock"/],
      ['sendFds(null, ...)', () => fw.sendFds(u(null), one, []), TYPE, /"sock"/],
      ['sendFds(-1, ...)', () => fw.sendFds(-1, one, []), RANGE, /"sock"/],
      ['sendFds(2 ** 31, ...)', () => fw.sendFds(2 ** 31, one, []), RANGE, /"sock"/],
      ['sendFds(1.5, ...)', () => fw.sendFds(1.5, one, []), RANGE, /"sock"/],
      ["sendFds(sock, 'x', [])", () => fw.sendFds(a, u('x'), []), TYPE, /"data"/],
      ['sendFds(sock, [120], [])', () => fw.sendFds(a, u([120]), []), TYPE, /"data"/],
      ['sendFds(sock, ArrayBuffer, [])', () => fw.sendFds(a, u(new ArrayBuffer(1)), []), TYPE, /"data"/],
      ['sendFds(sock, empty Buffer, [fd])', () => fw.sendFds(a, Buffer.alloc(0), [r]), VALUE, /'data' must not be empty/],
      ['sendFds(sock, empty Buffer, [])', () => fw.sendFds(a, Buffer.alloc(0), []), VALUE, /'data'/],
      ['sendFds(sock, data, 3)', () => fw.sendFds(a, one, u(3)), TYPE, /"fds"/],
      ['sendFds(sock, data, undefined)', () => fw.sendFds(a, one, u(undefined)), TYPE, /"fds"/],
      ['sendFds(sock, data, Int32Array)', () => fw.sendFds(a, one, u(new Int32Array([r]))), TYPE, /"fds"/],
      ["sendFds(sock, data, ['3'])", () => fw.sendFds(a, one, u(['3'])), TYPE, /"fds\[0\]"/],
      ['sendFds(sock, data, [r, null])', () => fw.sendFds(a, one, u([r, null])), TYPE, /"fds\[1\]"/],
      ['sendFds(sock, data, [hole, 0])', () => fw.sendFds(a, one, u(sparse)), TYPE, /"fds\[0\]"/],
      ['sendFds(sock, data, [-1])', () => fw.sendFds(a, one, [-1]), RANGE, /"fds\[0\]"/],
      ['sendFds(sock, data, [r, 2 ** 31])', () => fw.sendFds(a, one, [r, 2 ** 31]), RANGE, /"fds\[1\]"/],
      ['sendFds(sock, data, [NaN])', () => fw.sendFds(a, one, [NaN]), RANGE, /"fds\[0\]"/],
      ['sendFds(sock, data, 254 fds)', () => fw.sendFds(a, one, new Array<number>(254).fill(r)), RANGE, /"fds.length".*<= 253/],
      ["recvFds('3', 1, 0)", () => fw.recvFds(u('3'), 1, 0), TYPE, /"sock"/],
      ['recvFds(-1, 1, 0)', () => fw.recvFds(-1, 1, 0), RANGE, /"sock"/],
      ["recvFds(sock, '1', 0)", () => fw.recvFds(b, u('1'), 0), TYPE, /"maxLen"/],
      ['recvFds(sock, 0, 0)', () => fw.recvFds(b, 0, 0), RANGE, /"maxLen".*>= 1/],
      ['recvFds(sock, -1, 0)', () => fw.recvFds(b, -1, 0), RANGE, /"maxLen"/],
      ['recvFds(sock, 1.5, 0)', () => fw.recvFds(b, 1.5, 0), RANGE, /"maxLen"/],
      ['recvFds(sock, 2 ** 31, 0)', () => fw.recvFds(b, 2 ** 31, 0), RANGE, /"maxLen"/],
      ['recvFds(sock, 1, undefined)', () => fw.recvFds(b, 1, u(undefined)), TYPE, /"maxFds"/],
      ['recvFds(sock, 1, -1)', () => fw.recvFds(b, 1, -1), RANGE, /"maxFds"/],
      ['recvFds(sock, 1, 254)', () => fw.recvFds(b, 1, 254), RANGE, /"maxFds".*<= 253/],
      ['recvFds(sock, 1, Infinity)', () => fw.recvFds(b, 1, Infinity), RANGE, /"maxFds"/],
    ];

    for (const [name, call, expected, message] of cases) {
      it(`${name}: ${expected.cls.name} ${expected.code}`, () => {
        // Nothing may reach the kernel: b has no data queued, so a recvmsg here would block.
        assert.throws(call, (error: unknown) => {
          assert.ok(error instanceof expected.cls, inspect(error));
          assert.equal(error.name, expected.cls.name);
          assert.equal((error as { code?: unknown }).code, expected.code);
          assert.ok(!(error instanceof fw.PosixError));
          assert.match(error.message, message);
          return true;
        });
      });
    }

    it('system errors: EBADF on a closed socket, ENOTSOCK on a pipe, EBADF for an fd that is not open', () => {
      const [c, d] = fw.socketpair();
      fw.close(c);
      fw.close(d);
      const system = (fn: () => unknown, code: string, errno: number, syscall: string): void => {
        assert.throws(fn, (error: unknown) => {
          assert.ok(error instanceof fw.PosixError, inspect(error));
          assert.deepEqual([error.code, error.errno, error.syscall], [code, errno, syscall]);
          return true;
        });
      };
      system(() => fw.recvFds(c, 16, 1), 'EBADF', -9, 'recvmsg');
      system(() => fw.sendFds(c, one, []), 'EBADF', -9, 'sendmsg');
      system(() => fw.recvFds(w, 16, 1), 'ENOTSOCK', -88, 'recvmsg');
      system(() => fw.sendFds(w, one, [r]), 'ENOTSOCK', -88, 'sendmsg');
      system(() => fw.sendFds(a, one, [2 ** 31 - 1]), 'EBADF', -9, 'sendmsg');
      system(() => fw.recvFds(2 ** 31 - 1, 1, 0), 'EBADF', -9, 'recvmsg');
    });

    it('sending to a closed peer is EPIPE (no SIGPIPE)', () => {
      const [c, d] = fw.socketpair();
      fw.close(d);
      try {
        assert.throws(() => fw.sendFds(c, one, [r]), { code: 'EPIPE', errno: -32, syscall: 'sendmsg' });
      } finally {
        fw.close(c);
      }
    });

    it('a non-blocking socket with nothing queued is EAGAIN', () => {
      const [c, d] = fw.socketpair();
      try {
        fw.setBlocking(c, false);
        assert.throws(() => fw.recvFds(c, 16, 1), { code: 'EAGAIN', syscall: 'recvmsg' });
      } finally {
        closeAll([c, d]);
      }
    });

    it('socketpair() ignores extra arguments', () => {
      const pair = (fw.socketpair as (...args: unknown[]) => [number, number])('x', -1);
      closeAll(pair);
      assert.equal(pair.length, 2);
    });
  });
});
