#pragma once
// Memory in 2 MiB pages, and how much of a mapping the kernel holds in them.
//
// Streaming reads over 4 KiB pages run slower than over 2 MiB ones (on the Xeon measured, 13-14
// against 16.5 GB/s on one core: a TLB miss and page walk every 4 KiB, and the hardware
// prefetchers stop at each 4 KiB boundary), so the weights and the bandwidth bound both care.
// Transparent huge pages are a hint: where the kernel has none to give, the same memory comes in
// 4 KiB pages and page_residency says so.
#include <cstddef>
#include <cstdint>
#include <span>

namespace v4::core {

inline constexpr size_t kHugePageBytes = size_t(2) << 20;

// Private anonymous memory rounded up to whole 2 MiB pages, huge pages asked for
// (madvise(MADV_HUGEPAGE)) before anything touches it. Zero-filled; throws std::bad_alloc.
class HugePageBuffer {
 public:
  HugePageBuffer() = default;
  explicit HugePageBuffer(size_t bytes);
  ~HugePageBuffer();
  HugePageBuffer(HugePageBuffer&& other) noexcept;
  HugePageBuffer& operator=(HugePageBuffer&& other) noexcept;
  HugePageBuffer(const HugePageBuffer&) = delete;
  HugePageBuffer& operator=(const HugePageBuffer&) = delete;

  uint8_t* data() const { return data_; }
  size_t size() const { return size_; }  // the bytes asked for
  size_t mapped_bytes() const { return mapped_; }
  template <class T>
  std::span<T> as() const {
    return {reinterpret_cast<T*>(data_), size_ / sizeof(T)};
  }
  // Makes the memory read-only (weights are never written).
  void seal();

 private:
  uint8_t* data_ = nullptr;
  size_t size_ = 0, mapped_ = 0;
};

// Resident bytes of this process's mappings that overlap [p, p + bytes) and, of those, the bytes
// mapped in 2 MiB pages (AnonHugePages + FilePmdMapped + ShmemPmdMapped), from /proc/self/smaps:
// whole mappings are counted. Zeros where smaps cannot be read.
struct PageResidency {
  uint64_t resident_bytes = 0, huge_bytes = 0;
  PageResidency& operator+=(const PageResidency& o) {
    resident_bytes += o.resident_bytes;
    huge_bytes += o.huge_bytes;
    return *this;
  }
  double huge_share() const { return resident_bytes ? double(huge_bytes) / double(resident_bytes) : 0.0; }
};
PageResidency page_residency(const void* p, size_t bytes);

}  // namespace v4::core
