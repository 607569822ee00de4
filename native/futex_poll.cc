// FutexPoll(buffer, offset, callback): the event loop waits on a futex word of a shared
// mapping itself, with no thread in between: an io_uring (Linux 6.7 and later) holds an
// IORING_OP_FUTEX_WAIT on the word, and the loop polls the ring's descriptor (uv_poll), so
// a writer's FUTEX_WAKE costs one kernel wake-up: the loop's. The same interface as
// FutexWatcher (futex.cc), which it replaces where the kernel has it (`futexPollSupported`).
//
// Measured in C on this 2-vCPU VM (µs per round trip, the peer blocking in FUTEX_WAIT and
// answering after 10 / 50 µs of work, medians of 5): a thread that FUTEX_WAITs and then
// signals the loop (FutexWatcher's way) 102 / 159; an eventfd the peer writes 22 / 149; the
// io_uring futex wait 13.5 / 141. Each extra wake-up is one of an idle vCPU.
//
// - arm(expected, timeoutMs): submits the futex wait, linked to a timeout (-1: none); when
//   either ends, the loop calls `callback` once. Each arm has a generation, and completions
//   of an older one are dropped. The handle holds the loop open only while armed.
// - close(): closing the ring's descriptor cancels what it holds.
// - abandon(): in a forked child. The ring is the parent's (its memory is shared with it):
//   the child stops polling it and closes its descriptor, without touching the ring.
// The ring's descriptor is close-on-exec (io_uring's always are).
#include <linux/futex.h>
#include <linux/io_uring.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>

#include "common.h"

namespace forkwise {
namespace {

constexpr uint8_t kOpFutexWait = 51;  // IORING_OP_FUTEX_WAIT (Linux 6.7), newer than some headers
constexpr uint32_t kFutex2SizeU32 = 0x02;

struct Ring {
  int fd = -1;
  void* sq = MAP_FAILED;
  size_t sq_size = 0;
  void* cq = MAP_FAILED;
  size_t cq_size = 0;
  io_uring_sqe* sqes = static_cast<io_uring_sqe*>(MAP_FAILED);
  size_t sqes_size = 0;
  std::atomic<unsigned>* sq_tail = nullptr;
  unsigned* sq_array = nullptr;
  unsigned sq_mask = 0;
  std::atomic<unsigned>* cq_head = nullptr;
  std::atomic<unsigned>* cq_tail = nullptr;
  unsigned cq_mask = 0;
  io_uring_cqe* cqes = nullptr;

  // Unmaps and closes (the memory is this process's mapping only).
  void Release() {
    if (sqes != MAP_FAILED) munmap(sqes, sqes_size);
    if (cq != MAP_FAILED && cq != sq) munmap(cq, cq_size);
    if (sq != MAP_FAILED) munmap(sq, sq_size);
    if (fd >= 0) close(fd);
    sqes = static_cast<io_uring_sqe*>(MAP_FAILED);
    cq = sq = MAP_FAILED;
    fd = -1;
  }

