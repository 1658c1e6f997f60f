#pragma once
// Byte-level BPE tokenizer loaded from a Hugging Face tokenizer.json of the DeepSeek family
// (V3/V4): no normaliser, a Sequence of Split(Regex, Isolated) pre-tokenizers followed by
// ByteLevel(use_regex=false), a BPE model with merge ranks, and added tokens matched in the raw
// text before pre-tokenisation. Any other component is rejected with TokenizerError rather than
// silently tokenising differently.
#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <span>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace v4::text {

struct TokenizerError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

class Tokenizer {
 public:
  // Throws TokenizerError (unreadable file, malformed JSON, unsupported component).
  static std::unique_ptr<Tokenizer> from_file(const std::filesystem::path& path);
  static std::unique_ptr<Tokenizer> from_json(std::string_view json_text);
  ~Tokenizer();

  // Text (UTF-8; invalid bytes are tokenised as bytes) -> ids. With allow_special, added tokens
  // (special or not) written in the text become their single id, as HF does; without it the whole
  // text is BPE-tokenised as plain text (safe for untrusted user content). Never adds BOS/EOS.
  std::vector<int32_t> encode(std::string_view text, bool allow_special = true) const;
  // Ids -> bytes concatenated (may be invalid UTF-8 if ids split a character). skip_special drops
  // special added tokens. Unknown ids throw TokenizerError.
  std::string decode(std::span<const int32_t> ids, bool skip_special = false) const;
  // The raw bytes one id stands for (the added token's content for added tokens).
  const std::string& token_bytes(int32_t id) const;

  std::optional<int32_t> token_id(std::string_view token) const;  // vocab or added token
  size_t vocab_size() const;          // highest id + 1
  bool is_valid(int32_t id) const;    // id maps to a token
  bool is_special(int32_t id) const;  // an added token marked "special"
  bool is_added(int32_t id) const;    // any added token
  const std::vector<int32_t>& added_token_ids() const;  // every added token, in file order

  struct Impl;

 private:
  explicit Tokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace v4::text
