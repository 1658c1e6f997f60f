// Parsing and validation of the three dialects into one Request.
#include "api/request.h"

#include <algorithm>
#include <cmath>
#include <climits>
#include <cstdlib>
#include <functional>

#include "text/chat_encoder.h"

namespace v4::api {

namespace json = boost::json;

ApiError bad_request(const std::string& param, const std::string& message) {
  return ApiError(400, "invalid_request_error", message, param, param.empty() ? "invalid_request" : "invalid_parameter");
}

ApiError invalid_value(Dialect dialect, const std::string& param, const std::string& message) {
  return ApiError(dialect == Dialect::anthropic ? 400 : 422, "invalid_request_error", message, param,
                  "invalid_parameter");
}

bool ModelCatalog::serves(const std::string& id) const {
  return std::find(ids.begin(), ids.end(), id) != ids.end();
}

std::optional<std::string> ModelCatalog::resolve(const std::string& id) const {
  if (serves(id)) return id;
  for (const auto& [pattern, target] : aliases) {
    const bool wildcard = !pattern.empty() && pattern.back() == '*';
    const std::string_view stem(pattern.data(), pattern.size() - (wildcard ? 1 : 0));
    if (wildcard ? std::string_view(id).starts_with(stem) : id == pattern) return target;
  }
  return std::nullopt;
}

std::pair<std::string, std::string> parse_model_alias(const std::string& spec) {
  const size_t eq = spec.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
    throw std::invalid_argument("--model-alias takes PATTERN=MODEL (e.g. 'claude-*=deepseek-v4-flash'), got '" + spec + "'");
  std::string pattern = spec.substr(0, eq);
  if (pattern.find('*') != std::string::npos && pattern.find('*') != pattern.size() - 1)
    throw std::invalid_argument("--model-alias: '*' may only end the pattern, got '" + pattern + "'");
  return {pattern, spec.substr(eq + 1)};
}

json::value parse_json_body(const std::string& body) {
  if (body.empty()) throw bad_request("", "request body is empty; expected a JSON object");
  boost::system::error_code ec;
  json::parse_options opts;
  opts.max_depth = 64;
  json::value v = json::parse(body, ec, {}, opts);
  if (ec) throw bad_request("", "request body is not valid JSON: " + ec.message());
  if (!v.is_object()) throw bad_request("", "request body must be a JSON object");
  return v;
}

namespace {

constexpr int kMaxOutput = 393216;

const char* kind_name(const json::value& v) {
  switch (v.kind()) {
    case json::kind::null: return "null";
    case json::kind::bool_: return "a boolean";
    case json::kind::int64:
    case json::kind::uint64:
    case json::kind::double_: return "a number";
    case json::kind::string: return "a string";
    case json::kind::array: return "an array";
    case json::kind::object: return "an object";
  }
  return "?";
}

// Reads the fields of one JSON object, naming the parameter path in every error.
class Fields {
 public:
  Fields(const json::object& obj, Dialect dialect, std::string prefix = {})
      : obj_(obj), dialect_(dialect), prefix_(std::move(prefix)) {}

