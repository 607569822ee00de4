// The memory regions that Node marks MADV_DONTFORK (V8's heap pages and code space), made
// forkable for fork() and marked again afterwards (DESIGN.md facts 1 and 8).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace forkwise {

// Reads a whole /proc file in one pass, as /proc files must be read. Returns 0 or an errno.
int ReadProcFile(const char* path, std::string* out);

class DontForkRegions {
 public:
  // Marks every MADV_DONTFORK region MADV_DOFORK, unless they still are from the last fork.
  // Returns 0 or an errno value.
  int MakeForkable();
  // Marks the same regions MADV_DONTFORK again, if they are not already.
  void Restore();

  // Statistics for tests and benchmarks: how many times /proc/self/smaps was read, and the
  // number of ranges marked by the last MakeForkable.
  uint64_t smaps_scans() const { return smaps_scans_; }
  size_t range_count() const { return dontfork_.size(); }

 private:
  struct Vma {
    uintptr_t start, end;
    uint32_t perms;  // the four permission characters of the maps line
    bool operator<(const Vma& other) const { return start < other.start; }
  };
  struct Range {
    uintptr_t start, end;
  };

  int ReadMaps(std::vector<Vma>* vmas);
  int ScanSmaps();
  bool CacheCovers(const std::vector<Vma>& vmas) const;

  std::vector<Vma> known_;       // every mapping seen by the last smaps scan, sorted
  std::vector<Range> dontfork_;  // coalesced MADV_DONTFORK ranges of that scan
  std::vector<Vma> scratch_;
  uint64_t smaps_scans_ = 0;
  bool forkable_ = false;  // the ranges of dontfork_ are marked MADV_DOFORK right now
};

}  // namespace forkwise
