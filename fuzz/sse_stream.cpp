// libFuzzer target for the SSE renderers. First byte: dialect (and thinking / tools on or off);
// the rest is a script of deltas (reasoning, content, tool calls with arbitrary text, control
// characters included) and an outcome. Every dialect's stream must stay well-formed SSE whose data
// lines are JSON (sse_check.h), whatever the deltas and however the stream ends.
#include <cstdint>
#include <string>

#include "api/anthropic.h"
#include "api/chat.h"
#include "api/output.h"
#include "api/request.h"
#include "api/responses.h"
#include "sse_check.h"

namespace {

using namespace v4::api;

Request request_for(int mode) {
  const bool tools = mode & 4;
  std::string t = tools ? R"(,"tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}])" : "";
  std::string ta = tools ? R"(,"tools":[{"name":"f","input_schema":{"type":"object"}}])" : "";
  std::string tr = tools ? R"(,"tools":[{"type":"function","name":"f","parameters":{"type":"object"}}])" : "";
  switch (mode % 3) {
    case 0:
      return parse_chat_request(parse_json_body(
          R"({"model":"deepseek-v4-flash","stream":true,"stream_options":{"include_usage":true},"logprobs":true,)"
          R"("messages":[{"role":"user","content":"x"}])" + t + "}"));
    case 1:
      return parse_responses_request(parse_json_body(R"({"model":"deepseek-v4-flash","stream":true,"input":"x")" + tr + "}"));
    default:
      return parse_anthropic_request(
          parse_json_body(R"({"model":"deepseek-v4-flash","stream":true,"max_tokens":9,"messages":[{"role":"user","content":"x"}])" + ta + "}"));
  }
}

// Printable ASCII and control characters: what a JSON string must escape, never invalid UTF-8
// (the detokenizer guarantees valid UTF-8 before anything reaches a renderer).
std::string take_text(const uint8_t*& p, const uint8_t* end) {
  if (p == end) return {};
  const size_t want = *p++ % 16;
  const size_t n = std::min<size_t>(want, size_t(end - p));
  std::string s;
  for (size_t i = 0; i < n; ++i) s.push_back(char(p[i] & 0x7F));
  p += n;
  return s;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const uint8_t* p = data + 1;
  const uint8_t* end = data + size;
  Request req = request_for(data[0]);
  ResponseMeta meta{"id-fuzz", "item-fuzz", 1, req.model};
  auto r = make_stream_renderer(req, meta, 5);
  std::string out = r->start(0);
  int calls = 0;
  while (p < end) {
    const uint8_t op = *p++;
    Delta d;
    d.text = take_text(p, end);
    switch (op % 6) {
      case 0: d.kind = Delta::Kind::reasoning; break;
      case 1: d.kind = Delta::Kind::content; break;
      case 2: {
        d.kind = Delta::Kind::tool_call;
        d.call.index = size_t(calls);
        d.call.id = "call_" + std::to_string(calls++);
        d.call.name = take_text(p, end);
        d.call.arguments = boost::json::serialize(boost::json::object{{"a", d.text}});
        break;
      }
      case 3: out += r->ping(); continue;
      case 4: out += r->error(ApiError(500, "api_error", d.text)); v4::fuzz::check_sse(out); return 0;
      default: {
        Outcome o;
        o.stop = StopKind(op / 6 % 5);
        o.matched_stop = d.text;
        o.usage = {5, 1, calls + 1, 0};
        out += r->finish(o);
        v4::fuzz::check_sse(out);
        return 0;
      }
    }
    AltLogprob a{d.text, d.text, -0.5};
    if (d.kind == Delta::Kind::content && (op & 0x40)) d.logprobs.push_back({a, {a}});
    out += r->delta(d);
  }
  Outcome o;
  o.usage = {5, 0, 1, 0};
  out += r->finish(o);
  v4::fuzz::check_sse(out);
  return 0;
}
