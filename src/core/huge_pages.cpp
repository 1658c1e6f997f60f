#include "core/huge_pages.h"

#include <sys/mman.h>

#include <cstdio>
#include <cstring>
#include <fstream>
#include <new>
#include <string>
#include <utility>

namespace v4::core {

HugePageBuffer::HugePageBuffer(size_t bytes) : size_(bytes) {
  mapped_ = (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
  if (mapped_ == 0) return;
  void* p = ::mmap(nullptr, mapped_, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) throw std::bad_alloc();
  ::madvise(p, mapped_, MADV_HUGEPAGE);  // a hint: without THP the memory still works, in 4 KiB pages
  data_ = static_cast<uint8_t*>(p);
}

HugePageBuffer::~HugePageBuffer() {
  if (data_) ::munmap(data_, mapped_);
}

HugePageBuffer::HugePageBuffer(HugePageBuffer&& other) noexcept
    : data_(std::exchange(other.data_, nullptr)),
      size_(std::exchange(other.size_, 0)),
      mapped_(std::exchange(other.mapped_, 0)) {}

HugePageBuffer& HugePageBuffer::operator=(HugePageBuffer&& other) noexcept {
  if (this != &other) {
    if (data_) ::munmap(data_, mapped_);
    data_ = std::exchange(other.data_, nullptr);
    size_ = std::exchange(other.size_, 0);
    mapped_ = std::exchange(other.mapped_, 0);
  }
  return *this;
}

void HugePageBuffer::seal() {
  if (data_) ::mprotect(data_, mapped_, PROT_READ);
}

PageResidency page_residency(const void* p, size_t bytes) {
  PageResidency r;
  std::ifstream smaps("/proc/self/smaps");
  if (!smaps || bytes == 0) return r;
  const uintptr_t lo = reinterpret_cast<uintptr_t>(p), hi = lo + bytes;
  bool inside = false;
  std::string line;
  while (std::getline(smaps, line)) {
    unsigned long start = 0, end = 0;
    char dash = 0;
    // A mapping's header line: "start-end perms offset dev inode path"; field lines: "Key: N kB".
    if (std::sscanf(line.c_str(), "%lx%c%lx ", &start, &dash, &end) == 3 && dash == '-') {
      inside = start < hi && end > lo;
      continue;
    }
    if (!inside) continue;
    unsigned long kb = 0;
    char key[64];
    if (std::sscanf(line.c_str(), "%63[^:]: %lu kB", key, &kb) != 2) continue;
    if (std::strcmp(key, "Rss") == 0) r.resident_bytes += uint64_t(kb) << 10;
    if (std::strcmp(key, "AnonHugePages") == 0 || std::strcmp(key, "FilePmdMapped") == 0 ||
        std::strcmp(key, "ShmemPmdMapped") == 0)
      r.huge_bytes += uint64_t(kb) << 10;
  }
  return r;
}

}  // namespace v4::core
