#pragma once
// What a generation produces, independent of dialect, and the dialect renderers that turn it into
// non-streamed JSON objects, SSE streams and error bodies.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "api/request.h"
#include "text/completion_parser.h"

namespace v4::api {

struct Usage {
  int prompt_tokens = 0;
  int cached_tokens = 0;  // subset of prompt_tokens served from the prefix cache
  int completion_tokens = 0;
  int reasoning_tokens = 0;  // subset of completion_tokens
  int web_search_calls = 0;  // searches run for the request (billed per call)
};

struct AltLogprob {
  std::string token;  // UTF-8 text of the token (may be a partial character)
  std::string bytes;  // its raw bytes
  double logprob = 0;
};
struct TokenLogprobOut {
  AltLogprob chosen;
  std::vector<AltLogprob> top;
};

// One piece of output, as the completion parser separates it.
struct Delta {
  enum class Kind { reasoning, content, tool_call };
  Kind kind = Kind::content;
  std::string text;
  text::ToolCall call;                   // kind == tool_call (arguments complete)
  std::vector<TokenLogprobOut> logprobs;  // content tokens that this delta completes
};

enum class StopKind { end_turn, length, stop_string, tool_calls, error };

struct Outcome {
  StopKind stop = StopKind::end_turn;
  std::string matched_stop;
  std::string error;
  Usage usage;
};

// Everything generated so far (what the non-streamed objects are made of).
struct Turn {
  std::string reasoning, content;
  std::vector<text::ToolCall> tool_calls;
  std::vector<TokenLogprobOut> logprobs;
  void add(const Delta& d);
};

struct ResponseMeta {
  std::string id;        // chatcmpl-… / resp_… / msg_…
  std::string item_id;   // Responses: id stem of the output items
  int64_t created = 0;   // unix seconds
  std::string model;
};

// Non-streamed response body.
boost::json::object render_response(const ChatRequest& req, const ResponseMeta& meta, const Turn& turn,
                                    const Outcome& outcome);

// Error body in the dialect's shape (the HTTP status comes from the error).
boost::json::object render_error(Dialect dialect, const ApiError& error, const std::string& request_id);

// Incremental SSE renderer of one streamed response. Each call returns complete SSE events
// ("event: …\ndata: …\n\n"), possibly none.
class StreamRenderer {
 public:
  virtual ~StreamRenderer() = default;
  virtual std::string start() = 0;
  virtual std::string delta(const Delta& d) = 0;
  virtual std::string finish(const Outcome& outcome) = 0;
  // An error after the stream started, in the dialect's in-stream form.
  virtual std::string error(const ApiError& error) = 0;
  // Keep-alive event (Anthropic ping; an SSE comment elsewhere).
  virtual std::string ping() { return ": ping\n\n"; }
};

// The renderer keeps a reference to `req`, which must outlive it.
std::unique_ptr<StreamRenderer> make_stream_renderer(const ChatRequest& req, const ResponseMeta& meta, int prompt_tokens);

// Usage in each dialect's shape.
boost::json::object chat_usage(const Usage& u);
boost::json::object responses_usage(const Usage& u);
boost::json::object anthropic_usage(const Usage& u);

std::string sse_data(const boost::json::value& v);
std::string sse_event(const std::string& event, const boost::json::value& v);

// Random alphanumeric id suffix.
std::string random_id(size_t n = 24);

}  // namespace v4::api
