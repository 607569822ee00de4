// System errors and argument checks. The error object itself is built in JavaScript
// (src/posix/errors.ts) so that native and TypeScript errors have one shape.
#include <signal.h>

#include <cstring>

#include "common.h"

namespace forkwise {

void ThrowErrno(Napi::Env env, int err, const char* syscall, const char* path) {
  AddonData& data = Data(env);
  if (data.make_error.IsEmpty()) {
    throw Napi::Error::New(env, std::string(syscall) + " failed: " + std::to_string(err));
  }
  Napi::Value path_value = path ? Napi::String::New(env, path) : env.Undefined();
  // The errno's name for the few that neither libuv nor os.constants know (ENOTRECOVERABLE).
#if defined(__GLIBC__) && __GLIBC_PREREQ(2, 32)
  const char* name = strerrorname_np(err);
#else
  const char* name = nullptr;
#endif
  Napi::Value error = data.make_error.Call(
      {Napi::Number::New(env, err), Napi::String::New(env, syscall), path_value,
       Napi::String::New(env, strerror(err)), name ? Napi::String::New(env, name) : env.Undefined()});
  throw Napi::Error(env, error);
}

static void TypeFail(const Napi::CallbackInfo& info, size_t index, const char* expected) {
  throw Napi::TypeError::New(info.Env(), "forkwise native: argument " +
                                             std::to_string(index) + " must be " + expected);
}

int32_t ArgInt32(const Napi::CallbackInfo& info, size_t index) {
  if (index >= info.Length() || !info[index].IsNumber()) TypeFail(info, index, "a number");
  double value = info[index].As<Napi::Number>().DoubleValue();
  if (!(value >= INT32_MIN && value <= INT32_MAX) || value != static_cast<int32_t>(value)) {
    throw Napi::RangeError::New(info.Env(), "forkwise native: argument " +
                                                std::to_string(index) + " is not a 32-bit integer");
  }
  return static_cast<int32_t>(value);
}

static std::string CheckedString(Napi::Env env, Napi::Value value, size_t index) {
  std::string s = value.As<Napi::String>().Utf8Value();
  if (s.find('\0') != std::string::npos) {
    throw Napi::TypeError::New(env, "forkwise native: argument " + std::to_string(index) +
                                        " contains a null byte");
  }
  return s;
}

std::string ArgString(const Napi::CallbackInfo& info, size_t index) {
  if (index >= info.Length() || !info[index].IsString()) TypeFail(info, index, "a string");
  return CheckedString(info.Env(), info[index], index);
}

std::vector<std::string> ArgStringArray(const Napi::CallbackInfo& info, size_t index) {
  if (index >= info.Length() || !info[index].IsArray()) TypeFail(info, index, "an array");
  Napi::Array array = info[index].As<Napi::Array>();
  std::vector<std::string> out;
  out.reserve(array.Length());
  for (uint32_t i = 0; i < array.Length(); i++) {
    Napi::Value item = array.Get(i);
    if (!item.IsString()) TypeFail(info, index, "an array of strings");
    out.push_back(CheckedString(info.Env(), item, index));
  }
  return out;
}

Napi::Uint8Array ArgUint8Array(const Napi::CallbackInfo& info, size_t index) {
  if (index >= info.Length() || !info[index].IsTypedArray() ||
      info[index].As<Napi::TypedArray>().TypedArrayType() != napi_uint8_array) {
    TypeFail(info, index, "a Uint8Array");
  }
  return info[index].As<Napi::Uint8Array>();
}

sigset_t ArgSignalSet(const Napi::CallbackInfo& info, size_t index) {
  if (index >= info.Length() || !info[index].IsArray()) TypeFail(info, index, "an array");
  Napi::Array array = info[index].As<Napi::Array>();
  sigset_t set;
  sigemptyset(&set);
  for (uint32_t i = 0; i < array.Length(); i++) {
    Napi::Value item = array.Get(i);
    if (!item.IsNumber()) TypeFail(info, index, "an array of signal numbers");
    double d = item.As<Napi::Number>().DoubleValue();
    if (!(d >= 1 && d < NSIG) || d != static_cast<int>(d) ||
        sigaddset(&set, static_cast<int>(d)) != 0) {
      throw Napi::RangeError::New(info.Env(), "forkwise native: not a usable signal number");
    }
  }
  return set;
}

Napi::Array SignalSetArray(Napi::Env env, const sigset_t& set) {
  Napi::Array out = Napi::Array::New(env);
  uint32_t n = 0;
  for (int signo = 1; signo < NSIG; signo++) {
    if (sigismember(&set, signo) == 1) out[n++] = Napi::Number::New(env, signo);
  }
  return out;
}

std::vector<char*> CStringArray(std::vector<std::string>& strings) {
  std::vector<char*> out;
  out.reserve(strings.size() + 1);
  for (std::string& s : strings) out.push_back(s.data());
  out.push_back(nullptr);
  return out;
}

static void SetErrorFactory(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsFunction()) TypeFail(info, 0, "a function");
  Data(info.Env()).make_error = Napi::Persistent(info[0].As<Napi::Function>());
}

void InitErrors(Napi::Env env, Napi::Object exports) {
  exports["setErrorFactory"] = Napi::Function::New(env, SetErrorFactory, "setErrorFactory");
}

}  // namespace forkwise
