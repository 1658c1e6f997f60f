#include "grammar/tool_calls.h"

#include <set>

#include <boost/json.hpp>

#include "grammar/json_schema.h"

namespace v4::grammar {

namespace json = boost::json;
using Seq = GrammarBuilder::Seq;

namespace {

constexpr std::string_view kParamOpen = "<｜DSML｜parameter name=\"";
constexpr std::string_view kParamClose = "</｜DSML｜parameter>";
constexpr uint32_t kMaxNameBytes = 256;

class ToolCallsBuilder {
 public:
  ToolCallsBuilder(GrammarBuilder& b, const json::value& schema, const std::string& path)
      : b_(b), schema_(schema), path_(path), json_(b, schema) {}

  // The parameter lines of one invoke, joined by "\n" (may be empty).
  uint32_t parameters() {
    if (schema_.is_null()) return b_.rule({Seq{}});
    if (!schema_.is_object()) throw SchemaError(path_, "a tool's parameters must be a JSON Schema object");
    const json::object& s = schema_.as_object();
    if (const json::value* t = s.if_contains("type"); t && !(t->is_string() && t->as_string() == "object"))
      throw SchemaError(path_ + "/type", "a tool's parameters must be of type object");
    const json::value* props = s.if_contains("properties");
    if (!props || !props->is_object() || props->as_object().empty()) return free_parameters();
    // Compile the schema for its checks (keywords, required names) even though the parameters are
    // laid out here rather than as a JSON object.
    json_.value(schema_, path_);
    std::set<std::string, std::less<>> required;
    if (const json::value* r = s.if_contains("required"); r && r->is_array())
      for (const auto& n : r->as_array())
        if (n.is_string()) required.insert(std::string(n.as_string()));
    std::vector<uint32_t> lines;
    std::vector<bool> needed;
    for (const auto& kv : props->as_object()) {
      lines.push_back(parameter_line(kv.key(), kv.value(), path_ + "/properties/" + std::string(kv.key())));
      needed.push_back(required.count(kv.key()) > 0);
    }
    return b_.ordered(lines, needed, b_.literal("\n"));
  }

 private:
  // <｜DSML｜parameter name="NAME" string="true|false">VALUE</｜DSML｜parameter>
  uint32_t parameter_line(std::string_view name, const json::value& schema, const std::string& path) {
    Seq seq = b_.literal(std::string(kParamOpen) + std::string(name) + "\" string=\"");
    const json::object* s = schema.is_object() ? &schema.as_object() : nullptr;
    const json::value* type = s ? s->if_contains("type") : nullptr;
    const bool plain_string = type && type->is_string() && type->as_string() == "string" && !s->contains("enum") &&
                              !s->contains("const") && !s->contains("minLength");
    if (plain_string) {
      json_.value(schema, path);  // refuses unsupported keywords
      uint32_t max = kMaxStringChars;
      if (const json::value* m = s->if_contains("maxLength"); m && m->is_int64() && m->as_int64() >= 0)
        max = uint32_t(std::min<int64_t>(m->as_int64(), kMaxStringChars));
      b_.literal(seq, "true\">");
      seq.push_back(b_.raw_until(std::string(kParamClose), max));
    } else {
      b_.literal(seq, "false\">");
      seq.push_back(GrammarBuilder::call(json_.value(schema, path)));
      b_.literal(seq, kParamClose);
    }
    return b_.rule({seq});
  }

  // Any names, any values: NAME" string="true">text or NAME" string="false">JSON, one or more.
  uint32_t free_parameters() {
    Seq text = b_.literal("true\">");
    text.push_back(b_.raw_until(std::string(kParamClose), kMaxStringChars));
    Seq value = b_.literal("false\">");
    value.push_back(GrammarBuilder::call(json_.any_value()));
    b_.literal(value, kParamClose);
    Seq line = b_.literal(kParamOpen);
    line.push_back(b_.raw_until("\" string=\"", kMaxNameBytes));
    line.push_back(GrammarBuilder::call(b_.rule({text, value})));
    const uint32_t one = b_.rule({line});
    Seq again = b_.literal("\n");
    again.push_back(GrammarBuilder::call(one));
    return b_.rule({Seq{}, Seq{GrammarBuilder::call(one), GrammarBuilder::call(b_.star(again))}});
  }

  GrammarBuilder& b_;
  const json::value& schema_;
  std::string path_;
  JsonSchemaCompiler json_;
};

}  // namespace

namespace {

// "\n" invoke ("\n" invoke)* "\n</｜DSML｜tool_calls>": the block after its opening tag.
uint32_t block_body(GrammarBuilder& b, const std::vector<ToolSpec>& tools, bool single_call) {
  if (tools.empty()) throw SchemaError("/tools", "a tool call needs at least one tool");
  std::vector<Seq> invokes;
  for (size_t i = 0; i < tools.size(); ++i) {
    ToolCallsBuilder tb(b, tools[i].parameters, "/tools/" + std::to_string(i) + "/parameters");
    const uint32_t params = tb.parameters();
    Seq invoke = b.literal("<｜DSML｜invoke name=\"" + tools[i].name + "\">\n");
    invoke.push_back(GrammarBuilder::call(params));
    b.literal(invoke, "\n</｜DSML｜invoke>");
    invokes.push_back(invoke);
  }
  const uint32_t invoke = b.rule(invokes);
  Seq body = b.literal("\n");
  body.push_back(GrammarBuilder::call(invoke));
  if (!single_call) {
    Seq again = b.literal("\n");
    again.push_back(GrammarBuilder::call(invoke));
    body.push_back(GrammarBuilder::call(b.star(again)));
  }
  b.literal(body, "\n</｜DSML｜tool_calls>");
  return b.rule({body});
}

}  // namespace

uint32_t tool_calls_rule(GrammarBuilder& b, const std::vector<ToolSpec>& tools, bool single_call) {
  Seq block = b.literal(kToolCallsOpen.substr(0, kToolCallsOpen.size() - 1));  // the body starts with "\n"
  block.push_back(GrammarBuilder::call(block_body(b, tools, single_call)));
  return b.rule({block});
}

uint32_t text_then_tool_calls_rule(GrammarBuilder& b, const std::vector<ToolSpec>& tools, bool single_call) {
  const std::string tag = "<｜DSML｜tool_calls>";
  Seq text_only{b.text_without(tag, kMaxStringChars)};
  Seq text_then_block{b.raw_until(tag, kMaxStringChars), GrammarBuilder::call(block_body(b, tools, single_call))};
  return b.rule({text_only, text_then_block});
}

Grammar tool_calls_grammar(const std::vector<ToolSpec>& tools, bool single_call) {
  GrammarBuilder b;
  const uint32_t root = tool_calls_rule(b, tools, single_call);
  return std::move(b).build(root);
}

}  // namespace v4::grammar
