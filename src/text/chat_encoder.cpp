// The V4 prompt format, following the semantics of DeepSeek's encoding_dsv4.py step by step
// (message merging, tool-result ordering, drop_thinking, per-role rendering, transitions).
#include "text/chat_encoder.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <map>

namespace v4::text {
namespace json = boost::json;

namespace {

constexpr std::string_view kReasoningEffortMax =
    "Reasoning Effort: Absolute maximum with no shortcuts permitted.\n"
    "You MUST be very thorough in your thinking and comprehensively decompose the problem to resolve "
    "the root cause, rigorously stress-testing your logic against all potential paths, edge cases, and "
    "adversarial scenarios.\n"
    "Explicitly write out your entire deliberation process, documenting every intermediate step, "
    "considered alternative, and rejected hypothesis to ensure absolutely no assumption is left "
    "unchecked.\n\n";

// TOOLS_TEMPLATE with the DSML/think placeholders already substituted; {tool_schemas} is spliced
// between kToolsHead and kToolsTail.
constexpr std::string_view kToolsHead =
    "## Tools\n\n"
    "You have access to a set of tools to help answer the user's question. You can invoke tools by "
    "writing a \"<｜DSML｜tool_calls>\" block like the following:\n\n"
    "<｜DSML｜tool_calls>\n"
    "<｜DSML｜invoke name=\"$TOOL_NAME\">\n"
    "<｜DSML｜parameter name=\"$PARAMETER_NAME\" string=\"true|false\">$PARAMETER_VALUE</｜DSML｜parameter>\n"
    "...\n"
    "</｜DSML｜invoke>\n"
    "<｜DSML｜invoke name=\"$TOOL_NAME2\">\n"
    "...\n"
    "</｜DSML｜invoke>\n"
    "</｜DSML｜tool_calls>\n\n"
    "String parameters should be specified as is and set `string=\"true\"`. For all other types "
    "(numbers, booleans, arrays, objects), pass the value in JSON format and set `string=\"false\"`.\n\n"
    "If thinking_mode is enabled (triggered by <think>), you MUST output your complete reasoning "
    "inside <think>...</think> BEFORE any tool calls or final response.\n\n"
    "Otherwise, output directly after </think> with tool calls or final response.\n\n"
    "### Available Tool Schemas\n\n";
constexpr std::string_view kToolsTail =
    "\n\nYou MUST strictly follow the above defined tool name and parameter schemas to invoke tool calls.\n";

constexpr std::string_view kResponseFormatHead =
    "## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n";

const std::map<std::string, std::string, std::less<>> kTaskTokens = {
    {"action", "<｜action｜>"}, {"query", "<｜query｜>"}, {"authority", "<｜authority｜>"},
    {"domain", "<｜domain｜>"}, {"title", "<｜title｜>"},   {"read_url", "<｜read_url｜>"}};

[[noreturn]] void fail(const std::string& what) { throw ChatEncodingError("encode_messages: " + what); }

const json::value* get(const json::object& o, std::string_view key) {
  auto it = o.find(key);
  return it == o.end() ? nullptr : &it->value();
}

// Python truthiness of a JSON value (None, "", [], {}, 0, false are falsy).
bool truthy(const json::value* v) {
  if (!v) return false;
  switch (v->kind()) {
    case json::kind::null: return false;
    case json::kind::bool_: return v->get_bool();
    case json::kind::int64: return v->get_int64() != 0;
    case json::kind::uint64: return v->get_uint64() != 0;
    case json::kind::double_: return v->get_double() != 0;
    case json::kind::string: return !v->get_string().empty();
    case json::kind::array: return !v->get_array().empty();
    case json::kind::object: return !v->get_object().empty();
  }
  return false;
}

std::string role_of(const json::object& m) {
  const json::value* r = get(m, "role");
  return r && r->is_string() ? std::string(r->get_string()) : std::string();
}

// What Python's "{x}".format(x=value) prints for the values the encoder formats: a string as-is,
// None as "None". Other types are not expected here.
std::string python_str(const json::value* v, std::string_view what) {
  if (!v || v->is_null()) return "None";
  if (v->is_string()) return std::string(v->get_string());
  fail(std::string(what) + " must be a string");
}

// `content or ""` for a text field.
std::string text_or_empty(const json::value* v, std::string_view what) {
  if (!truthy(v)) return "";
  if (!v->is_string()) fail(std::string(what) + " must be a string");
  return std::string(v->get_string());
}

void append_escaped(std::string& out, std::string_view s) {
  static const char* hex = "0123456789abcdef";
  out.push_back('"');
  for (unsigned char c : s) {
    switch (c) {
      case '"': out += "\\\""; break;
      case '\\': out += "\\\\"; break;
      case '\n': out += "\\n"; break;
      case '\r': out += "\\r"; break;
      case '\t': out += "\\t"; break;
      case '\b': out += "\\b"; break;
      case '\f': out += "\\f"; break;
      default:
        if (c < 0x20) {
          out += "\\u00";
          out.push_back(hex[c >> 4]);
          out.push_back(hex[c & 15]);
        } else {
          out.push_back(char(c));
        }
    }
  }
  out.push_back('"');
}

// Python float repr: shortest round-trip digits, fixed notation for 1e-4 <= |x| < 1e16.
void append_python_float(std::string& out, double x) {
  if (std::isnan(x)) {
    out += "NaN";
    return;
  }
  if (std::isinf(x)) {
    out += x > 0 ? "Infinity" : "-Infinity";
    return;
  }
  char buf[64];
  auto res = std::to_chars(buf, buf + sizeof buf, x, std::chars_format::scientific);
  std::string_view sci(buf, size_t(res.ptr - buf));
  bool negative = sci[0] == '-';
  if (negative) sci.remove_prefix(1);
  size_t e = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e))
    if (c != '.') digits.push_back(c);
  int exponent = std::stoi(std::string(sci.substr(e + 1)));
  int decpt = exponent + 1;  // value = 0.DIGITS * 10^decpt
  if (negative) out.push_back('-');
  if (decpt > 16 || decpt < -3) {
    out.push_back(digits[0]);
    if (digits.size() > 1) {
      out.push_back('.');
      out.append(digits, 1);
    }
    out.push_back('e');
    out.push_back(exponent < 0 ? '-' : '+');
    int a = std::abs(exponent);
    if (a < 10) out.push_back('0');
    out += std::to_string(a);
  } else if (decpt <= 0) {
    out += "0.";
    out.append(size_t(-decpt), '0');
    out += digits;
  } else if (size_t(decpt) >= digits.size()) {
    out += digits;
    out.append(size_t(decpt) - digits.size(), '0');
    out += ".0";
  } else {
    out.append(digits, 0, size_t(decpt));
    out.push_back('.');
    out.append(digits, size_t(decpt));
  }
}

