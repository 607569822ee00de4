// Module initialisation: one call per area. No policy lives here.
#include "common.h"

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

Napi::Object Init(Napi::Env env, Napi::Object exports) {
  env.SetInstanceData(new AddonData());
  InitErrors(env, exports);
  InitFork(env, exports);
  InitExec(env, exports);
  InitSpawn(env, exports);
  InitSystem(env, exports);
  InitWait(env, exports);
  InitFd(env, exports);
  InitFdPassing(env, exports);
  InitProcess(env, exports);
  InitSignal(env, exports);
  InitShm(env, exports);
  InitSync(env, exports);
  return exports;
}

}  // namespace forkwise

static Napi::Object InitForkwise(Napi::Env env, Napi::Object exports) {
  return forkwise::Init(env, exports);
}

NODE_API_MODULE(forkwise, InitForkwise)
