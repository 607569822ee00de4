/**
 * Loads the addon (a prebuilt binary when one matches, else the local build) and hands it the
 * error factory. On Windows there is no addon: every raw function throws
 * ERR_FORKWISE_UNSUPPORTED_PLATFORM naming itself.
 */
import { join } from 'node:path';
import { ForkwiseError, PosixError } from './errors';

export interface NativeExitWatch {
  cancel(): void;
}

/** A posix_spawn file action as the addon takes it; 'chdir' is addchdir_np. */
export type NativeFileAction =
  | ['open', fd: number, path: string, flags: number, mode: number]
  | ['close', fd: number]
  | ['dup2', fd: number, newFd: number]
  | ['chdir', path: string];

export interface NativeBinding {
  setErrorFactory(
    make: (errno: number, syscall: string, path?: string, description?: string, errnoName?: string) => Error,
  ): void;
  fork(holdWorkers?: boolean): number;
  restoreDontFork(): void;
  forkStats(): { smapsScans: number; dontForkRanges: number };
  heapLayout(): { reservedBytes: number };
  releasePlatformWorkers(): void;
  setChildLoopEnd(onDry: (stage: 0 | 1) => void): void;
  /**
   * Bytes allocated in V8's young generation, free in its nursery, and whether incremental
   * marking is under way in the main thread's heap (heap_gc.cc).
   */
  youngGenerationSize(): { used: number; available: number; marking: boolean };
  /** Starts following incremental marking in this thread's heap (the main thread's). */
  watchMarking(): void;
  /** Full, compacting collections (Isolate::LowMemoryNotification), then malloc_trim. */
  collectAllGarbage(): void;
  flushQueuedWrites(fd: number): void;
  writeAll(fd: number, data: Uint8Array): void;
  _exit(code: number): never;
  exec(file: string, argv: string[], env: string[] | null, searchPath: boolean, syscall: string): never;
  spawn(
    file: string,
    argv: string[],
    env: string[] | null,
    searchPath: boolean,
    syscall: string,
    fileActions: NativeFileAction[],
    pgroup: number | null,
    setsid: boolean,
    resetids: boolean,
    sigmask: number[] | null,
    sigdef: number[] | null,
  ): number;
  system(command: string, fileActions: NativeFileAction[]): number;
  waitpid(pid: number, options: number): [pid: number, status: number] | null;
  ExitWatch: new (pid: number, onExit: () => void, usePidfd: boolean) => NativeExitWatch;
  pipe(flags: number): [number, number];
  dup(fd: number): number;
  dup2(fd: number, fd2: number, inheritable: boolean): number;
  close(fd: number): void;
  getInheritable(fd: number): boolean;
  setInheritable(fd: number, on: boolean): void;
  getBlocking(fd: number): boolean;
  setBlocking(fd: number, on: boolean): void;
  socketpair(): [number, number];
  sendFds(sock: number, data: Uint8Array, fds: number[]): number;
  recvFds(sock: number, buffer: Uint8Array, maxFds: number): [received: number, fds: number[], truncated: boolean];
  connectUnix(path: Uint8Array): number;
  connectInet(host: string, port: number): number;
  kill(pid: number, signo: number): void;
  killpg(pgid: number, signo: number): void;
  raise(signo: number): void;
  getpid(): number;
  getppid(): number;
  getpgid(pid: number): number;
  setpgid(pid: number, pgid: number): void;
  getsid(pid: number): number;
  setsid(): number;
  setParentDeathSignal(signo: number): boolean;
  setSignalDispatcher(
    dispatch: (signo: number, code: number, pid: number, uid: number, status: number, missed: number) => void,
  ): void;
  /** kind -1 reads; 0 default, 1 ignore, 2 forkwise's handler, 3 back to Node's. */
  sigaction(signo: number, kind: number, flags?: number, mask?: number[]): [kind: number, flags: number, mask: number[]];
  sigprocmask(how: number, signals: number[]): number[];
  sigpending(): number[];
  SA_RESTART: number;
  SA_RESETHAND: number;
  SA_NODEFER: number;
  SA_NOCLDSTOP: number;
  SA_NOCLDWAIT: number;
  WNOHANG: number;
  WUNTRACED: number;
  WCONTINUED: number;
  O_CLOEXEC: number;
  O_NONBLOCK: number;
  // Shared memory (native/shm.cc); names start with '/'.
  shmOpen(name: string, create: boolean, size: number, owned: boolean): ArrayBuffer;
  shmUnmap(buffer: ArrayBuffer): void;
  shmUnlink(name: string): void;
  /** Removes the owned names this process created in this environment. */
  shmUnlinkOwned(): void;
  // Synchronisation primitives (native/sync.cc). Timeouts in ms: < 0 none, 0 do not wait.
  // Acquires answer 0 (acquired), 1 (acquired from a dead owner) or -1 (not acquired).
  syncInit(buffer: ArrayBuffer, kind: number, arg?: number, bound?: number): void;
  syncKind(buffer: ArrayBuffer): number;
  syncSeq(buffer: ArrayBuffer): number;
  SeqWatch: new (buffer: ArrayBuffer, seenSeq: number, sliceMs: number, callback: () => void) => NativeSeqWatch;
  /** 0: woken or the word had changed; 1: timed out. timeoutMs -1: for ever. */
  futexWait(buffer: ArrayBuffer, offset: number, expected: number, timeoutMs: number): number;
  futexWake(buffer: ArrayBuffer, offset: number, count?: number): number;
  yieldCpu(): void;
  FutexWatcher: new (buffer: ArrayBuffer, offset: number, callback: () => void) => NativeFutexWatcher;
  /** The same through io_uring and the loop's own poll, where the kernel has it (Linux 6.7). */
  FutexPoll: new (buffer: ArrayBuffer, offset: number, callback: () => void) => NativeFutexWatcher;
  futexPollSupported(): boolean;
  serializeInto(value: unknown, flag: number, scratch: Uint8Array): number | Buffer | undefined;
  deserializeFrom<S>(bytes: Uint8Array, offset: number, sentinel: S): unknown;
  mutexAcquire(buffer: ArrayBuffer, timeoutMs: number): number;
  mutexRelease(buffer: ArrayBuffer): void;
  mutexConsistent(buffer: ArrayBuffer): void;
  mutexLocked(buffer: ArrayBuffer): boolean;
  rwlockAcquire(buffer: ArrayBuffer, write: boolean, timeoutMs: number): number;
  rwlockRelease(buffer: ArrayBuffer): void;
  semAcquire(buffer: ArrayBuffer, timeoutMs: number): number;
  semRelease(buffer: ArrayBuffer, n: number): boolean;
  semValue(buffer: ArrayBuffer): number;
  eventSet(buffer: ArrayBuffer): void;
  eventClear(buffer: ArrayBuffer): void;
  eventIsSet(buffer: ArrayBuffer): boolean;
  eventWait(buffer: ArrayBuffer, timeoutMs: number): boolean;
  barrierArrive(buffer: ArrayBuffer): [index: number, generation: number] | null;
  /** 0 still waiting, 1 passed, 2 broken. */
  barrierPoll(buffer: ArrayBuffer, generation: number): number;
  barrierWait(buffer: ArrayBuffer, generation: number, timeoutMs: number): number;
  barrierBreak(buffer: ArrayBuffer, generation: number): number;
  barrierAbort(buffer: ArrayBuffer): void;
  barrierReset(buffer: ArrayBuffer): void;
  barrierState(buffer: ArrayBuffer): [parties: number, waiting: number, broken: boolean];
  /** Returns the waiter's ticket, for condWait and condGiveUp. */
  condPrepare(buffer: ArrayBuffer): number;
  condWait(buffer: ArrayBuffer, ticket: number, timeoutMs: number): boolean;
  condGiveUp(buffer: ArrayBuffer, ticket: number): boolean;
  condNotify(buffer: ArrayBuffer, n: number): number;
}

