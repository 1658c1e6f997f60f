#pragma once
// What a request's output format and tool choice require of its tokens, as a grammar (built once at
// parse time, so a schema outside the supported subset is a 400 naming the field), and the engine
// constraint that runs it for one generation.
//
//   tool_choice required / Anthropic any   -> one tool-call block (one call when parallel tool calls
//                                             are off), arguments valid under each tool's schema
//   tool_choice naming a function / tool   -> exactly one call of that tool
//   tool_choice auto with strict tools      -> any text, then optionally a tool-call block whose strict
//                                             tools' arguments are valid under their schemas
//   json_schema / json_object (text.format, output_config.format)
//                                          -> one JSON value valid under the schema (any object in
//                                             JSON mode), or, when tools may be called, a tool-call block
#include <memory>

#include "api/request.h"
#include "grammar/grammar.h"
#include "grammar/token_index.h"
#include "runtime/token_constraint.h"

namespace v4::text {
class Tokenizer;
}

namespace v4::api {

// nullptr when the request constrains nothing. Throws ApiError 400 for an unsupported schema.
std::shared_ptr<const grammar::Grammar> output_grammar(const Request& req);

// The vocabulary index grammars walk (special and added tokens never allowed).
std::shared_ptr<const grammar::TokenIndex> make_token_index(const text::Tokenizer& tokenizer);

// A fresh constraint for one submission: the grammar from its start, EOS once it is complete.
std::shared_ptr<runtime::TokenConstraint> make_constraint(std::shared_ptr<const grammar::Grammar> grammar,
                                                          std::shared_ptr<const grammar::TokenIndex> index,
                                                          int32_t eos_token);

}  // namespace v4::api
