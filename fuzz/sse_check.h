#pragma once
// What every SSE stream we write must be: events of "event: ..." / "data: ..." / ": comment" lines,
// each ended by a blank line, every data payload one JSON value (or [DONE]). Aborts otherwise.
#include <cstdlib>
#include <string>
#include <string_view>

#include <boost/json.hpp>

namespace v4::fuzz {

inline void check_sse(std::string_view s) {
  if (s.empty()) return;
  if (s.size() < 2 || s.substr(s.size() - 2) != "\n\n") std::abort();
  size_t pos = 0;
  while (pos < s.size()) {
    const size_t end = s.find('\n', pos);
    if (end == std::string_view::npos) std::abort();
    const std::string_view line = s.substr(pos, end - pos);
    pos = end + 1;
    if (line.empty() || line[0] == ':' || line.rfind("event: ", 0) == 0) continue;
    if (line.rfind("data: ", 0) != 0) std::abort();
    const std::string_view payload = line.substr(6);
    if (payload == "[DONE]") continue;
    boost::system::error_code ec;
    (void)boost::json::parse(payload, ec);
    if (ec) std::abort();
  }
}

}  // namespace v4::fuzz