void dump(std::string& out, const json::value& v) {
  switch (v.kind()) {
    case json::kind::null: out += "null"; break;
    case json::kind::bool_: out += v.get_bool() ? "true" : "false"; break;
    case json::kind::int64: out += std::to_string(v.get_int64()); break;
    case json::kind::uint64: out += std::to_string(v.get_uint64()); break;
    case json::kind::double_: append_python_float(out, v.get_double()); break;
    case json::kind::string: append_escaped(out, v.get_string()); break;
    case json::kind::array: {
      out.push_back('[');
      bool first = true;
      for (const auto& e : v.get_array()) {
        if (!first) out += ", ";
        first = false;
        dump(out, e);
      }
      out.push_back(']');
      break;
    }
    case json::kind::object: {
      out.push_back('{');
      bool first = true;
      for (const auto& kv : v.get_object()) {
        if (!first) out += ", ";
        first = false;
        append_escaped(out, kv.key());
        out += ": ";
        dump(out, kv.value());
      }
      out.push_back('}');
      break;
    }
  }
}

std::string render_tools(const json::array& tools) {
  std::string out(kToolsHead);
  bool first = true;
  for (const auto& t : tools) {
    const json::value* fn = t.is_object() ? get(t.get_object(), "function") : nullptr;
    if (!fn) fail("each tool needs a \"function\" object");
    if (!first) out += "\n";
    first = false;
    out += python_json_dumps(*fn);
  }
  out += kToolsTail;
  return out;
}