  std::string path(std::string_view key) const { return prefix_ + std::string(key); }
  // Present and not null.
  const json::value* find(std::string_view key) const {
    auto it = obj_.find(key);
    if (it == obj_.end() || it->value().is_null()) return nullptr;
    return &it->value();
  }
  const json::value& require(std::string_view key) const {
    auto* v = find(key);
    if (!v) throw bad_request(path(key), "missing required parameter '" + path(key) + "'");
    return *v;
  }
  ApiError type_error(std::string_view key, const char* want, const json::value& got) const {
    return bad_request(path(key), "invalid type for '" + path(key) + "': expected " + want + ", got " + kind_name(got));
  }
  std::optional<std::string> str(std::string_view key) const {
    auto* v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_string()) throw type_error(key, "a string", *v);
    return std::string(v->get_string());
  }
  std::string req_str(std::string_view key) const {
    require(key);
    return *str(key);
  }
  std::optional<bool> boolean(std::string_view key) const {
    auto* v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_bool()) throw type_error(key, "a boolean", *v);
    return v->get_bool();
  }
  std::optional<double> number(std::string_view key, double lo, double hi) const {
    auto* v = find(key);
    if (!v) return std::nullopt;
    if (!v->is_number()) throw type_error(key, "a number", *v);
    double d = v->to_number<double>();
    if (!(d >= lo && d <= hi))
      throw invalid_value(dialect_, path(key), "'" + path(key) + "' must be between " + fmt_num(lo) + " and " +
                                                   fmt_num(hi) + ", got " + fmt_num(d));
    return d;
  }
  std::optional<int64_t> integer(std::string_view key, int64_t lo, int64_t hi) const {
    auto* v = find(key);
    if (!v) return std::nullopt;
    int64_t n = 0;
    if (v->is_int64()) {
      n = v->get_int64();
    } else if (v->is_uint64()) {
      n = v->get_uint64() > uint64_t(INT64_MAX) ? INT64_MAX : int64_t(v->get_uint64());
    } else if (v->is_double() && std::floor(v->get_double()) == v->get_double() && std::fabs(v->get_double()) < 9e15) {
      n = int64_t(v->get_double());
    } else {
      throw type_error(key, "an integer", *v);
    }
    if (n < lo || n > hi)
      throw invalid_value(dialect_, path(key), "'" + path(key) + "' must be between " + std::to_string(lo) + " and " +
                                                   std::to_string(hi) + ", got " + std::to_string(n));
    return n;
  }
  const json::array* array(std::string_view key) const {
    auto* v = find(key);
    if (!v) return nullptr;
    if (!v->is_array()) throw type_error(key, "an array", *v);
    return &v->get_array();
  }
  const json::object* object(std::string_view key) const {
    auto* v = find(key);
    if (!v) return nullptr;
    if (!v->is_object()) throw type_error(key, "an object", *v);
    return &v->get_object();
  }
  Fields sub(const json::object& o, const std::string& name) const { return Fields(o, dialect_, name + "."); }
  // Every field present must be one of `known`: a field this server does not honour is refused,
  // never ignored (400 naming it).
  void only(std::initializer_list<std::string_view> known) const {
    for (auto& kv : obj_) {
      if (std::find(known.begin(), known.end(), kv.key()) != known.end()) continue;
      throw ApiError(400, "invalid_request_error",
                     "'" + path(kv.key()) + "' is not supported by this server (docs/api.md lists the fields it honours)",
                     path(kv.key()), "unsupported_parameter");
    }
  }

  static std::string fmt_num(double d) {
    if (std::floor(d) == d && std::fabs(d) < 1e15) return std::to_string(int64_t(d));
    std::string s = std::to_string(d);
    while (!s.empty() && s.back() == '0') s.pop_back();
    return s;
  }

 private:
  const json::object& obj_;
  Dialect dialect_;
  std::string prefix_;
};

const json::object& as_object(const json::value& v, const std::string& path, Dialect) {
  if (!v.is_object()) throw bad_request(path, "invalid type for '" + path + "': expected an object, got " + kind_name(v));
  return v.get_object();
}

// reasoning_effort (and its aliases) -> none | low | medium | high | max.
std::string normalise_effort(Dialect dialect, const std::string& param, const std::string& e) {
  if (e == "none") return "none";
  if (e == "minimal" || e == "low") return "low";
  if (e == "medium") return "medium";
  if (e == "high" || e == "xhigh") return "high";
  if (e == "max" || e == "ultra") return "max";
  throw invalid_value(dialect, param,
                      "'" + param + "' must be one of none, minimal, low, medium, high, xhigh, max; got '" + e + "'");
}

void apply_effort(Request& req, const std::string& effort) {
  req.effort = effort;
  if (effort == "none") req.thinking = false;
}

void read_stop(Request& req, const Fields& f, std::string_view key) {
  auto* v = f.find(key);
  if (!v) return;
  if (v->is_string()) {
    req.stop.push_back(std::string(v->get_string()));
  } else if (v->is_array()) {
    for (auto& s : v->get_array()) {
      if (!s.is_string()) throw bad_request(f.path(key), "'" + f.path(key) + "' must hold strings only");
      req.stop.push_back(std::string(s.get_string()));
    }
  } else {
    throw f.type_error(key, "a string or an array of strings", *v);
  }
  if (req.stop.size() > 4)
    throw invalid_value(req.dialect, f.path(key), "'" + f.path(key) + "' takes at most 4 strings, got " +
                                                      std::to_string(req.stop.size()));
  for (auto& s : req.stop)
    if (s.empty()) throw invalid_value(req.dialect, f.path(key), "'" + f.path(key) + "' must not contain empty strings");
}

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

