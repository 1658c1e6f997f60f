#include "runtime/text_stream.h"

#include <algorithm>
#include <utility>

namespace v4::runtime {

namespace {

constexpr std::string_view kReplacement = "\xEF\xBF\xBD";

// Length of the UTF-8 sequence starting at s[i] if it is valid and complete; 0 if invalid;
// -1 if valid so far but cut off by the end of the input.
int sequence_length(std::string_view s, size_t i) {
  const auto b0 = uint8_t(s[i]);
  int len;
  uint32_t min_cp;
  if (b0 < 0x80) return 1;
  if ((b0 & 0xE0) == 0xC0) len = 2, min_cp = 0x80;
  else if ((b0 & 0xF0) == 0xE0) len = 3, min_cp = 0x800;
  else if ((b0 & 0xF8) == 0xF0) len = 4, min_cp = 0x10000;
  else return 0;
  uint32_t cp = b0 & (0x7F >> len);
  for (int k = 1; k < len; ++k) {
    if (i + size_t(k) >= s.size()) {
      // Cut off: still plausible only if the lead byte could start a valid character.
      if (len == 2 && b0 < 0xC2) return 0;
      if (len == 4 && b0 > 0xF4) return 0;
      if (k >= 2) {  // second byte seen: check overlong/surrogate/range bounds early
        const auto b1 = uint8_t(s[i + 1]);
        if (b0 == 0xE0 && b1 < 0xA0) return 0;
        if (b0 == 0xED && b1 > 0x9F) return 0;
        if (b0 == 0xF0 && b1 < 0x90) return 0;
        if (b0 == 0xF4 && b1 > 0x8F) return 0;
      }
      return -1;
    }
    const auto b = uint8_t(s[i + size_t(k)]);
    if ((b & 0xC0) != 0x80) return 0;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min_cp || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
  return len;
}

// Appends the valid prefix of s (up to `end`) to out, replacing invalid bytes; returns where it
// stopped (== end, or the start of a cut-off sequence when keep_incomplete).
size_t append_valid(std::string_view s, std::string& out, bool keep_incomplete) {
  size_t i = 0;
  while (i < s.size()) {
    int len = sequence_length(s, i);
    if (len > 0) {
      out.append(s.substr(i, size_t(len)));
      i += size_t(len);
    } else if (len < 0 && keep_incomplete) {
      return i;
    } else {
      out.append(kReplacement);
      // An incomplete tail is one replacement character; an invalid byte is one each.
      i = len < 0 ? s.size() : i + 1;
    }
  }
  return i;
}

}  // namespace

std::string take_complete_utf8(std::string& bytes) {
  std::string out;
  size_t used = append_valid(bytes, out, true);
  bytes.erase(0, used);
  return out;
}

std::string sanitize_utf8_text(std::string_view bytes) {
  std::string out;
  append_valid(bytes, out, false);
  return out;
}

StopTextStream::StopTextStream(std::vector<std::string> stops) {
  for (auto& s : stops)
    if (!s.empty()) stops_.push_back(std::move(s));
}

std::string StopTextStream::push(std::string_view bytes) {
  if (stopped()) return {};
  pending_utf8_.append(bytes);
  held_ += take_complete_utf8(pending_utf8_);
  if (stops_.empty()) return std::exchange(held_, {});

  // The stop that completes first in the text (the earlier start, i.e. the longer one, on a tie),
  // as if the text had arrived one character at a time.
  size_t best_pos = std::string::npos, best_end = std::string::npos;
  const std::string* best = nullptr;
  for (const auto& stop : stops_) {
    size_t pos = held_.find(stop);
    if (pos == std::string::npos) continue;
    size_t end = pos + stop.size();
    if (end < best_end || (end == best_end && pos < best_pos)) best_pos = pos, best_end = end, best = &stop;
  }
  if (best) {
    matched_ = *best;
    std::string out = held_.substr(0, best_pos);
    held_.clear();
    pending_utf8_.clear();
    return out;
  }
  // Withhold the longest tail that is a proper prefix of a stop string.
  size_t keep = 0;
  for (const auto& stop : stops_) {
    for (size_t len = std::min(stop.size() - 1, held_.size()); len > keep; --len) {
      if (std::string_view(held_).substr(held_.size() - len) == std::string_view(stop).substr(0, len)) {
        keep = len;
        break;
      }
    }
  }
  std::string out = held_.substr(0, held_.size() - keep);
  held_.erase(0, held_.size() - keep);
  return out;
}

std::string StopTextStream::flush() {
  if (stopped()) return {};
  std::string out = std::exchange(held_, {});
  out += sanitize_utf8_text(pending_utf8_);
  pending_utf8_.clear();
  return out;
}

}  // namespace v4::runtime
