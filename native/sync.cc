// Process-shared synchronisation primitives, each in its own shared memory segment.
//
// Design
// ------
// Every primitive starts with a Header: a magic number and the primitive's kind (checked on
// every call, so a forged handle never reaches a pthread call with the wrong object), and
// `seq`, a 32-bit futex word that changes whenever a waiter may be able to proceed (a
// release, a post, a set, a notify, a barrier's new generation).
//
// Mutex and RLock are pthread mutexes (PTHREAD_PROCESS_SHARED, PTHREAD_MUTEX_ROBUST; error-
// checking or recursive), RWLock a pthread rwlock, Semaphore a sem_t, all placed in the
// segment. Event, Barrier and Condition are small state machines on futexes: a pthread
// condition variable cannot be waited on without owning its mutex in the waiting thread, and
// the asynchronous waits below must not own anything in a helper thread.
//
// Two ways to wait:
// - Synchronous (acquire, wait): the calling thread blocks in the real call
//   (pthread_mutex_clocklock, sem_clockwait, FUTEX_WAIT_BITSET...) with an absolute deadline
//   on CLOCK_MONOTONIC, so a retry after EINTR never extends the timeout.
// - Asynchronous (acquireAsync, waitAsync): the JavaScript thread only ever makes
//   non-blocking attempts (a lock whose deadline has passed, sem_trywait...), so whatever it
//   acquires is owned by that thread, exactly as with the synchronous form: a mutex taken
//   asynchronously is released by the same thread, and sits on that thread's robust list,
//   so its owner's death is seen by the others. Between attempts a short-lived helper thread
//   (SeqWatch) sleeps in FUTEX_WAIT on `seq` for a bounded slice, then calls back into the
//   loop, which attempts again. The helper only reads `seq` and counts itself in
//   `async_waiters`; releasers bump `seq` and FUTEX_WAKE it when `async_waiters` says a helper
//   sleeps there. With both sides' operations sequentially consistent, either the releaser
//   sees the waiter or the waiter's futex sees the new `seq`: no wake-up is lost. The slice
//   bounds how long a dead owner (who never bumps `seq`) goes unnoticed, and how long a
//   cancelled helper outlives its cancellation.
// - A helper may outlive its environment (a worker terminated mid-wait): it holds its own
//   reference to the mapping (PinMapping) and stops calling back once the thread-safe
//   function is finalized. In a forked child, which has no helper threads, src/sync starts
//   new ones for the waits still pending.
// - A robust mutex held by a thread is linked into that thread's robust list, which glibc
//   (and the kernel, when the thread dies) follows through the mutexes themselves: its
//   segment is never unmapped while a live thread of this process holds it (HeldRobustMutexIn,
//   asked before every munmap, environment teardown included).
//
// Errors come back as errno values (EPERM, EDEADLK, ENOTRECOVERABLE...) through the
// PosixError factory; the TypeScript layer (src/sync/) gives them their meaning.
#include <linux/futex.h>
#include <pthread.h>
#include <semaphore.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include <atomic>
#include <climits>
#include <limits.h>
#include <cmath>
#include <memory>
#include <mutex>
#include <system_error>
#include <thread>

#include "common.h"

namespace forkwise {
namespace {

constexpr uint32_t kMagic = 0x6b726f66;  // "fork"
enum Kind : uint32_t { kMutex = 1, kRLock, kRWLock, kSemaphore, kEvent, kBarrier, kCondition };
static_assert(std::atomic<uint32_t>::is_always_lock_free, "futex words must be lock-free");

struct Header {
  uint32_t magic;
  uint32_t kind;
  std::atomic<uint32_t> seq;
  std::atomic<uint32_t> async_waiters;
};

struct MutexBlock {
  Header header;
  alignas(16) pthread_mutex_t mutex;
};

struct RWLockBlock {
  Header header;
  alignas(16) pthread_rwlock_t rwlock;
};

struct SemaphoreBlock {
  Header header;
  int32_t max;  // -1: unbounded
  alignas(16) sem_t sem;
};

struct EventBlock {
  Header header;
  std::atomic<uint32_t> flag;
};

// The generation is header.seq. `guard` serialises arrivals; it is robust so that a party
// dying inside the bookkeeping breaks the barrier instead of blocking it.
struct BarrierBlock {
  Header header;
  uint32_t parties;
  uint32_t count;
  std::atomic<uint32_t> broken;
  // Bit g % 64: generation g ended by abort, reset or a timeout rather than by its last
  // arrival (a waiter that looks less than 64 generations late reads its own outcome).
  std::atomic<uint64_t> failed_generations;
  alignas(16) pthread_mutex_t guard;
};

// `waiting` counts waiters not yet notified, `permits` notifications not yet claimed; both
// change under the condition's lock, except that a woken waiter claims a permit lock-free.
// header.seq counts notifications. A waiter remembers seq as it starts waiting and may only
// claim a permit given after that (`notified_at` is later): a waiter that arrives after a
// notify cannot take the notification from one that was waiting for it.
struct ConditionBlock {
  Header header;
  std::atomic<uint32_t> waiting;
  std::atomic<uint32_t> permits;
  std::atomic<uint32_t> notified_at;
};

// ---- helpers ----

long Futex(std::atomic<uint32_t>* word, int op, uint32_t value, const timespec* at) {
  return syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), op, value, at, nullptr,
                 FUTEX_BITSET_MATCH_ANY);
}

