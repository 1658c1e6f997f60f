#pragma once
// Grammars for DeepSeek V4's tool-call block, written exactly as the chat template renders one
// (text/chat_encoder.cpp, render_tool_calls):
//
//   \n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name="NAME">\n
//   <｜DSML｜parameter name="P" string="true">raw text</｜DSML｜parameter>\n
//   <｜DSML｜parameter name="Q" string="false">JSON</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>
//
// Parameters follow the tool's `parameters` schema: string-typed ones are raw text (at most
// maxLength bytes), the others JSON valid under their schema (json_schema.h's subset and choices);
// required ones always, in the schema's order. A tool whose schema lists no properties takes any
// parameter names with any JSON or text values.
#include <string>
#include <vector>

#include <boost/json/value.hpp>

#include "grammar/grammar.h"

namespace v4::grammar {

struct ToolSpec {
  std::string name;
  boost::json::value parameters;  // a JSON Schema of type object, or null for no parameters
};

// The rule of a whole block, added to `b`: one invoke when `single_call`, else one or more. Throws
// SchemaError (json_schema.h) for a schema outside the supported subset, with the path prefixed by
// the tool's index ("/tools/2/parameters/...").
uint32_t tool_calls_rule(GrammarBuilder& b, const std::vector<ToolSpec>& tools, bool single_call);
// Free text (tool_choice auto), then optionally a block: the parser reads a block from its opening
// tag wherever it appears, so the text alone never contains that tag, and a block that follows it
// is valid as above (strict tools).
uint32_t text_then_tool_calls_rule(GrammarBuilder& b, const std::vector<ToolSpec>& tools, bool single_call);
// The block alone (forced tool calls: nothing before it).
Grammar tool_calls_grammar(const std::vector<ToolSpec>& tools, bool single_call);

// The bytes that open a tool-call block (what a completion writes when it starts calling tools).
inline constexpr std::string_view kToolCallsOpen = "\n\n<｜DSML｜tool_calls>\n";

}  // namespace v4::grammar
