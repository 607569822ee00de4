// The wait family, and ExitWatch: a notification on the event loop when one child exits,
// without blocking the loop and without reaping anything (the caller then reaps that pid
// with waitpid(pid, WNOHANG)). A pidfd polled by the loop where the kernel has pidfd_open
// (Linux 5.3+); elsewhere a thread blocked in waitid(P_PID, pid, WNOWAIT), which reaps
// nothing and touches no other pid.
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <memory>
#include <mutex>
#include <system_error>
#include <thread>

#include "common.h"

namespace forkwise {

namespace {

Napi::Value Waitpid(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  pid_t pid = ArgInt32(info, 0);
  int options = ArgInt32(info, 1);
  int status = 0;
  pid_t result = RetryOnEintr([&] { return waitpid(pid, &status, options); });
  if (result == -1) ThrowErrno(env, errno, "waitpid");
  if (result == 0) return env.Null();
  Napi::Array out = Napi::Array::New(env, 2);
  out[0u] = Napi::Number::New(env, result);
  out[1u] = Napi::Number::New(env, status);
  return out;
}

// State shared with the fallback thread, which may outlive the watch when it is cancelled,
// and its environment (a worker that ends). `cancelled` and `delivered` are only touched on
// the loop thread; `env_gone` (under `gate`) tells the thread not to call back any more.
struct ThreadWatch {
  Napi::ThreadSafeFunction notify;
  std::mutex gate;
  bool env_gone = false;
  bool cancelled = false;
  bool delivered = false;
};

class ExitWatch : public Napi::ObjectWrap<ExitWatch> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "ExitWatch", {InstanceMethod("cancel", &ExitWatch::Cancel)});
  }

  // new ExitWatch(pid, callback, usePidfd)
  explicit ExitWatch(const Napi::CallbackInfo& info) : Napi::ObjectWrap<ExitWatch>(info) {
    Napi::Env env = info.Env();
    pid_t pid = ArgInt32(info, 0);
    if (info.Length() < 2 || !info[1].IsFunction()) {
      throw Napi::TypeError::New(env, "forkwise native: callback must be a function");
    }
    callback_ = Napi::Persistent(info[1].As<Napi::Function>());
    bool use_pidfd = info.Length() > 2 && info[2].ToBoolean().Value();
    int pidfd = use_pidfd ? static_cast<int>(syscall(SYS_pidfd_open, pid, 0)) : -1;
    if (pidfd >= 0) {
      StartPoll(env, pidfd);
    } else if (!use_pidfd || errno == ENOSYS) {
      StartThread(env, pid);
    } else {
      ThrowErrno(env, errno, "pidfd_open");
    }
  }

  ~ExitWatch() { Stop(/*finalizing=*/true); }

 private:
  void StartPoll(Napi::Env env, int pidfd) {
    pidfd_ = pidfd;
    poll_ = new uv_poll_t;
    poll_->data = this;
    int err = uv_poll_init(LoopOf(env), poll_, pidfd);
    if (err == 0) err = uv_poll_start(poll_, UV_READABLE, OnPidfdReadable);
    if (err) {
      delete poll_;
      poll_ = nullptr;
      close(pidfd_);
      pidfd_ = -1;
      throw Napi::Error::New(env, std::string("forkwise: uv_poll: ") + uv_strerror(err));
    }
    Ref();  // the JS object lives as long as the watch is armed
  }

  void StartThread(Napi::Env env, pid_t pid) {
    auto state = std::make_shared<ThreadWatch>();
    state->notify = Napi::ThreadSafeFunction::New(env, callback_.Value(), "forkwise.waitpidAsync", 0, 1,
                                                  [state](Napi::Env) {
                                                    std::lock_guard<std::mutex> guard(state->gate);
                                                    state->env_gone = true;
                                                  });
    try {
      std::thread([state, pid] {
        siginfo_t si;
        RetryOnEintr([&] { return waitid(P_PID, pid, &si, WEXITED | WNOWAIT); });
        std::lock_guard<std::mutex> guard(state->gate);
        if (state->env_gone) return;
        state->notify.BlockingCall([state](Napi::Env env, Napi::Function callback) {
          if (state->cancelled) return;
          state->delivered = true;
          CallBack(env, callback);
        });
        state->notify.Release();
      }).detach();
    } catch (const std::system_error& error) {  // no thread to be had (EAGAIN)
      state->notify.Release();
      ThrowErrno(env, error.code().value(), "pthread_create");
    }
    thread_ = state;
    Ref();
  }

  static void OnPidfdReadable(uv_poll_t* poll, int, int) {
    ExitWatch* self = static_cast<ExitWatch*>(poll->data);
    Napi::Env env = self->Env();
    Napi::HandleScope scope(env);
    self->Stop();
    CallBack(env, self->callback_.Value(), /*make_callback=*/true);
  }

  void Stop(bool finalizing = false) {
    if (poll_ != nullptr) {
      uv_poll_stop(poll_);
      uv_close(reinterpret_cast<uv_handle_t*>(poll_),
               [](uv_handle_t* handle) { delete reinterpret_cast<uv_poll_t*>(handle); });
      poll_ = nullptr;
      close(pidfd_);
      pidfd_ = -1;
      if (!finalizing) Unref();
    }
    if (thread_) {
      // Until the thread's call has been delivered the function is alive; after, it may not be.
      if (!thread_->delivered) {
        thread_->cancelled = true;
        thread_->notify.Unref(Env());
      }
      thread_.reset();
      if (!finalizing) Unref();
    }
  }

  void Cancel(const Napi::CallbackInfo&) { Stop(); }

  Napi::FunctionReference callback_;
  uv_poll_t* poll_ = nullptr;
  int pidfd_ = -1;
  std::shared_ptr<ThreadWatch> thread_;
};

}  // namespace

void InitWait(Napi::Env env, Napi::Object exports) {
  exports["waitpid"] = Napi::Function::New(env, Waitpid, "waitpid");
  exports["ExitWatch"] = ExitWatch::Define(env);
  exports["WNOHANG"] = Napi::Number::New(env, WNOHANG);
  exports["WUNTRACED"] = Napi::Number::New(env, WUNTRACED);
  exports["WCONTINUED"] = Napi::Number::New(env, WCONTINUED);
}

}  // namespace forkwise
