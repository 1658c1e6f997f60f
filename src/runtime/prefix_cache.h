#pragma once
// Prefix cache: snapshots of sequence states after a whole number of blocks of prompt tokens,
// found by a hash chain over the blocks (block k's key mixes block k-1's key with block k's
// tokens), verified token by token, evicted least-recently-used under a byte budget. Only the
// scheduler thread uses it. A salt (the tenant's id) starts the chain, so entries stored under one
// salt are never found under another: a hit, its timing and cached_tokens reveal nothing about
// other tenants' prompts. The empty salt is the shared namespace.
#include <cstdint>
#include <list>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "model/model.h"

namespace v4::runtime {

class PrefixCache {
 public:
  PrefixCache(int64_t block_tokens, int64_t budget_bytes);

  struct Hit {
    std::unique_ptr<model::SequenceState> state;  // a copy the caller owns
    int64_t tokens = 0;                           // prompt tokens it has consumed
  };
  // The longest cached prefix of `tokens` no longer than max_tokens (0 tokens: no hit).
  Hit lookup(std::span<const int32_t> tokens, int64_t max_tokens, std::string_view salt = {});
  // Stores a copy of `state`, which has consumed exactly `prefix` (a whole number of blocks).
  // Returns false when it was already there or cannot fit the budget.
  bool insert(std::span<const int32_t> prefix, const model::SequenceState& state, std::string_view salt = {});
  bool contains(std::span<const int32_t> prefix, std::string_view salt = {}) const;
  void clear();

  int64_t block_tokens() const { return block_tokens_; }
  int64_t bytes() const { return bytes_; }
  size_t entries() const { return entries_.size(); }

 private:
  struct Entry {
    std::string salt;
    std::vector<int32_t> tokens;
    std::unique_ptr<model::SequenceState> state;
    int64_t bytes = 0;
    std::list<uint64_t>::iterator lru;  // position in lru_ (front = most recent)
  };
  // keys[k] = key of the first k+1 blocks.
  std::vector<uint64_t> chain_keys(std::span<const int32_t> tokens, int64_t blocks, std::string_view salt) const;
  Entry* find(uint64_t key, std::span<const int32_t> prefix, std::string_view salt);
  void evict_until(int64_t free_bytes);

  int64_t block_tokens_, budget_bytes_, bytes_ = 0;
  std::unordered_map<uint64_t, Entry> entries_;
  std::list<uint64_t> lru_;
};

}  // namespace v4::runtime