void Wake(std::atomic<uint32_t>& word) { Futex(&word, FUTEX_WAKE, INT_MAX, nullptr); }

// A release: bump seq and wake the helpers sleeping on it, if any.
void Published(Header& header) {
  header.seq.fetch_add(1);
  if (header.async_waiters.load() != 0) Wake(header.seq);
}

// Longer than this (about 3,000 years) is for ever: time_t arithmetic cannot overflow.
constexpr double kForeverMs = 1e14;

struct Deadline {
  double timeout_ms;  // < 0: none; 0: do not wait
  timespec at;
  explicit Deadline(double ms) : timeout_ms(ms >= kForeverMs ? -1 : ms), at{} {
    if (timeout_ms <= 0) return;
    clock_gettime(CLOCK_MONOTONIC, &at);
    double whole = std::floor(ms / 1000);
    at.tv_sec += static_cast<time_t>(whole);
    at.tv_nsec += static_cast<long>((ms - whole * 1000) * 1e6);
    if (at.tv_nsec >= 1000000000L) at.tv_sec += 1, at.tv_nsec -= 1000000000L;
  }
  bool forever() const { return timeout_ms < 0; }
  bool none() const { return timeout_ms == 0; }
};

// Sleeps while `word` holds `expected`, until the deadline. EINTR is retried (the deadline is
// absolute). Returns false only when the deadline passed.
bool FutexWaitUntil(std::atomic<uint32_t>& word, uint32_t expected, const Deadline& deadline) {
  for (;;) {
    long r = Futex(&word, FUTEX_WAIT_BITSET, expected, deadline.forever() ? nullptr : &deadline.at);
    if (r == 0 || errno == EAGAIN) return true;
    if (errno == ETIMEDOUT) return false;
    if (errno != EINTR) return true;  // EFAULT and the like: let the caller re-check
    if (word.load() != expected) return true;
  }
}

// A buffer that is not (or no longer) a primitive's: a forged handle, or a closed segment.
[[noreturn]] void NotAPrimitive(Napi::Env env) {
  Napi::TypeError error = Napi::TypeError::New(env, "forkwise: not a live synchronisation primitive");
  error.Set("code", Napi::String::New(env, "ERR_INVALID_ARG_VALUE"));
  throw error;
}

// One Node-API call, which also refuses anything that is not an ArrayBuffer: this is on
// every acquire and release.
Header* HeaderOf(const Napi::CallbackInfo& info, size_t size) {
  void* data = nullptr;
  size_t length = 0;
  if (info.Length() < 1 || napi_get_arraybuffer_info(info.Env(), info[0], &data, &length) != napi_ok ||
      length < size || static_cast<Header*>(data)->magic != kMagic) {
    NotAPrimitive(info.Env());
  }
  return static_cast<Header*>(data);
}

template <typename Block>
Block* BlockOf(const Napi::CallbackInfo& info, Kind kind, Kind also = Kind(0)) {
  Header* header = HeaderOf(info, sizeof(Block));
  if (header->kind != kind && header->kind != also) NotAPrimitive(info.Env());
  return reinterpret_cast<Block*>(header);
}

double ArgTimeout(const Napi::CallbackInfo& info, size_t index) {
  if (index >= info.Length() || !info[index].IsNumber()) {
    throw Napi::TypeError::New(info.Env(), "forkwise native: timeout must be a number");
  }
  double ms = info[index].As<Napi::Number>().DoubleValue();
  if (std::isnan(ms)) throw Napi::RangeError::New(info.Env(), "forkwise native: bad timeout");
  return ms;
}

Napi::Number Int(Napi::Env env, double value) { return Napi::Number::New(env, value); }

void Check(Napi::Env env, int err, const char* call) {
  if (err != 0) ThrowErrno(env, err, call);
}

void InitHeader(Header& header, Kind kind) {
  header.kind = kind;
  header.seq.store(0);
  header.async_waiters.store(0);
}

