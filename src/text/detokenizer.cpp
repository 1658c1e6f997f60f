#include "text/detokenizer.h"

namespace v4::text {

namespace {
// Expected length of the UTF-8 sequence starting with lead byte c, or 0 if c cannot start one.
size_t sequence_length(unsigned char c) {
  if (c < 0x80) return 1;
  if (c >= 0xC2 && c <= 0xDF) return 2;
  if (c >= 0xE0 && c <= 0xEF) return 3;
  if (c >= 0xF0 && c <= 0xF4) return 4;
  return 0;
}
// Number of bytes from s[i] that form a valid prefix of the sequence the lead byte announces
// (no overlongs, surrogates or > U+10FFFF): equal to len for a complete character, less when the
// sequence is cut off by the end of s or broken by an invalid byte.
size_t valid_prefix(std::string_view s, size_t i, size_t len) {
  size_t k = 1;
  for (; k < len && i + k < s.size(); ++k) {
    unsigned char c = s[i], d = s[i + k];
    if ((d & 0xC0) != 0x80) break;
    if (k == 1 && ((c == 0xE0 && d < 0xA0) || (c == 0xED && d > 0x9F) || (c == 0xF0 && d < 0x90) ||
                   (c == 0xF4 && d > 0x8F)))
      break;
  }
  return k;
}
}  // namespace

size_t complete_utf8_prefix(std::string_view bytes) {
  size_t i = 0;
  while (i < bytes.size()) {
    size_t len = sequence_length((unsigned char)bytes[i]);
    if (len == 0) {
      ++i;  // an invalid byte is "complete": it will print as U+FFFD
      continue;
    }
    size_t ok = valid_prefix(bytes, i, len);
    if (ok < len && i + ok == bytes.size()) return i;  // a character still being received
    i += ok;  // a complete character, or an invalid subpart (printed as one U+FFFD)
  }
  return i;
}

std::string sanitize_utf8(std::string_view bytes) {
  std::string out;
  out.reserve(bytes.size());
  size_t i = 0;
  while (i < bytes.size()) {
    size_t len = sequence_length((unsigned char)bytes[i]);
    size_t ok = len == 0 ? 1 : valid_prefix(bytes, i, len);
    if (len != 0 && ok == len)
      out.append(bytes.substr(i, len));
    else
      out += "\xEF\xBF\xBD";  // one U+FFFD per maximal invalid subpart, as Python and WHATWG do
    i += ok;
  }
  return out;
}

IncrementalDetokenizer::IncrementalDetokenizer(const Tokenizer& tokenizer, DetokenizerOptions options)
    : tokenizer_(tokenizer), options_(std::move(options)) {
  pass_through_ids_.assign(tokenizer_.vocab_size(), false);
  for (const auto& s : options_.pass_through)
    if (auto id = tokenizer_.token_id(s)) pass_through_ids_[*id] = true;
  if (options_.pass_through_dsml)
    for (int32_t id : tokenizer_.added_token_ids())
      if (tokenizer_.token_bytes(id).find("｜DSML｜") != std::string::npos) pass_through_ids_[id] = true;
}

std::string IncrementalDetokenizer::push(int32_t id) {
  const std::string& bytes = tokenizer_.token_bytes(id);  // throws on unknown ids
  if (tokenizer_.is_added(id) && !options_.emit_all_special && !pass_through_ids_[id]) return {};
  pending_ += bytes;
  size_t done = complete_utf8_prefix(pending_);
  if (done == 0) return {};
  std::string out = sanitize_utf8(std::string_view(pending_).substr(0, done));
  pending_.erase(0, done);
  return out;
}

std::string IncrementalDetokenizer::flush() {
  std::string out = sanitize_utf8(pending_);
  pending_.clear();
  return out;
}

}  // namespace v4::text