export interface NativeFutexWatcher {
  arm(expected: number, timeoutMs: number): void;
  close(): void;
  abandon(): void;
}

export interface NativeSeqWatch {
  cancel(): void;
}

/**
 * Whether the addon is used: not on Windows, and not when `FORKWISE_FORCE_FALLBACK=1` asks
 * this POSIX process to take the Windows code path (so that path is tested here).
 */
export const supported = process.platform !== 'win32' && process.env.FORKWISE_FORCE_FALLBACK !== '1';

function load(): NativeBinding {
  const root = join(__dirname, '..', '..');
  let binding: NativeBinding;
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const nodeGypBuild = require('node-gyp-build') as (dir: string) => unknown;
    binding = nodeGypBuild(root) as NativeBinding;
  } catch (cause) {
    throw new ForkwiseError(
      'ERR_FORKWISE_NATIVE_LOAD',
      `forkwise: cannot load the native addon (${(cause as Error).message}).\n` +
        '- Rebuild it from source: npm rebuild forkwise (needs python3, make and a C++ compiler)\n' +
        '- or, in a checkout of forkwise: npx node-gyp rebuild',
    );
  }
  binding.setErrorFactory(
    (errno, syscall, path, description, errnoName) => new PosixError(errno, syscall, path, description, errnoName),
  );
  return binding;
}

function unsupported(): NativeBinding {
  return new Proxy({} as NativeBinding, {
    get(_target, name) {
      return () => {
        throw new ForkwiseError(
          'ERR_FORKWISE_UNSUPPORTED_PLATFORM',
          `forkwise: ${String(name)}() is not available ${process.platform === 'win32' ? 'on Windows' : 'with FORKWISE_FORCE_FALLBACK=1'}`,
        );
      };
    },
  });
}

export const native: NativeBinding = supported ? load() : unsupported();
