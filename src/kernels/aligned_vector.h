#pragma once
// std::vector on 64-byte (cache-line) aligned storage, for the kernels' scratch buffers: decoded
// panels and arranged activations are read with 64-byte vector loads, and a load that straddles
// two cache lines costs about twice as much. glibc's malloc aligns to 16 bytes only; with
// misaligned panels the BF16 pair products on FMAs ran at half speed (docs/performance.md).
#include <cstddef>
#include <cstdlib>
#include <new>
#include <vector>

namespace v4::kernels {

template <class T>
struct CacheLineAllocator {
  using value_type = T;
  static constexpr std::size_t kAlign = 64;

  CacheLineAllocator() = default;
  template <class U>
  CacheLineAllocator(const CacheLineAllocator<U>&) {}

  T* allocate(std::size_t n) {
    const std::size_t bytes = (n * sizeof(T) + kAlign - 1) / kAlign * kAlign;
    void* p = std::aligned_alloc(kAlign, bytes == 0 ? kAlign : bytes);
    if (!p) throw std::bad_alloc();
    return static_cast<T*>(p);
  }
  void deallocate(T* p, std::size_t) { std::free(p); }
  template <class U>
  bool operator==(const CacheLineAllocator<U>&) const {
    return true;
  }
};

template <class T>
using AlignedVector = std::vector<T, CacheLineAllocator<T>>;

}  // namespace v4::kernels
