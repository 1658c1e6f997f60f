// The internal request model and what the dialect parsers share (api/request.h).
#include "api/request.h"

#include <algorithm>
#include <climits>

#include "text/chat_encoder.h"

namespace v4::api {

namespace json = boost::json;

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

uint64_t choice_seed(uint64_t seed, int choice) {
  if (choice == 0) return seed;
  // splitmix64: neighbouring seeds and choices give unrelated streams.
  uint64_t z = seed + uint64_t(choice) * 0x9E3779B97F4A7C15ull;
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return (z ^ (z >> 31)) & uint64_t(INT64_MAX);  // a seed any request can send (a JSON int64)
}

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
