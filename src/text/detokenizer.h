#pragma once
// Incremental detokenizer for streaming: push generated ids one at a time and receive only complete
// UTF-8 text. Bytes of a character split across tokens are held back until it completes. Added
// tokens (special or not: <｜User｜>, EOS, ...) produce no text unless listed in `pass_through`
// (the completion parser needs <think>, </think> and the DSML marker as text) or
// `emit_all_special` is set. The caller detects EOS by id.
#include <cstdint>
#include <string>
#include <vector>

#include "text/tokenizer.h"

namespace v4::text {

struct DetokenizerOptions {
  bool emit_all_special = false;
  // Special/added token strings that are still emitted as text. The default lets the completion
  // parser see the reasoning and tool-call markup of DeepSeek V4.
  std::vector<std::string> pass_through = {"<think>", "</think>", "｜DSML｜"};
  // Also emit every added token whose text contains "｜DSML｜" (a vocabulary may have whole
  // "<｜DSML｜tool_calls>"-style tokens).
  bool pass_through_dsml = true;
};

class IncrementalDetokenizer {
 public:
  explicit IncrementalDetokenizer(const Tokenizer& tokenizer, DetokenizerOptions options = {});
  // Appends one id; returns the text that became complete (possibly empty). Unknown ids throw
  // TokenizerError.
  std::string push(int32_t id);
  // End of stream: returns the held-back bytes, each incomplete sequence replaced by U+FFFD.
  std::string flush();
  size_t pending_bytes() const { return pending_.size(); }

 private:
  const Tokenizer& tokenizer_;
  DetokenizerOptions options_;
  std::vector<bool> pass_through_ids_;  // indexed by id; sized lazily
  std::string pending_;                 // bytes not yet forming complete characters
};

// Returns the length of the longest prefix of `bytes` that ends on a complete UTF-8 character
// boundary, treating invalid bytes as complete (so they are emitted as U+FFFD, never stuck).
size_t complete_utf8_prefix(std::string_view bytes);
// Replaces every invalid UTF-8 sequence with U+FFFD.
std::string sanitize_utf8(std::string_view bytes);

}  // namespace v4::text
