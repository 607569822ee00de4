// Signal dispositions with handlers that run on the event loop, the signal mask and the
// pending set.
//
// Design. A JavaScript function can never run inside a signal handler, so the handler that
// forkwise installs (SA_SIGINFO) is a few lines of C that only async-signal-safe code could
// call: it saves errno, writes one fixed-size Record (the signal number and the siginfo
// fields) into a non-blocking, close-on-exec self-pipe, and restores errno. A Record is far
// smaller than PIPE_BUF, so each write is atomic: records from several deliveries (even on
// several threads at once) never interleave, and different signals are never merged. What
// the kernel merges it merges before we see it: a standard signal that is raised again while
// pending (blocked, or not yet handled) is delivered once; real-time signals queue.
// When the pipe is full (about 3,000 records unread) the record is dropped and counted per
// signal; the next record of that signal that the loop dispatches carries the count
// (`missed`).
//
// On the loop, a uv_poll_t on the pipe's read end reads the records and calls one
// JavaScript dispatcher per record (src/posix/sigaction.ts), which looks up the handler by
// signal number. The poll is always unreferenced: like process.on('SIGx'), a handler does
// not keep the process alive. When no signal has the forkwise handler any more, the pipe
// and the poll are closed; records still unread are dropped with them.
//
// SIGCHLD (DESIGN.md fact 11): libuv installs its own handler at the first child_process
// spawn and would replace ours. Before ours goes in, an unreferenced uv_signal_t for SIGCHLD
// makes libuv register its handler now (it then never re-installs it); our handler is
// installed over it and calls it after writing the record, so child_process keeps working.
//
// fork(): the child inherits the parent's pipe, so fork.cc blocks all signals around fork()
// and the child makes a pipe and a poll of its own (RenewSignalPipeInChild) before any
// signal can reach it. exec(): the kernel resets caught signals to default and closes the
// close-on-exec pipe; ignored ones stay ignored.
//
// Everything here is per process, and only the main thread changes dispositions (the
// TypeScript layer refuses elsewhere); the signal handler itself may run on any thread.
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cstdint>
#include <cstring>

#include "common.h"

