/** The raw POSIX layer: faithful system calls with Node-style errors. */
export { PosixError, ForkwiseError } from './errors';
export type { Signal } from './signals';
export { fork, isForkSafe, reexecSingleThreaded, _exit } from './fork';
export { warmup } from './heap';
export { execv, execve, execvp, execvpe, execl, execle, execlp, execlpe } from './exec';
export { posixSpawn, posixSpawnp, type PosixSpawnOptions, type SpawnFileAction } from './spawn';
export { system } from './system';
export { popen, PopenFile } from './popen';
export {
  waitpid,
  wait,
  waitpidAsync,
  WNOHANG,
  WUNTRACED,
  WCONTINUED,
  WIFEXITED,
  WEXITSTATUS,
  WIFSIGNALED,
  WTERMSIG,
  WIFSTOPPED,
  WSTOPSIG,
  WIFCONTINUED,
  WCOREDUMP,
  waitstatusToExitcode,
  type WaitResult,
} from './wait';
export { pipe, dup, dup2, close, getInheritable, setInheritable, getBlocking, setBlocking } from './fd';
export { socketpair, sendFds, recvFds } from './fd_passing';
export { kill, killpg, raise } from './kill';
export {
  sigaction,
  signal,
  sigprocmask,
  sigpending,
  type SigAction,
  type CurrentSigAction,
  type SigActionFlags,
  type SigHandler,
  type SigInfo,
} from './sigaction';
export { getpid, getppid, getpgid, setpgid, getsid, setsid } from './identity';
