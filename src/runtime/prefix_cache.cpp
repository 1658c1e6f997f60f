#include "runtime/prefix_cache.h"

#include <algorithm>
#include <stdexcept>

#include "runtime/content_hash.h"

namespace v4::runtime {

PrefixCache::PrefixCache(int64_t block_tokens, int64_t budget_bytes)
    : block_tokens_(block_tokens), budget_bytes_(budget_bytes) {
  if (block_tokens <= 0) throw std::invalid_argument("prefix cache block size must be positive");
}

std::vector<uint64_t> PrefixCache::chain_keys(std::span<const int32_t> tokens, int64_t blocks,
                                              std::string_view salt) const {
  std::vector<uint64_t> keys;
  keys.reserve(size_t(blocks));
  uint64_t h = 0x243F6A8885A308D3ull;
  for (char c : salt) h = hash_mix(h, uint8_t(c));
  h = hash_mix(h, salt.size());
  for (int64_t b = 0; b < blocks; ++b) {
    for (int64_t i = b * block_tokens_; i < (b + 1) * block_tokens_; ++i) h = hash_mix(h, uint32_t(tokens[size_t(i)]));
    h = hash_mix(h, uint64_t(b + 1));  // block end marker
    keys.push_back(h);
  }
  return keys;
}

PrefixCache::Entry* PrefixCache::find(uint64_t key, std::span<const int32_t> prefix, std::string_view salt) {
  auto it = entries_.find(key);
  if (it == entries_.end()) return nullptr;
  const auto& stored = it->second.tokens;
  if (it->second.salt != salt) return nullptr;  // another tenant's entry under a colliding key
  if (stored.size() != prefix.size() || !std::equal(stored.begin(), stored.end(), prefix.begin()))
    return nullptr;  // hash collision
  return &it->second;
}

PrefixCache::Hit PrefixCache::lookup(std::span<const int32_t> tokens, int64_t max_tokens, std::string_view salt) {
  max_tokens = std::min<int64_t>(max_tokens, int64_t(tokens.size()));
  const int64_t blocks = max_tokens / block_tokens_;
  if (blocks <= 0 || entries_.empty()) return {};
  auto keys = chain_keys(tokens, blocks, salt);
  for (int64_t b = blocks; b >= 1; --b) {
    Entry* e = find(keys[size_t(b - 1)], tokens.first(size_t(b * block_tokens_)), salt);
    if (!e) continue;
    lru_.splice(lru_.begin(), lru_, e->lru);
    return {e->state->clone(), b * block_tokens_};
  }
  return {};
}

bool PrefixCache::contains(std::span<const int32_t> prefix, std::string_view salt) const {
  const int64_t blocks = int64_t(prefix.size()) / block_tokens_;
  if (blocks <= 0 || int64_t(prefix.size()) % block_tokens_ != 0) return false;
  auto keys = chain_keys(prefix, blocks, salt);
  return const_cast<PrefixCache*>(this)->find(keys.back(), prefix, salt) != nullptr;
}

bool PrefixCache::insert(std::span<const int32_t> prefix, const model::SequenceState& state, std::string_view salt) {
  const int64_t blocks = int64_t(prefix.size()) / block_tokens_;
  if (blocks <= 0 || int64_t(prefix.size()) % block_tokens_ != 0)
    throw std::invalid_argument("prefix cache: prefix is not a whole number of blocks");
  if (state.position() != int64_t(prefix.size()))
    throw std::invalid_argument("prefix cache: state position does not match the prefix");
  const uint64_t key = chain_keys(prefix, blocks, salt).back();
  if (Entry* e = find(key, prefix, salt)) {
    lru_.splice(lru_.begin(), lru_, e->lru);
    return false;
  }
  const int64_t entry_bytes = int64_t(state.bytes()) + int64_t(prefix.size() * sizeof(int32_t));
  if (entry_bytes > budget_bytes_) return false;
  evict_until(entry_bytes);
  // A colliding key with different tokens is replaced: the newer prefix is the likelier reuse.
  if (auto it = entries_.find(key); it != entries_.end()) {
    bytes_ -= it->second.bytes;
    lru_.erase(it->second.lru);
    entries_.erase(it);
  }
  lru_.push_front(key);
  Entry entry{std::string(salt), std::vector<int32_t>(prefix.begin(), prefix.end()), state.clone(), entry_bytes, lru_.begin()};
  entries_.emplace(key, std::move(entry));
  bytes_ += entry_bytes;
  return true;
}

void PrefixCache::evict_until(int64_t free_bytes) {
  while (!lru_.empty() && bytes_ + free_bytes > budget_bytes_) {
    auto it = entries_.find(lru_.back());
    bytes_ -= it->second.bytes;
    entries_.erase(it);
    lru_.pop_back();
  }
}

void PrefixCache::clear() {
  entries_.clear();
  lru_.clear();
  bytes_ = 0;
}

}  // namespace v4::runtime
