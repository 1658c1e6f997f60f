#pragma once
// The vocabulary as the matcher walks it: a byte trie of every token a grammar may allow (special
// tokens left out), plus precomputed answers for the two states where nearly every token is allowed
// (inside a JSON string, inside raw text before a terminator that starts with '<'), so a mask there
// costs a copy of a bitset and a walk over the few tokens that are not plain.
#include <cstdint>
#include <string>
#include <vector>

namespace v4::grammar {

using TokenBits = std::vector<uint64_t>;  // bit t of word t / 64: token t

inline void set_bit(TokenBits& bits, int32_t t) { bits[size_t(t) >> 6] |= uint64_t(1) << (t & 63); }
inline bool test_bit(const TokenBits& bits, int32_t t) { return (bits[size_t(t) >> 6] >> (t & 63)) & 1; }

class TokenIndex {
 public:
  // token_bytes[id]: what token id writes. Ids with excluded[id] (special tokens) and empty tokens
  // are never allowed by a grammar.
  TokenIndex(const std::vector<std::string>& token_bytes, const std::vector<char>& excluded);

  struct Node {
    uint32_t first_child = 0;   // index into child_bytes / child_nodes
    uint16_t children = 0;
    int32_t token = -1;         // the token whose bytes end here
    uint16_t max_chars = 0;     // longest JSON-plain token below (characters), when json_plain
    uint16_t max_bytes = 0;     // longest raw-plain token below (bytes), when raw_plain
    bool json_plain = false;    // every token below is plain JSON string text
    bool raw_plain = false;     // every token below is whole UTF-8 characters without '<'
  };

  size_t vocab_size() const { return vocab_; }
  // What token t writes; empty for a token no grammar allows (special, added, unknown ids).
  const std::string& bytes(int32_t t) const {
    static const std::string kNone;
    return t >= 0 && size_t(t) < bytes_.size() ? bytes_[size_t(t)] : kNone;
  }
  size_t words() const { return (vocab_ + 63) / 64; }
  size_t longest_token() const { return longest_; }  // bytes
  const std::vector<Node>& nodes() const { return nodes_; }  // nodes()[0] is the root
  const std::vector<uint8_t>& child_bytes() const { return child_bytes_; }
  const std::vector<uint32_t>& child_nodes() const { return child_nodes_; }

  // Tokens that are plain JSON string text (no '"', '\\', control bytes; whole UTF-8 characters)
  // of at most k characters; k is clamped to the longest such token.
  const TokenBits& json_plain_up_to(uint32_t k) const;
  // Tokens of whole UTF-8 characters without '<', of at most k bytes; k clamped likewise.
  const TokenBits& raw_plain_up_to(uint32_t k) const;

 private:
  void build_trie(const std::vector<int32_t>& sorted_ids, const std::vector<std::string>& token_bytes);
  void summarise(const std::vector<std::string>& token_bytes);  // json_plain, raw_plain, max_* per node
  void fill_plain_sets(const std::vector<int32_t>& ids, const std::vector<std::string>& token_bytes);

  size_t vocab_ = 0;
  size_t longest_ = 0;
  std::vector<std::string> bytes_;
  std::vector<Node> nodes_;
  std::vector<uint8_t> child_bytes_;
  std::vector<uint32_t> child_nodes_;
  std::vector<TokenBits> json_plain_;  // [k]: up to k characters
  std::vector<TokenBits> raw_plain_;   // [k]: up to k bytes
};

// JSON-plain length of a token in characters, or -1 when it is not plain JSON string text.
int json_plain_chars(const std::string& bytes);
// Raw-plain length of a token in bytes (whole UTF-8 characters, no '<'), or -1.
int raw_plain_bytes(const std::string& bytes);

}  // namespace v4::grammar