// encode_arguments_to_dsml: one <｜DSML｜parameter> line per argument.
std::string encode_arguments(const json::value* arguments) {
  json::object args;
  bool parsed = false;
  if (arguments && arguments->is_string()) {
    json::value v;
    try {
      v = parse_json_exact(arguments->get_string());
      parsed = true;
    } catch (const std::invalid_argument&) {
    }
    if (parsed) {
      if (!v.is_object()) fail("tool call arguments must be a JSON object");
      args = std::move(v.get_object());
    }
  }
  if (!parsed) args["arguments"] = arguments ? *arguments : json::value(nullptr);
  std::string out;
  bool first = true;
  for (const auto& kv : args) {
    if (!first) out += "\n";
    first = false;
    bool is_str = kv.value().is_string();
    out += "<｜DSML｜parameter name=\"";
    out += kv.key();
    out += "\" string=\"";
    out += is_str ? "true" : "false";
    out += "\">";
    out += is_str ? std::string(kv.value().get_string()) : python_json_dumps(kv.value());
    out += "</｜DSML｜parameter>";
  }
  return out;
}

std::string render_tool_calls(const json::array& tool_calls) {
  std::string calls;
  bool first = true;
  for (const auto& tc : tool_calls) {
    const json::value* fn = tc.is_object() ? get(tc.get_object(), "function") : nullptr;
    if (!fn || !fn->is_object()) fail("each tool call needs a \"function\" object");
    const json::object& f = fn->get_object();
    if (!get(f, "name") || !get(f, "arguments")) fail("tool call function needs name and arguments");
    if (!first) calls += "\n";
    first = false;
    calls += "<｜DSML｜invoke name=\"" + python_str(get(f, "name"), "tool call name") + "\">\n";
    calls += encode_arguments(get(f, "arguments"));
    calls += "\n</｜DSML｜invoke>";
  }
  return "\n\n<｜DSML｜tool_calls>\n" + calls + "\n</｜DSML｜tool_calls>";
}

int find_last_user_index(const std::vector<json::object>& messages) {
  for (int i = int(messages.size()) - 1; i >= 0; --i) {
    std::string r = role_of(messages[i]);
    if (r == "user" || r == "developer") return i;
  }
  return -1;
}

std::string render_user_blocks(const json::array& blocks) {
  std::string out;
  bool first = true;
  for (const auto& b : blocks) {
    if (!first) out += "\n\n";
    first = false;
    if (!b.is_object()) fail("content blocks must be objects");
    const json::object& block = b.get_object();
    const json::value* t = get(block, "type");
    std::string type = t && t->is_string() ? std::string(t->get_string()) : "None";
    if (type == "text") {
      const json::value* text = get(block, "text");
      out += text ? python_str(text, "user content") : "";
    } else if (type == "tool_result") {
      const json::value* c = get(block, "content");
      std::string content;
      if (!c) {
        content = "";
      } else if (c->is_array()) {
        bool first_part = true;
        for (const auto& part : c->get_array()) {
          if (!first_part) content += "\n\n";
          first_part = false;
          const json::object* po = part.is_object() ? &part.get_object() : nullptr;
          const json::value* pt = po ? get(*po, "type") : nullptr;
          std::string part_type = pt && pt->is_string() ? std::string(pt->get_string()) : "None";
          if (part_type == "text") {
            const json::value* text = get(*po, "text");
            content += text ? python_str(text, "tool content text") : "";
          } else {
            content += "[Unsupported " + part_type + "]";
          }
        }
      } else {
        content = python_str(c, "tool content");
      }
      out += "<tool_result>" + content + "</tool_result>";
    } else {
      out += "[Unsupported " + type + "]";
    }
  }
  return out;
}

