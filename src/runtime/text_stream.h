#pragma once
// Turns a generated token stream's bytes into text that is safe to show: only complete UTF-8
// characters, and never a piece of text that could still turn out to be the start of a stop
// string. Stop strings are matched on the text, so they are found however the tokens split them.
#include <string>
#include <string_view>
#include <vector>

namespace v4::runtime {

class StopTextStream {
 public:
  explicit StopTextStream(std::vector<std::string> stops = {});

  // Appends a token's bytes; returns the text that became safe to show. After a stop string
  // matched, returns the text before it and stopped() is true (later calls return nothing).
  std::string push(std::string_view bytes);
  // Releases everything withheld (a stop candidate that did not complete, incomplete UTF-8 as
  // U+FFFD). Matching continues afresh afterwards.
  std::string flush();

  bool stopped() const { return !matched_.empty(); }
  const std::string& matched_stop() const { return matched_; }
  size_t withheld_bytes() const { return pending_utf8_.size() + held_.size(); }

 private:
  std::vector<std::string> stops_;
  std::string pending_utf8_;  // bytes of a character not complete yet
  std::string held_;          // complete text that is a prefix of some stop string
  std::string matched_;
};

// Splits `bytes` into the part made of complete characters (invalid bytes replaced by U+FFFD)
// and returns it; the trailing incomplete (but so far valid) sequence stays in `bytes`.
std::string take_complete_utf8(std::string& bytes);
// Every invalid or incomplete sequence replaced by U+FFFD.
std::string sanitize_utf8_text(std::string_view bytes);

}  // namespace v4::runtime
