// Signals sent to processes, and process identity.
#include <signal.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "common.h"

namespace forkwise {

namespace {

void Kill(const Napi::CallbackInfo& info) {
  if (kill(ArgInt32(info, 0), ArgInt32(info, 1)) == -1) ThrowErrno(info.Env(), errno, "kill");
}

void Killpg(const Napi::CallbackInfo& info) {
  if (killpg(ArgInt32(info, 0), ArgInt32(info, 1)) == -1) {
    ThrowErrno(info.Env(), errno, "killpg");
  }
}

void Raise(const Napi::CallbackInfo& info) {
  // raise() returns a nonzero value, not -1, on failure; errno is set.
  if (raise(ArgInt32(info, 0)) != 0) ThrowErrno(info.Env(), errno, "raise");
}

template <pid_t (*Call)()>
Napi::Value Id(const Napi::CallbackInfo& info) {
  return Napi::Number::New(info.Env(), Call());
}

Napi::Value Getpgid(const Napi::CallbackInfo& info) {
  pid_t result = getpgid(ArgInt32(info, 0));
  if (result == -1) ThrowErrno(info.Env(), errno, "getpgid");
  return Napi::Number::New(info.Env(), result);
}

void Setpgid(const Napi::CallbackInfo& info) {
  if (setpgid(ArgInt32(info, 0), ArgInt32(info, 1)) == -1) {
    ThrowErrno(info.Env(), errno, "setpgid");
  }
}

Napi::Value Getsid(const Napi::CallbackInfo& info) {
  pid_t result = getsid(ArgInt32(info, 0));
  if (result == -1) ThrowErrno(info.Env(), errno, "getsid");
  return Napi::Number::New(info.Env(), result);
}

Napi::Value Setsid(const Napi::CallbackInfo& info) {
  pid_t result = setsid();
  if (result == -1) ThrowErrno(info.Env(), errno, "setsid");
  return Napi::Number::New(info.Env(), result);
}

// PR_SET_PDEATHSIG: the signal this process gets when the thread that forked it ends (the
// high level forks from the main thread only, so: when its parent ends). 0 clears it.
// Returns false where the system has no such thing.
Napi::Value SetParentDeathSignal(const Napi::CallbackInfo& info) {
#ifdef __linux__
  if (prctl(PR_SET_PDEATHSIG, static_cast<unsigned long>(ArgInt32(info, 0))) == -1) {
    ThrowErrno(info.Env(), errno, "prctl");
  }
  return Napi::Boolean::New(info.Env(), true);
#else
  return Napi::Boolean::New(info.Env(), false);
#endif
}

}  // namespace

void InitProcess(Napi::Env env, Napi::Object exports) {
  exports["kill"] = Napi::Function::New(env, Kill, "kill");
  exports["killpg"] = Napi::Function::New(env, Killpg, "killpg");
  exports["raise"] = Napi::Function::New(env, Raise, "raise");
  exports["getpid"] = Napi::Function::New(env, Id<getpid>, "getpid");
  exports["getppid"] = Napi::Function::New(env, Id<getppid>, "getppid");
  exports["getpgid"] = Napi::Function::New(env, Getpgid, "getpgid");
  exports["setpgid"] = Napi::Function::New(env, Setpgid, "setpgid");
  exports["getsid"] = Napi::Function::New(env, Getsid, "getsid");
  exports["setsid"] = Napi::Function::New(env, Setsid, "setsid");
  exports["setParentDeathSignal"] =
      Napi::Function::New(env, SetParentDeathSignal, "setParentDeathSignal");
}

}  // namespace forkwise