// The magic goes in last: a segment is a primitive once it is fully built.
void Seal(Header& header) { __atomic_store_n(&header.magic, kMagic, __ATOMIC_RELEASE); }

void InitRobustMutex(Napi::Env env, pthread_mutex_t* mutex, int type) {
  pthread_mutexattr_t attr;
  Check(env, pthread_mutexattr_init(&attr), "pthread_mutexattr_init");
  int err = pthread_mutexattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
  if (!err) err = pthread_mutexattr_setrobust(&attr, PTHREAD_MUTEX_ROBUST);
  if (!err) err = pthread_mutexattr_settype(&attr, type);
  if (!err) err = pthread_mutex_init(mutex, &attr);
  pthread_mutexattr_destroy(&attr);
  Check(env, err, "pthread_mutex_init");
}

// ---- initialisation: syncInit(buffer, kind, arg) on a zeroed segment ----

size_t BlockSize(uint32_t kind) {
  switch (kind) {
    case kMutex: case kRLock: return sizeof(MutexBlock);
    case kRWLock: return sizeof(RWLockBlock);
    case kSemaphore: return sizeof(SemaphoreBlock);
    case kEvent: return sizeof(EventBlock);
    case kBarrier: return sizeof(BarrierBlock);
    case kCondition: return sizeof(ConditionBlock);
    default: return 0;
  }
}

void SyncInit(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) NotAPrimitive(env);
  Napi::ArrayBuffer buffer = info[0].As<Napi::ArrayBuffer>();
  Kind kind = static_cast<Kind>(ArgInt32(info, 1));
  double arg = info.Length() > 2 ? info[2].ToNumber().DoubleValue() : 0;
  size_t needed = BlockSize(kind);
  if (needed == 0) throw Napi::RangeError::New(env, "forkwise native: unknown primitive kind");
  if (buffer.ByteLength() < needed) NotAPrimitive(env);
  void* memory = buffer.Data();
  Header& header = *static_cast<Header*>(memory);
  InitHeader(header, kind);
  switch (kind) {
    case kMutex: case kRLock:
      InitRobustMutex(env, &static_cast<MutexBlock*>(memory)->mutex,
                      kind == kMutex ? PTHREAD_MUTEX_ERRORCHECK : PTHREAD_MUTEX_RECURSIVE);
      break;
    case kRWLock: {
      pthread_rwlockattr_t attr;
      Check(env, pthread_rwlockattr_init(&attr), "pthread_rwlockattr_init");
      int err = pthread_rwlockattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
      // Readers arriving while a writer waits queue behind it: writers are not starved.
      if (!err) err = pthread_rwlockattr_setkind_np(&attr, PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
      if (!err) err = pthread_rwlock_init(&static_cast<RWLockBlock*>(memory)->rwlock, &attr);
      pthread_rwlockattr_destroy(&attr);
      Check(env, err, "pthread_rwlock_init");
      break;
    }
    case kSemaphore: {
      // arg: initial value; info[3]: the bound (-1 for none).
      auto* block = static_cast<SemaphoreBlock*>(memory);
      block->max = info.Length() > 3 ? info[3].ToNumber().Int32Value() : -1;
      if (sem_init(&block->sem, 1, static_cast<unsigned>(arg)) == -1) ThrowErrno(env, errno, "sem_init");
      break;
    }
    case kEvent:
      static_cast<EventBlock*>(memory)->flag.store(0);
      break;
    case kBarrier: {
      auto* block = static_cast<BarrierBlock*>(memory);
      block->parties = static_cast<uint32_t>(arg);
      block->count = 0;
      block->broken.store(0);
      block->failed_generations.store(0);
      InitRobustMutex(env, &block->guard, PTHREAD_MUTEX_ERRORCHECK);
      break;
    }
    case kCondition:
      static_cast<ConditionBlock*>(memory)->waiting.store(0);
      static_cast<ConditionBlock*>(memory)->permits.store(0);
      static_cast<ConditionBlock*>(memory)->notified_at.store(0);
      break;
  }
  Seal(header);
}

// syncKind(buffer): the kind of a primitive segment (large enough for it), or 0.
Napi::Value SyncKind(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) NotAPrimitive(info.Env());
  Napi::ArrayBuffer buffer = info[0].As<Napi::ArrayBuffer>();
  if (buffer.ByteLength() < sizeof(Header)) return Int(info.Env(), 0);
  const Header* header = static_cast<const Header*>(buffer.Data());
  if (__atomic_load_n(&header->magic, __ATOMIC_ACQUIRE) != kMagic) return Int(info.Env(), 0);
  size_t needed = BlockSize(header->kind);
  return Int(info.Env(), needed != 0 && buffer.ByteLength() >= needed ? header->kind : 0);
}