  // 0 or an errno.
  int Setup() {
    io_uring_params params;
    std::memset(&params, 0, sizeof params);
    fd = static_cast<int>(syscall(__NR_io_uring_setup, 4, &params));
    if (fd < 0) return errno;
    sq_size = params.sq_off.array + params.sq_entries * sizeof(unsigned);
    cq_size = params.cq_off.cqes + params.cq_entries * sizeof(io_uring_cqe);
    bool single = (params.features & IORING_FEAT_SINGLE_MMAP) != 0;
    if (single) sq_size = cq_size = std::max(sq_size, cq_size);
    sq = mmap(nullptr, sq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
    if (sq == MAP_FAILED) return Fail();
    cq = single ? sq : mmap(nullptr, cq_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_CQ_RING);
    if (cq == MAP_FAILED) return Fail();
    sqes_size = params.sq_entries * sizeof(io_uring_sqe);
    sqes = static_cast<io_uring_sqe*>(
        mmap(nullptr, sqes_size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES));
    if (sqes == MAP_FAILED) return Fail();
    auto* s = static_cast<char*>(sq);
    auto* c = static_cast<char*>(cq);
    sq_tail = reinterpret_cast<std::atomic<unsigned>*>(s + params.sq_off.tail);
    sq_array = reinterpret_cast<unsigned*>(s + params.sq_off.array);
    sq_mask = *reinterpret_cast<unsigned*>(s + params.sq_off.ring_mask);
    cq_head = reinterpret_cast<std::atomic<unsigned>*>(c + params.cq_off.head);
    cq_tail = reinterpret_cast<std::atomic<unsigned>*>(c + params.cq_off.tail);
    cq_mask = *reinterpret_cast<unsigned*>(c + params.cq_off.ring_mask);
    cqes = reinterpret_cast<io_uring_cqe*>(c + params.cq_off.cqes);
    return 0;
  }

  int Fail() {
    int err = errno;
    Release();
    return err;
  }

  io_uring_sqe* Next(unsigned index) {
    unsigned tail = sq_tail->load(std::memory_order_relaxed) + index;
    io_uring_sqe* sqe = &sqes[tail & sq_mask];
    std::memset(sqe, 0, sizeof *sqe);
    sq_array[tail & sq_mask] = tail & sq_mask;
    return sqe;
  }

  // Submits the `n` entries filled with Next(0..n-1); waits for `wait` completions. 0 or errno.
  int Submit(unsigned n, unsigned wait) {
    sq_tail->store(sq_tail->load(std::memory_order_relaxed) + n, std::memory_order_release);
    for (;;) {
      long rc = syscall(__NR_io_uring_enter, fd, n, wait, wait ? IORING_ENTER_GETEVENTS : 0, nullptr, 0);
      if (rc >= 0) return 0;
      if (errno != EINTR) return errno;
      n = 0;  // submitted already; only the wait was interrupted
      if (wait == 0) return 0;
    }
  }

  void PrepareFutexWait(io_uring_sqe* sqe, std::atomic<uint32_t>* word, uint32_t expected, uint64_t user_data) {
    sqe->opcode = kOpFutexWait;
    sqe->fd = kFutex2SizeU32;  // shared (no FUTEX2_PRIVATE): the word is in a shared mapping
    sqe->addr = reinterpret_cast<uint64_t>(word);
    sqe->addr2 = expected;
    sqe->addr3 = FUTEX_BITSET_MATCH_ANY;
    sqe->user_data = user_data;
  }
};

// Whether this kernel lets io_uring wait on a futex: a wait on a word that does not hold the
// expected value completes at once with -EAGAIN (-EINVAL where the operation is unknown).
bool Probe() {
  Ring ring;
  if (ring.Setup() != 0) return false;
  std::atomic<uint32_t> word{1};
  ring.PrepareFutexWait(ring.Next(0), &word, 0, 1);
  bool ok = false;
  if (ring.Submit(1, 1) == 0) {
    unsigned head = ring.cq_head->load(std::memory_order_relaxed);
    if (head != ring.cq_tail->load(std::memory_order_acquire)) {
      ok = ring.cqes[head & ring.cq_mask].res == -EAGAIN;
      ring.cq_head->store(head + 1, std::memory_order_release);
    }
  }
  ring.Release();
  return ok;
}

bool Supported() {
  static const bool supported = Probe();
  return supported;
}

class FutexPoll : public Napi::ObjectWrap<FutexPoll> {
 public:
  static Napi::Function Define(Napi::Env env) {
    return DefineClass(env, "FutexPoll",
                       {InstanceMethod("arm", &FutexPoll::Arm), InstanceMethod("close", &FutexPoll::Close),
                        InstanceMethod("abandon", &FutexPoll::Abandon)});
  }

  explicit FutexPoll(const Napi::CallbackInfo& info) : Napi::ObjectWrap<FutexPoll>(info) {
    Napi::Env env = info.Env();
    if (info.Length() < 3 || !info[0].IsArrayBuffer() || !info[1].IsNumber() || !info[2].IsFunction()) {
      throw Napi::TypeError::New(env, "forkwise native: expected (ArrayBuffer, offset, callback)");
    }
    Napi::ArrayBuffer buffer = info[0].As<Napi::ArrayBuffer>();
    double offset = info[1].As<Napi::Number>().DoubleValue();
    size_t length = buffer.ByteLength();
    if (!(offset >= 0) || std::floor(offset) != offset || static_cast<uint64_t>(offset) % 4 != 0 || length < 4 ||
        offset > static_cast<double>(length - 4)) {
      throw Napi::RangeError::New(env, "forkwise native: futex word outside the buffer");
    }
    auto* base = static_cast<uint8_t*>(buffer.Data());
    std::shared_ptr<void> mapping = PinMapping(env, base);
    if (!mapping) throw Napi::TypeError::New(env, "forkwise native: not a shared memory mapping of this thread");
    word_ = reinterpret_cast<std::atomic<uint32_t>*>(base + static_cast<size_t>(offset));
    state_ = new State();
    state_->mapping = std::move(mapping);  // mapped until the ring that waits on it is closed
    int err = state_->ring.Setup();
    if (err != 0) {
      delete state_;
      state_ = nullptr;
      ThrowErrno(env, err, "io_uring_setup");
    }
    state_->self = this;
    state_->env = env;
    state_->callback = Napi::Persistent(info[2].As<Napi::Function>());
    uv_poll_init(LoopOf(env), &state_->poll, state_->ring.fd);
    state_->poll.data = state_;
    uv_unref(reinterpret_cast<uv_handle_t*>(&state_->poll));
    napi_add_env_cleanup_hook(env, OnEnvGone, state_);
  }

