// Module initialisation: one call per area. No policy lives here.
#include <dlfcn.h>

#include <mutex>

#include "common.h"
#include "platform_park.h"
#include "child_loop_end.h"

namespace forkwise {

AddonData& Data(Napi::Env env) { return *env.GetInstanceData<AddonData>(); }

uv_loop_t* LoopOf(Napi::Env env) {
  uv_loop_t* loop = nullptr;
  napi_status status = napi_get_uv_event_loop(env, &loop);
  if (status != napi_ok || loop == nullptr) {
    throw Napi::Error::New(env, "forkwise: cannot get the event loop");
  }
  return loop;
}

void CallBack(Napi::Env env, Napi::Function fn, bool make_callback) {
  napi_value result;
  if (make_callback) {
    napi_make_callback(env, nullptr, env.Global(), fn, 0, nullptr, &result);
  } else {
    napi_call_function(env, env.Undefined(), fn, 0, nullptr, &result);
  }
}

// Helper threads (waitpidAsync's fallback, the asynchronous waits of sync.cc) may outlive
// the environment that started them. If that was a worker, and the only one to load the
// addon, Node would unload the library under them when it ends: keep it loaded for good.
static void KeepLibraryLoaded() {
  Dl_info self;
  if (dladdr(reinterpret_cast<void*>(&KeepLibraryLoaded), &self) != 0 && self.dli_fname != nullptr) {
    dlopen(self.dli_fname, RTLD_NOW | RTLD_NODELETE);
  }
}

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  static std::once_flag pinned;
  std::call_once(pinned, KeepLibraryLoaded);
  env.SetInstanceData(new AddonData());
  InitErrors(env, exports);
  InitHeapLayout(env, exports);
  InitFork(env, exports);
  InitPlatformPark(env, exports);
  InitChildLoopEnd(env, exports);
  InitHeapGc(env, exports);
  InitExec(env, exports);
  InitSpawn(env, exports);
  InitSystem(env, exports);
  InitWait(env, exports);
  InitFd(env, exports);
  InitFdPassing(env, exports);
  InitSocketConnect(env, exports);
  InitProcess(env, exports);
  InitSignal(env, exports);
  InitShm(env, exports);
  InitSync(env, exports);
  InitFutex(env, exports);
  InitFutexPoll(env, exports);
  InitSerialize(env, exports);
  return exports;
}

}  // namespace forkwise

static Napi::Object InitForkwise(Napi::Env env, Napi::Object exports) {
  return forkwise::Init(env, exports);
}

NODE_API_MODULE(forkwise, InitForkwise)