// ---- Mutex and RLock ----

// The owner's tid sits in the low bits of glibc's lock word.
pid_t OwnerOf(const pthread_mutex_t& mutex) {
  return __atomic_load_n(&mutex.__data.__lock, __ATOMIC_ACQUIRE) & FUTEX_TID_MASK;
}

}  // namespace

bool HeldRobustMutexIn(const void* segment) {
  const Header* header = static_cast<const Header*>(segment);
  if (__atomic_load_n(&header->magic, __ATOMIC_ACQUIRE) != kMagic) return false;
  if (header->kind != kMutex && header->kind != kRLock) return false;  // a barrier's guard is never held across calls
  pid_t owner = OwnerOf(reinterpret_cast<const MutexBlock*>(header)->mutex);
  // Held by a thread of this process that is still alive (tgkill with signal 0 only checks).
  return owner != 0 && (owner == gettid() || syscall(SYS_tgkill, getpid(), owner, 0) == 0);
}

namespace {

// mutexAcquire(buffer, timeoutMs): 0 acquired, 1 acquired from a dead owner, -1 not acquired.
Napi::Value MutexAcquire(const Napi::CallbackInfo& info) {
  MutexBlock* block = BlockOf<MutexBlock>(info, kMutex, kRLock);
  Deadline deadline(ArgTimeout(info, 1));
  int r;
  if (deadline.forever()) {
    r = pthread_mutex_lock(&block->mutex);
  } else {
    // Not trylock: on a robust mutex made unrecoverable, glibc's trylock answers
    // ENOTRECOVERABLE but leaves the lock word set to the caller's tid, and every later
    // attempt by others then finds it busy for ever (glibc 2.36, pthread_mutex_trylock.c).
    // A lock with a deadline already passed (the epoch) tries once, through the same code
    // as a blocking lock.
    r = pthread_mutex_clocklock(&block->mutex, CLOCK_MONOTONIC, &deadline.at);
  }
  switch (r) {
    case 0: return Int(info.Env(), 0);
    case EOWNERDEAD: return Int(info.Env(), 1);
    case EBUSY: case ETIMEDOUT: return Int(info.Env(), -1);
    default: ThrowErrno(info.Env(), r, "pthread_mutex_lock");
  }
}

void MutexRelease(const Napi::CallbackInfo& info) {
  MutexBlock* block = BlockOf<MutexBlock>(info, kMutex, kRLock);
  Check(info.Env(), pthread_mutex_unlock(&block->mutex), "pthread_mutex_unlock");
  Published(block->header);
}

void MutexConsistent(const Napi::CallbackInfo& info) {
  MutexBlock* block = BlockOf<MutexBlock>(info, kMutex, kRLock);
  Check(info.Env(), pthread_mutex_consistent(&block->mutex), "pthread_mutex_consistent");
}

// Whether some thread holds the mutex, read from the lock word without taking it (an
// attempt would take over a dead owner's mutex). When the owner dies, the kernel clears its
// tid from the word and sets FUTEX_OWNER_DIED, which stays until the next owner takes it: the
// mutex is still taken, as CPython's lock stays taken when its holder dies.
Napi::Value MutexLocked(const Napi::CallbackInfo& info) {
  MutexBlock* block = BlockOf<MutexBlock>(info, kMutex, kRLock);
  int word = __atomic_load_n(&block->mutex.__data.__lock, __ATOMIC_ACQUIRE);
  return Napi::Boolean::New(info.Env(), (word & (FUTEX_TID_MASK | FUTEX_OWNER_DIED)) != 0);
}

// ---- RWLock ----

// rwlockAcquire(buffer, write, timeoutMs): 0 acquired, -1 not.
Napi::Value RWLockAcquire(const Napi::CallbackInfo& info) {
  RWLockBlock* block = BlockOf<RWLockBlock>(info, kRWLock);
  bool write = info[1].ToBoolean().Value();
  Deadline deadline(ArgTimeout(info, 2));
  pthread_rwlock_t* rw = &block->rwlock;
  int r;
  if (deadline.none()) {
    r = write ? pthread_rwlock_trywrlock(rw) : pthread_rwlock_tryrdlock(rw);
  } else if (deadline.forever()) {
    r = write ? pthread_rwlock_wrlock(rw) : pthread_rwlock_rdlock(rw);
  } else {
    r = write ? pthread_rwlock_clockwrlock(rw, CLOCK_MONOTONIC, &deadline.at)
              : pthread_rwlock_clockrdlock(rw, CLOCK_MONOTONIC, &deadline.at);
  }
  if (r == 0) return Int(info.Env(), 0);
  if (r == EBUSY || r == ETIMEDOUT) return Int(info.Env(), -1);
  ThrowErrno(info.Env(), r, write ? "pthread_rwlock_wrlock" : "pthread_rwlock_rdlock");
}

void RWLockRelease(const Napi::CallbackInfo& info) {
  RWLockBlock* block = BlockOf<RWLockBlock>(info, kRWLock);
  Check(info.Env(), pthread_rwlock_unlock(&block->rwlock), "pthread_rwlock_unlock");
  Published(block->header);
}

// ---- Semaphore ----

// semAcquire(buffer, timeoutMs): 0 acquired, -1 not.
Napi::Value SemAcquire(const Napi::CallbackInfo& info) {
  SemaphoreBlock* block = BlockOf<SemaphoreBlock>(info, kSemaphore);
  Deadline deadline(ArgTimeout(info, 1));
  int r;
  if (deadline.none()) {
    r = sem_trywait(&block->sem);
  } else if (deadline.forever()) {
    r = RetryOnEintr([&] { return sem_wait(&block->sem); });
  } else {
    r = RetryOnEintr([&] { return sem_clockwait(&block->sem, CLOCK_MONOTONIC, &deadline.at); });
  }
  if (r == 0) return Int(info.Env(), 0);
  if (errno == EAGAIN || errno == ETIMEDOUT) return Int(info.Env(), -1);
  ThrowErrno(info.Env(), errno, "sem_wait");
}

// semRelease(buffer, n): false, posting nothing, when n more would pass the bound.
// Like CPython's BoundedSemaphore, the checks and the posts are not one atomic step.
Napi::Value SemRelease(const Napi::CallbackInfo& info) {
  SemaphoreBlock* block = BlockOf<SemaphoreBlock>(info, kSemaphore);
  int32_t n = ArgInt32(info, 1);
  int value = 0;
  sem_getvalue(&block->sem, &value);
  if (block->max >= 0 && static_cast<int64_t>(value) + n > block->max) {
    return Napi::Boolean::New(info.Env(), false);
  }
  // All or nothing: not some of the posts before EOVERFLOW.
  if (static_cast<int64_t>(value) + n > SEM_VALUE_MAX) ThrowErrno(info.Env(), EOVERFLOW, "sem_post");
  for (int32_t i = 0; i < n; i++) {
    if (sem_post(&block->sem) == -1) ThrowErrno(info.Env(), errno, "sem_post");
  }
  Published(block->header);
  return Napi::Boolean::New(info.Env(), true);
}

Napi::Value SemValue(const Napi::CallbackInfo& info) {
  SemaphoreBlock* block = BlockOf<SemaphoreBlock>(info, kSemaphore);
  int value = 0;
  sem_getvalue(&block->sem, &value);
  return Int(info.Env(), value < 0 ? 0 : value);
}

// ---- Event ----

void EventSet(const Napi::CallbackInfo& info) {
  EventBlock* block = BlockOf<EventBlock>(info, kEvent);
  block->flag.store(1);
  block->header.seq.fetch_add(1);
  Wake(block->header.seq);  // synchronous waiters sleep on seq too
}

void EventClear(const Napi::CallbackInfo& info) { BlockOf<EventBlock>(info, kEvent)->flag.store(0); }

Napi::Value EventIsSet(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), BlockOf<EventBlock>(info, kEvent)->flag.load() != 0);
}

