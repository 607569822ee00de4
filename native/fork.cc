// fork() that returns into JavaScript in both processes, and the native half of the child's
// fix-ups: V8's MADV_DONTFORK regions (heap_regions.cc) and the event loop (loop_fork.cc).
// What is policy (exit paths, process.pid, Math.random, warnings) lives in src/posix/fork.ts.
#include <node.h>
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

// fork(holdWorkers): holdWorkers parks Node's platform worker threads (platform_park.cc).
Napi::Value Fork(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  bool hold_workers = info.Length() > 0 && info[0].IsBoolean() && info[0].As<Napi::Boolean>().Value();
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
  // On success the marks stay lifted until restoreDontFork() (see heap_regions.cc).
  if (pid == -1) {
    regions.Restore();
    ReleasePlatformWorkers();
    ThrowErrno(env, fork_errno, "fork");
  }
  return Napi::Number::New(env, pid);
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
  exports["forkStats"] = Napi::Function::New(env, ForkStats, "forkStats");
  exports["flushQueuedWrites"] = Napi::Function::New(env, FlushQueuedWritesJs, "flushQueuedWrites");
  exports["writeAll"] = Napi::Function::New(env, WriteAllJs, "writeAll");
  exports["_exit"] = Napi::Function::New(env, Exit, "_exit");
}

}  // namespace forkwise
