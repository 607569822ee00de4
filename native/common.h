// Shared helpers of the native addon: per-environment state, argument checks that keep the
// C++ side memory-safe, and system errors thrown through the JavaScript PosixError factory.
#pragma once

#include <napi.h>
#include <uv.h>

#include <signal.h>

#include <cerrno>
#include <memory>
#include <string>
#include <vector>

namespace forkwise {

struct Mappings;  // shared memory mapped in this environment (native/shm.cc)

// Per-environment state (one per main thread or worker), freed by Node-API's finalizer.
struct AddonData {
  Napi::FunctionReference make_error;  // (errno, syscall, path?) => PosixError
  std::shared_ptr<Mappings> mappings;
};

AddonData& Data(Napi::Env env);

// Throws the JavaScript PosixError for `err` (a positive errno value).
[[noreturn]] void ThrowErrno(Napi::Env env, int err, const char* syscall,
                             const char* path = nullptr);

// Argument checks. The TypeScript layer validates first and gives the user-facing
// messages; these only make sure that nothing unexpected reaches a system call.
int32_t ArgInt32(const Napi::CallbackInfo& info, size_t index);
std::string ArgString(const Napi::CallbackInfo& info, size_t index);
std::vector<std::string> ArgStringArray(const Napi::CallbackInfo& info, size_t index);
Napi::Uint8Array ArgUint8Array(const Napi::CallbackInfo& info, size_t index);
// An array of signal numbers as a sigset_t, and back.
sigset_t ArgSignalSet(const Napi::CallbackInfo& info, size_t index);
Napi::Array SignalSetArray(Napi::Env env, const sigset_t& set);

// A null-terminated char* array over strings that outlive it (for exec and spawn).
std::vector<char*> CStringArray(std::vector<std::string>& strings);

// Retries a system call interrupted by a signal.
template <typename F>
auto RetryOnEintr(F call) -> decltype(call()) {
  decltype(call()) result;
  do {
    result = call();
  } while (result == -1 && errno == EINTR);
  return result;
}

uv_loop_t* LoopOf(Napi::Env env);

// Calls `fn` from a thread-safe function or a libuv callback, through plain Node-API: a call
// made while a worker is being torn down fails, and must not turn into a C++ exception
// (nothing could catch it there). An exception thrown by `fn` is Node's to report.
void CallBack(Napi::Env env, Napi::Function fn, bool make_callback = false);

// Area initialisers, one per source file.
void InitErrors(Napi::Env env, Napi::Object exports);
void InitFork(Napi::Env env, Napi::Object exports);
void InitHeapLayout(Napi::Env env, Napi::Object exports);
void InitHeapGc(Napi::Env env, Napi::Object exports);
void InitExec(Napi::Env env, Napi::Object exports);
void InitSpawn(Napi::Env env, Napi::Object exports);
void InitSystem(Napi::Env env, Napi::Object exports);
void InitWait(Napi::Env env, Napi::Object exports);
void InitFd(Napi::Env env, Napi::Object exports);
void InitFdPassing(Napi::Env env, Napi::Object exports);
void InitSocketConnect(Napi::Env env, Napi::Object exports);
void InitProcess(Napi::Env env, Napi::Object exports);
void InitSignal(Napi::Env env, Napi::Object exports);
void InitShm(Napi::Env env, Napi::Object exports);
// Keeps the mapping that starts at `address` (made by shmOpen in this environment) mapped
// while the result lives, on any thread; null if there is none.
std::shared_ptr<void> PinMapping(Napi::Env env, void* address);
// Whether `segment` holds a robust mutex held by a live thread of this process (sync.cc).
bool HeldRobustMutexIn(const void* segment);
void InitSync(Napi::Env env, Napi::Object exports);
void InitFutex(Napi::Env env, Napi::Object exports);
void InitFutexPoll(Napi::Env env, Napi::Object exports);
void InitSerialize(Napi::Env env, Napi::Object exports);

// In a forked child: replaces the signal self-pipe shared with the parent by one of its own
// (native/signal.cc). Returns 0 or a libuv error.
int RenewSignalPipeInChild(uv_loop_t* loop);

}  // namespace forkwise
