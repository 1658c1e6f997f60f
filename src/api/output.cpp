// The three dialects' response objects and SSE streams (wire shapes of api.md section 2).
#include "api/output.h"

#include <algorithm>
#include <random>

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

namespace {
// The OpenAI dialects have no field for server-side searches: a request that searched reports them
// the way Anthropic does (and OpenRouter for every dialect), usage.server_tool_use.web_search_requests.
void add_search_usage(json::object& usage, const Usage& u) {
  if (u.web_search_calls > 0) usage["server_tool_use"] = json::object{{"web_search_requests", u.web_search_calls}};
}
}  // namespace

json::object chat_usage(const Usage& u) {
  json::object o{
      {"prompt_tokens", u.prompt_tokens},
      {"completion_tokens", u.completion_tokens},
      {"total_tokens", u.prompt_tokens + u.completion_tokens},
      {"prompt_tokens_details", json::object{{"cached_tokens", u.cached_tokens}, {"cache_write_tokens", 0}}},
      {"completion_tokens_details", json::object{{"reasoning_tokens", u.reasoning_tokens}}},
      {"prompt_cache_hit_tokens", u.cached_tokens},
      {"prompt_cache_miss_tokens", u.prompt_tokens - u.cached_tokens},
  };
  add_search_usage(o, u);
  return o;
}

json::object responses_usage(const Usage& u) {
  json::object o{
      {"input_tokens", u.prompt_tokens},
      {"input_tokens_details", json::object{{"cached_tokens", u.cached_tokens}, {"cache_write_tokens", 0}}},
      {"output_tokens", u.completion_tokens},
      {"output_tokens_details", json::object{{"reasoning_tokens", u.reasoning_tokens}}},
      {"total_tokens", u.prompt_tokens + u.completion_tokens},
  };
  add_search_usage(o, u);
  return o;
}

// Anthropic's input_tokens counts only the uncached part of the prompt.
json::object anthropic_usage(const Usage& u) {
  return json::object{
      {"input_tokens", u.prompt_tokens - u.cached_tokens},
      {"output_tokens", u.completion_tokens},
      {"cache_creation_input_tokens", 0},
      {"cache_read_input_tokens", u.cached_tokens},
      {"server_tool_use", json::object{{"web_search_requests", u.web_search_calls}, {"web_fetch_requests", 0}}},
      {"service_tier", "standard"},
  };
}

