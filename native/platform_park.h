// Node's platform worker threads held in a task of ours while fork() runs (platform_park.cc).
#pragma once

#include <napi.h>

namespace forkwise {

// Called by fork() before it forks: returns once every worker thread runs a task of ours
// (at once if they already do, from an earlier fork of this turn of the event loop).
void HoldPlatformWorkers(Napi::Env env);
// Lets them go back to their queue; a no-op when none is held or in a forked child.
void ReleasePlatformWorkers();
// In a forked child, right after fork(): the threads do not exist there.
void ForgetPlatformWorkersInChild();

void InitPlatformPark(Napi::Env env, Napi::Object exports);

}  // namespace forkwise
