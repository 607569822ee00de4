// Futex words in shared memory, for src/messaging: JavaScript updates the words with Atomics
// (real atomic instructions on the mapping, across processes); the addon only sleeps and
// wakes.
//
// - futexWait(buffer, offset, expected, timeoutMs): blocks the calling thread while the word
//   holds `expected`, at most `timeoutMs` (-1: for ever), with an absolute CLOCK_MONOTONIC
//   deadline so that a retry after EINTR never extends it. Returns 0 (woken or the word had
//   changed) or 1 (timed out).
// - futexWake(buffer, offset, count): wakes up to `count` sleepers (of any process).
// - yieldCpu(): sched_yield, between the looks of a spinning waiter (src/messaging/ring.ts).
// - FutexWatcher(buffer, offset, callback): the event loop's way to wait where io_uring
//   cannot (futex_poll.cc, Linux 6.7, is preferred: one wake-up instead of two). One long-lived
//   thread per watcher (not a thread per wait: fact 17 of DESIGN.md), parked on a condition
//   variable until `arm(expected, timeoutMs)`; then it FUTEX_WAITs and calls `callback` on the
//   loop through a thread-safe function, which is referenced only while armed, so a watcher
//   never keeps the process alive by itself. The thread holds its own pin on the mapping
//   (PinMapping) and stops calling back once the environment is gone (worker teardown).
//   `close()` stops the thread. A forked child has no such thread: it `abandon()`s the
//   inherited watcher (touching none of its locks, which the parent's thread may have held
//   at the instant of fork) and makes a new one.
#include <linux/futex.h>
#include <sched.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <cmath>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>

#include "common.h"

namespace forkwise {
namespace {

static_assert(sizeof(std::atomic<uint32_t>) == 4, "futex words are 32 bits");

// Longer than this (about 3,000 years) is for ever.
constexpr double kForeverMs = 1e14;

struct WordRef {
  std::atomic<uint32_t>* word;
  void* base;
};

// The futex word at byte `offset` of the ArrayBuffer argument 0 (4-byte aligned, inside).
WordRef WordArg(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 2 || !info[0].IsArrayBuffer() || !info[1].IsNumber()) {
    throw Napi::TypeError::New(env, "forkwise native: expected (ArrayBuffer, offset)");
  }
  Napi::ArrayBuffer buffer = info[0].As<Napi::ArrayBuffer>();
  double offset = info[1].As<Napi::Number>().DoubleValue();
  size_t length = buffer.ByteLength();
  if (!(offset >= 0) || std::floor(offset) != offset || static_cast<uint64_t>(offset) % 4 != 0 ||
      length < 4 || offset > static_cast<double>(length - 4)) {
    throw Napi::RangeError::New(env, "forkwise native: futex word outside the buffer");
  }
  auto* base = static_cast<uint8_t*>(buffer.Data());
  return {reinterpret_cast<std::atomic<uint32_t>*>(base + static_cast<size_t>(offset)), base};
}

double TimeoutArg(const Napi::CallbackInfo& info, size_t index) {
  if (info.Length() <= index || !info[index].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), "forkwise native: timeout must be a number");
  }
  double ms = info[index].As<Napi::Number>().DoubleValue();
  return std::isnan(ms) || ms < 0 || ms > kForeverMs ? -1 : ms;
}

uint32_t Uint32Arg(const Napi::CallbackInfo& info, size_t index) {
  if (info.Length() <= index || !info[index].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), "forkwise native: expected a number");
  }
  return info[index].As<Napi::Number>().Uint32Value();
}

// An absolute CLOCK_MONOTONIC deadline `ms` from now (ms >= 0).
timespec DeadlineAfter(double ms) {
  timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  double whole = std::floor(ms / 1000);
  long long sec = now.tv_sec + static_cast<long long>(whole);
  long long nsec = now.tv_nsec + static_cast<long long>((ms - whole * 1000) * 1e6);
  if (nsec >= 1000000000LL) {
    sec += nsec / 1000000000LL;
    nsec %= 1000000000LL;
  }
  return {static_cast<time_t>(sec), static_cast<long>(nsec)};
}

// Sleeps while *word == expected, until `deadline` (null: for ever). FUTEX_WAIT_BITSET takes
// an absolute CLOCK_MONOTONIC time. Shared (not private) futex: the word is in a mapping that
// other processes share. Returns false on timeout.
bool WaitWhileEqual(std::atomic<uint32_t>* word, uint32_t expected, const timespec* deadline) {
  while (word->load() == expected) {
    long rc = syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_BITSET, expected,
                      deadline, nullptr, FUTEX_BITSET_MATCH_ANY);
    if (rc == 0) return true;  // woken (perhaps spuriously: the caller re-checks)
    if (errno == ETIMEDOUT) return false;
    if (errno != EINTR && errno != EAGAIN) return true;
  }
  return true;
}

long WakeWord(std::atomic<uint32_t>* word, int count) {
  return syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE, count, nullptr, nullptr, 0);
}

// Gives the CPU to another runnable thread of this CPU, if there is one (a peer that a
// spinning waiter would otherwise keep from running).
void YieldCpu(const Napi::CallbackInfo&) { sched_yield(); }

Napi::Value FutexWait(const Napi::CallbackInfo& info) {
  WordRef ref = WordArg(info);
  uint32_t expected = Uint32Arg(info, 2);
  double ms = TimeoutArg(info, 3);
  bool woken;
  if (ms < 0) {
    woken = WaitWhileEqual(ref.word, expected, nullptr);
  } else {
    timespec deadline = DeadlineAfter(ms);
    woken = WaitWhileEqual(ref.word, expected, &deadline);
  }
  return Napi::Number::New(info.Env(), woken ? 0 : 1);
}