namespace {

// Anthropic thinking blocks carry a signature clients send back; ours is a fixed opaque marker.
constexpr const char* kThinkingSignature = "djRmbGFzaC1sb2NhbA==";

json::array byte_array(const std::string& bytes) {
  json::array a;
  for (unsigned char c : bytes) a.push_back(int(c));
  return a;
}

json::object chat_logprob(const TokenLogprobOut& lp) {
  json::array top;
  for (auto& t : lp.top)
    top.push_back(json::object{{"token", t.token}, {"logprob", t.logprob}, {"bytes", byte_array(t.bytes)}});
  return json::object{{"token", lp.chosen.token},
                      {"logprob", lp.chosen.logprob},
                      {"bytes", byte_array(lp.chosen.bytes)},
                      {"top_logprobs", std::move(top)}};
}

json::array responses_logprobs(const std::vector<TokenLogprobOut>& lps) {
  json::array out;
  for (auto& lp : lps) {
    json::array top;
    for (auto& t : lp.top)
      top.push_back(json::object{{"token", t.token}, {"logprob", t.logprob}, {"bytes", byte_array(t.bytes)}});
    out.push_back(json::object{{"token", lp.chosen.token},
                               {"logprob", lp.chosen.logprob},
                               {"bytes", byte_array(lp.chosen.bytes)},
                               {"top_logprobs", std::move(top)}});
  }
  return out;
}

const char* chat_finish_reason(const Outcome& o, bool has_tool_calls) {
  switch (o.stop) {
    case StopKind::length: return "length";
    case StopKind::tool_calls: return "tool_calls";
    default: return has_tool_calls ? "tool_calls" : "stop";
  }
}

const char* anthropic_stop_reason(const Outcome& o, bool has_tool_calls) {
  switch (o.stop) {
    case StopKind::length: return "max_tokens";
    case StopKind::stop_string: return "stop_sequence";
    case StopKind::tool_calls: return "tool_use";
    case StopKind::pause_turn: return "pause_turn";
    default: return has_tool_calls ? "tool_use" : "end_turn";
  }
}

json::value tool_input_object(const std::string& arguments) {
  boost::system::error_code ec;
  json::value v = json::parse(arguments, ec);
  if (ec || !v.is_object()) return json::object{{"arguments", arguments}};
  return v;
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

// Anthropic's citations of a text block: each source it cites once, as web_search_result_location.
json::array anthropic_citations(const std::string& text, const std::vector<search::Result>& sources) {
  json::array out;
  std::vector<bool> seen(sources.size());
  for (auto& c : find_citations(text, sources.size())) {
    if (seen[c.source]) continue;
    seen[c.source] = true;
    const search::Result& r = sources[c.source];
    std::string cited = r.content.substr(0, std::min<size_t>(r.content.size(), 150));
    while (!cited.empty() && (static_cast<unsigned char>(cited.back()) & 0xC0) == 0x80) cited.pop_back();
    if (!cited.empty() && (static_cast<unsigned char>(cited.back()) & 0xC0) == 0xC0) cited.pop_back();
    out.push_back(json::object{{"type", "web_search_result_location"}, {"url", r.url}, {"title", r.title},
                               {"encrypted_index", seal_reasoning(std::to_string(c.source + 1))},
                               {"cited_text", cited}});
  }
  return out;
}

// Anthropic's server_tool_use and web_search_tool_result blocks of one search.
json::object server_tool_use_block(const SearchCall& c, bool with_input = true) {
  return json::object{{"type", "server_tool_use"}, {"id", c.id}, {"name", "web_search"},
                      {"input", with_input ? json::object{{"query", c.query}} : json::object{}}};
}

json::object search_result_block(const SearchCall& c) {
  json::value content;
  if (!c.error_code.empty()) {
    content = json::object{{"type", "web_search_tool_result_error"}, {"error_code", c.error_code}};
  } else {
    json::array results;
    for (auto& r : c.results)
      results.push_back(json::object{{"type", "web_search_result"}, {"url", r.url}, {"title", r.title},
                                     {"encrypted_content", seal_reasoning(r.content)},
                                     {"page_age", r.date ? json::value(*r.date) : json::value(nullptr)}});
    content = std::move(results);
  }
  return json::object{{"type", "web_search_tool_result"}, {"tool_use_id", c.id}, {"content", std::move(content)}};
}

// The Responses web_search_call item; its sources once the search ran, when the request includes them.
json::object search_item(const Request& req, const SearchCall& c, const char* status) {
  json::object action{{"type", "search"}, {"query", c.query}, {"queries", json::array{json::value(c.query)}}};
  if (req.search_sources && std::string(status) == "completed") {
    json::array sources;
    for (auto& r : c.results) sources.push_back(json::object{{"type", "url"}, {"url", r.url}});
    action["sources"] = std::move(sources);
  }
  return json::object{{"type", "web_search_call"}, {"id", c.id}, {"status", status}, {"action", std::move(action)}};
}

const SearchCall* result_of(const std::vector<SearchCall>& searches, const std::string& id) {
  for (auto& s : searches)
    if (s.id == id) return &s;
  return nullptr;
}

json::object chat_tool_call(const text::ToolCall& c) {
  return json::object{{"id", c.id},
                      {"type", "function"},
                      {"function", json::object{{"name", c.name}, {"arguments", c.arguments}}}};
}

// ---- Responses helpers shared by the object and the stream
// The k-th reasoning / message item (several when searches split the answer).
std::string reasoning_item_id(const ResponseMeta& m, int k = 0) {
  return "rs_" + m.item_id + (k ? "_" + std::to_string(k) : "");
}
std::string message_item_id(const ResponseMeta& m, int k = 0) {
  return "msg_" + m.item_id + (k ? "_" + std::to_string(k) : "");
}
std::string call_item_id(const ResponseMeta& m, size_t i) { return "fc_" + m.item_id + "_" + std::to_string(i); }

// The reasoning item. reasoning.summary asked for: the summary is the reasoning itself (this server
// has no summariser; docs/api.md). include reasoning.encrypted_content: the sealed copy, once complete.
json::object reasoning_item(const Request& req, const ResponseMeta& m, const std::string& text, const char* status,
                            int k = 0) {
  const bool done = std::string(status) == "completed";
  // thinking.display "omitted": the reasoning is not shown, but still sealed for the round trip
  const std::string shown = req.show_thinking ? text : std::string();
  json::array content, summary;
  if (!shown.empty() || done) content.push_back(json::object{{"type", "reasoning_text"}, {"text", shown}});
  if (!req.reasoning_summary.empty() && (!shown.empty() || done))
    summary.push_back(json::object{{"type", "summary_text"}, {"text", shown}});
  json::value sealed = nullptr;
  if (req.encrypted_reasoning && done) sealed = json::value(seal_reasoning(text));
  return json::object{{"type", "reasoning"}, {"id", reasoning_item_id(m, k)}, {"summary", std::move(summary)},
                      {"content", std::move(content)}, {"encrypted_content", std::move(sealed)}, {"status", status}};
}

json::object output_text_part(const std::string& text, const std::vector<TokenLogprobOut>& lps,
                              json::array annotations = {}) {
  return json::object{{"type", "output_text"}, {"text", text}, {"annotations", std::move(annotations)},
                      {"logprobs", responses_logprobs(lps)}};
}

json::object message_item(const ResponseMeta& m, json::array content, const char* status, int k = 0) {
  return json::object{{"type", "message"}, {"id", message_item_id(m, k)}, {"role", "assistant"},
                      {"status", status}, {"content", std::move(content)}};
}

const ToolOrigin* origin_of(const Request& req, const std::string& model_name) {
  for (auto& o : req.tool_origins)
    if (o.model_name == model_name) return &o;
  return nullptr;
}

// A custom tool's input: the `input` argument the model gave (its raw arguments if it gave none).
std::string custom_input(const std::string& arguments) {
  boost::system::error_code ec;
  json::value v = json::parse(arguments, ec);
  if (!ec && v.is_object() && v.get_object().contains("input") && v.at("input").is_string())
    return std::string(v.at("input").get_string());
  return arguments;
}

// A call in the shape its tool was declared in: function_call (with `namespace` for a namespace's
// member) or custom_tool_call.
json::object call_item(const Request& req, const ResponseMeta& m, const text::ToolCall& c, const std::string& arguments,
                       const char* status) {
  const ToolOrigin* o = origin_of(req, c.name);
  if (o && o->custom) {
    json::object item{{"type", "custom_tool_call"}, {"id", "ctc_" + m.item_id + "_" + std::to_string(c.index)},
                      {"call_id", c.id}, {"name", o->name}, {"input", custom_input(arguments)}, {"status", status}};
    if (!o->ns.empty()) item["namespace"] = o->ns;
    return item;
  }
  json::object item{{"type", "function_call"}, {"id", call_item_id(m, c.index)}, {"call_id", c.id},
                    {"name", o ? o->name : c.name}, {"arguments", arguments}, {"status", status}};
  if (o && !o->ns.empty()) item["namespace"] = o->ns;
  return item;
}

json::array responses_tools(const Request& req) {
  json::array out;
  for (auto& t : req.tools) {
    auto& fn = t.at("function").as_object();
    if (const ToolOrigin* origin = origin_of(req, std::string(fn.at("name").as_string())); origin && origin->custom) {
      out.push_back(json::object{{"type", "custom"}, {"name", origin->name}});
      continue;
    }
    json::object o{{"type", "function"}, {"name", fn.at("name")}, {"parameters", fn.at("parameters")}, {"strict", false}};
    o["description"] = fn.contains("description") ? fn.at("description") : json::value(nullptr);
    out.push_back(std::move(o));
  }
  return out;
}

json::value responses_tool_choice(const ToolChoice& choice) {
  switch (choice.mode) {
    case ToolChoice::Mode::automatic: return "auto";
    case ToolChoice::Mode::none: return "none";
    case ToolChoice::Mode::required: return "required";
    case ToolChoice::Mode::named: return json::object{{"type", "function"}, {"name", choice.name}};
  }
  return "auto";
}

// text.format as the response echoes it (the schema's name and strict as this server has always
// echoed them).
json::object responses_text_format(const OutputFormat& format) {
  switch (format.kind) {
    case OutputFormat::Kind::text: return json::object{{"type", "text"}};
    case OutputFormat::Kind::json_object: return json::object{{"type", "json_object"}};
    case OutputFormat::Kind::json_schema:
      return json::object{{"type", "json_schema"}, {"name", "response"}, {"schema", format.schema}, {"strict", false}};
  }
  return json::object{{"type", "text"}};
}

// Declared tools the model was not given, with why (docs/api.md): a v4flash extension field.
json::array withheld_tools(const Request& req) {
  json::array out;
  for (auto& type : req.withheld_tools)
    out.push_back(json::object{{"type", type},
                               {"reason", req.withheld_reason + "; the tool was not given to the model "
                                                                "(web_search_linkup searches before the answer)"}});
  return out;
}

// The Response object in any state; `output` and `usage` filled by the caller.
json::object response_object(const Request& req, const ResponseMeta& m, const char* status) {
  return json::object{
      {"id", m.id},
      {"object", "response"},
      {"created_at", m.created},
      {"status", status},
      {"background", req.background},
      {"error", nullptr},
      {"incomplete_details", nullptr},
      {"instructions", req.instructions.empty() ? json::value(nullptr) : json::value(req.instructions)},
      {"max_output_tokens", req.max_tokens_given ? json::value(req.max_tokens) : json::value(nullptr)},
      {"model", m.model},
      {"output", json::array{}},
      {"parallel_tool_calls", req.parallel_tool_calls},
      {"previous_response_id", req.previous_response_id ? json::value(*req.previous_response_id) : json::value(nullptr)},
      {"reasoning", json::object{{"effort", req.thinking ? json::value(req.effort) : json::value("none")},
                                 {"summary", req.reasoning_summary.empty() ? json::value(nullptr) : json::value(req.reasoning_summary)}}},
      {"service_tier", "default"},
      {"store", req.store},
      {"temperature", req.temperature},
      {"text", json::object{{"format", responses_text_format(req.output_format)}}},
      {"tool_choice", responses_tool_choice(req.tool_choice)},
      {"tools", responses_tools(req)},
      {"top_p", req.top_p},
      {"truncation", "disabled"},
      {"metadata", req.metadata},  // usage: added once known (the schema has no null usage)
      {"prompt_cache_key", req.prompt_cache_key.empty() ? json::value(nullptr) : json::value(req.prompt_cache_key)},
      {"withheld_tools", withheld_tools(req)},
  };
}

void set_response_outcome(json::object& r, const Outcome& o) {
  if (o.stop == StopKind::length) {
    r["status"] = "incomplete";
    r["incomplete_details"] = json::object{{"reason", "max_output_tokens"}};
  } else if (o.stop == StopKind::error) {
    r["status"] = "failed";
    r["error"] = json::object{{"code", "server_error"}, {"message", o.error}};
  } else {
    r["status"] = "completed";
  }
  r["usage"] = responses_usage(o.usage);
}

// anthropic-beta thinking-token-count: the reasoning share of output_tokens.
json::object anthropic_usage_for(const Request& req, const Usage& u) {
  json::object usage = anthropic_usage(u);
  if (req.thinking_token_count) usage["output_tokens_details"] = json::object{{"thinking_tokens", u.reasoning_tokens}};
  return usage;
}

const char* anthropic_error_type(int status) {
  switch (status) {
    case 400: case 422: return "invalid_request_error";
    case 401: return "authentication_error";
    case 402: return "billing_error";
    case 403: return "permission_error";
    case 404: return "not_found_error";
    case 413: return "request_too_large";
    case 429: return "rate_limit_error";
    case 504: return "timeout_error";
    case 503: case 529: return "overloaded_error";
    default: return "api_error";
  }
}

json::object openai_error_body(const ApiError& e) {
  return json::object{{"error", json::object{{"message", e.what()},
                                            {"type", e.type},
                                            {"param", e.param.empty() ? json::value(nullptr) : json::value(e.param)},
                                            {"code", e.code.empty() ? json::value(nullptr) : json::value(e.code)}}}};
}

// ------------------------------------------------------------------- Chat stream
class ChatStream final : public StreamRenderer {
 public:
  ChatStream(const Request& req, const ResponseMeta& meta) : req_(req), meta_(meta) {}
  std::string start(int /*cached_prompt_tokens*/) override {
    return chunk(json::object{{"role", "assistant"}, {"content", ""}}, nullptr, nullptr);
  }
  std::string delta(const Delta& d) override {
    switch (d.kind) {
      case Delta::Kind::reasoning:  // thinking.display "omitted": not shown
        if (!req_.show_thinking) return {};
        return chunk(json::object{{"reasoning_content", d.text}}, nullptr, nullptr);
      case Delta::Kind::content: {
        json::value lp = nullptr;
        if (req_.logprobs) {
          json::array content;
          for (auto& l : d.logprobs) content.push_back(chat_logprob(l));
          lp = json::object{{"content", std::move(content)}, {"refusal", nullptr}};
        }
        content_ += d.text;
        return chunk(json::object{{"content", d.text}}, nullptr, std::move(lp));
      }
      case Delta::Kind::search_call:
      case Delta::Kind::search_result:
        return {};  // (Chat has no search tool)
      case Delta::Kind::tool_call:
        has_tool_calls_ = true;
        return chunk(json::object{{"tool_calls", json::array{json::object{
                                       {"index", d.call.index},
                                       {"id", d.call.id},
                                       {"type", "function"},
                                       {"function", json::object{{"name", d.call.name}, {"arguments", d.call.arguments}}}}}}},
                     nullptr, nullptr);
    }
    return {};
  }
  std::string finish(const Outcome& o) override {
    std::string out;
    // web_search_linkup: the sources the answer cites, as the message's annotations.
    if (json::array a = url_citations(content_, meta_.sources, true); !a.empty())
      out += chunk(json::object{{"annotations", std::move(a)}}, nullptr, nullptr);
    // With vLLM's stop_reason, the stop string that ended the answer (a gateway in front of this
    // server tells Anthropic's stop_sequence from it).
    out += chunk(json::object{}, chat_finish_reason(o, has_tool_calls_), nullptr,
                 o.stop == StopKind::stop_string ? json::value(o.matched_stop) : json::value(nullptr));
    if (req_.include_usage) {
      json::object c = base();
      c["choices"] = json::array{};
      c["usage"] = chat_usage(o.usage);
      out += sse_data(c);
    }
    return out + "data: [DONE]\n\n";
  }
  std::string error(const ApiError& e) override { return sse_data(openai_error_body(e)); }

 private:
  json::object base() const {
    json::object c{{"id", meta_.id}, {"object", "chat.completion.chunk"}, {"created", meta_.created},
                   {"model", meta_.model}, {"system_fingerprint", "fp_v4flash"}};
    return c;
  }
  std::string chunk(json::object delta, const char* finish, json::value logprobs, json::value stop_reason = nullptr) {
    json::object c = base();
    c["choices"] = json::array{json::object{{"index", 0},
                                            {"delta", std::move(delta)},
                                            {"logprobs", std::move(logprobs)},
                                            {"finish_reason", finish ? json::value(finish) : json::value(nullptr)}}};
    if (!stop_reason.is_null()) c["choices"].as_array()[0].as_object()["stop_reason"] = std::move(stop_reason);
    if (req_.include_usage) c["usage"] = nullptr;
    return sse_data(c);
  }
  const Request& req_;
  ResponseMeta meta_;
  bool has_tool_calls_ = false;
  std::string content_;
};

// ------------------------------------------------------------------- Responses stream
class ResponsesStream final : public StreamRenderer {
 public:
  ResponsesStream(const Request& req, const ResponseMeta& meta) : req_(req), meta_(meta), sources_(meta.sources) {}
  std::string start(int /*cached_prompt_tokens*/) override {
    json::object r = response_object(req_, meta_, "in_progress");
    std::string out = event("response.created", json::object{{"response", r}});
    out += event("response.in_progress", json::object{{"response", r}});  // after: sequence numbers
    return out;
  }
  std::string delta(const Delta& d) override {
    std::string out;
    turn_.add(d);
    switch (d.kind) {
      case Delta::Kind::reasoning: {
        out += open_reasoning();
        item_text_ += d.text;
        if (!req_.show_thinking) break;  // thinking.display "omitted": the item stays empty
        const std::string id = reasoning_item_id(meta_, reasoning_count_);
        out += event("response.reasoning_text.delta",
                     json::object{{"item_id", id}, {"output_index", index_}, {"content_index", 0}, {"delta", d.text}});
        if (summarise())
          out += event("response.reasoning_summary_text.delta", json::object{{"item_id", id}, {"output_index", index_},
                                                                             {"summary_index", 0}, {"delta", d.text}});
        break;
      }
      case Delta::Kind::content:
        out += open_message();
        item_text_ += d.text;
        item_logprobs_.insert(item_logprobs_.end(), d.logprobs.begin(), d.logprobs.end());
        out += event("response.output_text.delta",
                     json::object{{"item_id", message_item_id(meta_, message_count_)}, {"output_index", index_},
                                  {"content_index", 0}, {"delta", d.text}, {"logprobs", responses_logprobs(d.logprobs)}});
        break;
      case Delta::Kind::tool_call: out += call_events(d.call); break;
      case Delta::Kind::search_call: out += search_started(d.search); break;
      case Delta::Kind::search_result: out += search_done(d.search); break;
    }
    return out;
  }
  std::string finish(const Outcome& o) override {
    std::string out;
    // A turn without any visible answer still has its (empty) message item, as the object does.
    if (turn_.content.empty() && turn_.tool_calls.empty() && open_ != Open::message) out += open_message();
    out += close();
    json::object r = o.response ? *o.response : render_response(req_, meta_, turn_, o);
    const char* type = o.stop == StopKind::length ? "response.incomplete"
                       : o.stop == StopKind::error ? "response.failed" : "response.completed";
    out += event(type, json::object{{"response", std::move(r)}});
    return out;
  }
  std::string error(const ApiError& e) override {
    std::string out = event("error", json::object{{"code", e.code.empty() ? json::value(e.type) : json::value(e.code)},
                                                   {"message", e.what()},
                                                   {"param", e.param.empty() ? json::value(nullptr) : json::value(e.param)}});
    json::object r = response_object(req_, meta_, "failed");
    r["error"] = json::object{{"code", "server_error"}, {"message", e.what()}};
    return out + event("response.failed", json::object{{"response", std::move(r)}});
  }

 private:
  enum class Open { none, reasoning, message };
  bool summarise() const { return !req_.reasoning_summary.empty(); }
  std::string event(const std::string& type, json::object body) {
    body["type"] = type;
    body["sequence_number"] = seq_++;
    return sse_event(type, body);
  }
  std::string open_reasoning() {
    if (open_ == Open::reasoning) return {};
    std::string out = close();
    open_ = Open::reasoning;
    index_ = next_index_++;
    const std::string id = reasoning_item_id(meta_, reasoning_count_);
    out += event("response.output_item.added",
                 json::object{{"output_index", index_},
                              {"item", reasoning_item(req_, meta_, "", "in_progress", reasoning_count_)}});
    out += event("response.content_part.added",
                 json::object{{"item_id", id}, {"output_index", index_}, {"content_index", 0},
                              {"part", json::object{{"type", "reasoning_text"}, {"text", ""}}}});
    if (summarise())
      out += event("response.reasoning_summary_part.added",
                   json::object{{"item_id", id}, {"output_index", index_}, {"summary_index", 0},
                                {"part", json::object{{"type", "summary_text"}, {"text", ""}}}});
    return out;
  }
  std::string open_message() {
    if (open_ == Open::message) return {};
    std::string out = close();
    open_ = Open::message;
    index_ = next_index_++;
    out += event("response.output_item.added",
                 json::object{{"output_index", index_},
                              {"item", message_item(meta_, json::array{}, "in_progress", message_count_)}});
    out += event("response.content_part.added",
                 json::object{{"item_id", message_item_id(meta_, message_count_)}, {"output_index", index_},
                              {"content_index", 0}, {"part", output_text_part("", {})}});
    return out;
  }
  std::string call_events(const text::ToolCall& c) {
    std::string out = close();
    int idx = next_index_++;
    json::object added = call_item(req_, meta_, c, "", "in_progress");
    json::object done = call_item(req_, meta_, c, c.arguments, "completed");
    const json::value item_id = done.at("id");
    out += event("response.output_item.added", json::object{{"output_index", idx}, {"item", std::move(added)}});
    if (done.at("type") == "custom_tool_call") {
      out += event("response.custom_tool_call_input.delta",
                   json::object{{"item_id", item_id}, {"output_index", idx}, {"delta", done.at("input")}});
      out += event("response.custom_tool_call_input.done",
                   json::object{{"item_id", item_id}, {"output_index", idx}, {"input", done.at("input")}});
    } else {
      out += event("response.function_call_arguments.delta",
                   json::object{{"item_id", item_id}, {"output_index", idx}, {"delta", c.arguments}});
      out += event("response.function_call_arguments.done",
                   json::object{{"item_id", item_id}, {"output_index", idx}, {"name", done.at("name")},
                                {"arguments", c.arguments}});
    }
    out += event("response.output_item.done", json::object{{"output_index", idx}, {"item", std::move(done)}});
    return out;
  }
  // The model called the search tool: its item, in progress and searching until the results come.
  std::string search_started(const SearchCall& c) {
    std::string out = close();
    const int idx = next_index_++;
    search_index_.emplace_back(c.id, idx);
    out += event("response.output_item.added", json::object{{"output_index", idx}, {"item", search_item(req_, c, "in_progress")}});
    out += event("response.web_search_call.in_progress", json::object{{"item_id", c.id}, {"output_index", idx}});
    out += event("response.web_search_call.searching", json::object{{"item_id", c.id}, {"output_index", idx}});
    return out;
  }
  std::string search_done(const SearchCall& c) {
    int idx = -1;
    for (auto& [id, i] : search_index_)
      if (id == c.id) idx = i;
    if (idx < 0) return {};
    sources_.insert(sources_.end(), c.results.begin(), c.results.end());
    const bool ok = c.error_code.empty();
    std::string out;
    if (ok) out += event("response.web_search_call.completed", json::object{{"item_id", c.id}, {"output_index", idx}});
    out += event("response.output_item.done",
                 json::object{{"output_index", idx}, {"item", search_item(req_, c, ok ? "completed" : "failed")}});
    return out;
  }
  std::string close() {
    std::string out;
    if (open_ == Open::reasoning) {
      const std::string id = reasoning_item_id(meta_, reasoning_count_);
      const std::string shown = req_.show_thinking ? item_text_ : std::string();
      if (summarise()) {
        out += event("response.reasoning_summary_text.done", json::object{{"item_id", id}, {"output_index", index_},
                                                                          {"summary_index", 0}, {"text", shown}});
        out += event("response.reasoning_summary_part.done",
                     json::object{{"item_id", id}, {"output_index", index_}, {"summary_index", 0},
                                  {"part", json::object{{"type", "summary_text"}, {"text", shown}}}});
      }
      out += event("response.reasoning_text.done",
                   json::object{{"item_id", id}, {"output_index", index_}, {"content_index", 0}, {"text", shown}});
      out += event("response.content_part.done",
                   json::object{{"item_id", id}, {"output_index", index_}, {"content_index", 0},
                                {"part", json::object{{"type", "reasoning_text"}, {"text", shown}}}});
      out += event("response.output_item.done",
                   json::object{{"output_index", index_},
                                {"item", reasoning_item(req_, meta_, item_text_, "completed", reasoning_count_)}});
      ++reasoning_count_;
    } else if (open_ == Open::message) {
      const std::string id = message_item_id(meta_, message_count_);
      json::array annotations = url_citations(item_text_, sources_, false);
      for (size_t k = 0; k < annotations.size(); ++k)
        out += event("response.output_text.annotation.added",
                     json::object{{"item_id", id}, {"output_index", index_}, {"content_index", 0},
                                  {"annotation_index", k}, {"annotation", annotations[k]}});
      out += event("response.output_text.done",
                   json::object{{"item_id", id}, {"output_index", index_}, {"content_index", 0}, {"text", item_text_},
                                {"logprobs", responses_logprobs(item_logprobs_)}});
      json::object part = output_text_part(item_text_, item_logprobs_, std::move(annotations));
      out += event("response.content_part.done",
                   json::object{{"item_id", id}, {"output_index", index_}, {"content_index", 0}, {"part", part}});
      out += event("response.output_item.done",
                   json::object{{"output_index", index_},
                                {"item", message_item(meta_, json::array{part}, "completed", message_count_)}});
      ++message_count_;
    }
    open_ = Open::none;
    item_text_.clear();
    item_logprobs_.clear();
    return out;
  }
  const Request& req_;
  ResponseMeta meta_;
  Turn turn_;
  Open open_ = Open::none;
  int index_ = -1, next_index_ = 0;
  int reasoning_count_ = 0, message_count_ = 0;
  std::string item_text_;  // the open item's text
  std::vector<TokenLogprobOut> item_logprobs_;
  std::vector<search::Result> sources_;  // cited as [n]: web_search_linkup's, then each search's results
  std::vector<std::pair<std::string, int>> search_index_;  // search call id -> output index
  int64_t seq_ = 0;
};

// ------------------------------------------------------------------- Anthropic stream
class AnthropicStream final : public StreamRenderer {
 public:
  AnthropicStream(const Request& req, const ResponseMeta& meta, int prompt_tokens)
      : req_(req), meta_(meta), prompt_tokens_(prompt_tokens), sources_(meta.sources) {}
  // message_start's usage splits the prompt as the final message_delta does (input_tokens is the
  // uncached part), so a client reading either sees the same prompt accounting. No output token
  // yet: 0, not Anthropic's sample 1, which clients that add the start's count to the final
  // message_delta's (LangChain's ChatAnthropic) would report once too many.
  bool start_waits_for_admission() const override { return true; }
  std::string start(int cached_prompt_tokens) override {
    const int cached = std::clamp(cached_prompt_tokens, 0, prompt_tokens_);
    json::object usage{{"input_tokens", prompt_tokens_ - cached}, {"cache_creation_input_tokens", 0},
                       {"cache_read_input_tokens", cached}, {"output_tokens", 0}};
    json::object msg{{"id", meta_.id}, {"type", "message"}, {"role", "assistant"}, {"content", json::array{}},
                     {"model", meta_.model}, {"stop_reason", nullptr}, {"stop_sequence", nullptr}, {"usage", usage}};
    return sse_event("message_start", json::object{{"type", "message_start"}, {"message", msg}}) + ping();
  }
  std::string delta(const Delta& d) override {
    std::string out;
    if (d.kind == Delta::Kind::reasoning) {
      if (open_ != Open::thinking) {
        out += close();
        open_ = Open::thinking;
        out += block_start(json::object{{"type", "thinking"}, {"thinking", ""}, {"signature", ""}});
      }
      if (req_.show_thinking)
        out += block_delta(json::object{{"type", "thinking_delta"}, {"thinking", d.text}});
    } else if (d.kind == Delta::Kind::content) {
      if (open_ != Open::text) {
        out += close();
        open_ = Open::text;
        out += block_start(json::object{{"type", "text"}, {"text", ""}});
      }
      text_ += d.text;
      out += block_delta(json::object{{"type", "text_delta"}, {"text", d.text}});
    } else if (d.kind == Delta::Kind::search_call) {
      // As Anthropic streams them: the call with its input, then the whole result in its start event.
      out += close();
      out += block_start(server_tool_use_block(d.search, /*with_input=*/false));
      out += block_delta(json::object{{"type", "input_json_delta"},
                                      {"partial_json", json::serialize(json::object{{"query", d.search.query}})}});
      out += block_stop();
    } else if (d.kind == Delta::Kind::search_result) {
      out += close();
      sources_.insert(sources_.end(), d.search.results.begin(), d.search.results.end());
      out += block_start(search_result_block(d.search));
      out += block_stop();
    } else {
      out += close();
      has_tool_calls_ = true;
      out += block_start(json::object{{"type", "tool_use"}, {"id", d.call.id}, {"name", d.call.name}, {"input", json::object{}}});
      out += block_delta(json::object{{"type", "input_json_delta"}, {"partial_json", d.call.arguments}});
      out += block_stop();
    }
    return out;
  }
  std::string finish(const Outcome& o) override {
    std::string out = close();
    json::object usage = anthropic_usage_for(req_, o.usage);
    out += sse_event("message_delta",
                     json::object{{"type", "message_delta"},
                                  {"delta", json::object{{"stop_reason", anthropic_stop_reason(o, has_tool_calls_)},
                                                         {"stop_sequence", o.stop == StopKind::stop_string
                                                                               ? json::value(o.matched_stop)
                                                                               : json::value(nullptr)}}},
                                  {"usage", usage}});
    out += sse_event("message_stop", json::object{{"type", "message_stop"}});
    return out;
  }
  std::string error(const ApiError& e) override {
    return sse_event("error", json::object{{"type", "error"},
                                           {"error", json::object{{"type", anthropic_error_type(e.status)}, {"message", e.what()}}}});
  }
  std::string ping() override { return sse_event("ping", json::object{{"type", "ping"}}); }

 private:
  enum class Open { none, thinking, text };
  std::string block_start(json::object block) {
    return sse_event("content_block_start",
                     json::object{{"type", "content_block_start"}, {"index", index_}, {"content_block", std::move(block)}});
  }
  std::string block_delta(json::object delta) {
    return sse_event("content_block_delta",
                     json::object{{"type", "content_block_delta"}, {"index", index_}, {"delta", std::move(delta)}});
  }
  std::string block_stop() {
    std::string out = sse_event("content_block_stop", json::object{{"type", "content_block_stop"}, {"index", index_}});
    ++index_;
    return out;
  }
  std::string close() {
    std::string out;
    if (open_ == Open::thinking)
      out += block_delta(json::object{{"type", "signature_delta"}, {"signature", kThinkingSignature}});
    if (open_ == Open::text)  // the sources the block cites (web search)
      for (auto& c : anthropic_citations(text_, sources_))
        out += block_delta(json::object{{"type", "citations_delta"}, {"citation", c}});
    if (open_ != Open::none) out += block_stop();
    open_ = Open::none;
    text_.clear();
    return out;
  }
  const Request& req_;
  ResponseMeta meta_;
  int prompt_tokens_;
  std::vector<search::Result> sources_;  // cited as [n]: web_search_linkup's, then each search's results
  std::string text_;                     // the open text block's text
  Open open_ = Open::none;
  int index_ = 0;
  bool has_tool_calls_ = false;
};

bool has_search_parts(const Turn& turn) {
  return std::any_of(turn.parts.begin(), turn.parts.end(), [](const Delta& d) { return d.kind == Delta::Kind::search_call; });
}

// A turn with searches: its items in order (reasoning, web_search_call, message, ... as the stream
// made them), each message's text annotated with the sources it cites.
json::array responses_items(const Request& req, const ResponseMeta& m, const Turn& turn) {
  const std::vector<search::Result> sources = numbered_sources(m, turn.searches);
  json::array output;
  int reasoning = 0, messages = 0;
  for (auto& p : turn.parts) {
    switch (p.kind) {
      case Delta::Kind::reasoning: output.push_back(reasoning_item(req, m, p.text, "completed", reasoning++)); break;
      case Delta::Kind::content:
        output.push_back(message_item(
            m, json::array{output_text_part(p.text, p.logprobs, url_citations(p.text, sources, false))}, "completed",
            messages++));
        break;
      case Delta::Kind::tool_call: output.push_back(call_item(req, m, p.call, p.call.arguments, "completed")); break;
      case Delta::Kind::search_call: {
        const SearchCall* done = result_of(turn.searches, p.search.id);
        output.push_back(done ? search_item(req, *done, done->error_code.empty() ? "completed" : "failed")
                              : search_item(req, p.search, "in_progress"));
        break;
      }
      case Delta::Kind::search_result: break;  // (the call's item)
    }
  }
  if (turn.content.empty() && turn.tool_calls.empty())
    output.push_back(message_item(m, json::array{output_text_part("", {})}, "completed", messages));
  return output;
}

json::object thinking_block(const Request& req, const std::string& text) {
  return json::object{{"type", "thinking"}, {"thinking", req.show_thinking ? text : std::string()},
                      {"signature", kThinkingSignature}};
}

// A text block; `citations` only when it cites a source (Anthropic leaves the key out otherwise).
json::object text_block(const std::string& text, const std::vector<search::Result>& sources) {
  json::object b{{"type", "text"}, {"text", text}};
  json::array citations = anthropic_citations(text, sources);
  if (!citations.empty()) b["citations"] = std::move(citations);
  return b;
}

json::object tool_use_block(const text::ToolCall& c) {
  return json::object{{"type", "tool_use"}, {"id", c.id}, {"name", c.name}, {"input", tool_input_object(c.arguments)}};
}

// A turn with searches: thinking, server_tool_use, web_search_tool_result, text, ... in order.
json::array anthropic_blocks(const Request& req, const ResponseMeta& m, const Turn& turn) {
  const std::vector<search::Result> sources = numbered_sources(m, turn.searches);
  json::array content;
  for (auto& p : turn.parts) {
    switch (p.kind) {
      case Delta::Kind::reasoning:
        if (req.thinking) content.push_back(thinking_block(req, p.text));
        break;
      case Delta::Kind::content: content.push_back(text_block(p.text, sources)); break;
      case Delta::Kind::tool_call: content.push_back(tool_use_block(p.call)); break;
      case Delta::Kind::search_call: content.push_back(server_tool_use_block(p.search)); break;
      case Delta::Kind::search_result: content.push_back(search_result_block(p.search)); break;
    }
  }
  return content;
}

}  // namespace

json::object render_error(Dialect dialect, const ApiError& e, const std::string& request_id) {
  if (dialect == Dialect::anthropic)
    return json::object{{"type", "error"},
                        {"error", json::object{{"type", anthropic_error_type(e.status)}, {"message", e.what()}}},
                        {"request_id", request_id}};
  return openai_error_body(e);
}

json::object render_pending_response(const Request& req, const ResponseMeta& meta, const char* status) {
  return response_object(req, meta, status);
}

json::object render_response(const Request& req, const ResponseMeta& m, const Turn& turn, const Outcome& o) {
  const bool has_calls = !turn.tool_calls.empty();
  switch (req.dialect) {
    case Dialect::chat: {
      json::object msg{{"role", "assistant"},
                       {"content", turn.content.empty() && has_calls ? json::value(nullptr) : json::value(turn.content)},
                       {"refusal", nullptr},
                       {"reasoning_content", req.thinking ? json::value(req.show_thinking ? turn.reasoning : std::string())
                                                          : json::value(nullptr)},
                       {"annotations", url_citations(turn.content, m.sources, /*chat=*/true)}};
      if (has_calls) {
        json::array calls;
        for (auto& c : turn.tool_calls) calls.push_back(chat_tool_call(c));
        msg["tool_calls"] = std::move(calls);
      }
      json::value logprobs = nullptr;
      if (req.logprobs) {
        json::array content;
        for (auto& l : turn.logprobs) content.push_back(chat_logprob(l));
        logprobs = json::object{{"content", std::move(content)}, {"refusal", nullptr}};
      }
      return json::object{{"id", m.id},
                          {"object", "chat.completion"},
                          {"created", m.created},
                          {"model", m.model},
                          {"system_fingerprint", "fp_v4flash"},
                          {"service_tier", "default"},
                          {"choices", json::array{json::object{{"index", 0},
                                                               {"finish_reason", chat_finish_reason(o, has_calls)},
                                                               {"logprobs", std::move(logprobs)},
                                                               {"message", std::move(msg)}}}},
                          {"usage", chat_usage(o.usage)}};
    }
    case Dialect::responses: {
      json::object r = response_object(req, m, "completed");
      json::array output;
      if (has_search_parts(turn)) {
        output = responses_items(req, m, turn);
      } else {
        if (!turn.reasoning.empty()) output.push_back(reasoning_item(req, m, turn.reasoning, "completed"));
        if (!turn.content.empty() || !has_calls)
          output.push_back(message_item(
              m, json::array{output_text_part(turn.content, turn.logprobs, url_citations(turn.content, m.sources, false))},
              "completed"));
        for (auto& c : turn.tool_calls) output.push_back(call_item(req, m, c, c.arguments, "completed"));
      }
      r["output"] = std::move(output);
      set_response_outcome(r, o);
      return r;
    }
    case Dialect::anthropic: {
      json::array content;
      if (has_search_parts(turn)) {
        content = anthropic_blocks(req, m, turn);
      } else {
        if (req.thinking && !turn.reasoning.empty()) content.push_back(thinking_block(req, turn.reasoning));
        if (!turn.content.empty() || !has_calls) content.push_back(text_block(turn.content, m.sources));
        for (auto& c : turn.tool_calls) content.push_back(tool_use_block(c));
      }
      return json::object{{"id", m.id},
                          {"type", "message"},
                          {"role", "assistant"},
                          {"model", m.model},
                          {"content", std::move(content)},
                          {"stop_reason", anthropic_stop_reason(o, has_calls)},
                          {"stop_sequence", o.stop == StopKind::stop_string ? json::value(o.matched_stop) : json::value(nullptr)},
                          {"usage", anthropic_usage_for(req, o.usage)}};
    }
  }
  return {};
}

std::unique_ptr<StreamRenderer> make_stream_renderer(const Request& req, const ResponseMeta& meta, int prompt_tokens) {
  switch (req.dialect) {
    case Dialect::chat: return std::make_unique<ChatStream>(req, meta);
    case Dialect::responses: return std::make_unique<ResponsesStream>(req, meta);
    case Dialect::anthropic: return std::make_unique<AnthropicStream>(req, meta, prompt_tokens);
  }
  return nullptr;
}

}  // namespace v4::api
