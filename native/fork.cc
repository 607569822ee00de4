// fork() that returns into JavaScript in both processes, and the native half of the child's
// fix-ups: V8's MADV_DONTFORK regions (heap_regions.cc) and the event loop (loop_fork.cc).
// What is policy (exit paths, process.pid, Math.random, warnings) lives in src/posix/fork.ts.
#include <node.h>
#include <fcntl.h>
#include <signal.h>
#include <unistd.h>

#include <cstdio>
#include <cstring>

#include "common.h"
#include "heap_regions.h"
#include "loop_fork.h"
#include "platform_park.h"
#include "child_loop_end.h"

namespace forkwise {

namespace {

// One per process: the mappings belong to the process, not to an environment. fork() is
// refused off the main thread (src/posix/fork.ts), so only the main thread touches it.
DontForkRegions& Regions() {
  static DontForkRegions* regions = new DontForkRegions();
  return *regions;
}

[[noreturn]] void DieInChild(const char* what, int err) {
  char message[160];
  int len = snprintf(message, sizeof(message), "forkwise: fork child: %s failed: %s\n", what,
                     uv_strerror(err));
  if (len > 0) {
    ssize_t ignored = write(2, message, static_cast<size_t>(len));
    (void)ignored;
  }
  _exit(70);
}

// fork(handshake, holdWorkers). fork(true) makes the child wait in forkHandshake() until the
// parent has called it too: one end of a close-on-exec pipe in each process, -1 when none.
int handshake_fd = -1;

Napi::Value Fork(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool handshake = info.Length() > 0 && info[0].IsBoolean() && info[0].As<Napi::Boolean>().Value();
  bool hold_workers = info.Length() > 1 && info[1].IsBoolean() && info[1].As<Napi::Boolean>().Value();
  int ends[2] = {-1, -1};
  if (handshake && pipe2(ends, O_CLOEXEC) == -1) ThrowErrno(env, errno, "pipe2");
  uv_loop_t* loop = LoopOf(env);
  DontForkRegions& regions = Regions();
  // No platform worker thread may be waiting on its queue at the fork (platform_park.cc);
  // they stay held until fork.ts releases them. Not without --single-threaded, where V8
  // keeps them busy for long (concurrent marking, compiling) and a child can hang in a
  // collection anyway.
  if (hold_workers) HoldPlatformWorkers(env);

  int err = regions.MakeForkable();
  if (err) {
    regions.Restore();
    ReleasePlatformWorkers();
    ThrowErrno(env, err, "fork");
  }
  LoopForkState state;
  LockLoopForFork(loop, &state);
  // No signal may reach the child before it has a signal pipe of its own (signal.cc).
  sigset_t all, mask;
  sigfillset(&all);
  pthread_sigmask(SIG_BLOCK, &all, &mask);
  pid_t pid = fork();
  int fork_errno = errno;
  if (pid == 0) {
    if (handshake) {
      close(ends[1]);
      handshake_fd = ends[0];
    }
    ForgetPlatformWorkersInChild();
    err = FixLoopInChild(loop, state);
    if (err) DieInChild("uv_loop_fork", err);
    err = RenewSignalPipeInChild(loop);
    if (err) DieInChild("signal pipe", err);
    err = WatchLoopEndInChild(loop);
    if (err) DieInChild("uv_prepare_start", err);
    pthread_sigmask(SIG_SETMASK, &mask, nullptr);
    return Napi::Number::New(env, 0);
  }
  pthread_sigmask(SIG_SETMASK, &mask, nullptr);
  UnlockLoopInParent(loop);
  if (handshake) {
    close(ends[0]);
    if (pid == -1) close(ends[1]);
    else handshake_fd = ends[1];
  }
  // On success the marks stay lifted until restoreDontFork() (see heap_regions.cc).
  if (pid == -1) {
    regions.Restore();
    ReleasePlatformWorkers();
    ThrowErrno(env, fork_errno, "fork");
  }
  return Napi::Number::New(env, pid);
}

// The parent writes a byte once its after-fork work is done; the child reads it (or the end
// of file if the parent died first). Either way the pipe is then closed.
void ForkHandshake(const Napi::CallbackInfo&) {
  if (handshake_fd == -1) return;
  char byte = 1;
  ssize_t n;
  if (fcntl(handshake_fd, F_GETFL) & O_WRONLY) {
    do n = write(handshake_fd, &byte, 1);
    while (n == -1 && errno == EINTR);
  } else {
    do n = read(handshake_fd, &byte, 1);
    while (n == -1 && errno == EINTR);
  }
  close(handshake_fd);
  handshake_fd = -1;
}

void RestoreDontFork(const Napi::CallbackInfo&) { Regions().Restore(); }

Napi::Value ForkStats(const Napi::CallbackInfo& info) {
  Napi::Object stats = Napi::Object::New(info.Env());
  stats["smapsScans"] = Napi::Number::New(info.Env(), Regions().smaps_scans());
  stats["dontForkRanges"] = Napi::Number::New(info.Env(), Regions().range_count());
  return stats;
}

void FlushQueuedWritesJs(const Napi::CallbackInfo& info) {
  int fd = ArgInt32(info, 0);
  int err = FlushQueuedWrites(LoopOf(info.Env()), fd);
  if (err) ThrowErrno(info.Env(), err, "write");
}

void WriteAllJs(const Napi::CallbackInfo& info) {
  int fd = ArgInt32(info, 0);
  Napi::Uint8Array data = ArgUint8Array(info, 1);
  int err = WriteAll(fd, reinterpret_cast<const char*>(data.Data()), data.ByteLength());
  if (err) ThrowErrno(info.Env(), err, "write");
}

void Exit(const Napi::CallbackInfo& info) { _exit(ArgInt32(info, 0) & 0xff); }

}  // namespace

// Node's thread pool looks up the trace category of its jobs each time one runs; the first
// lookup in a process registers the category under a lock of V8's tracing controller. A fork
// at that instant copies the lock held, and the child's first crypto or zlib job blocks on
// it for ever (seen in gdb: a pool thread in TracingController::GetCategoryGroupEnabled).
// Registering the category here, from the loading thread, leaves only lock-free lookups to
// the pool threads.
void RegisterThreadPoolTraceCategory() {
  v8::TracingController* tracing = node::GetTracingController();
  if (tracing != nullptr) {
    tracing->GetCategoryGroupEnabled("node,node.threadpoolwork,node.threadpoolwork.sync");
  }
}

void InitFork(Napi::Env env, Napi::Object exports) {
  RegisterThreadPoolTraceCategory();
  exports["fork"] = Napi::Function::New(env, Fork, "fork");
  exports["restoreDontFork"] = Napi::Function::New(env, RestoreDontFork, "restoreDontFork");
  exports["forkHandshake"] = Napi::Function::New(env, ForkHandshake, "forkHandshake");
  exports["forkStats"] = Napi::Function::New(env, ForkStats, "forkStats");
  exports["flushQueuedWrites"] = Napi::Function::New(env, FlushQueuedWritesJs, "flushQueuedWrites");
  exports["writeAll"] = Napi::Function::New(env, WriteAllJs, "writeAll");
  exports["_exit"] = Napi::Function::New(env, Exit, "_exit");
}

}  // namespace forkwise
