// The OpenAI Chat Completions adapter: request parsing and the completion object and stream.
#include "api/chat.h"

#include <algorithm>
#include <climits>
#include <cstdlib>

namespace v4::api {

namespace json = boost::json;

namespace {

// logit_bias: {"token id": bias in [-100, 100]}; ids beyond the vocabulary are refused by the engine.
void read_logit_bias(Request& req, const Fields& f, const json::object& bias) {
  for (const auto& kv : bias) {
    const std::string key(kv.key());
    char* end = nullptr;
    const long id = std::strtol(key.c_str(), &end, 10);
    if (key.empty() || *end != '\0' || id < 0 || id > INT32_MAX)
      throw invalid_value(req.dialect, f.path(key), "'logit_bias' keys must be token ids, got '" + key + "'");
    const auto value = f.number(key, -100, 100);
    if (!value) throw invalid_value(req.dialect, f.path(key), "'" + f.path(key) + "' must be a number");
    req.logit_bias.push_back({int32_t(id), float(*value)});
  }
}

// Chat's web_search_options: a search before the answer, like web_search_linkup; the context size
// chooses how many results the model reads. The provider takes no location: user_location is refused.
void read_web_search_options(Request& req, const Fields& f) {
  auto* o = f.object("web_search_options");
  if (!o) return;
  Fields wf = f.sub(*o, "web_search_options");
  wf.only({"search_context_size", "user_location"});
  req.web_search_field = "web_search_options";
  if (auto size = wf.str("search_context_size")) {
    if (*size == "low") req.web_search_results = 3;
    else if (*size == "medium") req.web_search_results = 5;
    else if (*size == "high") req.web_search_results = 10;
    else
      throw invalid_value(req.dialect, "web_search_options.search_context_size",
                          "'web_search_options.search_context_size' must be low, medium or high; got '" + *size + "'");
  }
  if (wf.find("user_location"))
    throw invalid_value(req.dialect, "web_search_options.user_location",
                        "'web_search_options.user_location' is not supported: the search provider takes no location");
}

// One Chat message. Every key is honoured or refused: clients send back the assistant messages this
// server returned (with `refusal` and `annotations`), and those keys keep their meaning.
Message read_chat_message(const Fields& mf, const std::string& mp, const Request& req) {
  mf.only({"role", "content", "name", "tool_calls", "tool_call_id", "reasoning_content", "reasoning", "refusal",
           "annotations", "audio", "function_call"});
  Message m;
  m.role = mf.req_str("role");
  if (m.role != "system" && m.role != "developer" && m.role != "user" && m.role != "assistant" && m.role != "tool")
    throw invalid_value(req.dialect, mp + ".role", "'" + mp + ".role' must be system, developer, user, assistant or tool; got '" + m.role + "'");
  const bool assistant = m.role == "assistant", tool = m.role == "tool";
  auto only_on = [&](std::string_view key, bool allowed, const char* role) {
    if (mf.find(key) && !allowed)
      throw bad_request(mf.path(key), "'" + mf.path(key) + "' is only valid on " + role + " messages");
  };
  only_on("tool_calls", assistant, "assistant");
  only_on("refusal", assistant, "assistant");
  only_on("annotations", assistant, "assistant");
  only_on("tool_call_id", tool, "tool");
  // No audio output and no deprecated function calling here: only their null placeholders pass.
  if (mf.find("audio")) throw unsupported(mf.path("audio"), "audio output is not produced, so none comes back");
  if (mf.find("function_call"))
    throw unsupported(mf.path("function_call"), "the deprecated function_call; send tool_calls");
  if (auto* c = mf.find("content")) m.content = text_of_parts(*c, mp + ".content", req.dialect);
  if (auto r = mf.str("refusal")) m.content += *r;  // the turn's refusal text, as a refusal content part
  // Our own url_citation metadata: the text it points into already carries the citations.
  mf.array("annotations");
  if (auto r = mf.str("reasoning_content")) m.reasoning_content = *r;
  else if (auto r2 = mf.str("reasoning")) m.reasoning_content = *r2;
  if (assistant) {
    if (auto* calls = mf.array("tool_calls")) {
      size_t k = 0;
      for (auto& cv : *calls) {
        std::string cp = mp + ".tool_calls[" + std::to_string(k++) + "]";
        Fields cf = mf.sub(as_object(cv, cp, req.dialect), cp);
        cf.only({"id", "type", "function", "index"});  // index: a streamed call's position, sent back
        if (auto type = cf.str("type"); type && *type != "function")
          throw invalid_value(req.dialect, cp + ".type", "'" + cp + ".type' must be function; got '" + *type + "'");
        const json::object* fn = cf.object("function");
        if (!fn) throw bad_request(cp + ".function", "missing required parameter '" + cp + ".function'");
        Fields ff = mf.sub(*fn, cp + ".function");
        ff.only({"name", "arguments"});
        m.tool_calls.push_back({cf.str("id").value_or(""), ff.req_str("name"), ff.str("arguments").value_or("{}")});
      }
    }
    // DeepSeek: a tool-call turn's reasoning must come back in thinking mode.
    if (req.thinking && !m.tool_calls.empty() && !m.reasoning_content)
      throw bad_request(mp + ".reasoning_content",
                        "the reasoning_content of an assistant message with tool_calls must be passed back in "
                        "thinking mode ('" + mp + ".reasoning_content' is missing)");
  }
  if (tool) m.tool_call_id = mf.req_str("tool_call_id");
  if (auto name = mf.str("name")) {
    // A tool result's name says which function answered: it must be the call's. The V4 encoding has
    // no speaker names, so other roles' names cannot reach the model.
    if (!tool) throw unsupported(mf.path("name"), "the V4 chat encoding has no speaker names");
    for (auto& earlier : req.messages)
      for (auto& call : earlier.tool_calls)
        if (call.id == m.tool_call_id && call.name != *name)
          throw bad_request(mf.path("name"), "'" + mf.path("name") + "' is '" + *name + "' but tool call '" +
                                                 m.tool_call_id + "' called '" + call.name + "'");
  }
  return m;
}

}  // namespace

Request parse_chat_request(const json::value& body) {
  Request req;
  req.dialect = Dialect::chat;
  Fields f(body.as_object(), req.dialect);
  f.only({"model", "messages", "temperature", "top_p", "seed", "thinking_budget", "enable_thinking", "web_search_linkup",
          "disable_formatting", "reasoning_effort", "thinking", "chat_template_kwargs", "max_tokens",
          "max_completion_tokens", "n", "frequency_penalty", "presence_penalty", "logit_bias", "stop", "stream",
          "stream_options", "logprobs", "top_logprobs", "response_format", "tools", "tool_choice",
          "parallel_tool_calls", "prompt_cache_key", "web_search_options"});
  req.model = f.req_str("model");
  check_model(req, f);

  const json::array* messages = f.array("messages");
  if (!messages) throw bad_request("messages", "missing required parameter 'messages'");
  if (messages->empty()) throw bad_request("messages", "'messages' must contain at least one message");

  // Thinking first: the reasoning_content rule below depends on it.
  if (auto e = f.str("reasoning_effort")) apply_effort(req, normalise_effort(req.dialect, "reasoning_effort", *e));
  read_thinking_object(req, f);
  read_common_sampling(req, f);
  if (auto* kw = f.object("chat_template_kwargs")) {
    Fields kf = f.sub(*kw, "chat_template_kwargs");
    kf.only({"enable_thinking", "thinking"});
    if (auto t = kf.boolean("enable_thinking")) req.thinking = *t && req.thinking;
    if (auto t = kf.boolean("thinking")) req.thinking = *t && req.thinking;
  }

  if (auto m = f.integer("max_tokens", 1, kMaxOutput)) req.max_tokens = int(*m), req.max_tokens_given = true;
  if (auto m = f.integer("max_completion_tokens", 1, kMaxOutput)) req.max_tokens = int(*m), req.max_tokens_given = true;
  if (auto n = f.integer("n", 1, kMaxChoices)) req.n = int(*n);
  if (auto v = f.number("frequency_penalty", -2, 2)) req.frequency_penalty = *v;
  if (auto v = f.number("presence_penalty", -2, 2)) req.presence_penalty = *v;
  if (auto* bias = f.object("logit_bias")) read_logit_bias(req, f.sub(*bias, "logit_bias"), *bias);
  read_stop(req, f, "stop");
  if (auto s = f.boolean("stream")) req.stream = *s;
  if (auto* so = f.object("stream_options")) {
    Fields sf = f.sub(*so, "stream_options");
    sf.only({"include_usage"});
    if (auto u = sf.boolean("include_usage")) req.include_usage = *u;
  }
  read_web_search_options(req, f);
  if (auto l = f.boolean("logprobs")) req.logprobs = *l;
  if (auto t = f.integer("top_logprobs", 0, 20)) {
    if (!req.logprobs) throw invalid_value(req.dialect, "top_logprobs", "'top_logprobs' requires 'logprobs': true");
    req.top_logprobs = int(*t);
  }
  if (auto* rf = f.object("response_format")) read_response_format(req, f, *rf, "response_format");

  if (auto* tools = f.array("tools")) {
    size_t i = 0;
    for (auto& t : *tools) {
      std::string tp = "tools[" + std::to_string(i++) + "]";
      Fields tf = f.sub(as_object(t, tp, req.dialect), tp);
      if (auto type = tf.req_str("type"); type != "function") refuse_tool_type(req.dialect, tp + ".type", type, "function tools only");
      tf.only({"type", "function"});
      const json::object* fn = tf.object("function");
      if (!fn) throw bad_request(tp + ".function", "missing required parameter '" + tp + ".function'");
      Fields ff = f.sub(*fn, tp + ".function");
      ff.only({"name", "description", "parameters", "strict"});
      std::string name = ff.req_str("name");
      if (auto* p = ff.find("parameters"); p && !p->is_object()) throw ff.type_error("parameters", "an object", *p);
      if (auto strict = ff.boolean("strict"); strict && *strict) req.strict_tools.push_back(name);
      req.tools.push_back(chat_tool(name, ff.str("description").value_or(""), ff.find("parameters")));
    }
  }
  if (auto* tc = f.find("tool_choice"))
    read_tool_choice(req, f, *tc, [&](const Fields& cf) {  // {"type": "function", "function": {"name": ...}}
      if (auto type = cf.req_str("type"); type != "function")
        throw invalid_value(req.dialect, "tool_choice.type",
                            "'tool_choice.type' must be function (allowed_tools and custom choices are not supported); got '" +
                                type + "'");
      cf.only({"type", "function"});
      const json::object* fn = cf.object("function");
      if (!fn) throw bad_request("tool_choice.function", "missing required parameter 'tool_choice.function'");
      Fields ff = f.sub(*fn, "tool_choice.function");
      ff.only({"name"});
      return ff.req_str("name");
    });
  if (auto p = f.boolean("parallel_tool_calls")) req.parallel_tool_calls = *p;
  if (auto k = f.str("prompt_cache_key")) req.prompt_cache_key = *k;  // a routing hint: one engine, one cache

  size_t i = 0;
  for (auto& mv : *messages) {
    std::string mp = "messages[" + std::to_string(i++) + "]";
    req.messages.push_back(read_chat_message(f.sub(as_object(mv, mp, req.dialect), mp), mp, req));
  }
  finish_thinking(req);
  return req;
}

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

namespace {

json::object chat_logprob(const TokenLogprobOut& lp) {
  json::array top;
  for (auto& t : lp.top)
    top.push_back(json::object{{"token", t.token}, {"logprob", t.logprob}, {"bytes", byte_array(t.bytes)}});
  return json::object{{"token", lp.chosen.token},
                      {"logprob", lp.chosen.logprob},
                      {"bytes", byte_array(lp.chosen.bytes)},
                      {"top_logprobs", std::move(top)}};
}

const char* chat_finish_reason(const ChoiceEnd& end, bool has_tool_calls) {
  switch (end.stop) {
    case StopKind::length: return "length";
    case StopKind::tool_calls: return "tool_calls";
    default: return has_tool_calls ? "tool_calls" : "stop";
  }
}

json::object chat_tool_call(const text::ToolCall& c) {
  return json::object{{"id", c.id},
                      {"type", "function"},
                      {"function", json::object{{"name", c.name}, {"arguments", c.arguments}}}};
}

// The chunks of the n choices interleave as they are made, each chunk with one choice and its
// index (as OpenAI streams them); each choice's closing chunk (finish_reason) comes at the end,
// then the usage chunk once.
class ChatStream final : public StreamRenderer {
 public:
  ChatStream(const Request& req, const ResponseMeta& meta)
      : req_(req), meta_(meta), choices_(size_t(std::max(1, req.n))) {}
  std::string start(int /*cached_prompt_tokens*/) override {
    std::string out;
    for (size_t i = 0; i < choices_.size(); ++i)
      out += chunk(i, json::object{{"role", "assistant"}, {"content", ""}}, nullptr, nullptr);
    return out;
  }
  std::string delta(const Delta& d) override {
    const size_t i = d.choice >= 0 && size_t(d.choice) < choices_.size() ? size_t(d.choice) : 0;
    switch (d.kind) {
      case Delta::Kind::reasoning:  // thinking.display "omitted": not shown
        if (!req_.show_thinking) return {};
        return chunk(i, json::object{{"reasoning_content", d.text}}, nullptr, nullptr);
      case Delta::Kind::content: {
        json::value lp = nullptr;
        if (req_.logprobs) {
          json::array content;
          for (auto& l : d.logprobs) content.push_back(chat_logprob(l));
          lp = json::object{{"content", std::move(content)}, {"refusal", nullptr}};
        }
        choices_[i].content += d.text;
        return chunk(i, json::object{{"content", d.text}}, nullptr, std::move(lp));
      }
      case Delta::Kind::search_call:
      case Delta::Kind::search_result:
        return {};  // (Chat has no search tool)
      case Delta::Kind::tool_call:
        choices_[i].has_tool_calls = true;
        return chunk(i, json::object{{"tool_calls", json::array{json::object{
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
    for (size_t i = 0; i < choices_.size(); ++i) {
      // web_search_linkup: the sources the answer cites, as the message's annotations.
      if (json::array a = url_citations(choices_[i].content, meta_.sources, true); !a.empty())
        out += chunk(i, json::object{{"annotations", std::move(a)}}, nullptr, nullptr);
      // With vLLM's stop_reason, the stop string that ended the answer (a gateway in front of this
      // server tells Anthropic's stop_sequence from it).
      const ChoiceEnd end = choice_end(o, i);
      out += chunk(i, json::object{}, chat_finish_reason(end, choices_[i].has_tool_calls), nullptr,
                   end.stop == StopKind::stop_string ? json::value(end.matched_stop) : json::value(nullptr));
    }
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
  struct Choice {
    bool has_tool_calls = false;
    std::string content;
  };
  json::object base() const {
    json::object c{{"id", meta_.id}, {"object", "chat.completion.chunk"}, {"created", meta_.created},
                   {"model", meta_.model}, {"system_fingerprint", "fp_v4flash"}};
    return c;
  }
  std::string chunk(size_t index, json::object delta, const char* finish, json::value logprobs,
                    json::value stop_reason = nullptr) {
    json::object c = base();
    c["choices"] = json::array{json::object{{"index", index},
                                            {"delta", std::move(delta)},
                                            {"logprobs", std::move(logprobs)},
                                            {"finish_reason", finish ? json::value(finish) : json::value(nullptr)}}};
    if (!stop_reason.is_null()) c["choices"].as_array()[0].as_object()["stop_reason"] = std::move(stop_reason);
    if (req_.include_usage) c["usage"] = nullptr;
    return sse_data(c);
  }
  const Request& req_;
  ResponseMeta meta_;
  std::vector<Choice> choices_;
};

json::object chat_choice(const Request& req, const ResponseMeta& m, const Turn& turn, const ChoiceEnd& end,
                         size_t index) {
  const bool has_calls = !turn.tool_calls.empty();
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
  return json::object{{"index", index},
                      {"finish_reason", chat_finish_reason(end, has_calls)},
                      {"logprobs", std::move(logprobs)},
                      {"message", std::move(msg)}};
}

}  // namespace

json::object render_chat_response(const Request& req, const ResponseMeta& m, const std::vector<Turn>& turns,
                                  const Outcome& o) {
  json::array choices;
  static const Turn kNone;
  for (size_t i = 0; i < std::max<size_t>(1, turns.size()); ++i)
    choices.push_back(chat_choice(req, m, i < turns.size() ? turns[i] : kNone, choice_end(o, i), i));
  return json::object{{"id", m.id},
                      {"object", "chat.completion"},
                      {"created", m.created},
                      {"model", m.model},
                      {"system_fingerprint", "fp_v4flash"},
                      {"service_tier", "default"},
                      {"choices", std::move(choices)},
                      {"usage", chat_usage(o.usage)}};
}

std::unique_ptr<StreamRenderer> make_chat_stream(const Request& req, const ResponseMeta& meta) {
  return std::make_unique<ChatStream>(req, meta);
}

}  // namespace v4::api