void read_common_sampling(Request& req, const Fields& f) {
  if (auto t = f.number("temperature", 0, 2)) req.temperature = *t;
  if (auto p = f.number("top_p", 0, 1)) req.top_p = *p;
  if (auto s = f.integer("seed", INT64_MIN, INT64_MAX)) req.seed = uint64_t(*s);
  if (auto b = f.integer("thinking_budget", 1, kMaxOutput)) {
    req.thinking_budget = int(*b);
    req.thinking_budget_given = true;
  }
  if (auto e = f.boolean("enable_thinking")) req.thinking = *e && req.thinking;
  if (auto w = f.boolean("web_search_linkup"); w && *w) req.web_search_field = "web_search_linkup";
  if (auto d = f.boolean("disable_formatting")) req.disable_formatting = *d;
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

// Server-side search tools of the dialects are not run by this server: the refusal names the field
// and the request field that does the search instead.
[[noreturn]] void refuse_tool_type(Dialect dialect, const std::string& param, const std::string& type, const char* supported) {
  std::string hint = type.rfind("web_search", 0) == 0
                         ? "; for a web search before the answer send \"web_search_linkup\": true"
                         : "";
  throw invalid_value(dialect, param, "tool type '" + type + "' is not supported (" + supported + ")" + hint);
}

// DeepSeek's thinking: {"type": "enabled"|"disabled"} (Anthropic adds budget_tokens, display, adaptive).
void read_thinking_object(Request& req, const Fields& f) {
  auto* t = f.object("thinking");
  if (!t) return;
  Fields tf = f.sub(*t, "thinking");
  tf.only({"type", "budget_tokens", "display"});
  std::string type = tf.req_str("type");
  if (type == "disabled") {
    req.thinking = false;
  } else if (type == "enabled" || type == "adaptive") {
    if (auto b = tf.integer("budget_tokens", 1, kMaxOutput)) {
      req.thinking_budget = int(*b);
      req.thinking_budget_given = true;
    }
    if (auto d = tf.str("display")) {
      if (*d != "summarized" && *d != "omitted")
        throw invalid_value(req.dialect, "thinking.display", "'thinking.display' must be summarized or omitted");
      req.show_thinking = *d != "omitted";
    }
  } else {
    throw invalid_value(req.dialect, "thinking.type", "'thinking.type' must be enabled, disabled or adaptive; got '" + type + "'");
  }
}

std::string text_of_parts(const json::value& content, const std::string& path, Dialect dialect) {
  if (content.is_string()) return std::string(content.get_string());
  if (content.is_null()) return {};
  if (!content.is_array())
    throw bad_request(path, "invalid type for '" + path + "': expected a string or an array of content parts");
  std::string out;
  size_t i = 0;
  for (auto& part : content.get_array()) {
    std::string ppath = path + "[" + std::to_string(i++) + "]";
    auto& po = as_object(part, ppath, dialect);
    Fields pf(po, dialect, ppath + ".");
    std::string type = pf.req_str("type");
    if (type == "text" || type == "input_text" || type == "output_text") {
      pf.only({"type", "text", "annotations", "logprobs"});  // annotations, logprobs: output metadata passed back
      out += pf.req_str("text");
    } else if (type == "refusal") {
      pf.only({"type", "refusal"});
      out += pf.req_str("refusal");
    } else {
      throw bad_request(ppath + ".type", "'" + ppath + ".type': content part type '" + type + "' is not supported (text only)");
    }
  }
  return out;
}

ApiError unsupported(const std::string& path, const std::string& why) {
  return ApiError(400, "invalid_request_error", "'" + path + "' is not supported by this server: " + why, path,
                  "unsupported_parameter");
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

// Function tool in the Chat shape, validated.
json::object chat_tool(const std::string& name, const std::string& description, const json::value* parameters) {
  json::object fn;
  fn["name"] = name;
  if (!description.empty()) fn["description"] = description;
  fn["parameters"] = parameters ? *parameters : json::value(json::object{{"type", "object"}, {"properties", json::object{}}});
  return json::object{{"type", "function"}, {"function", std::move(fn)}};
}

void check_tool_choice_name(const Request& req, const std::string& name, const std::string& param) {
  for (auto& t : req.tools)
    if (t.at("function").at("name").as_string() == name) return;
  if (req.search_tool && name == "web_search") return;  // the server's search tool (given to the model later)
  throw invalid_value(req.dialect, param, "tool_choice names '" + name + "', which is not among the tools");
}

// OpenAI's tool_choice: "none" | "auto" | "required", or an object naming one of the request's
// tools; the two OpenAI dialects nest that name differently (`name_of` reads it).
template <class NameOf>
void read_tool_choice(Request& req, const Fields& f, const json::value& tc, NameOf name_of) {
  if (tc.is_string()) {
    std::string s(tc.get_string());
    if (s == "auto") req.tool_choice.mode = ToolChoice::Mode::automatic;
    else if (s == "none") req.tool_choice.mode = ToolChoice::Mode::none;
    else if (s == "required") req.tool_choice.mode = ToolChoice::Mode::required;
    else throw invalid_value(req.dialect, "tool_choice", "'tool_choice' must be none, auto, required or a function");
  } else if (tc.is_object()) {
    req.tool_choice = {ToolChoice::Mode::named, name_of(f.sub(tc.get_object(), "tool_choice"))};
    check_tool_choice_name(req, req.tool_choice.name, "tool_choice");
  } else {
    throw f.type_error("tool_choice", "a string or an object", tc);
  }
}

void read_response_format(Request& req, const Fields& f, const json::object& rf, const std::string& param) {
  Fields rff = f.sub(rf, param);
  std::string type = rff.req_str("type");
  if (type == "text" || type == "json_object") rff.only({"type"});
  if (type == "text") return;
  if (type == "json_object") {
    req.output_format.kind = OutputFormat::Kind::json_object;
    return;
  }
  if (type == "json_schema") {
    // Chat nests {json_schema: {name, schema}}; Responses text.format is flat {name, schema}.
    // name and description are for the model (the schema is in the prompt); strict either way: the
    // answer is held to the schema (api/constraint.h).
    const json::object* holder = &rf;
    if (auto* js = rff.object("json_schema")) {
      rff.only({"type", "json_schema"});
      holder = js;
      f.sub(*js, param + ".json_schema").only({"name", "description", "schema", "strict"});
    } else {
      rff.only({"type", "name", "description", "schema", "strict"});
    }
    Fields hf = f.sub(*holder, holder == &rf ? param : param + ".json_schema");
    const json::value* schema = hf.find("schema");
    if (!schema || !schema->is_object()) throw bad_request(param + ".schema", "json_schema needs a 'schema' object");
    req.output_format = {OutputFormat::Kind::json_schema, hf.str("name").value_or(""), *schema,
                         hf.boolean("strict").value_or(false)};
    return;
  }
  throw invalid_value(req.dialect, param + ".type", "'" + param + ".type' must be text, json_object or json_schema");
}

void check_model(const Request& req, const Fields& f) {
  (void)f;
  if (req.model.empty()) throw bad_request("model", "'model' must not be empty");
}

// An effort's budget is capped to its share of max_tokens (reasoning_share), so a request that
// leaves the budget to its effort always has room for an answer: the default request (medium,
// max_tokens 4096) reasons for at most 2048 tokens. An explicit budget is the caller's choice; the
// Anthropic dialect refuses one that does not fit max_tokens, as Anthropic's API does.
void finish_thinking(Request& req) {
  const std::string effort = req.effort == "none" ? "medium" : req.effort;
  if (!req.thinking_budget_given) {
    req.thinking_budget = std::min(effort_budget(effort), reasoning_share(effort, req.max_tokens));
    return;
  }
  if (req.dialect == Dialect::anthropic && req.thinking && req.thinking_budget >= req.max_tokens)
    throw bad_request("thinking.budget_tokens", "'thinking.budget_tokens' must be less than 'max_tokens' (" +
                                                    std::to_string(req.max_tokens) + ")");
}

}  // namespace

int effort_budget(const std::string& effort) {
  // Sized to the model's 393,216-token output limit; medium is the product sheet's default 32768.
  if (effort == "low") return 8192;
  if (effort == "high") return 65536;
  if (effort == "max") return 131072;
  return 32768;
}

int reasoning_share(const std::string& effort, int max_tokens) {
  // Eighths of max_tokens: low 2, medium 4, high 6, max 7; at least one token.
  const int64_t eighths = effort == "low" ? 2 : effort == "high" ? 6 : effort == "max" ? 7 : 4;
  return int(std::max<int64_t>(1, int64_t(max_tokens) * eighths / 8));
}

std::optional<std::string> encoder_effort(const std::string& effort) {
  if (effort == "max") return std::string("max");
  return std::nullopt;  // the V4 encoder renders "high" and None identically
}

// ---------------------------------------------------------------- OpenAI Chat Completions
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
  if (auto n = f.integer("n", 1, 128); n && *n != 1) throw invalid_value(req.dialect, "n", "only n=1 is supported");
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

namespace {

// A freeform (`custom`) tool's one parameter, as the model sees it.
json::object custom_tool_parameters() {
  return json::object{{"type", "object"},
                      {"properties", json::object{{"input", json::object{{"type", "string"},
                                                                         {"description", "the tool's freeform input"}}}}},
                      {"required", json::array{"input"}}};
}

std::vector<std::string> domain_list(const Fields& f, std::string_view key) {
  std::vector<std::string> out;
  if (auto* a = f.array(key))
    for (auto& d : *a) {
      if (!d.is_string() || d.get_string().empty())
        throw bad_request(f.path(key), "'" + f.path(key) + "' must hold domain names (non-empty strings)");
      out.emplace_back(d.get_string());
    }
  return out;
}

void only_one_search_tool(const Request& req, const std::string& tp) {
  if (req.search_tool)
    throw invalid_value(req.dialect, tp + ".type", "'" + tp + "': only one web search tool may be declared");
}

// The Responses web search tool: recorded for the service, which gives it to the model when the
// server searches (else it stays withheld, as the parser lists it).
void read_responses_search_tool(Request& req, const Fields& tf, const std::string& type, const std::string& tp) {
  tf.only({"type", "external_web_access", "search_context_size", "user_location", "filters"});
  only_one_search_tool(req, tp);
  Request::SearchTool st;
  st.type = type;
  st.param = tp;
  if (auto live = tf.boolean("external_web_access")) st.live_web = *live;
  if (auto size = tf.str("search_context_size")) {
    if (*size == "low") st.results = 3;
    else if (*size == "medium") st.results = 5;
    else if (*size == "high") st.results = 10;
    else
      throw invalid_value(req.dialect, tp + ".search_context_size",
                          "'" + tp + ".search_context_size' must be low, medium or high; got '" + *size + "'");
  }
  if (auto* filters = tf.object("filters")) {
    Fields ff = tf.sub(*filters, tp + ".filters");
    ff.only({"allowed_domains"});
    st.allowed_domains = domain_list(ff, "allowed_domains");
  }
  st.user_location = tf.find("user_location") != nullptr;
  req.search_tool = std::move(st);
  req.withheld_tools.push_back(type);
  req.withheld_reason = "web search is not enabled on this server";
}

// One Responses tool. function and custom tools reach the model (a namespace's members named
// "NAMESPACE.NAME"); web_search is the server's search tool (withheld while the server has no
// search provider); anything else is refused naming it.
void read_responses_tool(Request& req, const Fields& f, const json::value& t, const std::string& tp,
                         const std::string& ns = {}, const std::string& ns_description = {}) {
  Fields tf = f.sub(as_object(t, tp, req.dialect), tp);
  std::string type = tf.req_str("type");
  auto describe = [&](std::string d) { return ns_description.empty() ? d : "(" + ns + ": " + ns_description + ") " + d; };
  if (type == "function") {
    tf.only({"type", "name", "description", "parameters", "strict"});
    if (auto* p = tf.find("parameters"); p && !p->is_object()) throw tf.type_error("parameters", "an object", *p);
    const std::string name = tf.req_str("name");
    const std::string model_name = ns.empty() ? name : ns + "." + name;
    if (auto strict = tf.boolean("strict"); strict && *strict) req.strict_tools.push_back(model_name);
    req.tools.push_back(chat_tool(model_name, describe(tf.str("description").value_or("")), tf.find("parameters")));
    if (!ns.empty()) req.tool_origins.push_back({model_name, name, ns, false});
  } else if (type == "custom") {
    tf.only({"type", "name", "description", "format"});
    if (auto* fmt = tf.object("format")) {
      Fields ff = f.sub(*fmt, tp + ".format");
      ff.only({"type", "syntax", "definition"});
      if (ff.req_str("type") != "text")
        throw invalid_value(req.dialect, tp + ".format.type",
                            "'" + tp + ".format.type': grammar-constrained custom tools need constrained decoding, "
                            "which this server does not have; use format {\"type\": \"text\"}");
    }
    const std::string name = tf.req_str("name");
    const std::string model_name = ns.empty() ? name : ns + "." + name;
    const json::value params = custom_tool_parameters();
    req.tools.push_back(chat_tool(model_name, describe(tf.str("description").value_or("")), &params));
    req.tool_origins.push_back({model_name, name, ns, true});
  } else if (type == "namespace" && ns.empty()) {
    tf.only({"type", "name", "description", "tools"});
    const std::string name = tf.req_str("name");
    const json::array* members = tf.array("tools");
    if (!members) throw bad_request(tp + ".tools", "missing required parameter '" + tp + ".tools'");
    size_t k = 0;
    for (auto& m : *members)
      read_responses_tool(req, f, m, tp + ".tools[" + std::to_string(k++) + "]", name, tf.str("description").value_or(""));
  } else if ((type == "web_search" || type == "web_search_preview") && ns.empty()) {
    read_responses_search_tool(req, tf, type, tp);
  } else {
    refuse_tool_type(req.dialect, tp + ".type", type, "function, custom, namespace and web_search tools");
  }
}

// The text of a reasoning input item: its sealed copy when it has one, else its content or summary.
std::string reasoning_input_text(const Fields& itf, const std::string& ip) {
  if (auto sealed = itf.str("encrypted_content"); sealed && !sealed->empty())
    return unseal_reasoning(*sealed, ip + ".encrypted_content");
  std::string text;
  auto gather = [&](const json::array* parts) {
    if (!parts) return;
    for (auto& p : *parts)
      if (p.is_object() && p.get_object().contains("text") && p.at("text").is_string()) text += p.at("text").get_string();
  };
  gather(itf.array("content"));
  if (text.empty()) gather(itf.array("summary"));
  return text;
}

// A call's name as the model knows it (namespaced tools: "NAMESPACE.NAME").
std::string model_tool_name(const Fields& itf) {
  std::string name = itf.req_str("name");
  if (auto ns = itf.str("namespace"); ns && !ns->empty()) return *ns + "." + name;
  return name;
}

// An earlier web_search_call item: the model's call again, and as its result the sources the item
// lists (the pages' text is not kept between requests).
void read_web_search_call_item(Request& req, const Fields& itf, const std::string& ip, Message& turn) {
  itf.only({"type", "id", "status", "action"});
  std::string query, sources;
  if (auto* action = itf.object("action")) {
    Fields af = itf.sub(*action, ip + ".action");
    af.only({"type", "query", "queries", "sources", "url", "pattern"});
    query = af.str("query").value_or("");
    if (auto* list = af.array("sources"))
      for (auto& src : *list)
        if (src.is_object() && src.get_object().contains("url") && src.at("url").is_string())
          sources += "\n- " + std::string(src.at("url").get_string());
  }
  const std::string id = itf.str("id").value_or("ws_" + std::to_string(req.messages.size()));
  turn.tool_calls.push_back({id, "web_search", json::serialize(json::object{{"query", query}})});
  req.messages.push_back(Message{"tool", sources.empty() ? "(earlier search; its results are not kept)"
                                                         : "(earlier search; its results are not kept) Sources:" + sources,
                                 {}, {}, id});
}

// `name`: the items' parameter in errors ("input", or "previous_response_id" for the stored ones).
void read_responses_input(Request& req, const Fields& f, const json::array& items, const std::string& name = "input") {
  size_t i = 0;
  // Consecutive reasoning / assistant message / call items form one assistant turn.
  auto assistant_turn = [&]() -> Message& {
    if (req.messages.empty() || req.messages.back().role != "assistant" || !req.messages.back().tool_calls.empty())
      req.messages.push_back(Message{"assistant", "", {}, {}, {}});
    return req.messages.back();
  };
  for (auto& item : items) {
    std::string ip = name + "[" + std::to_string(i++) + "]";
    Fields itf = f.sub(as_object(item, ip, req.dialect), ip);
    std::string type = itf.str("type").value_or("message");
    if (type == "message") {
      itf.only({"type", "id", "role", "content", "status"});
      std::string role = itf.req_str("role");
      if (role != "system" && role != "developer" && role != "user" && role != "assistant")
        throw invalid_value(req.dialect, ip + ".role", "'" + ip + ".role' must be system, developer, user or assistant");
      std::string content = text_of_parts(itf.require("content"), ip + ".content", req.dialect);
      if (role == "assistant") assistant_turn().content += content;
      else req.messages.push_back(Message{role, content, {}, {}, {}});
    } else if (type == "reasoning") {
      itf.only({"type", "id", "summary", "content", "encrypted_content", "status"});
      Message& a = assistant_turn();
      a.reasoning_content = a.reasoning_content.value_or("") + reasoning_input_text(itf, ip);
    } else if (type == "function_call") {
      itf.only({"type", "id", "call_id", "name", "namespace", "arguments", "status"});
      assistant_turn().tool_calls.push_back({itf.req_str("call_id"), model_tool_name(itf), itf.str("arguments").value_or("{}")});
    } else if (type == "custom_tool_call") {
      itf.only({"type", "id", "call_id", "name", "namespace", "input", "status"});
      json::object args{{"input", itf.str("input").value_or("")}};
      assistant_turn().tool_calls.push_back({itf.req_str("call_id"), model_tool_name(itf), json::serialize(args)});
    } else if (type == "web_search_call") {
      read_web_search_call_item(req, itf, ip, assistant_turn());
    } else if (type == "function_call_output" || type == "custom_tool_call_output") {
      itf.only({"type", "id", "call_id", "output", "status"});
      Message m{"tool", "", {}, {}, itf.req_str("call_id")};
      m.content = text_of_parts(itf.require("output"), ip + ".output", req.dialect);
      req.messages.push_back(std::move(m));
    } else {
      throw bad_request(ip + ".type", "'" + ip + ".type': input item type '" + type + "' is not supported");
    }
  }
}

void read_responses_include(Request& req, const Fields& f) {
  const json::array* inc = f.array("include");
  if (!inc) return;
  size_t i = 0;
  for (auto& v : *inc) {
    std::string p = "include[" + std::to_string(i++) + "]";
    if (!v.is_string()) throw bad_request(p, "'" + p + "' must be a string");
    if (v.get_string() == "message.output_text.logprobs") req.logprobs = true;
    else if (v.get_string() == "reasoning.encrypted_content") req.encrypted_reasoning = true;
    else if (v.get_string() == "web_search_call.action.sources") req.search_sources = true;
    else
      throw invalid_value(req.dialect, p, "'" + p + "': '" + std::string(v.get_string()) +
                                              "' is not supported (reasoning.encrypted_content, "
                                              "message.output_text.logprobs, web_search_call.action.sources)");
  }
}

// store (default true, as OpenAI's), background and previous_response_id. A previous_response_id
// the service did not look up (no `earlier`) cannot be continued: refused rather than dropped.
void read_responses_state(Request& req, const Fields& f, bool looked_up) {
  req.store = f.boolean("store").value_or(true);
  req.background = f.boolean("background").value_or(false);
  if (auto p = f.str("previous_response_id")) {
    if (!looked_up)
      throw bad_request("previous_response_id", "'previous_response_id' needs the server's response store");
    req.previous_response_id = *p;
  }
  if (req.background && !req.store)
    throw bad_request("background", "'background': true needs 'store': true (a background response is read back with "
                                    "GET /v1/responses/{id})");
  if (req.background && req.stream)
    throw bad_request("stream", "'stream': true with 'background': true is not supported: poll GET /v1/responses/{id}, "
                                "or stream without background");
}

void read_responses_reasoning(Request& req, const Fields& f) {
  const json::object* r = f.object("reasoning");
  if (!r) return;
  Fields rf = f.sub(*r, "reasoning");
  rf.only({"effort", "summary", "generate_summary"});
  if (auto e = rf.str("effort")) apply_effort(req, normalise_effort(req.dialect, "reasoning.effort", *e));
  for (const char* key : {"generate_summary", "summary"}) {
    auto s = rf.str(key);
    if (!s) continue;
    if (*s != "auto" && *s != "concise" && *s != "detailed")
      throw invalid_value(req.dialect, rf.path(key), "'" + rf.path(key) + "' must be auto, concise or detailed");
    req.reasoning_summary = *s;
  }
}

}  // namespace

// ---------------------------------------------------------------- OpenAI Responses
Request parse_responses_request(const json::value& body, const json::array* earlier) {
  Request req;
  req.dialect = Dialect::responses;
  Fields f(body.as_object(), req.dialect);
  f.only({"model", "input", "instructions", "reasoning", "thinking", "temperature", "top_p", "seed", "thinking_budget",
          "enable_thinking", "web_search_linkup", "disable_formatting", "max_output_tokens", "stream", "top_logprobs",
          "include", "previous_response_id", "metadata", "text", "tools", "tool_choice", "parallel_tool_calls",
          "store", "background", "prompt_cache_key", "client_metadata", "truncation"});
  req.model = f.req_str("model");
  check_model(req, f);
  read_responses_reasoning(req, f);
  read_thinking_object(req, f);
  read_common_sampling(req, f);
  if (auto m = f.integer("max_output_tokens", 1, kMaxOutput)) req.max_tokens = int(*m), req.max_tokens_given = true;
  if (auto s = f.boolean("stream")) req.stream = *s;
  req.include_usage = true;
  if (auto t = f.integer("top_logprobs", 0, 20)) req.logprobs = true, req.top_logprobs = int(*t);
  read_responses_include(req, f);
  read_responses_state(req, f, earlier != nullptr);
  if (auto t = f.str("truncation"); t && *t != "disabled")
    throw invalid_value(req.dialect, "truncation", "'truncation' must be disabled (a prompt over the context is refused)");
  if (auto k = f.str("prompt_cache_key")) req.prompt_cache_key = *k;
  f.object("client_metadata");  // Codex's own tags: no behaviour is defined for them (docs/api.md)
  if (auto* md = f.object("metadata")) req.metadata = *md;
  if (auto* text = f.object("text")) {
    Fields tf = f.sub(*text, "text");
    tf.only({"format"});
    if (auto* fmt = tf.object("format")) read_response_format(req, f, *fmt, "text.format");
  }
  if (auto* tools = f.array("tools")) {
    size_t i = 0;
    for (auto& t : *tools) read_responses_tool(req, f, t, "tools[" + std::to_string(i++) + "]");
  }
  if (auto* tc = f.find("tool_choice"))  // {"type": "function", "name": ...}
    read_tool_choice(req, f, *tc, [](const Fields& cf) { return cf.req_str("name"); });
  if (auto p = f.boolean("parallel_tool_calls")) req.parallel_tool_calls = *p;
  if (auto ins = f.str("instructions")) {
    req.instructions = *ins;
    if (!ins->empty()) req.messages.push_back(Message{"system", *ins, {}, {}, {}});
  }
  if (earlier) read_responses_input(req, f, *earlier, "previous_response_id");  // its instructions stay behind

  const json::value& input = f.require("input");
  if (input.is_string()) req.messages.push_back(Message{"user", std::string(input.get_string()), {}, {}, {}});
  else if (input.is_array()) read_responses_input(req, f, input.get_array());
  else throw f.type_error("input", "a string or an array", input);
  if (req.messages.empty() || (req.messages.size() == 1 && req.messages[0].role == "system"))
    throw bad_request("input", "'input' must contain at least one message");
  finish_thinking(req);
  return req;
}

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
    bf.only({"type", "data"});  // not made by this server, so there is nothing to restore
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

// ---------------------------------------------------------------- Anthropic Messages
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

std::optional<json::value> format_for_prompt(const OutputFormat& format) {
  switch (format.kind) {
    case OutputFormat::Kind::text: return std::nullopt;
    case OutputFormat::Kind::json_object: return json::object{{"type", "json_object"}};
    case OutputFormat::Kind::json_schema: return json::object{{"type", "json_schema"}, {"schema", format.schema}};
  }
  return std::nullopt;
}

json::array to_encoder_messages(const Request& req) {
  json::array out;
  for (auto& m : req.messages) {
    json::object o;
    o["role"] = m.role;
    o["content"] = m.content;
    if (m.reasoning_content) o["reasoning_content"] = *m.reasoning_content;
    if (!m.tool_calls.empty()) {
      json::array calls;
      for (auto& c : m.tool_calls)
        calls.push_back(json::object{{"id", c.id}, {"type", "function"},
                                     {"function", json::object{{"name", c.name}, {"arguments", c.arguments}}}});
      o["tool_calls"] = std::move(calls);
    }
    if (!m.tool_call_id.empty()) o["tool_call_id"] = m.tool_call_id;
    out.push_back(std::move(o));
  }
  return out;
}

json::array prompt_messages(const Request& req) {
  json::array msgs = to_encoder_messages(req);
  const json::array* tools = (req.tools.empty() || !req.tool_choice.offers_tools()) ? nullptr : &req.tools;
  const std::optional<json::value> format = format_for_prompt(req.output_format);
  if (tools || format) msgs = text::attach_request_fields(std::move(msgs), tools, format ? &*format : nullptr);
  return msgs;
}

}  // namespace v4::api
