// Descriptors. New descriptors are close-on-exec unless the caller asks otherwise.
#include <fcntl.h>
#include <unistd.h>

#include "common.h"

namespace forkwise {

namespace {

Napi::Value Pipe(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int flags = ArgInt32(info, 0);  // O_CLOEXEC / O_NONBLOCK, chosen in TypeScript
  int fds[2];
  if (pipe2(fds, flags & (O_CLOEXEC | O_NONBLOCK)) == -1) ThrowErrno(env, errno, "pipe");
  Napi::Array out = Napi::Array::New(env, 2);
  out[0u] = Napi::Number::New(env, fds[0]);
  out[1u] = Napi::Number::New(env, fds[1]);
  return out;
}

Napi::Value Dup(const Napi::CallbackInfo& info) {
  int fd = ArgInt32(info, 0);
  int result = fcntl(fd, F_DUPFD_CLOEXEC, 0);
  if (result == -1) ThrowErrno(info.Env(), errno, "dup");
  return Napi::Number::New(info.Env(), result);
}

Napi::Value Dup2(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  int fd = ArgInt32(info, 0);
  int fd2 = ArgInt32(info, 1);
  bool inheritable = info.Length() > 2 && info[2].ToBoolean().Value();
  if (fd == fd2) {
    // dup3 refuses equal fds; dup2 only checks fd. Keep dup2's meaning, then apply the flag.
    int flags = fcntl(fd, F_GETFD);
    if (flags == -1) ThrowErrno(env, errno, "dup2");
    int wanted = inheritable ? (flags & ~FD_CLOEXEC) : (flags | FD_CLOEXEC);
    if (wanted != flags && fcntl(fd, F_SETFD, wanted) == -1) ThrowErrno(env, errno, "dup2");
    return Napi::Number::New(env, fd);
  }
  int result = RetryOnEintr([&] { return dup3(fd, fd2, inheritable ? 0 : O_CLOEXEC); });
  if (result == -1) ThrowErrno(env, errno, "dup2");
  return Napi::Number::New(env, result);
}

void Close(const Napi::CallbackInfo& info) {
  // On Linux the descriptor is released even when close() reports EINTR: never retry.
  if (close(ArgInt32(info, 0)) == -1 && errno != EINTR) ThrowErrno(info.Env(), errno, "close");
}

Napi::Value GetFdFlag(const Napi::CallbackInfo& info, int get, int bit, const char* syscall) {
  int flags = fcntl(ArgInt32(info, 0), get);
  if (flags == -1) ThrowErrno(info.Env(), errno, syscall);
  return Napi::Boolean::New(info.Env(), (flags & bit) != 0);
}

void SetFdFlag(const Napi::CallbackInfo& info, int get, int set, int bit, bool on,
               const char* syscall) {
  int fd = ArgInt32(info, 0);
  int flags = fcntl(fd, get);
  if (flags == -1) ThrowErrno(info.Env(), errno, syscall);
  int wanted = on ? (flags | bit) : (flags & ~bit);
  if (wanted != flags && fcntl(fd, set, wanted) == -1) ThrowErrno(info.Env(), errno, syscall);
}

bool ArgBool(const Napi::CallbackInfo& info, size_t index) {
  return info.Length() > index && info[index].ToBoolean().Value();
}

Napi::Value GetInheritable(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(
      info.Env(), !GetFdFlag(info, F_GETFD, FD_CLOEXEC, "fcntl").As<Napi::Boolean>().Value());
}

void SetInheritable(const Napi::CallbackInfo& info) {
  SetFdFlag(info, F_GETFD, F_SETFD, FD_CLOEXEC, !ArgBool(info, 1), "fcntl");
}

Napi::Value GetBlocking(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(
      info.Env(), !GetFdFlag(info, F_GETFL, O_NONBLOCK, "fcntl").As<Napi::Boolean>().Value());
}

void SetBlocking(const Napi::CallbackInfo& info) {
  SetFdFlag(info, F_GETFL, F_SETFL, O_NONBLOCK, !ArgBool(info, 1), "fcntl");
}

}  // namespace

void InitFd(Napi::Env env, Napi::Object exports) {
  exports["pipe"] = Napi::Function::New(env, Pipe, "pipe");
  exports["dup"] = Napi::Function::New(env, Dup, "dup");
  exports["dup2"] = Napi::Function::New(env, Dup2, "dup2");
  exports["close"] = Napi::Function::New(env, Close, "close");
  exports["getInheritable"] = Napi::Function::New(env, GetInheritable, "getInheritable");
  exports["setInheritable"] = Napi::Function::New(env, SetInheritable, "setInheritable");
  exports["getBlocking"] = Napi::Function::New(env, GetBlocking, "getBlocking");
  exports["setBlocking"] = Napi::Function::New(env, SetBlocking, "setBlocking");
  exports["O_CLOEXEC"] = Napi::Number::New(env, O_CLOEXEC);
  exports["O_NONBLOCK"] = Napi::Number::New(env, O_NONBLOCK);
}

}  // namespace forkwise
