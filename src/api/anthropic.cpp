// The Anthropic Messages adapter: request parsing (blocks, betas, context management) and the
// message object, its event stream and error shape.
#include "api/anthropic.h"

#include <algorithm>
#include <functional>

namespace v4::api {

namespace json = boost::json;

namespace {

// The betas this server honours (anthropic-beta header); docs/api.md says what each one does here.
constexpr std::string_view kAnthropicBetas[] = {
    "claude-code-20250219",            // names the client; nothing to change
    "interleaved-thinking-2025-05-14",  // thinking between tool calls: V4 reasons after every tool result
    "thinking-token-count-2026-05-13",  // usage.output_tokens_details.thinking_tokens
    "context-management-2025-06-27",    // context_management edits (clear_thinking)
    "prompt-caching-scope-2026-01-05",  // cache_control: the prefix cache (automatic)
    "prompt-caching-2024-07-31",        // the same, older name
    "mid-conversation-system-2026-04-07",  // role "system" inside messages
    "effort-2025-11-24",                // output_config.effort
    "context-1m-2025-08-07",            // a 1M-token context: the model's own window
};

// Anthropic cache_control {"type": "ephemeral", "ttl": "5m"|"1h"}: honoured by the prefix cache,
// which keeps every prompt's blocks without being asked (a cached prefix is reported as
// cache_read_input_tokens), so the marker needs no action beyond validation.
void read_cache_control(const Fields& f) {
  const json::object* cc = f.object("cache_control");
  if (!cc) return;
  Fields cf = f.sub(*cc, f.path("cache_control"));
  cf.only({"type", "ttl"});
  if (cf.req_str("type") != "ephemeral")
    throw invalid_value(Dialect::anthropic, cf.path("type"), "'" + cf.path("type") + "' must be ephemeral");
  if (auto ttl = cf.str("ttl"); ttl && *ttl != "5m" && *ttl != "1h")
    throw invalid_value(Dialect::anthropic, cf.path("ttl"), "'" + cf.path("ttl") + "' must be 5m or 1h");
}

// Text of an Anthropic string-or-text-blocks value (system, tool_result content, system messages).
std::string anthropic_text(const Fields& parent, const json::value& content, const std::string& path) {
  if (content.is_string()) return std::string(content.get_string());
  if (!content.is_array()) throw bad_request(path, "invalid type for '" + path + "': expected a string or an array of text blocks");
  std::string out;
  size_t i = 0;
  for (auto& part : content.get_array()) {
    std::string pp = path + "[" + std::to_string(i++) + "]";
    Fields pf = parent.sub(as_object(part, pp, Dialect::anthropic), pp);
    pf.only({"type", "text", "cache_control", "citations"});
    if (pf.req_str("type") != "text")
      throw bad_request(pp + ".type", "'" + pp + ".type': only text blocks are supported here");
    read_cache_control(pf);
    out += pf.req_str("text");
  }
  return out;
}

// context_management.edits: clear_thinking_20251015 keeps the thinking of the last `keep` assistant
// turns ("all": every one) and drops the rest from the prompt. Returns the number of turns to
// keep (-1: all); other edits are refused.
int read_context_management(const Fields& f) {
  const json::object* cm = f.object("context_management");
  if (!cm) return -1;
  Fields cf = f.sub(*cm, "context_management");
  cf.only({"edits"});
  int keep = -1;
  const json::array* edits = cf.array("edits");
  size_t i = 0;
  for (auto& e : edits ? *edits : json::array{}) {
    std::string ep = "context_management.edits[" + std::to_string(i++) + "]";
    Fields ef = f.sub(as_object(e, ep, Dialect::anthropic), ep);
    std::string type = ef.req_str("type");
    if (type != "clear_thinking_20251015")
      throw invalid_value(Dialect::anthropic, ep + ".type",
                          "'" + ep + ".type': the context edit '" + type + "' is not supported (clear_thinking_20251015 only)");
    ef.only({"type", "keep"});
    const json::value* k = ef.find("keep");
    if (!k || (k->is_string() && k->get_string() == "all")) continue;
    if (!k->is_object()) throw ef.type_error("keep", "\"all\" or an object", *k);
    Fields kf = f.sub(k->get_object(), ep + ".keep");
    kf.only({"type", "value"});
    if (kf.req_str("type") != "thinking_turns")
      throw invalid_value(Dialect::anthropic, ep + ".keep.type", "'" + ep + ".keep.type' must be thinking_turns");
    kf.require("value");
    keep = int(*kf.integer("value", 1, 1 << 20));
  }
  return keep;
}

void clear_thinking(Request& req, int keep) {
  if (keep < 0) return;
  for (auto it = req.messages.rbegin(); it != req.messages.rend(); ++it) {
    if (it->role != "assistant" || !it->reasoning_content) continue;
    if (keep > 0) --keep;
    else it->reasoning_content.reset();
  }
}

// Anthropic's server search tool (web_search_20250305): run by this server when it searches; the
// service refuses it (400 naming the type) when search is off.
void read_anthropic_search_tool(Request& req, const Fields& tf, const std::string& type, const std::string& tp) {
  if (type != "web_search_20250305")
    refuse_tool_type(req.dialect, tp + ".type", type, "client tools and web_search_20250305");
  tf.only({"type", "name", "max_uses", "allowed_domains", "blocked_domains", "user_location", "cache_control"});
  read_cache_control(tf);
  only_one_search_tool(req, tp);
  if (tf.req_str("name") != "web_search")
    throw invalid_value(req.dialect, tp + ".name", "'" + tp + ".name' must be web_search for " + type);
  Request::SearchTool st;
  st.type = type;
  st.param = tp;
  if (auto n = tf.integer("max_uses", 1, 1000)) st.max_uses = int(*n);
  st.allowed_domains = domain_list(tf, "allowed_domains");
  st.blocked_domains = domain_list(tf, "blocked_domains");
  if (!st.allowed_domains.empty() && !st.blocked_domains.empty())
    throw invalid_value(req.dialect, tp + ".blocked_domains",
                        "'" + tp + "': use either allowed_domains or blocked_domains, not both");
  st.user_location = tf.find("user_location") != nullptr;
  req.search_tool = std::move(st);
}

void read_anthropic_tools(Request& req, const Fields& f) {
  if (auto* tools = f.array("tools")) {
    size_t i = 0;
    for (auto& t : *tools) {
      std::string tp = "tools[" + std::to_string(i++) + "]";
      Fields tf = f.sub(as_object(t, tp, req.dialect), tp);
      if (auto type = tf.str("type"); type && type->rfind("web_search_", 0) == 0) {
        read_anthropic_search_tool(req, tf, *type, tp);
        continue;
      }
      if (auto type = tf.str("type"); type && *type != "custom")
        refuse_tool_type(req.dialect, tp + ".type", *type, "client tools and web_search_20250305");
      tf.only({"type", "name", "description", "input_schema", "cache_control", "strict", "eager_input_streaming"});
      read_cache_control(tf);
      // A latency hint (stream the input unbuffered, maybe as partial JSON), the AI SDK's default:
      // every call's input is streamed whole once generated, which either value permits.
      tf.boolean("eager_input_streaming");
      const json::value* schema = tf.find("input_schema");
      if (!schema) throw bad_request(tp + ".input_schema", "missing required parameter '" + tp + ".input_schema'");
      if (!schema->is_object()) throw tf.type_error("input_schema", "an object", *schema);
      if (auto strict = tf.boolean("strict"); strict && *strict) req.strict_tools.push_back(tf.req_str("name"));
      req.tools.push_back(chat_tool(tf.req_str("name"), tf.str("description").value_or(""), schema));
    }
  }
  if (auto* tc = f.object("tool_choice")) {
    Fields cf = f.sub(*tc, "tool_choice");
    cf.only({"type", "name", "disable_parallel_tool_use"});
    std::string type = cf.req_str("type");
    if (type == "auto") req.tool_choice.mode = ToolChoice::Mode::automatic;
    else if (type == "none") req.tool_choice.mode = ToolChoice::Mode::none;
    else if (type == "any") req.tool_choice.mode = ToolChoice::Mode::required;
    else if (type == "tool") {
      req.tool_choice = {ToolChoice::Mode::named, cf.req_str("name")};
      check_tool_choice_name(req, req.tool_choice.name, "tool_choice.name");
    } else {
      throw invalid_value(req.dialect, "tool_choice.type", "'tool_choice.type' must be auto, any, tool or none");
    }
    if (auto d = cf.boolean("disable_parallel_tool_use")) req.parallel_tool_calls = !*d;
  }
}

// A web_search_tool_result block of an earlier turn: the turn so far (ending in the server_tool_use)
// goes to the conversation, then the results as that call's tool result (the page text from each
// result's encrypted_content, sealed by this server), and the turn goes on as a new assistant message.
void read_search_result_block(Request& req, const Fields& bf, const std::string& bp, Message& turn) {
  bf.only({"type", "tool_use_id", "content", "cache_control"});
  read_cache_control(bf);
  Message tm{"tool", "", {}, {}, bf.req_str("tool_use_id")};
  const json::value& content = bf.require("content");
  if (content.is_object()) {
    Fields ef = bf.sub(content.get_object(), bp + ".content");
    ef.only({"type", "error_code"});
    tm.content = "Error: web search failed (" + ef.str("error_code").value_or("unavailable") + ")";
  } else if (content.is_array()) {
    size_t k = 0;
    for (auto& r : content.get_array()) {
      std::string rp = bp + ".content[" + std::to_string(k++) + "]";
      Fields rf = bf.sub(as_object(r, rp, req.dialect), rp);
      rf.only({"type", "url", "title", "encrypted_content", "page_age"});
      tm.content += "[" + std::to_string(k) + "] " + rf.str("title").value_or("") + "\nURL: " + rf.req_str("url") + "\n";
      if (auto sealed = rf.str("encrypted_content"); sealed && !sealed->empty())
        tm.content += unseal_reasoning(*sealed, rp + ".encrypted_content") + "\n";
    }
  } else {
    throw bf.type_error("content", "an array of results or an error object", content);
  }
  req.messages.push_back(turn);
  turn = Message{"assistant", "", {}, {}, {}};
  req.messages.push_back(std::move(tm));
}

// One content block of an Anthropic message, added to `turn` (or, for tool results, to the
// request as tool messages).
void read_anthropic_block(Request& req, const Fields& f, const json::value& bv, const std::string& bp,
                          const std::string& role, Message& turn, const std::function<void()>& flush_user) {
  Fields bf = f.sub(as_object(bv, bp, req.dialect), bp);
  std::string type = bf.req_str("type");
  if (type == "text") {
    bf.only({"type", "text", "cache_control", "citations"});
    read_cache_control(bf);
    turn.content += bf.req_str("text");
  } else if (type == "thinking" && role == "assistant") {
    bf.only({"type", "thinking", "signature"});
    turn.reasoning_content = turn.reasoning_content.value_or("") + bf.req_str("thinking");
  } else if (type == "redacted_thinking" && role == "assistant") {
    // Another provider's encrypted thinking (this server never redacts): it cannot be read, so it
    // leaves the prompt, as Anthropic's own API drops earlier turns' thinking. Refusing it would
    // break conversations carried over from Claude (docs/api-fields.md).
    bf.only({"type", "data"});
    bf.req_str("data");
  } else if ((type == "tool_use" || type == "server_tool_use") && role == "assistant") {
    // A server_tool_use block sent back reads as the model's own call, like a tool_use.
    bf.only({"type", "id", "name", "input", "cache_control"});
    read_cache_control(bf);
    const json::value& input = bf.require("input");
    if (!input.is_object()) throw bf.type_error("input", "an object", input);
    turn.tool_calls.push_back({bf.req_str("id"), bf.req_str("name"), json::serialize(input)});
  } else if (type == "web_search_tool_result" && role == "assistant") {
    read_search_result_block(req, bf, bp, turn);
  } else if (type == "tool_result" && role == "user") {
    bf.only({"type", "tool_use_id", "content", "is_error", "cache_control"});
    read_cache_control(bf);
    flush_user();
    Message tm{"tool", "", {}, {}, bf.req_str("tool_use_id")};
    if (auto* c = bf.find("content")) tm.content = anthropic_text(bf, *c, bp + ".content");
    // The V4 encoding has no error flag on a tool result: the model reads it in the text.
    if (auto e = bf.boolean("is_error"); e && *e) tm.content = "Error: " + tm.content;
    req.messages.push_back(std::move(tm));
  } else {
    throw bad_request(bp + ".type", "'" + bp + ".type': content block type '" + type + "' is not supported in a " + role + " message");
  }
}

void read_anthropic_messages(Request& req, const Fields& f) {
  const json::array* messages = f.array("messages");
  if (!messages) throw bad_request("messages", "missing required parameter 'messages'");
  if (messages->empty()) throw bad_request("messages", "'messages' must contain at least one message");
  size_t i = 0;
  for (auto& mv : *messages) {
    std::string mp = "messages[" + std::to_string(i++) + "]";
    Fields mf = f.sub(as_object(mv, mp, req.dialect), mp);
    mf.only({"role", "content"});
    std::string role = mf.req_str("role");
    const json::value& content = mf.require("content");
    if (role == "system") {
      // Mid-conversation system message (mid-conversation-system beta). The V4 encoding's
      // in-conversation instruction role is `developer` (rendered as a user turn); a system message
      // before any turn joins the system prompt.
      std::string text = anthropic_text(mf, content, mp + ".content");
      if (req.messages.empty() || (req.messages.size() == 1 && req.messages[0].role == "system" && i == 1)) {
        if (req.messages.empty()) req.messages.push_back(Message{"system", text, {}, {}, {}});
        else req.messages[0].content += "\n\n" + text;
      } else {
        req.messages.push_back(Message{"developer", text, {}, {}, {}});
      }
      continue;
    }
    if (role != "user" && role != "assistant")
      throw bad_request(mp + ".role", "'" + mp + ".role' must be user, assistant or system; got '" + role + "'");
    if (content.is_string()) {
      req.messages.push_back(Message{role, std::string(content.get_string()), {}, {}, {}});
      continue;
    }
    if (!content.is_array()) throw mf.type_error("content", "a string or an array of content blocks", content);
    Message turn{role, "", {}, {}, {}};
    auto flush_user = [&]() {
      if (!turn.content.empty()) req.messages.push_back(turn);
      turn.content.clear();
    };
    size_t k = 0;
    for (auto& bv : content.get_array())
      read_anthropic_block(req, f, bv, mp + ".content[" + std::to_string(k++) + "]", role, turn, flush_user);
    if (role == "user") flush_user();
    else if (!turn.content.empty() || !turn.tool_calls.empty() || turn.reasoning_content || req.messages.empty() ||
             req.messages.back().role != "tool")  // (nothing after an earlier search's result block)
      req.messages.push_back(std::move(turn));
  }
  if (std::none_of(req.messages.begin(), req.messages.end(), [](const Message& m) { return m.role != "system"; }))
    throw bad_request("messages", "'messages' must contain a user or assistant message");
}

}  // namespace

void check_anthropic_betas(const std::string& header) {
  size_t pos = 0;
  while (pos <= header.size()) {
    size_t comma = std::min(header.find(',', pos), header.size());
    std::string beta = header.substr(pos, comma - pos);
    beta.erase(0, beta.find_first_not_of(" \t"));
    beta.erase(beta.find_last_not_of(" \t") + 1);
    pos = comma + 1;
    if (beta.empty()) continue;
    if (std::find(std::begin(kAnthropicBetas), std::end(kAnthropicBetas), beta) == std::end(kAnthropicBetas))
      throw ApiError(400, "invalid_request_error",
                     "anthropic-beta '" + beta + "' is not supported by this server (docs/api.md lists the betas it honours)",
                     "anthropic-beta", "unsupported_beta");
  }
}

Request parse_anthropic_request(const json::value& body, bool count_tokens_only) {
  Request req;
  req.dialect = Dialect::anthropic;
  Fields f(body.as_object(), req.dialect);
  f.only({"model", "messages", "max_tokens", "system", "stop_sequences", "temperature", "top_p", "top_k", "stream",
          "tools", "tool_choice", "thinking", "output_config", "metadata", "context_management", "seed",
          "thinking_budget", "enable_thinking", "web_search_linkup", "disable_formatting"});
  req.model = f.req_str("model");
  check_model(req, f);
  if (!count_tokens_only) f.require("max_tokens");
  if (auto m = f.integer("max_tokens", 1, kMaxOutput)) req.max_tokens = int(*m), req.max_tokens_given = true;
  if (auto* oc = f.object("output_config")) {
    Fields of = f.sub(*oc, "output_config");
    of.only({"effort", "format"});
    if (auto e = of.str("effort")) {
      if (*e == "none") throw invalid_value(req.dialect, "output_config.effort", "'output_config.effort' must be low, medium, high, xhigh or max");
      apply_effort(req, normalise_effort(req.dialect, "output_config.effort", *e));
    }
    if (auto* fmt = of.object("format")) {
      Fields ff = f.sub(*fmt, "output_config.format");
      ff.only({"type", "schema"});
      std::string type = ff.req_str("type");
      if (type != "json_schema") throw invalid_value(req.dialect, "output_config.format.type", "'output_config.format.type' must be json_schema");
      const json::value* schema = ff.find("schema");
      if (!schema || !schema->is_object()) throw bad_request("output_config.format.schema", "json_schema needs a 'schema' object");
      req.output_format = {OutputFormat::Kind::json_schema, "", *schema, false};
    }
  }
  read_thinking_object(req, f);
  read_common_sampling(req, f);
  // The search runs only when the request does: a count without its results would be far too low.
  if (count_tokens_only && !req.web_search_field.empty())
    throw bad_request(req.web_search_field, "'" + req.web_search_field +
                                                "' cannot be counted: the search results it adds to the prompt exist only "
                                                "once the request runs; count without it");
  if (auto k = f.integer("top_k", 0, 1 << 20)) req.top_k = int(*k);
  read_stop(req, f, "stop_sequences");
  if (auto s = f.boolean("stream")) req.stream = *s;
  req.include_usage = true;
  if (auto* md = f.object("metadata")) {
    Fields mf = f.sub(*md, "metadata");
    mf.only({"user_id"});
    mf.str("user_id");  // an end-user id for abuse tracking: validated, neither stored nor logged
    req.metadata = *md;
  }
  const int keep_thinking = read_context_management(f);
  if (auto* sys = f.find("system")) {
    std::string text = anthropic_text(f, *sys, "system");
    if (!text.empty()) req.messages.push_back(Message{"system", text, {}, {}, {}});
  }
  read_anthropic_tools(req, f);
  read_anthropic_messages(req, f);
  clear_thinking(req, keep_thinking);
  finish_thinking(req);
  return req;
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

}  // namespace

json::object anthropic_error_body(const ApiError& e, const std::string& request_id) {
  return json::object{{"type", "error"},
                      {"error", json::object{{"type", anthropic_error_type(e.status)}, {"message", e.what()}}},
                      {"request_id", request_id}};
}

json::object render_anthropic_response(const Request& req, const ResponseMeta& m, const Turn& turn, const Outcome& o) {
  const bool has_calls = !turn.tool_calls.empty();
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

std::unique_ptr<StreamRenderer> make_anthropic_stream(const Request& req, const ResponseMeta& meta, int prompt_tokens) {
  return std::make_unique<AnthropicStream>(req, meta, prompt_tokens);
}

}  // namespace v4::api