// eventWait(buffer, timeoutMs): whether the flag was set, or set() was called meanwhile (as
// in CPython, a set() followed at once by clear() still wakes the waiters). Only set()
// changes an Event's seq.
Napi::Value EventWait(const Napi::CallbackInfo& info) {
  EventBlock* block = BlockOf<EventBlock>(info, kEvent);
  Deadline deadline(ArgTimeout(info, 1));
  uint32_t start = block->header.seq.load();
  for (;;) {
    uint32_t seen = block->header.seq.load();
    if (block->flag.load() != 0 || seen != start) return Napi::Boolean::New(info.Env(), true);
    if (deadline.none() || !FutexWaitUntil(block->header.seq, seen, deadline)) {
      return Napi::Boolean::New(info.Env(), block->flag.load() != 0 || block->header.seq.load() != start);
    }
  }
}

// ---- Barrier ----

// Takes the barrier's guard; a party that died holding it leaves the barrier broken.
class BarrierGuard {
 public:
  BarrierGuard(Napi::Env env, BarrierBlock* block) : block_(block) {
    int r = pthread_mutex_lock(&block->guard);
    if (r == EOWNERDEAD) {
      block->broken.store(1);
      r = pthread_mutex_consistent(&block->guard);
      if (r != 0) pthread_mutex_unlock(&block->guard);
    }
    Check(env, r, "pthread_mutex_lock");
  }
  ~BarrierGuard() { pthread_mutex_unlock(&block_->guard); }