Napi::Value FutexWake(const Napi::CallbackInfo& info) {
  WordRef ref = WordArg(info);
  double count = info.Length() > 2 && info[2].IsNumber() ? info[2].As<Napi::Number>().DoubleValue() : INT_MAX;
  int n = count >= INT_MAX || std::isnan(count) ? INT_MAX : std::max(1, static_cast<int>(count));
  return Napi::Number::New(info.Env(), static_cast<double>(WakeWord(ref.word, n)));
}

class FutexWatcher : public Napi::ObjectWrap<FutexWatcher> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FutexWatcher",
                       {InstanceMethod("arm", &FutexWatcher::Arm),
                        InstanceMethod("close", &FutexWatcher::Close),
                        InstanceMethod("abandon", &FutexWatcher::Abandon)});
  }

  explicit FutexWatcher(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FutexWatcher>(info) {
    Napi::Env env = info.Env();
    WordRef ref = WordArg(info);
    if (info.Length() < 3 || !info[2].IsFunction()) {
      throw Napi::TypeError::New(env, "forkwise native: callback must be a function");
    }
    auto state = std::make_shared<State>();
    state->word = ref.word;
    state->mapping = PinMapping(env, ref.base);
    if (!state->mapping) {
      throw Napi::TypeError::New(env, "forkwise native: not a shared memory mapping of this thread");
    }
    state->notify = Napi::ThreadSafeFunction::New(
        env, info[2].As<Napi::Function>(), "forkwise.messaging.watch", 0, 1, [state](Napi::Env) {
          std::lock_guard<std::mutex> guard(state->gate);
          state->env_gone = true;
          state->stop = true;
          state->wake.notify_one();
        });
    state->notify.Unref(env);
    try {
      std::thread([state] { Run(state); }).detach();
    } catch (const std::system_error& error) {  // no thread to be had (EAGAIN)
      state->notify.Release();
      ThrowErrno(env, error.code().value(), "pthread_create");
    }
    state_ = state;
  }

  ~FutexWatcher() {
    if (!state_ || abandoned_) return;
    state_->closed_on_loop = true;
    Stop();
  }

 private:
  struct State {
    std::atomic<uint32_t>* word = nullptr;
    std::shared_ptr<void> mapping;
    Napi::ThreadSafeFunction notify;
    std::mutex gate;
    std::condition_variable wake;
    bool armed = false;
    bool stop = false;
    bool env_gone = false;
    uint32_t expected = 0;
    double timeout_ms = -1;
    bool closed_on_loop = false;  // only touched on the loop thread
  };

  static void Run(std::shared_ptr<State> state) {
    std::unique_lock<std::mutex> lock(state->gate);
    for (;;) {
      state->wake.wait(lock, [&] { return state->armed || state->stop; });
      if (state->stop) break;
      state->armed = false;
      uint32_t expected = state->expected;
      double ms = state->timeout_ms;
      lock.unlock();
      if (ms < 0) {
        WaitWhileEqual(state->word, expected, nullptr);
      } else {
        timespec deadline = DeadlineAfter(ms);
        WaitWhileEqual(state->word, expected, &deadline);
      }
      lock.lock();
      if (state->stop) break;
      state->notify.NonBlockingCall([state](Napi::Env env, Napi::Function callback) {
        if (state->closed_on_loop) return;
        state->notify.Unref(env);
        CallBack(env, callback);
      });
    }
    bool release = !state->env_gone;
    lock.unlock();
    if (release) state->notify.Release();
  }

  // arm(expected, timeoutMs): the thread waits once, then calls back once.
  void Arm(const Napi::CallbackInfo& info) {
    if (!state_ || abandoned_) throw Napi::Error::New(info.Env(), "forkwise native: watcher closed");
    uint32_t expected = Uint32Arg(info, 0);
    double ms = TimeoutArg(info, 1);
    std::lock_guard<std::mutex> guard(state_->gate);
    if (state_->stop) return;
    state_->expected = expected;
    state_->timeout_ms = ms;
    state_->armed = true;
    state_->wake.notify_one();
    state_->notify.Ref(info.Env());  // the loop stays alive while a wait is armed
  }

  void Stop() {
    {
      std::lock_guard<std::mutex> guard(state_->gate);
      state_->stop = true;
      state_->wake.notify_one();
    }
    WakeWord(state_->word, INT_MAX);  // the thread may sleep on the word (others re-check)
    state_.reset();
  }

  void Close(const Napi::CallbackInfo& info) {
    if (!state_ || abandoned_) return;
    state_->closed_on_loop = true;
    state_->notify.Unref(info.Env());
    Stop();
  }

  // In a forked child: the thread does not exist here; stop holding the loop open and leave
  // the state alone.
  void Abandon(const Napi::CallbackInfo& info) {
    if (!state_ || abandoned_) return;
    abandoned_ = true;
    state_->notify.Unref(info.Env());
    new std::shared_ptr<State>(state_);  // never freed: its locks may be in any state
    state_.reset();
  }

  std::shared_ptr<State> state_;
  bool abandoned_ = false;
};

}  // namespace

void InitFutex(Napi::Env env, Napi::Object exports) {
  exports["futexWait"] = Napi::Function::New(env, FutexWait, "futexWait");
  exports["futexWake"] = Napi::Function::New(env, FutexWake, "futexWake");
  exports["yieldCpu"] = Napi::Function::New(env, YieldCpu, "yieldCpu");
  exports["FutexWatcher"] = FutexWatcher::Define(env);
}

}  // namespace forkwise
