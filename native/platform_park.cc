// Holds Node's platform worker threads inside a task of ours while fork() runs, so that the
// child inherits no waiter on the condition variable of their task queue.
//
// Those threads (four, even with --single-threaded) sleep in pthread_cond_wait on the queue's
// condition variable. glibc's condition variable sorts its waiters into two groups, and a
// signal that has used up the older group first waits until that group's waiters have all
// left (__condvar_quiesce_and_switch_g1). A child inherits the parent's waiter counts but
// not the threads: once it has posted more tasks than the older group held, its next post
// waits for threads that do not exist, for ever. V8 posts such tasks from a mark-compact
// (MarkCompactCollector::ClearNonLiveReferences, a job that the posting thread then runs
// itself): the child of a parent that had just collected (warmup()) hung in its first full
// collection every time (test/fork.test.ts); other children had a few posts of grace,
// depending on what the threads were last woken for (gdb on the condition variable: three
// waiters in the older group and one in the newer, right after start-up).
//
// Neither V8 nor Node offers a way to reset that queue in the child, nor to reach it. But a
// thread that runs a task is not waiting: with one task per worker thread, each blocking
// until released, a fork made once all of them run leaves the queue with no waiter at all,
// and the child's posts find nobody to wake and return. Holding them costs the parent a
// wake-up of each thread (160-450 us per fork on this loaded 2-core machine), so they are
// held for a whole turn of the event loop: forks in a row pay it once, and fork.ts releases
// them on the next turn (a ref'd setImmediate: Node waits for every worker task before it
// exits, so they must not still be held when the loop runs dry) or when the process exits.
// A task gives up after kHoldLimit whatever happens, so no path can block for longer; a
// hold older than half of it is renewed before the next fork. A task that has not started
// within kArrivalLimit (a worker busy with long work, as V8's concurrent marking without
// --single-threaded) is not waited for.
#include "platform_park.h"

#include <node.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>

namespace forkwise {

namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kArrivalLimit = std::chrono::milliseconds(50);
constexpr auto kHoldLimit = std::chrono::milliseconds(1000);

struct Gate {
  std::mutex mutex;
  std::condition_variable changed;
  int arrived = 0;
  int left = 0;  // tasks that gave up waiting (kHoldLimit)
  bool open = false;
  Clock::time_point since = Clock::now();
};

class HoldTask : public v8::Task {
 public:
  explicit HoldTask(std::shared_ptr<Gate> gate) : gate_(std::move(gate)) {}
  void Run() override {
    std::unique_lock<std::mutex> lock(gate_->mutex);
    gate_->arrived++;
    gate_->changed.notify_all();
    if (!gate_->changed.wait_for(lock, kHoldLimit, [this] { return gate_->open; })) gate_->left++;
  }

 private:
  std::shared_ptr<Gate> gate_;
};

// Main thread only (fork() is refused elsewhere). In a forked child there are no worker
// threads: nothing to hold, and a task posted there never runs.
std::shared_ptr<Gate> held;
int held_workers = 0;
bool in_forked_child = false;

// Whether the current hold can serve this fork: none of its tasks gave up, and it is young
// enough that none will before the fork is done. Waits for tasks still to start, at most
// kArrivalLimit (a hold whose tasks have not all started is not posted again).
bool HoldUsable() {
  if (!held) return false;
  std::unique_lock<std::mutex> lock(held->mutex);
  if (held->open || held->left != 0 || Clock::now() - held->since >= kHoldLimit / 2) return false;
  held->changed.wait_for(lock, kArrivalLimit, [] { return held->arrived == held_workers; });
  return true;
}

void Release(const Napi::CallbackInfo&) { ReleasePlatformWorkers(); }

}  // namespace

void HoldPlatformWorkers(Napi::Env env) {
  if (in_forked_child || HoldUsable()) return;
  ReleasePlatformWorkers();
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  if (isolate == nullptr) return;
  node::Environment* node_env = node::GetCurrentEnvironment(isolate->GetCurrentContext());
  node::MultiIsolatePlatform* platform =
      node_env == nullptr ? nullptr : node::GetMultiIsolatePlatform(node_env);
  if (platform == nullptr) return;
  // Node counts its delayed-task thread among its worker threads; that one runs no task.
  int workers = platform->NumberOfWorkerThreads() - 1;
  if (workers <= 0) return;
  held = std::make_shared<Gate>();
  held_workers = workers;
  for (int i = 0; i < workers; i++) platform->CallOnWorkerThread(std::make_unique<HoldTask>(held));
  std::unique_lock<std::mutex> lock(held->mutex);
  held->changed.wait_for(lock, kArrivalLimit, [workers] { return held->arrived == workers; });
}

void ReleasePlatformWorkers() {
  if (in_forked_child || !held) return;
  {
    std::lock_guard<std::mutex> lock(held->mutex);
    held->open = true;
  }
  held->changed.notify_all();
  held.reset();
}

void ForgetPlatformWorkersInChild() {
  in_forked_child = true;
  // The gate's mutex and condition variable hold the parent's threads: never locked here.
  // Its tasks still count their references to it, so this only drops one.
  held.reset();
}

void InitPlatformPark(Napi::Env env, Napi::Object exports) {
  exports["releasePlatformWorkers"] = Napi::Function::New(env, Release, "releasePlatformWorkers");
}

}  // namespace forkwise