namespace forkwise {

namespace {

struct Record {
  int32_t signo;
  int32_t code;
  int32_t pid;
  int32_t uid;
  int32_t status;
};
static_assert(sizeof(Record) <= PIPE_BUF, "a record must be written atomically");

constexpr int kFlagMask = SA_RESTART | SA_RESETHAND | SA_NODEFER | SA_NOCLDSTOP | SA_NOCLDWAIT;

// What the signal handler reads, possibly on another thread: lock-free atomics only.
std::atomic<int> g_write_fd{-1};
std::atomic<int> g_in_handler{0};
std::atomic<uint32_t> g_dropped[NSIG];
std::atomic<bool> g_has_chain{false};
struct sigaction g_chain;  // libuv's SIGCHLD action, written once before ours is installed

void OnSignal(int signo, siginfo_t* info, void* context);

bool IsOurs(const struct sigaction& action) {
  return (action.sa_flags & SA_SIGINFO) && action.sa_sigaction == OnSignal;
}

// A handler installed by someone else: in practice Node's (libuv's) own.
// (SA_RESETHAND leaves SA_SIGINFO set on the SIG_DFL it resets to.)
bool IsForeign(const struct sigaction& action) {
  return action.sa_handler != SIG_DFL && action.sa_handler != SIG_IGN && !IsOurs(action);
}

void OnSignal(int signo, siginfo_t* info, void* context) {
  int saved_errno = errno;
  g_in_handler.fetch_add(1);
  Record record = {signo, info->si_code, info->si_pid, static_cast<int32_t>(info->si_uid),
                   signo == SIGCHLD ? info->si_status : 0};
  int fd = g_write_fd.load();
  ssize_t written = -1;
  if (fd >= 0) written = RetryOnEintr([&] { return write(fd, &record, sizeof(record)); });
  if (written != static_cast<ssize_t>(sizeof(record)) && signo > 0 && signo < NSIG) {
    g_dropped[signo].fetch_add(1);
  }
  g_in_handler.fetch_sub(1);
  if (signo == SIGCHLD && g_has_chain.load()) {
    if (g_chain.sa_flags & SA_SIGINFO) {
      g_chain.sa_sigaction(signo, info, context);
    } else if (g_chain.sa_handler != SIG_DFL && g_chain.sa_handler != SIG_IGN) {
      g_chain.sa_handler(signo);
    }
  }
  errno = saved_errno;
}

// The loop side, owned by the main thread's environment.
struct SignalLoop {
  napi_env env = nullptr;
  Napi::FunctionReference dispatcher;
  uv_poll_t* poll = nullptr;
  int read_fd = -1;
  int write_fd = -1;
  uv_signal_t* child_watch = nullptr;
  // Handlers replaced by forkwise (Node's), to give back; main thread only.
  bool has_foreign[NSIG] = {};
  struct sigaction foreign[NSIG];
};

SignalLoop* g_loop = nullptr;

void OnPipeReadable(uv_poll_t* poll, int status, int events);

// Returns 0, a positive errno value (pipe2) or a negative libuv error.
int StartPipe(uv_loop_t* loop) {
  int fds[2];
  if (pipe2(fds, O_CLOEXEC | O_NONBLOCK) == -1) return errno;
  uv_poll_t* poll = new uv_poll_t;
  int err = uv_poll_init(loop, poll, fds[0]);
  if (err) {
    delete poll;
  } else {
    err = uv_poll_start(poll, UV_READABLE, OnPipeReadable);
    if (err) {
      uv_close(reinterpret_cast<uv_handle_t*>(poll),
               [](uv_handle_t* handle) { delete reinterpret_cast<uv_poll_t*>(handle); });
    }
  }
  if (err) {
    close(fds[0]);
    close(fds[1]);
    return err;
  }
  uv_unref(reinterpret_cast<uv_handle_t*>(poll));
  g_loop->poll = poll;
  g_loop->read_fd = fds[0];
  g_loop->write_fd = fds[1];
  g_write_fd.store(fds[1]);
  return 0;
}

void StopPipe() {
  if (g_loop == nullptr || g_loop->poll == nullptr) return;
  g_write_fd.store(-1);
  // A handler that loaded the old descriptor must finish its write before it is closed
  // (its number could otherwise be reused by the time it writes).
  while (g_in_handler.load() != 0) sched_yield();
  uv_poll_stop(g_loop->poll);
  uv_close(reinterpret_cast<uv_handle_t*>(g_loop->poll),
           [](uv_handle_t* handle) { delete reinterpret_cast<uv_poll_t*>(handle); });
  g_loop->poll = nullptr;
  close(g_loop->read_fd);
  close(g_loop->write_fd);
  g_loop->read_fd = g_loop->write_fd = -1;
}

void OnPipeReadable(uv_poll_t* poll, int status, int events) {
  SignalLoop* state = g_loop;
  if (state->env == nullptr) return;
  Napi::Env env(state->env);
  Napi::HandleScope scope(env);
  Record batch[64];
  while (state->poll == poll) {
    ssize_t n = RetryOnEintr([&] { return read(state->read_fd, batch, sizeof(batch)); });
    if (n <= 0) break;  // drained (EAGAIN)
    // Records are written whole and read in multiples of their size.
    size_t count = static_cast<size_t>(n) / sizeof(Record);
    for (size_t i = 0; i < count && state->poll == poll; i++) {
      const Record& r = batch[i];
      uint32_t missed = (r.signo > 0 && r.signo < NSIG) ? g_dropped[r.signo].exchange(0) : 0;
      try {
        state->dispatcher.MakeCallback(
            env.Global(),
            {Napi::Number::New(env, r.signo), Napi::Number::New(env, r.code),
             Napi::Number::New(env, r.pid), Napi::Number::New(env, r.uid),
             Napi::Number::New(env, r.status), Napi::Number::New(env, missed)});
      } catch (const Napi::Error& error) {
        // The dispatcher catches what handlers throw; JavaScript cannot run any more when
        // the environment is shutting down.
        if (error.IsEmpty()) return;
        napi_fatal_exception(env, error.Value());
      }
    }
  }
}

void CleanupSignalLoop(void*) {
  StopPipe();
  if (g_loop->child_watch != nullptr) {
    uv_close(reinterpret_cast<uv_handle_t*>(g_loop->child_watch),
             [](uv_handle_t* handle) { delete reinterpret_cast<uv_signal_t*>(handle); });
    g_loop->child_watch = nullptr;
  }
  g_loop->dispatcher.Reset();
  g_loop->env = nullptr;
}

// setSignalDispatcher(dispatch): once, from the main thread.
void SetSignalDispatcher(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsFunction()) {
    throw Napi::TypeError::New(env, "forkwise native: dispatcher must be a function");
  }
  if (g_loop == nullptr) g_loop = new SignalLoop();  // lives as long as the process
  if (g_loop->env != nullptr) {
    throw Napi::Error::New(env, "forkwise native: the signal dispatcher is already set");
  }
  g_loop->env = env;
  g_loop->dispatcher = Napi::Persistent(info[0].As<Napi::Function>());
  napi_add_env_cleanup_hook(env, CleanupSignalLoop, nullptr);
}

void StopPipeIfUnused() {
  struct sigaction action;
  for (int signo = 1; signo < NSIG; signo++) {
    if (sigaction(signo, nullptr, &action) == 0 && IsOurs(action)) return;
  }
  StopPipe();
}

// Makes libuv install its SIGCHLD handler now, and keeps it to chain to.
void TakeSigchldFromLibuv(Napi::Env env) {
  if (g_loop->child_watch != nullptr) return;
  uv_signal_t* watch = new uv_signal_t;
  int err = uv_signal_init(LoopOf(env), watch);
  if (err) {
    delete watch;
    throw Napi::Error::New(env, std::string("forkwise: uv_signal_init: ") + uv_strerror(err));
  }
  err = uv_signal_start(watch, [](uv_signal_t*, int) {}, SIGCHLD);
  if (err) {
    uv_close(reinterpret_cast<uv_handle_t*>(watch),
             [](uv_handle_t* handle) { delete reinterpret_cast<uv_signal_t*>(handle); });
    throw Napi::Error::New(env, std::string("forkwise: uv_signal_start: ") + uv_strerror(err));
  }
  uv_unref(reinterpret_cast<uv_handle_t*>(watch));
  g_loop->child_watch = watch;
  struct sigaction libuv;
  if (sigaction(SIGCHLD, nullptr, &libuv) == 0 && IsForeign(libuv)) {
    g_chain = libuv;
    g_has_chain.store(true);
  }
}

// [kind, sa_flags & kFlagMask, mask]: kind 0 default, 1 ignore, 2 forkwise's, 3 foreign.
Napi::Value Describe(Napi::Env env, const struct sigaction& action) {
  int kind = IsOurs(action) ? 2 : IsForeign(action) ? 3 : action.sa_handler == SIG_IGN ? 1 : 0;
  Napi::Array out = Napi::Array::New(env, 3);
  out[0u] = Napi::Number::New(env, kind);
  out[1u] = Napi::Number::New(env, action.sa_flags & kFlagMask);
  out[2u] = SignalSetArray(env, action.sa_mask);
  return out;
}

// sigaction(signo, kind) reads; sigaction(signo, kind, flags, mask) sets. kind: 0 default,
// 1 ignore, 2 forkwise's handler, 3 give back the handler that forkwise replaced (default
// when there is none). Returns the previous action, as Describe.
Napi::Value Sigaction(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int signo = ArgInt32(info, 0);
  int kind = ArgInt32(info, 1);
  struct sigaction old;
  if (sigaction(signo, nullptr, &old) == -1) ThrowErrno(env, errno, "sigaction");
  if (kind < 0) return Describe(env, old);
  if (signo <= 0 || signo >= NSIG) ThrowErrno(env, EINVAL, "sigaction");

  struct sigaction action;
  memset(&action, 0, sizeof(action));
  action.sa_mask = ArgSignalSet(info, 3);
  action.sa_flags = ArgInt32(info, 2) & kFlagMask;
  struct sigaction replaced = old;
  if (kind == 2) {
    if (g_loop == nullptr || g_loop->env != env) {
      throw Napi::Error::New(env, "forkwise native: no signal dispatcher in this environment");
    }
    if (g_loop->poll == nullptr) {
      int err = StartPipe(LoopOf(env));
      if (err > 0) ThrowErrno(env, err, "pipe");
      if (err < 0) throw Napi::Error::New(env, std::string("forkwise: uv_poll: ") + uv_strerror(err));
    }
    if (signo == SIGCHLD) {
      TakeSigchldFromLibuv(env);
      sigaction(signo, nullptr, &replaced);  // libuv's, from now on
    }
    action.sa_sigaction = OnSignal;
    action.sa_flags |= SA_SIGINFO;
  } else if (kind == 1) {
    action.sa_handler = SIG_IGN;
  } else if ((kind == 3 || (kind == 0 && signo == SIGCHLD && g_has_chain.load())) &&
             g_loop != nullptr && g_loop->has_foreign[signo]) {
    // SIGCHLD goes back to libuv's handler: libuv will not install it again.
    action = g_loop->foreign[signo];
  } else if (kind == 3 && IsForeign(old)) {
    return Describe(env, old);  // already Node's
  } else {
    action.sa_handler = SIG_DFL;
  }
  if (sigaction(signo, &action, nullptr) == -1) {
    int err = errno;
    if (kind == 2) StopPipeIfUnused();
    ThrowErrno(env, err, "sigaction");
  }
  if (g_loop != nullptr && IsForeign(replaced)) {
    g_loop->has_foreign[signo] = true;
    g_loop->foreign[signo] = replaced;
  }
  if (kind != 2 && IsOurs(old)) StopPipeIfUnused();
  return Describe(env, old);
}

// sigprocmask(how, signals): how 0 block, 1 unblock, 2 setmask. Returns the previous mask.
Napi::Value Sigprocmask(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int how_code = ArgInt32(info, 0);
  sigset_t set = ArgSignalSet(info, 1);
  int how = how_code == 0 ? SIG_BLOCK : how_code == 1 ? SIG_UNBLOCK : SIG_SETMASK;
  sigset_t previous;
  int err = pthread_sigmask(how, &set, &previous);
  if (err) ThrowErrno(env, err, "sigprocmask");
  return SignalSetArray(env, previous);
}

Napi::Value Sigpending(const Napi::CallbackInfo& info) {
  sigset_t set;
  if (sigpending(&set) == -1) ThrowErrno(info.Env(), errno, "sigpending");
  return SignalSetArray(info.Env(), set);
}

}  // namespace

