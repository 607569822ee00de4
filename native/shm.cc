// POSIX shared memory segments: shm_open + ftruncate + mmap(MAP_SHARED), handed to JavaScript
// as an ArrayBuffer over the mapping. Naming, ownership and clean-up are policy and live in
// src/sync/shared_memory.ts.
//
// A mapping is let go exactly once: by close() (which first detaches the ArrayBuffer so no
// view can reach the memory again) or by the ArrayBuffer's finalizer, whichever comes first;
// the per-environment set of live mappings decides. It is unmapped when the last holder lets
// go: a helper thread of an asynchronous wait pins the mapping it sleeps on (PinMapping), so
// the memory outlives a worker's teardown until that thread is done with it.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common.h"

namespace forkwise {

namespace {

std::atomic<uint64_t> next_mapping_id{1};

struct Mapping {
  Mapping(void* a, size_t n) : address(a), size(n), id(next_mapping_id++) {}
  Mapping(const Mapping&) = delete;
  Mapping& operator=(const Mapping&) = delete;
  // A robust mutex held by a live thread of this process is linked into that thread's robust
  // list, which glibc and the kernel (when the thread dies) follow through the mutex itself:
  // such a segment stays mapped for good (a worker ending with a lock held, say), so that
  // the holder's death can still be marked in it.
  ~Mapping() {
    if (!HeldRobustMutexIn(address)) munmap(address, size);
  }
  void* const address;
  const size_t size;
  const uint64_t id;  // an address can be mapped again after an unmap: this cannot
};

// What an ArrayBuffer's finalizer needs to let go of its own mapping, and of no other.
struct FinalizeHint {
  std::shared_ptr<Mappings> mappings;
  uint64_t id;
};

}  // namespace

// Mappings made in one environment (main thread or worker) and not let go yet, and the
// names it owns. Only touched on that environment's thread; a Mapping's last reference may
// be dropped on another.
struct Mappings {
  std::unordered_map<void*, std::shared_ptr<Mapping>> live;
  std::vector<std::pair<std::string, pid_t>> owned;  // name, creating process
};

namespace {

// Removes the owned names this process created (a forked child inherits the list, not the
// ownership).
void UnlinkOwned(Mappings& mappings) {
  pid_t self = getpid();
  for (const auto& [name, creator] : mappings.owned) {
    if (creator == self) shm_unlink(name.c_str());
  }
  mappings.owned.clear();
}

std::shared_ptr<Mappings> MappingsOf(Napi::Env env) {
  std::shared_ptr<Mappings>& mappings = Data(env).mappings;
  if (!mappings) {
    mappings = std::make_shared<Mappings>();
    // When the environment ends: also when a worker is terminated, which runs no JavaScript.
    env.AddCleanupHook([held = mappings] { UnlinkOwned(*held); });
  }
  return mappings;
}

void Unmap(Mappings& mappings, void* address) { mappings.live.erase(address); }

// shmOpen(name, create, size, owned): ArrayBuffer. `name` starts with '/'. With `create` the
// segment must not exist (O_EXCL) and gets mode 0600 and `size` bytes; otherwise its size is
// read. An `owned` name is removed when this environment ends (or by shmUnlinkOwned).
Napi::Value ShmOpen(const Napi::CallbackInfo& info) {
  Napi::Env env = info.Env();
  std::string name = ArgString(info, 0);
  bool create = info[1].ToBoolean().Value();
  double wanted = info[2].ToNumber().DoubleValue();
  if (create && !(wanted >= 1 && wanted <= static_cast<double>(SIZE_MAX / 2))) {
    throw Napi::RangeError::New(env, "forkwise native: bad segment size");
  }
  int flags = O_RDWR | O_CLOEXEC | (create ? O_CREAT | O_EXCL : 0);
  int fd = RetryOnEintr([&] { return shm_open(name.c_str(), flags, 0600); });
  if (fd == -1) ThrowErrno(env, errno, "shm_open", name.c_str() + 1);
  size_t size = static_cast<size_t>(wanted);
  int err = 0;
  const char* failed = nullptr;
  if (create) {
    // Reserved now, so that a full /dev/shm is an ENOSPC here rather than a SIGBUS on the
    // first write to a page that tmpfs cannot back.
    do {
      err = posix_fallocate(fd, 0, static_cast<off_t>(size));
    } while (err == EINTR);
    if (err) failed = "posix_fallocate";
  } else {
    struct stat st;
    if (fstat(fd, &st) == -1) {
      err = errno, failed = "fstat";
    } else if (st.st_size <= 0) {
      err = EINVAL, failed = "fstat";  // a segment still being created, or not one of ours
    } else {
      size = static_cast<size_t>(st.st_size);
    }
  }
  void* address = MAP_FAILED;
  if (!failed) {
    address = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (address == MAP_FAILED) err = errno, failed = "mmap";
  }
  close(fd);  // the mapping keeps the segment alive
  if (failed) {
    if (create) shm_unlink(name.c_str());
    ThrowErrno(env, err, failed, name.c_str() + 1);
  }
  std::shared_ptr<Mappings> mappings = MappingsOf(env);
  auto mapping = std::make_shared<Mapping>(address, size);
  mappings->live[address] = mapping;
  if (create && info[3].ToBoolean().Value()) mappings->owned.emplace_back(name, getpid());
  auto* hint = new FinalizeHint{mappings, mapping->id};
  return Napi::ArrayBuffer::New(
      env, address, size,
      [](Napi::Env, void* data, FinalizeHint* hint) {
        auto found = hint->mappings->live.find(data);
        if (found != hint->mappings->live.end() && found->second->id == hint->id) {
          hint->mappings->live.erase(found);
        }
        delete hint;
      },
      hint);
}

// shmUnmap(buffer): detaches the ArrayBuffer and unmaps its memory (idempotent).
void ShmUnmap(const Napi::CallbackInfo& info) {
  if (info.Length() < 1 || !info[0].IsArrayBuffer()) {
    throw Napi::TypeError::New(info.Env(), "forkwise native: argument 0 must be an ArrayBuffer");
  }
  Napi::ArrayBuffer buffer = info[0].As<Napi::ArrayBuffer>();
  void* address = buffer.Data();
  std::shared_ptr<Mappings> mappings = MappingsOf(info.Env());
  if (address == nullptr || mappings->live.count(address) == 0) return;
  buffer.Detach();
  Unmap(*mappings, address);
}

void ShmUnlink(const Napi::CallbackInfo& info) {
  std::string name = ArgString(info, 0);
  auto& owned = MappingsOf(info.Env())->owned;
  owned.erase(std::remove_if(owned.begin(), owned.end(), [&](const auto& entry) { return entry.first == name; }),
              owned.end());
  if (shm_unlink(name.c_str()) == -1) ThrowErrno(info.Env(), errno, "shm_unlink", name.c_str() + 1);
}

void ShmUnlinkOwned(const Napi::CallbackInfo& info) { UnlinkOwned(*MappingsOf(info.Env())); }

}  // namespace

std::shared_ptr<void> PinMapping(Napi::Env env, void* address) {
  std::shared_ptr<Mappings> mappings = MappingsOf(env);
  auto found = mappings->live.find(address);
  return found == mappings->live.end() ? nullptr : found->second;
}

void InitShm(Napi::Env env, Napi::Object exports) {
  exports["shmOpen"] = Napi::Function::New(env, ShmOpen, "shmOpen");
  exports["shmUnmap"] = Napi::Function::New(env, ShmUnmap, "shmUnmap");
  exports["shmUnlink"] = Napi::Function::New(env, ShmUnlink, "shmUnlink");
  exports["shmUnlinkOwned"] = Napi::Function::New(env, ShmUnlinkOwned, "shmUnlinkOwned");
}

}  // namespace forkwise
