// Packs V8's heap pages together in the address space, so that fork() copies few page tables.
//
// V8 asks for each 256 KB heap page at a random address (a hint drawn over the lower 64 TB of
// the address space, x86-64), and Linux honours a hint whenever that range is free. A parent
// holding 90 MB of objects then has ~400 heap mappings in ~400 different gigabytes: fork()
// allocates a page-table page and a page-directory page for each (about 900 pages, each zeroed
// and charged to the memory cgroup), and every child frees them again when it exits. In perf
// that was a third of fork()'s kernel time, and a C program with the same layout forked 1.4x
// slower than one holding the same bytes in one block.
//
// So the addon reserves the free address space where those hints fall: PROT_NONE,
// MAP_NORESERVE mappings (no memory, no commit charge, no page tables, nothing copied by
// fork), made once per process when the addon loads. A hint inside the reservation is not
// free, and Linux places the page where it places any mapping without a hint, next to the
// previous ones: the same parent then has ~40 heap mappings in ~5 gigabytes. V8 takes a hint
// for a hint (it aligns whatever address it gets), so nothing else changes for it. What stays
// out of the reservation: the lowest 64 GB (the brk heap, MAP_32BIT users, V8's code range
// near the node binary), everything above 64 TB (where Linux puts mappings without a hint,
// and the libraries), and every range already mapped (a sanitizer's shadow memory).
// Not made when an address-space limit is set (RLIMIT_AS: the reservation would count
// against it), off x86-64 Linux, or with FORKWISE_HEAP_LAYOUT=random in the environment.
// Heap pages V8 placed before the addon loaded stay where they are.
#include <sys/mman.h>
#include <sys/resource.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <mutex>
#include <string>

#include "common.h"
#include "heap_regions.h"

namespace forkwise {

namespace {

#if defined(__linux__) && defined(__x86_64__)
constexpr uintptr_t kReserveFrom = uintptr_t{64} << 30;  // 64 GB
constexpr uintptr_t kReserveTo = uintptr_t{1} << 46;     // the top of V8's hint range
#endif

uint64_t reserved_bytes = 0;

#if defined(__linux__) && defined(__x86_64__)
// Maps [start, end) PROT_NONE if that range is free. MAP_FIXED_NOREPLACE fails rather than
// replace a mapping made since /proc/self/maps was read (a kernel before 4.17 takes it for a
// hint: a mapping elsewhere is undone).
void ReserveGap(uintptr_t start, uintptr_t end) {
  if (end <= start) return;
  size_t len = end - start;
  void* want = reinterpret_cast<void*>(start);
  void* got = mmap(want, len, PROT_NONE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
  if (got == MAP_FAILED) return;
  if (got != want) {
    munmap(got, len);
    return;
  }
  reserved_bytes += len;
}

void ReserveHintRange() {
  const char* mode = getenv("FORKWISE_HEAP_LAYOUT");
  if (mode != nullptr && strcmp(mode, "random") == 0) return;
  struct rlimit as;
  if (getrlimit(RLIMIT_AS, &as) != 0 || as.rlim_cur != RLIM_INFINITY) return;
  std::string maps;
  if (ReadProcFile("/proc/self/maps", &maps) != 0) return;
  // The gaps between the mappings that lie within [kReserveFrom, kReserveTo).
  uintptr_t cursor = kReserveFrom;
  for (size_t line = 0; line < maps.size() && cursor < kReserveTo;) {
    char* after;
    uintptr_t start = strtoull(maps.c_str() + line, &after, 16);
    uintptr_t end = *after == '-' ? strtoull(after + 1, nullptr, 16) : start;
    if (start > cursor) ReserveGap(cursor, start < kReserveTo ? start : kReserveTo);
    if (end > cursor) cursor = end;
    size_t next = maps.find('\n', line);
    line = next == std::string::npos ? maps.size() : next + 1;
  }
  if (cursor < kReserveTo) ReserveGap(cursor, kReserveTo);
}
#endif

Napi::Value HeapLayout(const Napi::CallbackInfo& info) {
  Napi::Object result = Napi::Object::New(info.Env());
  result["reservedBytes"] = Napi::Number::New(info.Env(), static_cast<double>(reserved_bytes));
  return result;
}

}  // namespace

void InitHeapLayout(Napi::Env env, Napi::Object exports) {
#if defined(__linux__) && defined(__x86_64__)
  static std::once_flag once;
  std::call_once(once, ReserveHintRange);
#endif
  exports["heapLayout"] = Napi::Function::New(env, HeapLayout, "heapLayout");
}

}  // namespace forkwise
