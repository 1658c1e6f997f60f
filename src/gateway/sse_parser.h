#pragma once
// Server-sent events as an upstream streams them: bytes in, each event's data out (multi-line data
// joined with '\n'; comments, event names and ids skipped). Lines may end in \n, \r\n or \r.
#include <string>
#include <string_view>
#include <vector>

namespace v4::gateway {

class SseParser {
 public:
  // The data of every event completed by `bytes` (an event ends at a blank line).
  std::vector<std::string> feed(std::string_view bytes);
  // Bytes held for an unfinished line or event (bounded by the caller).
  size_t pending() const { return line_.size() + data_.size(); }

 private:
  void line(std::string_view l, std::vector<std::string>& out);
  std::string line_, data_;
  bool has_data_ = false, after_cr_ = false;
};

}  // namespace v4::gateway