int RenewSignalPipeInChild(uv_loop_t* loop) {
  if (g_loop == nullptr || g_loop->poll == nullptr) return 0;
  // The inherited pipe is the parent's: records written to it would reach the parent.
  StopPipe();
  int err = StartPipe(loop);
  return err > 0 ? -err : err;  // libuv errors are negated errno values
}

void InitSignal(Napi::Env env, Napi::Object exports) {
  exports["setSignalDispatcher"] = Napi::Function::New(env, SetSignalDispatcher, "setSignalDispatcher");
  exports["sigaction"] = Napi::Function::New(env, Sigaction, "sigaction");
  exports["sigprocmask"] = Napi::Function::New(env, Sigprocmask, "sigprocmask");
  exports["sigpending"] = Napi::Function::New(env, Sigpending, "sigpending");
  exports["SA_RESTART"] = Napi::Number::New(env, SA_RESTART);
  exports["SA_RESETHAND"] = Napi::Number::New(env, SA_RESETHAND);
  exports["SA_NODEFER"] = Napi::Number::New(env, SA_NODEFER);
  exports["SA_NOCLDSTOP"] = Napi::Number::New(env, SA_NOCLDSTOP);
  exports["SA_NOCLDWAIT"] = Napi::Number::New(env, SA_NOCLDWAIT);
}

}  // namespace forkwise