std::string render_message(size_t index, const std::vector<json::object>& messages, ThinkingMode mode,
                           bool drop_thinking, const std::optional<std::string>& effort) {
  const json::object& msg = messages[index];
  const int last_user = find_last_user_index(messages);
  const bool thinking = mode == ThinkingMode::thinking;
  const std::string role = role_of(msg);
  const json::value* content = get(msg, "content");
  const json::value* tools = get(msg, "tools");
  const json::value* response_format = get(msg, "response_format");
  const json::value* tool_calls = get(msg, "tool_calls");
  std::string prompt;

  if (index == 0 && thinking && effort && *effort == "max") prompt += kReasoningEffortMax;

  auto tools_and_format = [&](std::string& out) {
    if (truthy(tools)) {
      if (!tools->is_array()) fail("tools must be an array");
      out += "\n\n" + render_tools(tools->get_array());
    }
    if (truthy(response_format)) out += "\n\n" + std::string(kResponseFormatHead) + python_json_dumps(*response_format);
  };

  if (role == "system") {
    prompt += text_or_empty(content, "system content");
    tools_and_format(prompt);
  } else if (role == "developer") {
    if (!truthy(content)) fail("a developer message needs content");
    prompt += tokens::user + text_or_empty(content, "developer content");
    tools_and_format(prompt);
  } else if (role == "user") {
    prompt += tokens::user;
    const json::value* blocks = get(msg, "content_blocks");
    if (truthy(blocks)) {
      if (!blocks->is_array()) fail("content_blocks must be an array");
      prompt += render_user_blocks(blocks->get_array());
    }
    else
      prompt += text_or_empty(content, "user content");
  } else if (role == "latest_reminder") {
    prompt += tokens::latest_reminder + python_str(content, "latest_reminder content");
  } else if (role == "assistant") {
    std::string tc_text;
    if (truthy(tool_calls)) {
      if (!tool_calls->is_array()) fail("tool_calls must be an array");
      tc_text = render_tool_calls(tool_calls->get_array());
    }
    std::string reasoning;
    const bool prev_has_task = index >= 1 && get(messages[index - 1], "task") &&
                               !get(messages[index - 1], "task")->is_null();
    if (thinking && !prev_has_task && (!drop_thinking || int(index) > last_user))
      reasoning = text_or_empty(get(msg, "reasoning_content"), "reasoning_content") + tokens::think_end;
    prompt += reasoning + text_or_empty(content, "assistant content") + tc_text;
    if (!truthy(get(msg, "wo_eos"))) prompt += tokens::eos;
  } else if (role == "tool") {
    fail("tool messages must be merged into user messages first");
  } else {
    fail("unknown role '" + role + "'");
  }

  // Transition: only before an assistant / latest_reminder message or at the end.
  if (index + 1 < messages.size()) {
    std::string next_role = role_of(messages[index + 1]);
    if (next_role != "assistant" && next_role != "latest_reminder") return prompt;
  }
  const json::value* task = get(msg, "task");
  if (task && !task->is_null()) {
    auto it = task->is_string() ? kTaskTokens.find(std::string_view(task->get_string())) : kTaskTokens.end();
    if (it == kTaskTokens.end()) fail("invalid task");
    if (it->first != "action") {
      prompt += it->second;
    } else {
      prompt += tokens::assistant;
      prompt += thinking ? tokens::think_start : tokens::think_end;
      prompt += it->second;
    }
  } else if (role == "user" || role == "developer") {
    prompt += tokens::assistant;
    if (thinking && (!drop_thinking || int(index) >= last_user))
      prompt += tokens::think_start;
    else
      prompt += tokens::think_end;
  }
  return prompt;
}

std::vector<json::object> merge_tool_messages(const json::array& messages) {
  std::vector<json::object> merged;
  for (const auto& v : messages) {
    if (!v.is_object()) fail("each message must be an object");
    const json::object& msg = v.get_object();
    const std::string role = role_of(msg);
    auto last_is_user_with_blocks = [&] {
      return !merged.empty() && role_of(merged.back()) == "user" && merged.back().contains("content_blocks");
    };
    if (role == "tool") {
      json::object block;
      block["type"] = "tool_result";
      const json::value* id = get(msg, "tool_call_id");
      block["tool_use_id"] = id ? *id : json::value("");
      const json::value* c = get(msg, "content");
      block["content"] = c ? *c : json::value("");
      if (last_is_user_with_blocks()) {
        merged.back()["content_blocks"].get_array().push_back(std::move(block));
      } else {
        json::object user;
        user["role"] = "user";
        user["content_blocks"] = json::array{std::move(block)};
        merged.push_back(std::move(user));
      }
    } else if (role == "user") {
      const json::value* c = get(msg, "content");
      json::value content = c ? *c : json::value("");
      json::object text_block;
      text_block["type"] = "text";
      text_block["text"] = content;
      const json::value* prev_task = merged.empty() ? nullptr : get(merged.back(), "task");
      if (last_is_user_with_blocks() && (!prev_task || prev_task->is_null())) {
        merged.back()["content_blocks"].get_array().push_back(std::move(text_block));
      } else {
        json::object user;
        user["role"] = "user";
        user["content"] = content;
        user["content_blocks"] = json::array{std::move(text_block)};
        for (const char* key : {"task", "wo_eos", "mask"})
          if (const json::value* x = get(msg, key)) user[key] = *x;
        merged.push_back(std::move(user));
      }
    } else {
      merged.push_back(msg);
    }
  }
  return merged;
}