  // Starts the next generation: by the last arrival, or as a failure of the current one
  // (whose waiters then see the barrier broken).
  void NextGeneration(bool failed) {
    uint32_t current = block_->header.seq.load();
    uint64_t mask = block_->failed_generations.load() & ~Bit(current + 1);
    block_->failed_generations.store(failed ? mask | Bit(current) : mask & ~Bit(current));
    block_->count = 0;
    block_->header.seq.fetch_add(1);
    Wake(block_->header.seq);
  }
  void FailGeneration() { NextGeneration(true); }

  static uint64_t Bit(uint32_t generation) { return uint64_t{1} << (generation % 64); }

 private:
  BarrierBlock* block_;
};

// barrierArrive(buffer): [index, generation], or null when the barrier is broken. The last
// party's arrival starts the next generation.
Napi::Value BarrierArrive(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BarrierBlock* block = BlockOf<BarrierBlock>(info, kBarrier);
  BarrierGuard guard(env, block);
  if (block->broken.load() != 0) return env.Null();
  uint32_t generation = block->header.seq.load();
  uint32_t index = block->count++;
  if (block->count == block->parties) guard.NextGeneration(false);
  Napi::Array out = Napi::Array::New(env, 2);
  out[0u] = Int(env, index);
  out[1u] = Int(env, generation);
  return out;
}

// barrierPoll(buffer, generation): 0 still waiting, 1 passed, 2 broken.
int BarrierOutcome(BarrierBlock* block, uint32_t generation) {
  if (block->header.seq.load() == generation) return 0;
  return (block->failed_generations.load() & BarrierGuard::Bit(generation)) != 0 ? 2 : 1;
}

Napi::Value BarrierPoll(const Napi::CallbackInfo& info) {
  BarrierBlock* block = BlockOf<BarrierBlock>(info, kBarrier);
  return Int(info.Env(), BarrierOutcome(block, info[1].ToNumber().Uint32Value()));
}

// barrierWait(buffer, generation, timeoutMs): as barrierPoll, after waiting.
Napi::Value BarrierWait(const Napi::CallbackInfo& info) {
  BarrierBlock* block = BlockOf<BarrierBlock>(info, kBarrier);
  uint32_t generation = info[1].ToNumber().Uint32Value();
  Deadline deadline(ArgTimeout(info, 2));
  while (BarrierOutcome(block, generation) == 0 && !deadline.none() &&
         FutexWaitUntil(block->header.seq, generation, deadline)) {
  }
  return Int(info.Env(), BarrierOutcome(block, generation));
}

// barrierBreak(buffer, generation): breaks the barrier if that generation is still waiting
// (a waiter timed out). Returns the generation's outcome afterwards.
Napi::Value BarrierBreak(const Napi::CallbackInfo& info) {
  BarrierBlock* block = BlockOf<BarrierBlock>(info, kBarrier);
  uint32_t generation = info[1].ToNumber().Uint32Value();
  BarrierGuard guard(info.Env(), block);
  if (block->header.seq.load() == generation) {
    block->broken.store(1);
    guard.FailGeneration();
  }
  return Int(info.Env(), BarrierOutcome(block, generation));
}

void BarrierAbort(const Napi::CallbackInfo& info) {
  BarrierBlock* block = BlockOf<BarrierBlock>(info, kBarrier);
  BarrierGuard guard(info.Env(), block);
  block->broken.store(1);
  if (block->count > 0) guard.FailGeneration();
}

void BarrierReset(const Napi::CallbackInfo& info) {
  BarrierBlock* block = BlockOf<BarrierBlock>(info, kBarrier);
  BarrierGuard guard(info.Env(), block);
  if (block->count > 0) guard.FailGeneration();
  block->broken.store(0);
}

// barrierState(buffer): [parties, waiting, broken].
Napi::Value BarrierState(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  BarrierBlock* block = BlockOf<BarrierBlock>(info, kBarrier);
  BarrierGuard guard(env, block);
  Napi::Array out = Napi::Array::New(env, 3);
  out[0u] = Int(env, block->parties);
  out[1u] = Int(env, block->count);
  out[2u] = Napi::Boolean::New(env, block->broken.load() != 0);
  return out;
}

// ---- Condition (the caller holds the condition's lock where noted) ----

// condPrepare(buffer): counts a new waiter (lock held, just before releasing it); returns
// the waiter's ticket.
Napi::Value CondPrepare(const Napi::CallbackInfo& info) {
  ConditionBlock* block = BlockOf<ConditionBlock>(info, kCondition);
  block->waiting.fetch_add(1);
  return Int(info.Env(), block->header.seq.load());
}

