#pragma once
// JSON Schema -> grammar, for structured output (`json_schema`, JSON mode) and tool arguments.
//
// The text it allows is JSON without whitespace but for one optional space after ':' and ','
// (json.dumps' style), whose every value validates against the schema. Supported keywords (anything else is refused with SchemaError naming it):
//   type (a name or a list), enum, const, anyOf, $ref to "#", "#/$defs/..." or "#/definitions/..."
//   (recursion allowed), nullable (OpenAPI);
//   object: properties, required, additionalProperties (false, true or a schema);
//   array: items, minItems, maxItems (at most kMaxItemsBound);
//   string: minLength, maxLength;
//   integer (a type of integers only): minimum / maximum that every 15-digit integer meets anyway
//   (zod's int() range, ±(2^53 - 1)); narrower bounds are refused;
//   annotations, which change nothing: title, description, default, examples, $schema, $id,
//   $comment, $defs, definitions, deprecated, readOnly, writeOnly.
// Choices the grammar makes for the model: properties appear in the schema's order (required ones
// always, optional ones may be left out); an object with properties gets no other keys; numbers
// have at most 15 integer digits, 15 fraction digits and a 2-digit exponent; strings are bounded by
// maxLength (else kMaxStringChars characters).
#include <cstdint>
#include <map>
#include <stdexcept>
#include <string>

#include <boost/json/value.hpp>

#include "grammar/grammar.h"

namespace v4::grammar {

inline constexpr uint32_t kMaxStringChars = 1u << 20;
inline constexpr uint32_t kMaxItemsBound = 1024;

// An unsupported or malformed schema; `path` is a JSON pointer into the schema ("" for the root).
struct SchemaError : std::invalid_argument {
  SchemaError(std::string where, const std::string& message)
      : std::invalid_argument(message), path(std::move(where)) {}
  std::string path;
};

// Adds the rules for values of a schema to a builder (so other grammars can embed them).
class JsonSchemaCompiler {
 public:
  // `root` is the schema "#" refers to; it must outlive the compiler.
  JsonSchemaCompiler(GrammarBuilder& builder, const boost::json::value& root);

  // The rule matching one value valid under `schema` (found at `path` in the root).
  uint32_t value(const boost::json::value& schema, const std::string& path);
  uint32_t any_value();   // any JSON value
  uint32_t string_any();  // any JSON string

 private:
  uint32_t typed(const boost::json::object& schema, std::string_view type, const std::string& path);
  uint32_t object(const boost::json::object& schema, const std::string& path);
  uint32_t array(const boost::json::object& schema, const std::string& path);
  uint32_t string(const boost::json::object& schema, const std::string& path);
  uint32_t number(bool integer);
  uint32_t reference(const std::string& ref, const std::string& path);
  uint32_t free_object(uint32_t member_value);
  uint32_t list(uint32_t item, uint32_t min, uint32_t max);

  GrammarBuilder& b_;
  const boost::json::value& root_;
  std::map<std::string, uint32_t> refs_;
  uint32_t space();
  int64_t any_ = -1, int_ = -1, num_ = -1, str_ = -1, space_ = -1;
};

// A whole grammar: one value valid under `schema`, nothing before or after.
Grammar json_schema_grammar(const boost::json::value& schema);
// JSON mode: any JSON object.
Grammar json_object_grammar();

// The JSON text of a string (quotes and escapes), as the grammar writes property names.
std::string json_quote(std::string_view text);

}  // namespace v4::grammar