void sort_tool_results_by_call_order(std::vector<json::object>& messages) {
  std::map<std::string, int> order;
  for (auto& msg : messages) {
    const std::string role = role_of(msg);
    if (role == "assistant" && truthy(get(msg, "tool_calls")) && get(msg, "tool_calls")->is_array()) {
      order.clear();
      int idx = 0;
      for (const auto& tc : get(msg, "tool_calls")->get_array()) {
        std::string id;
        if (tc.is_object()) {
          const json::object& o = tc.get_object();
          const json::value* v = get(o, "id");
          if (truthy(v) && v->is_string()) {
            id = v->get_string();
          } else if (const json::value* fn = get(o, "function"); fn && fn->is_object()) {
            const json::value* fid = get(fn->get_object(), "id");
            if (fid && fid->is_string()) id = fid->get_string();
          }
        }
        if (!id.empty()) order[id] = idx;
        ++idx;
      }
    } else if (role == "user" && truthy(get(msg, "content_blocks")) && get(msg, "content_blocks")->is_array()) {
      json::array& blocks = msg["content_blocks"].get_array();
      std::vector<json::value> tool_blocks;
      auto is_tool = [](const json::value& b) {
        const json::value* t = b.is_object() ? get(b.get_object(), "type") : nullptr;
        return t && t->is_string() && t->get_string() == "tool_result";
      };
      for (const auto& b : blocks)
        if (is_tool(b)) tool_blocks.push_back(b);
      if (tool_blocks.size() > 1 && !order.empty()) {
        auto key = [&](const json::value& b) {
          const json::value* id = get(b.get_object(), "tool_use_id");
          if (!id || !id->is_string()) return 0;
          auto it = order.find(std::string(id->get_string()));
          return it == order.end() ? 0 : it->second;
        };
        std::stable_sort(tool_blocks.begin(), tool_blocks.end(),
                         [&](const json::value& a, const json::value& b) { return key(a) < key(b); });
        size_t next = 0;
        for (auto& b : blocks)
          if (is_tool(b)) b = tool_blocks[next++];
      }
    }
  }
}

std::vector<json::object> drop_thinking_messages(const std::vector<json::object>& messages) {
  const int last_user = find_last_user_index(messages);
  std::vector<json::object> result;
  for (size_t i = 0; i < messages.size(); ++i) {
    const std::string role = role_of(messages[i]);
    if (role == "user" || role == "system" || role == "tool" || role == "latest_reminder" ||
        role == "direct_search_results" || int(i) >= last_user) {
      result.push_back(messages[i]);
    } else if (role == "assistant") {
      json::object m = messages[i];
      m.erase("reasoning_content");
      result.push_back(std::move(m));
    }
  }
  return result;
}

// A strict JSON reader with Python's json.loads semantics where they matter for re-serialising:
// doubles correctly rounded (std::from_chars), NaN/Infinity accepted, duplicate keys keep their
// first position and last value.
class ExactJsonReader {
 public:
  explicit ExactJsonReader(std::string_view text) : s_(text) {}
  json::value read() {
    json::value v = value(0);
    skip_ws();
    if (i_ != s_.size()) throw std::invalid_argument("trailing characters");
    return v;
  }

 private:
  std::string_view s_;
  size_t i_ = 0;

