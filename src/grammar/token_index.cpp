#include "grammar/token_index.h"

#include <algorithm>
#include <deque>
#include <numeric>
#include <stdexcept>

namespace v4::grammar {

int json_plain_chars(const std::string& bytes) {
  int chars = 0;
  size_t i = 0;
  while (i < bytes.size()) {
    const unsigned char c = bytes[i];
    int extra;
    if (c < 0x20 || c == '"' || c == '\\') return -1;
    if (c < 0x80) extra = 0;
    else if (c >= 0xC2 && c <= 0xDF) extra = 1;
    else if (c >= 0xE0 && c <= 0xEF) extra = 2;
    else if (c >= 0xF0 && c <= 0xF4) extra = 3;
    else return -1;
    if (extra > 0 && i + size_t(extra) >= bytes.size()) return -1;  // cut inside a character
    for (int k = 1; k <= extra; ++k) {
      const unsigned char d = bytes[i + k];
      unsigned char lo = 0x80, hi = 0xBF;
      if (k == 1) {
        if (c == 0xE0) lo = 0xA0;
        if (c == 0xED) hi = 0x9F;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;
      }
      if (d < lo || d > hi) return -1;
    }
    i += size_t(extra) + 1;
    ++chars;
  }
  return chars;
}

int raw_plain_bytes(const std::string& bytes) {
  if (bytes.find('<') != std::string::npos) return -1;
  // whole UTF-8 characters: the same check as JSON text once the JSON-only bytes are set aside
  std::string masked = bytes;
  for (char& c : masked)
    if (static_cast<unsigned char>(c) < 0x20 || c == '"' || c == '\\') c = 'a';
  return json_plain_chars(masked) < 0 ? -1 : int(bytes.size());
}

TokenIndex::TokenIndex(const std::vector<std::string>& token_bytes, const std::vector<char>& excluded) {
  vocab_ = token_bytes.size();
  std::vector<int32_t> ids;
  bytes_.resize(token_bytes.size());
  for (size_t t = 0; t < token_bytes.size(); ++t)
    if (!token_bytes[t].empty() && !(t < excluded.size() && excluded[t])) {
      ids.push_back(int32_t(t));
      bytes_[t] = token_bytes[t];
      longest_ = std::max(longest_, token_bytes[t].size());
    }
  std::sort(ids.begin(), ids.end(), [&](int32_t a, int32_t b) {
    return token_bytes[a] != token_bytes[b] ? token_bytes[a] < token_bytes[b] : a < b;
  });
  build_trie(ids, token_bytes);
  summarise(token_bytes);
  fill_plain_sets(ids, token_bytes);
}

void TokenIndex::build_trie(const std::vector<int32_t>& ids, const std::vector<std::string>& token_bytes) {
  // Breadth first over ranges of the sorted ids that share a prefix of `depth` bytes, so each
  // node's children are contiguous and come after it.
  struct Pending {
    uint32_t node;
    size_t lo, hi, depth;
  };
  std::deque<Pending> queue;
  nodes_.emplace_back();
  queue.push_back({0, 0, ids.size(), 0});
  while (!queue.empty()) {
    const Pending p = queue.front();
    queue.pop_front();
    size_t i = p.lo;
    // The token ending here (the first by id when two ids write the same bytes: the other is never
    // allowed, which only matters for duplicate added tokens).
    while (i < p.hi && token_bytes[ids[i]].size() == p.depth) {
      if (nodes_[p.node].token < 0) nodes_[p.node].token = ids[i];
      ++i;
    }
    nodes_[p.node].first_child = uint32_t(child_bytes_.size());
    while (i < p.hi) {
      const unsigned char b = token_bytes[ids[i]][p.depth];
      size_t j = i;
      while (j < p.hi && static_cast<unsigned char>(token_bytes[ids[j]][p.depth]) == b) ++j;
      const uint32_t child = uint32_t(nodes_.size());
      nodes_.emplace_back();
      child_bytes_.push_back(b);
      child_nodes_.push_back(child);
      nodes_[p.node].children++;
      queue.push_back({child, i, j, p.depth + 1});
      i = j;
    }
  }
}

void TokenIndex::summarise(const std::vector<std::string>& token_bytes) {
  // Children come after their parent: one backward pass computes the subtree summaries.
  for (size_t n = nodes_.size(); n-- > 0;) {
    Node& node = nodes_[n];
    bool json = true, raw = true;
    uint32_t chars = 0, bytes = 0;
    if (node.token >= 0) {
      const std::string& s = token_bytes[node.token];
      const int c = json_plain_chars(s);
      json = c >= 0;
      chars = json ? uint32_t(c) : 0;
      raw = raw_plain_bytes(s) >= 0;
      bytes = raw ? uint32_t(s.size()) : 0;
    }
    for (uint32_t k = 0; k < node.children; ++k) {
      const Node& c = nodes_[child_nodes_[node.first_child + k]];
      json = json && c.json_plain;
      raw = raw && c.raw_plain;
      chars = std::max<uint32_t>(chars, c.max_chars);
      bytes = std::max<uint32_t>(bytes, c.max_bytes);
    }
    node.json_plain = json;
    node.raw_plain = raw;
    node.max_chars = uint16_t(std::min<uint32_t>(chars, 65535));
    node.max_bytes = uint16_t(std::min<uint32_t>(bytes, 65535));
  }
}

void TokenIndex::fill_plain_sets(const std::vector<int32_t>& ids, const std::vector<std::string>& token_bytes) {
  uint32_t max_chars = 0, max_bytes = 0;
  for (int32_t t : ids) {
    const int c = json_plain_chars(token_bytes[t]);
    if (c >= 0) max_chars = std::max<uint32_t>(max_chars, uint32_t(c));
    if (raw_plain_bytes(token_bytes[t]) >= 0) max_bytes = std::max<uint32_t>(max_bytes, uint32_t(token_bytes[t].size()));
  }
  json_plain_.assign(max_chars + 1, TokenBits(words(), 0));
  raw_plain_.assign(max_bytes + 1, TokenBits(words(), 0));
  for (int32_t t : ids) {
    const int c = json_plain_chars(token_bytes[t]);
    if (c >= 0)
      for (uint32_t k = uint32_t(c); k <= max_chars; ++k) set_bit(json_plain_[k], t);
    if (raw_plain_bytes(token_bytes[t]) >= 0)
      for (uint32_t k = uint32_t(token_bytes[t].size()); k <= max_bytes; ++k) set_bit(raw_plain_[k], t);
  }
}

const TokenBits& TokenIndex::json_plain_up_to(uint32_t k) const {
  return json_plain_[std::min<size_t>(k, json_plain_.size() - 1)];
}

const TokenBits& TokenIndex::raw_plain_up_to(uint32_t k) const {
  return raw_plain_[std::min<size_t>(k, raw_plain_.size() - 1)];
}

}  // namespace v4::grammar
