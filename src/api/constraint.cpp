#include "api/constraint.h"

#include <algorithm>

#include <spdlog/spdlog.h>

#include "grammar/json_schema.h"
#include "grammar/matcher.h"
#include "grammar/tool_calls.h"
#include "text/tokenizer.h"

namespace v4::api {

namespace json = boost::json;

namespace {

// Where the dialect's request carries the schema, for error messages.
std::string format_param(Dialect d) {
  switch (d) {
    case Dialect::chat: return "response_format.json_schema.schema";
    case Dialect::responses: return "text.format.schema";
    case Dialect::anthropic: return "output_config.format.schema";
  }
  return "response_format";
}

std::string tool_param(Dialect d, size_t i) {
  const std::string at = "tools[" + std::to_string(i) + "]";
  switch (d) {
    case Dialect::chat: return at + ".function.parameters";
    case Dialect::responses: return at + ".parameters";
    case Dialect::anthropic: return at + ".input_schema";
  }
  return at;
}

// Whether a tool's parameters schema is within the subset the grammar can enforce.
bool supported(const json::value& schema) {
  try {
    grammar::tool_calls_grammar({{"probe", schema}}, true);
    return true;
  } catch (const grammar::SchemaError&) {
    return false;
  }
}

// The request's function tools (all, or the one named `only`), with their places in req.tools.
// With `strict_only`, tools not declared strict keep any arguments (their schema is not applied).
std::vector<grammar::ToolSpec> tool_specs(const Request& req, const std::string& only, std::vector<size_t>& places,
                                          bool strict_only = false) {
  std::vector<grammar::ToolSpec> out;
  for (size_t k = 0; k < req.tools.size(); ++k) {
    const json::value& t = req.tools[k];
    const json::value* fn = t.is_object() ? t.as_object().if_contains("function") : nullptr;
    if (!fn || !fn->is_object()) continue;
    const json::value* name = fn->as_object().if_contains("name");
    if (!name || !name->is_string()) continue;
    if (!only.empty() && name->as_string() != only) continue;
    grammar::ToolSpec spec{std::string(name->as_string()), json::value(nullptr)};
    const bool strict = std::find(req.strict_tools.begin(), req.strict_tools.end(), spec.name) != req.strict_tools.end();
    const json::value* p = fn->as_object().if_contains("parameters");
    // A strict tool's schema must be one we can enforce (else 400); another tool's is applied when
    // it can be (forced calls), else its arguments are free, as without constrained decoding.
    if (p && (strict || (!strict_only && supported(*p)))) spec.parameters = *p;
    out.push_back(std::move(spec));
    places.push_back(k);
  }
  return out;
}

enum class Calls { forced, after_text, or_format };

// The tool-call rule for the request's tools; a schema error names the tool's field in the request.
uint32_t tool_rule(grammar::GrammarBuilder& b, const Request& req, const std::string& only, bool single,
                   Calls calls = Calls::forced) {
  std::vector<size_t> places;
  const auto specs = tool_specs(req, only, places, calls != Calls::forced);
  try {
    return calls == Calls::forced ? grammar::tool_calls_rule(b, specs, single)
                                  : grammar::text_then_tool_calls_rule(b, specs, single);
  } catch (const grammar::SchemaError& e) {
    // e.path is "/tools/N/parameters..." with N counted among `specs`
    size_t place = 0;
    std::string rest;
    const size_t slash = e.path.find('/', 7), after = e.path.find('/', slash == std::string::npos ? 7 : slash + 1);
    if (e.path.rfind("/tools/", 0) == 0 && slash != std::string::npos) {
      place = places.at(std::stoul(e.path.substr(7, slash - 7)));
      rest = after == std::string::npos ? "" : e.path.substr(after);
    }
    throw bad_request(tool_param(req.dialect, place) + rest, std::string("tool schema not supported: ") + e.what());
  }
}

}  // namespace

std::shared_ptr<const grammar::Grammar> output_grammar(const Request& req) {
  const bool tools = !req.tools.empty() && req.tool_choice.offers_tools();
  const bool forced = tools && req.tool_choice.forced();
  const bool format = req.output_format.kind != OutputFormat::Kind::text;
  const bool strict = tools && !req.strict_tools.empty();
  if (!forced && !format && !strict) return nullptr;
  grammar::GrammarBuilder b;
  uint32_t root;
  if (forced) {
    const bool named = req.tool_choice.mode == ToolChoice::Mode::named;
    root = tool_rule(b, req, named ? req.tool_choice.name : "", named || !req.parallel_tool_calls);
  } else if (!format) {
    root = tool_rule(b, req, "", !req.parallel_tool_calls, Calls::after_text);
  } else {
    const bool schema = req.output_format.kind == OutputFormat::Kind::json_schema;
    const json::value any_object = json::object{{"type", "object"}};
    const json::value& s = schema ? req.output_format.schema : any_object;
    grammar::JsonSchemaCompiler c(b, s);
    uint32_t value;
    try {
      value = c.value(s, "");
    } catch (const grammar::SchemaError& e) {
      throw bad_request(format_param(req.dialect) + e.path, std::string("schema not supported: ") + e.what());
    }
    std::vector<grammar::GrammarBuilder::Seq> alts{{grammar::GrammarBuilder::call(value)}};
    if (tools) alts.push_back({grammar::GrammarBuilder::call(tool_rule(b, req, "", !req.parallel_tool_calls, Calls::or_format))});
    root = b.rule(alts);
  }
  return std::make_shared<const grammar::Grammar>(std::move(b).build(root));
}

std::shared_ptr<const grammar::TokenIndex> make_token_index(const text::Tokenizer& tokenizer) {
  const size_t n = tokenizer.vocab_size();
  std::vector<std::string> bytes(n);
  std::vector<char> excluded(n, 0);
  for (size_t t = 0; t < n; ++t) {
    const int32_t id = int32_t(t);
    if (!tokenizer.is_valid(id) || tokenizer.is_added(id)) {
      excluded[t] = 1;
      continue;
    }
    bytes[t] = tokenizer.token_bytes(id);
  }
  return std::make_shared<const grammar::TokenIndex>(bytes, excluded);
}

namespace {

class GrammarConstraint final : public runtime::TokenConstraint {
 public:
  GrammarConstraint(std::shared_ptr<const grammar::Grammar> g, std::shared_ptr<const grammar::TokenIndex> index,
                    int32_t eos)
      : matcher_(std::move(g)), index_(std::move(index)), eos_(eos) {}

  void allowed(std::vector<uint64_t>& bits, size_t vocab) override {
    matcher_.allowed_tokens(*index_, bits);
    bits.resize((vocab + 63) / 64, 0);
    if (matcher_.accepting() && eos_ >= 0 && size_t(eos_) < vocab) grammar::set_bit(bits, eos_);
  }

  void accept(int32_t token) override {
    if (token == eos_) return;
    if (!matcher_.advance(index_->bytes(token)))  // the engine only picks allowed tokens
      spdlog::error("constraint: token {} was not allowed by the grammar", token);
  }

 private:
  grammar::Matcher matcher_;
  std::shared_ptr<const grammar::TokenIndex> index_;
  int32_t eos_;
};

}  // namespace

std::shared_ptr<runtime::TokenConstraint> make_constraint(std::shared_ptr<const grammar::Grammar> grammar,
                                                          std::shared_ptr<const grammar::TokenIndex> index,
                                                          int32_t eos_token) {
  if (!grammar) return nullptr;
  return std::make_shared<GrammarConstraint>(std::move(grammar), std::move(index), eos_token);
}

}  // namespace v4::api