  [[noreturn]] void bad(const char* what) { throw std::invalid_argument(std::string("invalid JSON: ") + what); }
  void skip_ws() {
    while (i_ < s_.size() && (s_[i_] == ' ' || s_[i_] == '\t' || s_[i_] == '\n' || s_[i_] == '\r')) ++i_;
  }
  bool eat(std::string_view word) {
    if (s_.substr(i_, word.size()) != word) return false;
    i_ += word.size();
    return true;
  }
  json::value value(int depth) {
    if (depth > 256) bad("nested too deeply");
    skip_ws();
    if (i_ >= s_.size()) bad("unexpected end");
    char c = s_[i_];
    if (c == '{') {
      ++i_;
      json::object o;
      skip_ws();
      if (eat("}")) return o;
      for (;;) {
        skip_ws();
        if (i_ >= s_.size() || s_[i_] != '"') bad("expected a key");
        std::string key = string();
        skip_ws();
        if (!eat(":")) bad("expected ':'");
        o[key] = value(depth + 1);
        skip_ws();
        if (eat("}")) return o;
        if (!eat(",")) bad("expected ',' or '}'");
      }
    }
    if (c == '[') {
      ++i_;
      json::array a;
      skip_ws();
      if (eat("]")) return a;
      for (;;) {
        a.push_back(value(depth + 1));
        skip_ws();
        if (eat("]")) return a;
        if (!eat(",")) bad("expected ',' or ']'");
      }
    }
    if (c == '"') return json::value(json::string(string()));
    if (eat("true")) return true;
    if (eat("false")) return false;
    if (eat("null")) return nullptr;
    if (eat("NaN")) return std::numeric_limits<double>::quiet_NaN();
    if (eat("Infinity")) return std::numeric_limits<double>::infinity();
    if (eat("-Infinity")) return -std::numeric_limits<double>::infinity();
    return number();
  }
  json::value number() {
    size_t start = i_;
    if (i_ < s_.size() && s_[i_] == '-') ++i_;
    if (i_ >= s_.size() || !std::isdigit((unsigned char)s_[i_])) bad("bad number");
    if (s_[i_] == '0') ++i_;
    else while (i_ < s_.size() && std::isdigit((unsigned char)s_[i_])) ++i_;
    bool is_float = false;
    if (i_ < s_.size() && s_[i_] == '.') {
      is_float = true;
      ++i_;
      if (i_ >= s_.size() || !std::isdigit((unsigned char)s_[i_])) bad("bad fraction");
      while (i_ < s_.size() && std::isdigit((unsigned char)s_[i_])) ++i_;
    }
    if (i_ < s_.size() && (s_[i_] == 'e' || s_[i_] == 'E')) {
      is_float = true;
      ++i_;
      if (i_ < s_.size() && (s_[i_] == '+' || s_[i_] == '-')) ++i_;
      if (i_ >= s_.size() || !std::isdigit((unsigned char)s_[i_])) bad("bad exponent");
      while (i_ < s_.size() && std::isdigit((unsigned char)s_[i_])) ++i_;
    }
    const char* b = s_.data() + start;
    const char* e = s_.data() + i_;
    if (!is_float) {
      int64_t v;
      if (auto r = std::from_chars(b, e, v); r.ec == std::errc() && r.ptr == e) return v;
      uint64_t u;
      if (auto r = std::from_chars(b, e, u); r.ec == std::errc() && r.ptr == e) return u;
    }
    double d;
    auto r = std::from_chars(b, e, d);
    if (r.ec == std::errc::result_out_of_range) {
      d = std::strtod(std::string(b, e).c_str(), nullptr);  // inf or 0 with the right sign, as Python
    } else if (r.ec != std::errc() || r.ptr != e) {
      bad("bad number");
    }
    return d;
  }
  unsigned hex4() {
    if (i_ + 4 > s_.size()) bad("short \\u escape");
    unsigned v = 0;
    for (int k = 0; k < 4; ++k) {
      char c = s_[i_++];
      v <<= 4;
      if (c >= '0' && c <= '9') v |= unsigned(c - '0');
      else if (c >= 'a' && c <= 'f') v |= unsigned(c - 'a' + 10);
      else if (c >= 'A' && c <= 'F') v |= unsigned(c - 'A' + 10);
      else bad("bad \\u escape");
    }
    return v;
  }
  static void put_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
      out.push_back(char(cp));
    } else if (cp < 0x800) {
      out.push_back(char(0xC0 | (cp >> 6)));
      out.push_back(char(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
      out.push_back(char(0xE0 | (cp >> 12)));
      out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(char(0x80 | (cp & 0x3F)));
    } else {
      out.push_back(char(0xF0 | (cp >> 18)));
      out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
      out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
      out.push_back(char(0x80 | (cp & 0x3F)));
    }
  }
  std::string string() {
    ++i_;  // opening quote
    std::string out;
    for (;;) {
      if (i_ >= s_.size()) bad("unterminated string");
      char c = s_[i_++];
      if (c == '"') return out;
      if ((unsigned char)c < 0x20) bad("control character in string");
      if (c != '\\') {
        out.push_back(c);
        continue;
      }
      if (i_ >= s_.size()) bad("unterminated escape");
      char e = s_[i_++];
      switch (e) {
        case '"': out.push_back('"'); break;
        case '\\': out.push_back('\\'); break;
        case '/': out.push_back('/'); break;
        case 'b': out.push_back('\b'); break;
        case 'f': out.push_back('\f'); break;
        case 'n': out.push_back('\n'); break;
        case 'r': out.push_back('\r'); break;
        case 't': out.push_back('\t'); break;
        case 'u': {
          uint32_t cp = hex4();
          if (cp >= 0xD800 && cp <= 0xDBFF && s_.substr(i_, 2) == "\\u") {
            size_t save = i_;
            i_ += 2;
            uint32_t lo = hex4();
            if (lo >= 0xDC00 && lo <= 0xDFFF) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
            else i_ = save;
          }
          if (cp >= 0xD800 && cp <= 0xDFFF) cp = 0xFFFD;  // a lone surrogate cannot be UTF-8
          put_utf8(out, cp);
          break;
        }
        default: bad("bad escape");
      }
    }
  }
};

}  // namespace