  ~FutexPoll() { Shut(); }

 private:
  struct State {
    Ring ring;
    std::shared_ptr<void> mapping;
    uv_poll_t poll;
    Napi::FunctionReference callback;
    napi_env env = nullptr;
    FutexPoll* self = nullptr;
    uint64_t generation = 0;
    bool armed = false;
    bool polling = false;
  };

  static void OnEnvGone(void* data) {
    auto* state = static_cast<State*>(data);
    if (state->self) state->self->Shut();
  }

  // Stops polling; the loop then frees the handle, the ring and the pin on the mapping.
  void Shut() {
    if (!state_) return;
    State* state = state_;
    state_ = nullptr;
    napi_remove_env_cleanup_hook(state->env, OnEnvGone, state);
    state->callback.Reset();
    state->self = nullptr;
    uv_poll_stop(&state->poll);
    uv_close(reinterpret_cast<uv_handle_t*>(&state->poll), [](uv_handle_t* handle) {
      auto* state = static_cast<State*>(handle->data);
      state->ring.Release();  // closing the descriptor cancels what the ring holds
      delete state;
    });
  }

  static void OnReadable(uv_poll_t* handle, int status, int events) {
    auto* state = static_cast<State*>(handle->data);
    Ring& ring = state->ring;
    bool fired = false;
    unsigned head = ring.cq_head->load(std::memory_order_relaxed);
    unsigned tail = ring.cq_tail->load(std::memory_order_acquire);
    for (; head != tail; head++) {
      const io_uring_cqe& cqe = ring.cqes[head & ring.cq_mask];
      // The futex wait's own completion (even bit) of the current arm; the timeout's
      // (odd) follows it or cancels it.
      if (cqe.user_data == state->generation * 2 && state->armed) fired = true;
    }
    ring.cq_head->store(head, std::memory_order_release);
    if (!fired || state->self == nullptr) return;
    state->armed = false;
    uv_unref(reinterpret_cast<uv_handle_t*>(handle));
    Napi::Env env(state->env);
    Napi::HandleScope scope(env);
    CallBack(env, state->callback.Value(), true);
  }

  void Arm(const Napi::CallbackInfo& info) {
    Napi::Env env = info.Env();
    if (!state_) throw Napi::Error::New(env, "forkwise native: watcher closed");
    if (info.Length() < 2 || !info[0].IsNumber() || !info[1].IsNumber()) {
      throw Napi::TypeError::New(env, "forkwise native: expected (expected, timeoutMs)");
    }
    uint32_t expected = info[0].As<Napi::Number>().Uint32Value();
    double ms = info[1].As<Napi::Number>().DoubleValue();
    Ring& ring = state_->ring;
    uint64_t generation = ++state_->generation;
    io_uring_sqe* wait = ring.Next(0);
    ring.PrepareFutexWait(wait, word_, expected, generation * 2);
    unsigned n = 1;
    __kernel_timespec timeout{};
    if (ms >= 0 && ms < 1e12) {
      wait->flags |= IOSQE_IO_LINK;
      timeout.tv_sec = static_cast<long long>(ms / 1000);
      timeout.tv_nsec = static_cast<long long>(std::fmod(ms, 1000) * 1e6);
      io_uring_sqe* limit = ring.Next(1);
      limit->opcode = IORING_OP_LINK_TIMEOUT;
      limit->addr = reinterpret_cast<uint64_t>(&timeout);
      limit->len = 1;
      limit->user_data = generation * 2 + 1;
      n = 2;
    }
    int err = ring.Submit(n, 0);  // the kernel reads the timeout during the call
    if (err != 0) ThrowErrno(env, err, "io_uring_enter");
    state_->armed = true;
    if (!state_->polling) {
      uv_poll_start(&state_->poll, UV_READABLE, OnReadable);
      state_->polling = true;
    }
    uv_ref(reinterpret_cast<uv_handle_t*>(&state_->poll));  // the loop stays alive while armed
  }

  void Close(const Napi::CallbackInfo&) { Shut(); }

  // In a forked child, before its loop runs: the same, and only this process's mapping of
  // the ring and its descriptor go (the parent's ring goes on).
  void Abandon(const Napi::CallbackInfo&) { Shut(); }

  std::atomic<uint32_t>* word_ = nullptr;
  State* state_ = nullptr;
};

Napi::Value FutexPollSupported(const Napi::CallbackInfo& info) {
  return Napi::Boolean::New(info.Env(), Supported());
}

}  // namespace

void InitFutexPoll(Napi::Env env, Napi::Object exports) {
  exports["futexPollSupported"] = Napi::Function::New(env, FutexPollSupported, "futexPollSupported");
  exports["FutexPoll"] = FutexPoll::Define(env);
}

}  // namespace forkwise
