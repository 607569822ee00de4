// A forked child's event loop running dry, ended without Node's wait for its platform's
// worker tasks (child_loop_end.cc).
#pragma once

#include <napi.h>
#include <uv.h>

namespace forkwise {

// In the child, right after fork(): keeps the loop alive with a handle that calls the
// function given to setChildLoopEnd once nothing else is alive. Returns 0 or a libuv error.
int WatchLoopEndInChild(uv_loop_t* loop);

void InitChildLoopEnd(Napi::Env env, Napi::Object exports);

}  // namespace forkwise
