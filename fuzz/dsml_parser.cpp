// libFuzzer target for the streaming completion parser (and the prompt encoder). First byte:
//   0-1: the rest is a completion (1: starting in reasoning), fed whole and in chunks cut at
//        positions taken from the input itself; both runs must give the same events' contents;
//   2:   the rest is a JSON messages array for encode_messages: only ChatEncodingError may escape.
#include <cstdint>
#include <cstdlib>
#include <string>

#include <boost/json.hpp>

#include "text/chat_encoder.h"
#include "text/completion_parser.h"

namespace {
struct Result {
  std::string reasoning, content, calls;
  int ends = 0;
};

void take(Result& r, const std::vector<v4::text::CompletionEvent>& events) {
  using K = v4::text::CompletionEvent::Kind;
  for (const auto& e : events) {
    if (e.kind == K::reasoning_delta) r.reasoning += e.text;
    if (e.kind == K::content_delta) r.content += e.text;
    if (e.kind == K::tool_call) r.calls += e.tool_call.id + "|" + e.tool_call.name + "|" + e.tool_call.arguments + "\n";
    if (e.kind == K::end) ++r.ends;
  }
}

Result run(std::string_view text, bool reasoning, size_t stride_seed) {
  v4::text::ParserOptions o;
  o.start_in_reasoning = reasoning;
  o.make_tool_call_id = [](size_t i) { return std::to_string(i); };
  v4::text::CompletionParser p(o);
  Result r;
  size_t pos = 0, k = 0;
  while (pos < text.size()) {
    size_t len = stride_seed == 0 ? text.size() : 1 + (size_t(uint8_t(text[k++ % text.size()])) + stride_seed) % 7;
    take(r, p.feed(text.substr(pos, len)));
    pos += std::min(len, text.size() - pos);
  }
  take(r, p.finish());
  return r;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const int mode = data[0] % 3;
  std::string_view text(reinterpret_cast<const char*>(data + 1), size - 1);
  if (mode == 2) {
    boost::system::error_code ec;
    boost::json::value v = boost::json::parse(text, ec);
    if (ec || !v.is_array()) return 0;
    for (auto m : {v4::text::ThinkingMode::chat, v4::text::ThinkingMode::thinking}) {
      try {
        v4::text::ChatEncodeOptions o;
        o.mode = m;
        (void)v4::text::encode_messages(v.as_array(), o);
      } catch (const v4::text::ChatEncodingError&) {
      }
    }
    return 0;
  }
  const bool reasoning = mode == 1;
  Result whole = run(text, reasoning, 0);
  for (size_t seed : {1, 5}) {
    Result split = run(text, reasoning, seed);
    if (split.reasoning != whole.reasoning || split.content != whole.content || split.calls != whole.calls ||
        split.ends != 1 || whole.ends != 1)
      std::abort();
  }
  return 0;
}
