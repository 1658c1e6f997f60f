#pragma once
// A fast 64-bit hash of bytes, for checksums of cache files and fingerprints of checkpoints. Each
// 8-byte word passes through a bijective step of one of four lanes, so any change confined to one
// word always changes that lane; not a cryptographic hash (the cache directory is trusted).
#include <cstddef>
#include <cstdint>
#include <span>

namespace v4::runtime {

class ContentHash {
 public:
  explicit ContentHash(uint64_t seed = 0);
  void update(std::span<const std::byte> bytes);
  void update(const void* data, size_t n) { update({static_cast<const std::byte*>(data), n}); }
  uint64_t digest() const;

 private:
  void block(const std::byte* p);
  uint64_t lanes_[4];
  std::byte tail_[32];
  size_t tail_len_ = 0;
  uint64_t length_ = 0;
};

uint64_t content_hash(std::span<const std::byte> bytes, uint64_t seed = 0);

// Mixes v into h (a 64-bit finaliser step): for hash chains and composite keys.
uint64_t hash_mix(uint64_t h, uint64_t v);

}  // namespace v4::runtime
