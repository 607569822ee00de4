// What fork() and warmup() ask of V8's garbage collector (policy in src/posix/heap.ts):
// how much the young generation holds, and a full collection through the public API.
#include <node.h>
#include <v8.h>
#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include <cstring>

#include "common.h"

namespace forkwise {

namespace {

// Indices of the young generation's spaces in Isolate::GetHeapSpaceStatistics, found by
// name once: V8 numbers its spaces differently from version to version.
struct YoungSpaces {
  size_t index[2];
  size_t count = 0;
};

const YoungSpaces& FindYoungSpaces(v8::Isolate* isolate) {
  static YoungSpaces spaces = [isolate] {
    YoungSpaces found;
    for (size_t i = 0; i < isolate->NumberOfHeapSpaces() && found.count < 2; i++) {
      v8::HeapSpaceStatistics stats;
      if (!isolate->GetHeapSpaceStatistics(&stats, i)) continue;
      if (strcmp(stats.space_name(), "new_space") == 0 ||
          strcmp(stats.space_name(), "new_large_object_space") == 0) {
        found.index[found.count++] = i;
      }
    }
    return found;
  }();
  return spaces;
}

// Whether V8 has started incremental marking in the main isolate and not finished it with a
// mark-compact yet. A child forked in between inherits the marking and ends it with a full,
// compacting collection of its own (seen with --trace-gc: 113 ms in each child, writing to
// every page it marks or moves). V8's API says so only through GC callbacks: a prologue of
// type kGCTypeIncrementalMarking when marking starts, an epilogue of kGCTypeMarkSweepCompact
// when the collection is done. Registered once, for the main thread (src/posix/heap.ts calls
// watchMarking there when it loads), whose isolate lives as long as the process.
struct MarkingWatch {
  v8::Isolate* isolate = nullptr;
  bool marking = false;
};

MarkingWatch& Marking() {
  static MarkingWatch* watch = new MarkingWatch();
  return *watch;
}

void OnMarkingStart(v8::Isolate*, v8::GCType, v8::GCCallbackFlags, void* data) {
  static_cast<MarkingWatch*>(data)->marking = true;
}

void OnMarkCompactEnd(v8::Isolate*, v8::GCType, v8::GCCallbackFlags, void* data) {
  static_cast<MarkingWatch*>(data)->marking = false;
}

void WatchMarking(const Napi::CallbackInfo&) {
  MarkingWatch& watch = Marking();
  if (watch.isolate != nullptr) return;
  watch.isolate = v8::Isolate::GetCurrent();
  watch.isolate->AddGCPrologueCallback(OnMarkingStart, &watch, v8::kGCTypeIncrementalMarking);
  watch.isolate->AddGCEpilogueCallback(OnMarkCompactEnd, &watch, v8::kGCTypeMarkSweepCompact);
}

bool MarkingInProgress(v8::Isolate* isolate) {
  const MarkingWatch& watch = Marking();
  return watch.isolate == isolate && watch.marking;
}

// Bytes allocated in the young generation (live or not): what the next scavenge would scan.
// One space at a time costs far less than v8.getHeapSpaceStatistics(), which walks them all
// and builds an object per space (~1 µs against ~100 µs here).
Napi::Value YoungGenerationSize(const Napi::CallbackInfo& info) {
  v8::Isolate* isolate = v8::Isolate::GetCurrent();
  const YoungSpaces& spaces = FindYoungSpaces(isolate);
  double used = 0, available = 0;
  for (size_t i = 0; i < spaces.count; i++) {
    v8::HeapSpaceStatistics stats;
    if (!isolate->GetHeapSpaceStatistics(&stats, spaces.index[i])) continue;
    used += static_cast<double>(stats.space_used_size());
    if (strcmp(stats.space_name(), "new_space") == 0) {
      available = static_cast<double>(stats.space_available_size());
    }
  }
  Napi::Object result = Napi::Object::New(info.Env());
  result["used"] = Napi::Number::New(info.Env(), used);
  result["available"] = Napi::Number::New(info.Env(), available);
  result["marking"] = Napi::Boolean::New(info.Env(), MarkingInProgress(isolate));
  return result;
}

// V8's public way to ask for every collectable byte back: repeated full, compacting
// collections (Heap::CollectAllAvailableGarbage). Then the C heap's free memory goes back
// to the system, so that children do not inherit it in their page tables.
void CollectAllGarbage(const Napi::CallbackInfo&) {
  v8::Isolate::GetCurrent()->LowMemoryNotification();
#if defined(__GLIBC__)
  malloc_trim(0);
#endif
}

}  // namespace

void InitHeapGc(Napi::Env env, Napi::Object exports) {
  exports["youngGenerationSize"] = Napi::Function::New(env, YoungGenerationSize, "youngGenerationSize");
  exports["collectAllGarbage"] = Napi::Function::New(env, CollectAllGarbage, "collectAllGarbage");
  exports["watchMarking"] = Napi::Function::New(env, WatchMarking, "watchMarking");
}

}  // namespace forkwise
