#pragma once
// What a generation produces, independent of dialect; what the dialect renderers (api/chat.h,
// api/responses.h, api/anthropic.h) share; and the dispatch to the request's dialect for its
// non-streamed object, SSE stream and error body.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include <boost/json.hpp>

#include "api/request.h"
#include "search/provider.h"
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

// One call of the server's search tool (the model's query) and what it gave.
struct SearchCall {
  std::string id;  // srvtoolu_… (Anthropic) / ws_… (Responses)
  std::string query;
  std::vector<search::Result> results;
  // "" when it ran; else Anthropic's web_search_tool_result_error codes: unavailable,
  // too_many_requests, max_uses_exceeded, invalid_tool_input, query_too_long.
  std::string error_code;
  size_t first_number = 1;  // the citation number [n] of its first result
};

// One piece of output, as the completion parser separates it.
struct Delta {
  enum class Kind { reasoning, content, tool_call, search_call, search_result };
  Kind kind = Kind::content;
  std::string text;
  text::ToolCall call;                   // kind == tool_call (arguments complete)
  std::vector<TokenLogprobOut> logprobs;  // content tokens that this delta completes
  SearchCall search{};                   // search_call: id and query; search_result: all of it
  int choice = 0;                        // which of a Chat request's n choices it belongs to
};

// pause_turn: the server's search loop reached its limit of rounds (Anthropic's stop reason; the
// client may send the turn back to let it go on).
enum class StopKind { end_turn, length, stop_string, tool_calls, error, pause_turn };

// How one choice ended (Chat `n`: each has its own finish_reason).
struct ChoiceEnd {
  StopKind stop = StopKind::end_turn;
  std::string matched_stop;
};

struct Outcome {
  StopKind stop = StopKind::end_turn;  // the request's: choice 0's, or the error that ended them all
  std::string matched_stop;
  std::string error;
  Usage usage;  // the prompt once, the output of every choice
  std::vector<ChoiceEnd> choices;  // each choice's end, by index (empty: one choice, ended as `stop`)
  // Responses with store: the object as it was rendered once and kept (api/response_store.h); the
  // client gets this same object. Null otherwise.
  std::shared_ptr<const boost::json::object> response;
};

// Everything generated so far (what the non-streamed objects are made of).
struct Turn {
  std::string reasoning, content;
  std::vector<text::ToolCall> tool_calls;
  std::vector<TokenLogprobOut> logprobs;
  // The server's searches (their results), and every piece in order (consecutive texts of one kind
  // joined): with searches, the answer is several items/blocks in that order.
  std::vector<SearchCall> searches;
  std::vector<Delta> parts;
  void add(const Delta& d);
};

struct ResponseMeta {
  std::string id;        // chatcmpl-… / resp_… / msg_…
  std::string item_id;   // Responses: id stem of the output items
  int64_t created = 0;   // unix seconds
  std::string model;
  std::vector<search::Result> sources;  // web_search_linkup's results, cited as [1], [2], ...
};

// A citation [n] in an answer: its place (in code points, as OpenAI's indices count) and source.
struct Citation {
  size_t start = 0, end = 0;
  size_t source = 0;  // n - 1
};
// The [n] in `text` that name one of `sources_count` sources (numbered from 1).
std::vector<Citation> find_citations(const std::string& text, size_t sources_count);

// The sources an answer may cite, in their numbering: web_search_linkup's, then each search's.
std::vector<search::Result> numbered_sources(const ResponseMeta& meta, const std::vector<SearchCall>& searches);

// Non-streamed response body.
boost::json::object render_response(const Request& req, const ResponseMeta& meta, const Turn& turn,
                                    const Outcome& outcome);
// The same with each choice's turn, by index (Chat `n`; the other dialects have one).
boost::json::object render_choices(const Request& req, const ResponseMeta& meta, const std::vector<Turn>& turns,
                                   const Outcome& outcome);
// How choice `i` ended: its entry in outcome.choices, else the request's stop.
ChoiceEnd choice_end(const Outcome& outcome, size_t i);

// Error body in the dialect's shape (the HTTP status comes from the error).
boost::json::object render_error(Dialect dialect, const ApiError& error, const std::string& request_id);

// Incremental SSE renderer of one streamed response. Each call returns complete SSE events
// ("event: …\ndata: …\n\n"), possibly none.
class StreamRenderer {
 public:
  virtual ~StreamRenderer() = default;
  // The opening event(s). A renderer whose opening reports cached prompt tokens (Anthropic's
  // message_start usage) is started once the engine admitted the request, with that count.
  virtual std::string start(int cached_prompt_tokens) = 0;
  virtual bool start_waits_for_admission() const { return false; }
  virtual std::string delta(const Delta& d) = 0;
  virtual std::string finish(const Outcome& outcome) = 0;
  // An error after the stream started, in the dialect's in-stream form.
  virtual std::string error(const ApiError& error) = 0;
  // Keep-alive event (Anthropic ping; an SSE comment elsewhere).
  virtual std::string ping() { return ": ping\n\n"; }
};

// The renderer keeps a reference to `req`, which must outlive it.
std::unique_ptr<StreamRenderer> make_stream_renderer(const Request& req, const ResponseMeta& meta, int prompt_tokens);

// ---- Shared by the dialect renderers.

// The OpenAI dialects have no field for server-side searches: a request that searched reports them
// the way Anthropic does (and OpenRouter for every dialect), usage.server_tool_use.web_search_requests.
void add_search_usage(boost::json::object& usage, const Usage& u);
// A token's bytes as OpenAI's logprobs list them.
boost::json::array byte_array(const std::string& bytes);
// OpenAI's url_citation annotations of a text: Responses' flat shape, Chat's nested one.
boost::json::array url_citations(const std::string& text, const std::vector<search::Result>& sources, bool chat);
// The OpenAI error body ({"error": {message, type, param, code}}).
boost::json::object openai_error_body(const ApiError& e);
// Whether the turn ran the server's search tool (its answer is then several items/blocks in order).
bool has_search_parts(const Turn& turn);

std::string sse_data(const boost::json::value& v);
std::string sse_event(const std::string& event, const boost::json::value& v);

// Random alphanumeric id suffix.
std::string random_id(size_t n = 24);

}  // namespace v4::api
