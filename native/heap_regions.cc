// Which regions are MADV_DONTFORK can only be read from the VmFlags of /proc/self/smaps, and
// reading smaps is slow (the kernel walks the page tables of every mapping: ~2.6 ms at 125 MB
// RSS). /proc/self/maps lists the same mappings without the walk and costs a fraction of it.
// So smaps is read only when maps shows a mapping that the last smaps scan did not see
// (same start, end and permissions); otherwise the cached list of DONTFORK ranges is used.
// A new V8 page is a new mapping, so it always triggers a rescan: no region is ever missed.
//
// Marking hundreds of ranges DOFORK before fork and DONTFORK after costs two madvise calls
// each (~1.5 ms for 435 ranges at 100 MB of heap). So the marks are lifted once and put back
// by Restore(), which the TypeScript side calls on the next turn of the event loop: forks
// made in a row pay for neither, and Node's later child_process.spawn calls find the heap
// marked as Node left it (spawn forks too, and would otherwise copy the heap's page tables).
#include "heap_regions.h"

#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

namespace forkwise {

// Reads a whole /proc file. /proc files must be read in one pass with read(2).
int ReadProcFile(const char* path, std::string* out) {
  int fd;
  do fd = open(path, O_RDONLY | O_CLOEXEC);
  while (fd == -1 && errno == EINTR);
  if (fd == -1) return errno;
  out->clear();
  char buf[65536];
  for (;;) {
    ssize_t n = read(fd, buf, sizeof(buf));
    if (n == -1 && errno == EINTR) continue;
    if (n == -1) {
      int err = errno;
      close(fd);
      return err;
    }
    if (n == 0) break;
    out->append(buf, static_cast<size_t>(n));
  }
  close(fd);
  return 0;
}

namespace {

uintptr_t ParseHex(const char** p) {
  uintptr_t value = 0;
  for (;;) {
    char c = **p;
    int digit;
    if (c >= '0' && c <= '9') digit = c - '0';
    else if (c >= 'a' && c <= 'f') digit = c - 'a' + 10;
    else break;
    value = value * 16 + static_cast<uintptr_t>(digit);
    (*p)++;
  }
  return value;
}

// Parses "start-end perms ..." at the start of a maps/smaps mapping line.
bool ParseMappingLine(const char* line, uintptr_t* start, uintptr_t* end, uint32_t* perms) {
  const char* p = line;
  *start = ParseHex(&p);
  if (*p != '-') return false;
  p++;
  *end = ParseHex(&p);
  if (*p != ' ') return false;
  p++;
  if (strnlen(p, 4) < 4) return false;
  memcpy(perms, p, 4);
  return *end > *start;
}

}  // namespace

int DontForkRegions::ReadMaps(std::vector<Vma>* vmas) {
  static thread_local std::string text;
  int err = ReadProcFile("/proc/self/maps", &text);
  if (err) return err;
  vmas->clear();
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    Vma vma;
    if (ParseMappingLine(text.c_str() + pos, &vma.start, &vma.end, &vma.perms)) {
      vmas->push_back(vma);
    }
    pos = eol + 1;
  }
  return 0;
}

int DontForkRegions::ScanSmaps() {
  std::string text;
  int err = ReadProcFile("/proc/self/smaps", &text);
  if (err) return err;
  smaps_scans_++;
  known_.clear();
  dontfork_.clear();
  Vma current{0, 0, 0};
  bool have_current = false;
  size_t pos = 0;
  while (pos < text.size()) {
    size_t eol = text.find('\n', pos);
    if (eol == std::string::npos) eol = text.size();
    std::string line = text.substr(pos, eol - pos);
    pos = eol + 1;
    Vma vma;
    if (ParseMappingLine(line.c_str(), &vma.start, &vma.end, &vma.perms)) {
      current = vma;
      have_current = true;
      known_.push_back(vma);
      continue;
    }
    if (!have_current || line.compare(0, 8, "VmFlags:") != 0) continue;
    // Flags are two-letter words separated by spaces; "dc" is VM_DONTCOPY.
    if ((line + " ").find(" dc ") == std::string::npos) continue;
    if (!dontfork_.empty() && dontfork_.back().end == current.start) {
      dontfork_.back().end = current.end;
    } else {
      dontfork_.push_back({current.start, current.end});
    }
  }
  std::sort(known_.begin(), known_.end());
  return 0;
}

bool DontForkRegions::CacheCovers(const std::vector<Vma>& vmas) const {
  for (const Vma& vma : vmas) {
    auto it = std::lower_bound(known_.begin(), known_.end(), vma);
    if (it == known_.end() || it->start != vma.start || it->end != vma.end ||
        it->perms != vma.perms) {
      return false;
    }
  }
  return true;
}

int DontForkRegions::MakeForkable() {
  int err = ReadMaps(&scratch_);
  if (err) return err;
  if (smaps_scans_ == 0 || !CacheCovers(scratch_)) {
    Restore();  // smaps must show the marks that we lifted
    err = ScanSmaps();
    if (err) return err;
  }
  if (forkable_) return 0;
  forkable_ = true;
  for (const Range& range : dontfork_) {
    // ENOMEM means part of the range is no longer mapped: nothing to copy there.
    if (madvise(reinterpret_cast<void*>(range.start), range.end - range.start,
                MADV_DOFORK) == -1 &&
        errno != ENOMEM) {
      return errno;
    }
  }
  return 0;
}

void DontForkRegions::Restore() {
  if (!forkable_) return;
  forkable_ = false;
  for (const Range& range : dontfork_) {
    madvise(reinterpret_cast<void*>(range.start), range.end - range.start, MADV_DONTFORK);
  }
}

}  // namespace forkwise
