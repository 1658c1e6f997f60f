#include "gateway/chat_translation.h"

#include <algorithm>
#include <stdexcept>

namespace v4::gateway {

namespace json = boost::json;

namespace {

json::value tool_choice_value(const api::ToolChoice& choice) {
  switch (choice.mode) {
    case api::ToolChoice::Mode::automatic: return "auto";
    case api::ToolChoice::Mode::none: return "none";
    case api::ToolChoice::Mode::required: return "required";
    case api::ToolChoice::Mode::named: return json::object{{"type", "function"}, {"function", json::object{{"name", choice.name}}}};
  }
  return "auto";
}

// The output format as Chat's response_format (a schema always strict: this server's own held it).
json::value response_format_value(const api::OutputFormat& format) {
  switch (format.kind) {
    case api::OutputFormat::Kind::text: return nullptr;
    case api::OutputFormat::Kind::json_object: return json::object{{"type", "json_object"}};
    case api::OutputFormat::Kind::json_schema:
      return json::object{{"type", "json_schema"},
                          {"json_schema", json::object{{"name", "output"}, {"schema", format.schema}, {"strict", true}}}};
  }
  return nullptr;
}

json::array tools_value(const api::Request& req) {
  json::array tools = req.tools;
  for (auto& t : tools) {
    auto& fn = t.as_object()["function"].as_object();
    const std::string name(fn["name"].as_string());
    if (std::find(req.strict_tools.begin(), req.strict_tools.end(), name) != req.strict_tools.end()) fn["strict"] = true;
  }
  return tools;
}

}  // namespace

void check_upstream_request(const api::PreparedRequest& p) {
  const auto& req = p.req;
  if (req.search_tool && req.search_tool->enabled)
    throw api::bad_request(req.search_tool->param,
                           "the server's web search tool runs only on this server's own engine; the model '" +
                               req.model + "' is served by an upstream");
}

json::object upstream_chat_body(const api::PreparedRequest& p, const std::string& upstream_model,
                                const json::object& extra) {
  const api::Request& req = p.req;
  json::object b;
  b["model"] = upstream_model;
  b["messages"] = api::to_encoder_messages(req);
  b["stream"] = true;
  b["stream_options"] = json::object{{"include_usage", true}};
  b["max_tokens"] = p.params.max_tokens;
  b["temperature"] = req.temperature;
  b["top_p"] = req.top_p;
  if (req.top_k > 0) b["top_k"] = req.top_k;
  if (req.frequency_penalty != 0) b["frequency_penalty"] = req.frequency_penalty;
  if (req.presence_penalty != 0) b["presence_penalty"] = req.presence_penalty;
  if (req.seed) b["seed"] = *req.seed;
  if (!req.stop.empty()) {
    json::array stop;
    for (auto& s : req.stop) stop.push_back(json::value(s));
    b["stop"] = std::move(stop);
  }
  if (req.logprobs) {
    b["logprobs"] = true;
    b["top_logprobs"] = req.top_logprobs;
  }
  if (!req.logit_bias.empty()) {
    json::object bias;
    for (auto& [token, value] : req.logit_bias) bias[std::to_string(token)] = value;
    b["logit_bias"] = std::move(bias);
  }
  // Thinking as DeepSeek's chat template takes it (vLLM and SGLang pass chat_template_kwargs to it;
  // v4flash reads it too); the effort only when it is not the default.
  b["chat_template_kwargs"] = json::object{{"thinking", req.thinking}};
  if (req.thinking && req.effort != "medium" && req.effort != "none") b["reasoning_effort"] = req.effort;
  if (req.thinking && req.thinking_budget_given) b["thinking_budget"] = req.thinking_budget;
  if (!req.tools.empty()) {
    b["tools"] = tools_value(req);
    b["tool_choice"] = tool_choice_value(req.tool_choice);
    if (!req.parallel_tool_calls) b["parallel_tool_calls"] = false;
  }
  if (json::value rf = response_format_value(req.output_format); !rf.is_null()) b["response_format"] = std::move(rf);
  for (auto& [k, v] : extra) b[k] = v;
  return b;
}

namespace {

const json::object* object_in(const json::object& o, const char* key) {
  auto* v = o.if_contains(key);
  return v && v->is_object() ? &v->get_object() : nullptr;
}

std::string string_in(const json::object& o, const char* key) {
  auto* v = o.if_contains(key);
  return v && v->is_string() ? std::string(v->get_string()) : std::string();
}

int int_in(const json::object* o, const char* key) {
  if (!o) return 0;
  auto* v = o->if_contains(key);
  if (!v) return 0;
  if (v->is_int64()) return int(std::max<int64_t>(0, v->get_int64()));
  if (v->is_uint64()) return int(v->get_uint64());
  return 0;
}

api::Delta text_delta(api::Delta::Kind kind, std::string text) {
  api::Delta d;
  d.kind = kind;
  d.text = std::move(text);
  return d;
}

double number_in(const json::object& o, const char* key) {
  auto* v = o.if_contains(key);
  return v && v->is_number() ? v->to_number<double>() : 0;
}

api::AltLogprob alt_of(const json::object& o) {
  api::AltLogprob a;
  a.token = string_in(o, "token");
  a.logprob = number_in(o, "logprob");
  if (auto* bytes = o.if_contains("bytes"); bytes && bytes->is_array())
    for (auto& b : bytes->get_array())
      if (b.is_int64()) a.bytes += char(b.get_int64() & 0xff);
  if (!o.contains("bytes")) a.bytes = a.token;
  return a;
}

// choices[0].logprobs.content: the chosen tokens with their alternatives.
std::vector<api::TokenLogprobOut> logprobs_of(const json::object& choice) {
  std::vector<api::TokenLogprobOut> out;
  const json::object* lp = object_in(choice, "logprobs");
  auto* content = lp ? lp->if_contains("content") : nullptr;
  if (!content || !content->is_array()) return out;
  for (auto& t : content->get_array()) {
    if (!t.is_object()) continue;
    api::TokenLogprobOut tok;
    tok.chosen = alt_of(t.get_object());
    if (auto* top = t.get_object().if_contains("top_logprobs"); top && top->is_array())
      for (auto& alt : top->get_array())
        if (alt.is_object()) tok.top.push_back(alt_of(alt.get_object()));
    out.push_back(std::move(tok));
  }
  return out;
}

api::Usage usage_of(const json::object& u) {
  api::Usage out;
  out.prompt_tokens = int_in(&u, "prompt_tokens");
  out.completion_tokens = int_in(&u, "completion_tokens");
  out.cached_tokens = int_in(object_in(u, "prompt_tokens_details"), "cached_tokens");
  out.reasoning_tokens = int_in(object_in(u, "completion_tokens_details"), "reasoning_tokens");
  return out;
}

}  // namespace

std::vector<api::Delta> ChunkReader::feed(const std::string& data) {
  boost::system::error_code ec;
  json::value v = json::parse(data, ec);
  if (ec || !v.is_object()) throw std::runtime_error("the upstream sent an event that is not a JSON object");
  const json::object& chunk = v.get_object();
  std::vector<api::Delta> out;
  if (auto* e = object_in(chunk, "error")) {
    error = string_in(*e, "message");
    if (error->empty()) error = "the upstream reported an error";
    return out;
  }
  if (auto* u = object_in(chunk, "usage")) usage = usage_of(*u);
  auto* choices = chunk.if_contains("choices");
  if (!choices || !choices->is_array() || choices->get_array().empty()) return out;
  const json::value& choice = choices->get_array().front();
  if (!choice.is_object()) throw std::runtime_error("the upstream sent a choice that is not an object");
  if (auto* d = object_in(choice.get_object(), "delta")) {
    std::string reasoning = string_in(*d, "reasoning_content");
    if (reasoning.empty()) reasoning = string_in(*d, "reasoning");
    if (!reasoning.empty()) out.push_back(text_delta(api::Delta::Kind::reasoning, std::move(reasoning)));
    if (std::string content = string_in(*d, "content"); !content.empty()) {
      out.push_back(text_delta(api::Delta::Kind::content, std::move(content)));
      out.back().logprobs = logprobs_of(choice.get_object());
    }
    if (auto* calls = d->if_contains("tool_calls"); calls && calls->is_array())
      for (auto& c : calls->get_array()) {
        if (!c.is_object()) continue;
        int64_t index = c.get_object().contains("index") && c.at("index").is_int64() ? c.at("index").get_int64() : 0;
        auto& pending = calls_[index];
        if (auto* fn = object_in(c.get_object(), "function")) {
          pending.name += string_in(*fn, "name");
          pending.arguments += string_in(*fn, "arguments");
        }
      }
  }
  if (auto r = string_in(choice.get_object(), "finish_reason"); !r.empty()) {
    finish_reason = r;
    matched_stop = string_in(choice.get_object(), "stop_reason");  // vLLM's (and v4flash's) stop string
    for (auto& d : flush()) out.push_back(std::move(d));
  }
  if (!out.empty()) ++output_events;
  return out;
}

std::vector<api::Delta> ChunkReader::flush() {
  std::vector<api::Delta> out;
  const std::string prefix = dialect_ == api::Dialect::anthropic ? "toolu_" : "call_";
  for (auto& [index, c] : calls_) {
    api::Delta d;
    d.kind = api::Delta::Kind::tool_call;
    // Our own id in the caller's dialect's form: the client sends it back, we pass it on as given.
    d.call.id = prefix + api::random_id(24);
    d.call.name = c.name;
    d.call.arguments = c.arguments.empty() ? "{}" : c.arguments;
    d.call.index = calls_made_++;
    out.push_back(std::move(d));
  }
  calls_.clear();
  return out;
}

api::ApiError upstream_error(api::Dialect dialect, int status, const std::string& body, const std::string& backend) {
  boost::system::error_code ec;
  json::value v = json::parse(body, ec);
  std::string message, type, param, code;
  if (!ec && v.is_object()) {
    const json::object& o = v.get_object();
    const json::object* e = object_in(o, "error");
    if (e) {
      message = string_in(*e, "message");
      type = string_in(*e, "type");
      param = string_in(*e, "param");
      code = string_in(*e, "code");
    } else {
      message = string_in(o, "message");
    }
  }
  if (message.empty()) message = "HTTP " + std::to_string(status);
  if (status == 401 || status == 403)
    return api::ApiError(502, "server_error", "the upstream '" + backend + "' refused this server's credentials (" +
                                                  std::to_string(status) + ")", "", "upstream_error");
  if (status >= 500 || status < 400)
    return api::ApiError(502, "server_error", "the upstream '" + backend + "' failed: " + message, "", "upstream_error");
  if (status == 429) {
    auto e = api::overloaded(dialect, "the upstream is rate limiting: " + message);
    e.retry_after_s = 1;
    return e;
  }
  if (type.empty()) type = "invalid_request_error";
  return api::ApiError(status, type, message, param, code);
}

}  // namespace v4::gateway