bool ClaimPermit(ConditionBlock* block, uint32_t ticket) {
  if (static_cast<int32_t>(block->notified_at.load() - ticket) <= 0) return false;
  uint32_t permits = block->permits.load();
  while (permits != 0) {
    if (block->permits.compare_exchange_weak(permits, permits - 1)) return true;
  }
  return false;
}

// condWait(buffer, ticket, timeoutMs): whether a notification was claimed (lock not held).
// With a timeout of 0 it only tries to claim one.
Napi::Value CondWait(const Napi::CallbackInfo& info) {
  ConditionBlock* block = BlockOf<ConditionBlock>(info, kCondition);
  uint32_t ticket = info[1].ToNumber().Uint32Value();
  Deadline deadline(ArgTimeout(info, 2));
  for (;;) {
    uint32_t seen = block->header.seq.load();
    if (ClaimPermit(block, ticket)) return Napi::Boolean::New(info.Env(), true);
    if (deadline.none() || !FutexWaitUntil(block->header.seq, seen, deadline)) {
      return Napi::Boolean::New(info.Env(), ClaimPermit(block, ticket));
    }
  }
}

// condGiveUp(buffer, ticket): a waiter that timed out (lock held again) leaves: if a
// notification arrived meanwhile it takes it (true), otherwise it stops being counted.
Napi::Value CondGiveUp(const Napi::CallbackInfo& info) {
  ConditionBlock* block = BlockOf<ConditionBlock>(info, kCondition);
  if (ClaimPermit(block, info[1].ToNumber().Uint32Value())) return Napi::Boolean::New(info.Env(), true);
  if (block->waiting.load() > 0) block->waiting.fetch_sub(1);
  return Napi::Boolean::New(info.Env(), false);
}

// condNotify(buffer, n): wakes up to n waiters (lock held); returns how many.
Napi::Value CondNotify(const Napi::CallbackInfo& info) {
  ConditionBlock* block = BlockOf<ConditionBlock>(info, kCondition);
  double n = info[1].ToNumber().DoubleValue();
  uint32_t waiting = block->waiting.load();
  uint32_t woken = n >= waiting ? waiting : static_cast<uint32_t>(n);
  if (woken > 0) {
    block->waiting.fetch_sub(woken);
    block->permits.fetch_add(woken);
    // notified_at before seq (only a notify moves seq, under the lock): a waiter that sees
    // the new seq must see the permit is claimable, or it sleeps on that seq after the Wake.
    uint32_t next = block->header.seq.load() + 1;
    block->notified_at.store(next);
    block->header.seq.store(next);
    Wake(block->header.seq);
  }
  return Int(info.Env(), woken);
}

// ---- the helper of asynchronous waits ----

// SeqWatch(buffer, seenSeq, sliceMs, callback): a thread sleeps while the primitive's seq
// still reads seenSeq, for at most sliceMs (capped), then calls back on the loop once.
class SeqWatch : public Napi::ObjectWrap<SeqWatch> {
 public:
  static constexpr double kMaxSliceMs = 250;

  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "SeqWatch", {InstanceMethod("cancel", &SeqWatch::Cancel)});
  }

  explicit SeqWatch(const Napi::CallbackInfo& info) : Napi::ObjectWrap<SeqWatch>(info) {
    Napi::Env env = info.Env();
    Header* header = HeaderOf(info, sizeof(Header));
    uint32_t seen = info[1].ToNumber().Uint32Value();
    double slice = std::min(ArgTimeout(info, 2), kMaxSliceMs);
    if (slice < 0) slice = kMaxSliceMs;
    if (info.Length() < 4 || !info[3].IsFunction()) {
      throw Napi::TypeError::New(env, "forkwise native: callback must be a function");
    }
    auto state = std::make_shared<State>();
    state->header = header;
    state->mapping = PinMapping(env, header);  // the thread's own hold on the memory
    if (!state->mapping) NotAPrimitive(env);
    // The finalizer runs when the function is done with, or when the environment is torn
    // down first (a worker ending): then the thread must not call it any more.
    state->notify = Napi::ThreadSafeFunction::New(
        env, info[3].As<Napi::Function>(), "forkwise.sync.wait", 0, 1, [state](Napi::Env) {
          std::lock_guard<std::mutex> guard(state->gate);
          state->env_gone = true;
        });
    state->owner = this;
    state_ = state;
    Ref();
    header->async_waiters.fetch_add(1);
    try {
      StartThread(state, seen, slice);
    } catch (const std::system_error& error) {  // no thread to be had (EAGAIN)
      header->async_waiters.fetch_sub(1);
      state->notify.Release();
      state_.reset();
      Unref();
      ThrowErrno(env, error.code().value(), "pthread_create");
    }
  }

  ~SeqWatch() {
    if (state_) state_->owner = nullptr;
  }

 private:
  struct State;

  static void StartThread(std::shared_ptr<State> state, uint32_t seen, double slice) {
    std::thread([state, seen, slice] {
      FutexWaitUntil(state->header->seq, seen, Deadline(slice));
      state->header->async_waiters.fetch_sub(1);
      std::lock_guard<std::mutex> guard(state->gate);
      if (state->env_gone) return;
      state->notify.BlockingCall([state](Napi::Env env, Napi::Function callback) {
        if (state->owner) state->owner->Finish();
        if (!state->cancelled) CallBack(env, callback);
      });
      state->notify.Release();
    }).detach();
  }

  // Shared with the thread. `cancelled` and `owner` are only touched on the loop.
  struct State {
    Header* header = nullptr;
    std::shared_ptr<void> mapping;
    Napi::ThreadSafeFunction notify;
    std::mutex gate;
    bool env_gone = false;
    bool cancelled = false;
    SeqWatch* owner = nullptr;
  };

  // On the loop, once the thread has called back.
  void Finish() {
    state_->owner = nullptr;
    state_.reset();
    Unref();
  }

  // The thread still sleeps: wake it (and any other sleeper, which re-checks) and stop
  // holding the loop open for it.
  void Cancel(const Napi::CallbackInfo& info) {
    if (!state_ || state_->cancelled) return;
    state_->cancelled = true;
    state_->notify.Unref(info.Env());
    Wake(state_->header->seq);
  }

  std::shared_ptr<State> state_;
};

}  // namespace

