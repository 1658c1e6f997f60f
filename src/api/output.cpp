// What the dialect renderers share (citations, SSE framing, ids, the OpenAI error body) and the one
// dispatch from a request's dialect to its adapter (api/chat.h, api/responses.h, api/anthropic.h).
#include "api/output.h"

#include <algorithm>
#include <random>

#include "api/anthropic.h"
#include "api/chat.h"
#include "api/responses.h"

namespace v4::api {

namespace json = boost::json;

void Turn::add(const Delta& d) {
  switch (d.kind) {
    case Delta::Kind::reasoning: reasoning += d.text; break;
    case Delta::Kind::content: content += d.text; break;
    case Delta::Kind::tool_call: tool_calls.push_back(d.call); break;
    case Delta::Kind::search_call: break;
    case Delta::Kind::search_result: searches.push_back(d.search); break;
  }
  logprobs.insert(logprobs.end(), d.logprobs.begin(), d.logprobs.end());
  const bool text = d.kind == Delta::Kind::reasoning || d.kind == Delta::Kind::content;
  if (text && !parts.empty() && parts.back().kind == d.kind) {
    parts.back().text += d.text;
    parts.back().logprobs.insert(parts.back().logprobs.end(), d.logprobs.begin(), d.logprobs.end());
  } else {
    parts.push_back(d);
  }
}

std::vector<Citation> find_citations(const std::string& text, size_t sources_count) {
  std::vector<Citation> out;
  size_t cp = 0;  // code points before text[i]
  for (size_t i = 0; i < text.size(); ++i) {
    if ((static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) continue;
    if (text[i] == '[') {
      size_t j = i + 1, n = 0;
      while (j < text.size() && j - i <= 4 && text[j] >= '0' && text[j] <= '9') n = n * 10 + size_t(text[j++] - '0');
      if (j > i + 1 && j < text.size() && text[j] == ']' && n >= 1 && n <= sources_count)
        out.push_back(Citation{cp, cp + (j - i) + 1, n - 1});  // all ASCII: bytes are code points
    }
    ++cp;
  }
  return out;
}

std::vector<search::Result> numbered_sources(const ResponseMeta& meta, const std::vector<SearchCall>& searches) {
  std::vector<search::Result> out = meta.sources;
  for (auto& s : searches) out.insert(out.end(), s.results.begin(), s.results.end());
  return out;
}

std::string random_id(size_t n) {
  static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
  thread_local std::mt19937_64 rng{std::random_device{}()};
  std::string s(n, 'x');
  for (auto& c : s) c = alphabet[rng() % (sizeof(alphabet) - 1)];
  return s;
}

std::string sse_data(const json::value& v) { return "data: " + json::serialize(v) + "\n\n"; }

std::string sse_event(const std::string& event, const json::value& v) {
  return "event: " + event + "\ndata: " + json::serialize(v) + "\n\n";
}

// The OpenAI dialects have no field for server-side searches: a request that searched reports them
// the way Anthropic does (and OpenRouter for every dialect), usage.server_tool_use.web_search_requests.
void add_search_usage(json::object& usage, const Usage& u) {
  if (u.web_search_calls > 0) usage["server_tool_use"] = json::object{{"web_search_requests", u.web_search_calls}};
}

json::array byte_array(const std::string& bytes) {
  json::array a;
  for (unsigned char c : bytes) a.push_back(int(c));
  return a;
}

// OpenAI's url_citation annotations of a text: Responses' flat shape, Chat's nested one.
json::array url_citations(const std::string& text, const std::vector<search::Result>& sources, bool chat) {
  json::array out;
  for (auto& c : find_citations(text, sources.size())) {
    const search::Result& r = sources[c.source];
    json::object a{{"end_index", c.end}, {"start_index", c.start}, {"title", r.title}, {"url", r.url}};
    if (chat) out.push_back(json::object{{"type", "url_citation"}, {"url_citation", std::move(a)}});
    else {
      a["type"] = "url_citation";
      out.push_back(std::move(a));
    }
  }
  return out;
}

json::object openai_error_body(const ApiError& e) {
  return json::object{{"error", json::object{{"message", e.what()},
                                            {"type", e.type},
                                            {"param", e.param.empty() ? json::value(nullptr) : json::value(e.param)},
                                            {"code", e.code.empty() ? json::value(nullptr) : json::value(e.code)}}}};
}

bool has_search_parts(const Turn& turn) {
  return std::any_of(turn.parts.begin(), turn.parts.end(), [](const Delta& d) { return d.kind == Delta::Kind::search_call; });
}

json::object render_error(Dialect dialect, const ApiError& e, const std::string& request_id) {
  if (dialect == Dialect::anthropic) return anthropic_error_body(e, request_id);
  return openai_error_body(e);
}

json::object render_response(const Request& req, const ResponseMeta& meta, const Turn& turn, const Outcome& outcome) {
  return render_choices(req, meta, std::vector<Turn>{turn}, outcome);
}

ChoiceEnd choice_end(const Outcome& o, size_t i) {
  return i < o.choices.size() ? o.choices[i] : ChoiceEnd{o.stop, o.matched_stop};
}

json::object render_choices(const Request& req, const ResponseMeta& meta, const std::vector<Turn>& turns,
                            const Outcome& outcome) {
  static const Turn kNone;
  const Turn& turn = turns.empty() ? kNone : turns.front();
  switch (req.dialect) {
    case Dialect::chat: return render_chat_response(req, meta, turns, outcome);
    case Dialect::responses: return render_responses_response(req, meta, turn, outcome);
    case Dialect::anthropic: return render_anthropic_response(req, meta, turn, outcome);
  }
  return {};
}

std::unique_ptr<StreamRenderer> make_stream_renderer(const Request& req, const ResponseMeta& meta, int prompt_tokens) {
  switch (req.dialect) {
    case Dialect::chat: return make_chat_stream(req, meta);
    case Dialect::responses: return make_responses_stream(req, meta);
    case Dialect::anthropic: return make_anthropic_stream(req, meta, prompt_tokens);
  }
  return nullptr;
}

}  // namespace v4::api
