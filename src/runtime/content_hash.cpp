#include "runtime/content_hash.h"

#include <algorithm>
#include <bit>
#include <cstring>

namespace v4::runtime {

namespace {
constexpr uint64_t kP1 = 0x9E3779B185EBCA87ull, kP2 = 0xC2B2AE3D27D4EB4Full, kP3 = 0x165667B19E3779F9ull;

uint64_t load64(const std::byte* p) {
  uint64_t v;
  std::memcpy(&v, p, sizeof v);
  return v;
}
}  // namespace

uint64_t hash_mix(uint64_t h, uint64_t v) {
  h ^= v + 0x9E3779B97F4A7C15ull + (h << 6) + (h >> 2);
  h ^= h >> 33;
  h *= 0xFF51AFD7ED558CCDull;
  h ^= h >> 33;
  return h;
}

ContentHash::ContentHash(uint64_t seed)
    : lanes_{seed + kP1 + kP2, seed + kP2, seed, seed - kP1} {}

void ContentHash::block(const std::byte* p) {
  for (int i = 0; i < 4; ++i)
    lanes_[i] = std::rotl(lanes_[i] ^ (load64(p + 8 * i) * kP2), 31) * kP1;
}

void ContentHash::update(std::span<const std::byte> bytes) {
  length_ += bytes.size();
  size_t at = 0;
  if (tail_len_ > 0) {
    const size_t take = std::min(bytes.size(), sizeof tail_ - tail_len_);
    std::memcpy(tail_ + tail_len_, bytes.data(), take);
    tail_len_ += take;
    at = take;
    if (tail_len_ < sizeof tail_) return;
    block(tail_);
    tail_len_ = 0;
  }
  for (; at + 32 <= bytes.size(); at += 32) block(bytes.data() + at);
  std::memcpy(tail_, bytes.data() + at, bytes.size() - at);
  tail_len_ = bytes.size() - at;
}

uint64_t ContentHash::digest() const {
  uint64_t h = length_ * kP3;
  for (uint64_t lane : lanes_) h = hash_mix(h, lane);
  std::byte last[32] = {};
  std::memcpy(last, tail_, tail_len_);
  for (size_t i = 0; i < tail_len_; i += 8) h = hash_mix(h, load64(last + i));
  return hash_mix(h, tail_len_);
}

uint64_t content_hash(std::span<const std::byte> bytes, uint64_t seed) {
  ContentHash h(seed);
  h.update(bytes);
  return h.digest();
}

}  // namespace v4::runtime