void InitSync(Napi::Env env, Napi::Object exports) {
  exports["syncInit"] = Napi::Function::New(env, SyncInit, "syncInit");
  exports["syncKind"] = Napi::Function::New(env, SyncKind, "syncKind");
  exports["mutexAcquire"] = Napi::Function::New(env, MutexAcquire, "mutexAcquire");
  exports["mutexRelease"] = Napi::Function::New(env, MutexRelease, "mutexRelease");
  exports["mutexConsistent"] = Napi::Function::New(env, MutexConsistent, "mutexConsistent");
  exports["mutexLocked"] = Napi::Function::New(env, MutexLocked, "mutexLocked");
  exports["rwlockAcquire"] = Napi::Function::New(env, RWLockAcquire, "rwlockAcquire");
  exports["rwlockRelease"] = Napi::Function::New(env, RWLockRelease, "rwlockRelease");
  exports["semAcquire"] = Napi::Function::New(env, SemAcquire, "semAcquire");
  exports["semRelease"] = Napi::Function::New(env, SemRelease, "semRelease");
  exports["semValue"] = Napi::Function::New(env, SemValue, "semValue");
  exports["eventSet"] = Napi::Function::New(env, EventSet, "eventSet");
  exports["eventClear"] = Napi::Function::New(env, EventClear, "eventClear");
  exports["eventIsSet"] = Napi::Function::New(env, EventIsSet, "eventIsSet");
  exports["eventWait"] = Napi::Function::New(env, EventWait, "eventWait");
  exports["barrierArrive"] = Napi::Function::New(env, BarrierArrive, "barrierArrive");
  exports["barrierPoll"] = Napi::Function::New(env, BarrierPoll, "barrierPoll");
  exports["barrierWait"] = Napi::Function::New(env, BarrierWait, "barrierWait");
  exports["barrierBreak"] = Napi::Function::New(env, BarrierBreak, "barrierBreak");
  exports["barrierAbort"] = Napi::Function::New(env, BarrierAbort, "barrierAbort");
  exports["barrierReset"] = Napi::Function::New(env, BarrierReset, "barrierReset");
  exports["barrierState"] = Napi::Function::New(env, BarrierState, "barrierState");
  exports["condPrepare"] = Napi::Function::New(env, CondPrepare, "condPrepare");
  exports["condWait"] = Napi::Function::New(env, CondWait, "condWait");
  exports["condGiveUp"] = Napi::Function::New(env, CondGiveUp, "condGiveUp");
  exports["condNotify"] = Napi::Function::New(env, CondNotify, "condNotify");
  exports["SeqWatch"] = SeqWatch::Define(env);
  exports["syncSeq"] = Napi::Function::New(
      env,
      [](const Napi::CallbackInfo& info) -> Napi::Value {
        return Int(info.Env(), HeaderOf(info, sizeof(Header))->seq.load());
      },
      "syncSeq");
}

}  // namespace forkwise
