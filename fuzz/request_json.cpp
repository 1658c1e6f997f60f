// libFuzzer target for the request parsers of the three dialects. First byte: 0 Chat Completions,
// 1 Responses, 2 Anthropic Messages, 3 Anthropic count_tokens; the rest is the HTTP body. Only
// ApiError may escape a parser; a request it accepts must encode to a prompt (only
// ChatEncodingError may escape) and render a well-formed SSE stream in its dialect.
#include <cstdint>
#include <string>

#include "api/anthropic.h"
#include "api/chat.h"
#include "api/output.h"
#include "api/request.h"
#include "api/responses.h"
#include "sse_check.h"
#include "text/chat_encoder.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace v4::api;
  if (size == 0) return 0;
  const int mode = data[0] % 4;
  const std::string body(reinterpret_cast<const char*>(data + 1), size - 1);
  Request req;
  try {
    const boost::json::value v = parse_json_body(body);
    req = mode == 0 ? parse_chat_request(v) : mode == 1 ? parse_responses_request(v)
                                                        : parse_anthropic_request(v, mode == 3);
  } catch (const ApiError&) {
    return 0;
  }
  try {
    v4::text::ChatEncodeOptions o;
    o.mode = req.thinking ? v4::text::ThinkingMode::thinking : v4::text::ThinkingMode::chat;
    (void)v4::text::encode_messages(prompt_messages(req), o);
  } catch (const v4::text::ChatEncodingError&) {
  } catch (const ApiError&) {
  }
  ResponseMeta meta{"id-fuzz", "item-fuzz", 1, req.model};
  auto renderer = make_stream_renderer(req, meta, 3);
  Delta d;
  d.text = "hello";
  Outcome out;
  out.usage = {3, 0, 1, 0};
  v4::fuzz::check_sse(renderer->start(0) + renderer->delta(d) + renderer->finish(out));
  return 0;
}
