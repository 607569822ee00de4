// Ends a forked child whose event loop runs dry before Node would wait for its platform's
// worker tasks.
//
// When uv_run returns, Node drains the platform's worker queue (NodePlatform::DrainTasks)
// before it emits 'beforeExit' and 'exit': it waits until every task posted to the worker
// threads has run. A child has none of those threads, and inherits the parent's count of
// tasks in flight: tasks that V8 posted in the child (a mark-compact posts a job there, and
// runs it itself) or that fork() held in the parent (platform_park.cc) never complete, and a
// child whose loop ran dry waited for them for ever (gdb: BlockingDrain in DrainTasks).
// So the child keeps its loop alive with a handle of its own, and when that handle is the
// only thing left alive, does what Node does after DrainTasks: emits 'beforeExit' (which
// may give the loop new work, as in Node) and, if the loop is still dry, 'exit', where
// child.ts ends the child with _exit.
#include <uv.h>

#include "common.h"
#include "child_loop_end.h"

namespace forkwise {

namespace {

// Main thread only: fork() is refused elsewhere. Set in the parent, used in its children.
napi_env end_env = nullptr;
napi_ref end_callback = nullptr;  // (stage: 0 beforeExit, 1 exit) => void
uv_prepare_t* watch = nullptr;

// uv_loop_alive without our own handle.
bool OnlyWatchAlive(uv_loop_t* loop) {
  return loop->active_handles <= 1 && loop->active_reqs.count == 0 &&
         loop->pending_queue.next == &loop->pending_queue && loop->closing_handles == nullptr;
}

void CallEnd(int stage) {
  Napi::Env env(end_env);
  Napi::HandleScope scope(env);
  napi_value fn;
  if (napi_get_reference_value(end_env, end_callback, &fn) != napi_ok || fn == nullptr) return;
  napi_value arg = Napi::Number::New(env, stage);
  napi_value result;
  // make_callback: nextTicks and promise jobs run after it, as after any loop callback.
  napi_make_callback(end_env, nullptr, env.Global(), fn, 1, &arg, &result);
}

void OnPrepare(uv_prepare_t* handle) {
  if (!OnlyWatchAlive(handle->loop)) return;
  CallEnd(0);
  if (OnlyWatchAlive(handle->loop)) CallEnd(1);  // does not return when it ends the child
}

void SetChildLoopEnd(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsFunction()) {
    throw Napi::TypeError::New(info.Env(), "forkwise native: a function is required");
  }
  if (end_callback != nullptr) napi_delete_reference(end_env, end_callback);
  end_env = info.Env();
  napi_create_reference(end_env, info[0], 1, &end_callback);
}

}  // namespace

int WatchLoopEndInChild(uv_loop_t* loop) {
  if (end_callback == nullptr) return 0;
  if (watch == nullptr) {  // a grandchild inherits its parent's watch, active already
    watch = new uv_prepare_t;
    int err = uv_prepare_init(loop, watch);
    if (err) {
      delete watch;
      watch = nullptr;
      return err;
    }
  }
  return uv_prepare_start(watch, OnPrepare);
}

void InitChildLoopEnd(Napi::Env env, Napi::Object exports) {
  exports["setChildLoopEnd"] = Napi::Function::New(env, SetChildLoopEnd, "setChildLoopEnd");
}

}  // namespace forkwise