json::value parse_json_exact(std::string_view text) { return ExactJsonReader(text).read(); }

std::string python_json_dumps(const json::value& value) {
  std::string out;
  dump(out, value);
  return out;
}

std::string encode_messages(const json::array& messages_in, const ChatEncodeOptions& options,
                            const json::array& context_in) {
  if (options.reasoning_effort && *options.reasoning_effort != "max" && *options.reasoning_effort != "high")
    fail("reasoning_effort must be \"high\" or \"max\"");
  // messages = sort(context + merge(messages))[len(context):] ; context = sort(merge(context)).
  std::vector<json::object> messages = merge_tool_messages(messages_in);
  {
    std::vector<json::object> joined;
    for (const auto& c : context_in) {
      if (!c.is_object()) fail("each context message must be an object");
      joined.push_back(c.get_object());
    }
    joined.insert(joined.end(), messages.begin(), messages.end());
    sort_tool_results_by_call_order(joined);
    messages.assign(joined.begin() + std::ptrdiff_t(context_in.size()), joined.end());
  }
  std::vector<json::object> context;
  if (!context_in.empty()) {
    context = merge_tool_messages(context_in);
    sort_tool_results_by_call_order(context);
  }
  std::vector<json::object> full = context;
  full.insert(full.end(), messages.begin(), messages.end());

  std::string prompt = options.add_default_bos_token && context_in.empty() ? tokens::bos : "";

  bool drop = options.drop_thinking;
  for (const auto& m : full)
    if (truthy(get(m, "tools"))) drop = false;

  size_t to_render = messages.size(), context_len = context.size();
  if (options.mode == ThinkingMode::thinking && drop) {
    full = drop_thinking_messages(full);
    to_render = full.size() - drop_thinking_messages(context).size();
    context_len = full.size() - to_render;
  }
  for (size_t i = 0; i < to_render; ++i)
    prompt += render_message(i + context_len, full, options.mode, drop, options.reasoning_effort);
  return prompt;
}

json::array attach_request_fields(json::array messages, const json::array* tools,
                                  const json::value* response_format) {
  const bool has_tools = tools && !tools->empty();
  const bool has_format = response_format && truthy(response_format);
  if (!has_tools && !has_format) return messages;
  if (messages.empty() || !messages[0].is_object() || role_of(messages[0].get_object()) != "system") {
    json::object system;
    system["role"] = "system";
    system["content"] = "";
    messages.insert(messages.begin(), json::value(std::move(system)));
  }
  json::object& first = messages[0].get_object();
  if (has_tools) first["tools"] = *tools;
  if (has_format) first["response_format"] = *response_format;
  return messages;
}

std::vector<int32_t> encode_prompt_tokens(const Tokenizer& tokenizer, const std::string& prompt) {
  return tokenizer.encode(prompt, /*allow_special=*/true);
}

}  // namespace v4::text
