#include "grammar/json_schema.h"

#include <gtest/gtest.h>

#include <boost/json.hpp>

#include "grammar/matcher.h"

namespace v4::grammar {
namespace {

namespace json = boost::json;

std::shared_ptr<const Grammar> compile(std::string_view schema) {
  return std::make_shared<const Grammar>(json_schema_grammar(json::parse(schema)));
}

bool matches(const std::shared_ptr<const Grammar>& g, std::string_view text) {
  Matcher m(g);
  return m.advance(text) && m.accepting();
}

// Where the compiler refuses a schema, or "(accepted)".
std::string path_of(std::string_view schema) {
  try {
    json_schema_grammar(json::parse(schema));
  } catch (const SchemaError& e) {
    return e.path;
  }
  return "(accepted)";
}

TEST(JsonSchemaGrammar, ObjectWithRequiredAndOptionalPropertiesInSchemaOrder) {
  auto g = compile(R"({"type":"object","properties":{"a":{"type":"integer"},"b":{"type":"string"},
                       "c":{"type":"boolean"}},"required":["a","c"]})");
  EXPECT_TRUE(matches(g, R"({"a":1,"c":true})"));
  EXPECT_TRUE(matches(g, R"({"a":-20,"b":"x","c":false})"));
  EXPECT_FALSE(matches(g, R"({"a":1})")) << "c is required";
  EXPECT_FALSE(matches(g, R"({"c":true,"a":1})")) << "schema order";
  EXPECT_FALSE(matches(g, R"({"a":1,"c":true,"d":1})")) << "no other keys";
  EXPECT_FALSE(matches(g, R"({"a":1.5,"c":true})")) << "integer";
  EXPECT_TRUE(matches(g, R"({"a": 1, "c": true})")) << "json.dumps' spaces";
  EXPECT_FALSE(matches(g, R"({ "a":1,"c":true})")) << "no other whitespace";
  EXPECT_FALSE(matches(g, R"({"a":  1,"c":true})")) << "one space at most";
}

TEST(JsonSchemaGrammar, Numbers) {
  auto g = compile(R"({"type":"number"})");
  for (const char* ok : {"0", "-0", "12", "-3.25", "1e5", "2.5E-3", "9.0e+10", "123456789012345", "1e99"})
    EXPECT_TRUE(matches(g, ok)) << ok;
  for (const char* bad : {"01", "1.", ".5", "+1", "1e", "-", "1234567890123456", "1e123", "NaN"})
    EXPECT_FALSE(matches(g, bad)) << bad;
  auto i = compile(R"({"type":"integer"})");
  EXPECT_TRUE(matches(i, "-42"));
  EXPECT_FALSE(matches(i, "4.2"));
  EXPECT_FALSE(matches(i, "4e2"));
}

TEST(JsonSchemaGrammar, StringsEscapesUtf8AndLengthInCharacters) {
  auto g = compile(R"({"type":"string","minLength":1,"maxLength":3})");
  EXPECT_TRUE(matches(g, R"("abc")"));
  EXPECT_TRUE(matches(g, "\"\xC3\xA9\xE4\xB8\xAD\xF0\x9F\x98\x80\""));  // é 中 😀: three characters
  EXPECT_TRUE(matches(g, R"("\n\u00e9\"")"));
  EXPECT_FALSE(matches(g, R"("")")) << "minLength";
  EXPECT_FALSE(matches(g, R"("abcd")")) << "maxLength";
  EXPECT_FALSE(matches(g, R"("\x")")) << "bad escape";
  EXPECT_FALSE(matches(g, R"("\u12G4")")) << "bad hex";
  EXPECT_FALSE(matches(g, "\"a\nb\"")) << "raw control byte";
  EXPECT_FALSE(matches(g, "\"\xC0\xAF\"")) << "overlong";
  EXPECT_FALSE(matches(g, "\"\xED\xA0\x80\"")) << "surrogate";
  EXPECT_FALSE(matches(g, "\"\xE4\xB8\"")) << "cut character";
}

TEST(JsonSchemaGrammar, EnumConstAnyOfNullableAndTypeLists) {
  auto e = compile(R"({"enum":["red",2,null,{"k":[1]}]})");
  for (const char* ok : {R"("red")", "2", "null", R"({"k":[1]})"}) EXPECT_TRUE(matches(e, ok)) << ok;
  EXPECT_FALSE(matches(e, R"("blue")"));
  auto c = compile(R"({"const":"x"})");
  EXPECT_TRUE(matches(c, R"("x")"));
  EXPECT_FALSE(matches(c, R"("y")"));
  auto a = compile(R"({"anyOf":[{"type":"integer"},{"type":"array","items":{"type":"boolean"},"maxItems":2}]})");
  EXPECT_TRUE(matches(a, "7"));
  EXPECT_TRUE(matches(a, "[true,false]"));
  EXPECT_FALSE(matches(a, "[true,false,true]"));
  auto n = compile(R"({"type":"string","nullable":true})");
  EXPECT_TRUE(matches(n, "null"));
  auto t = compile(R"({"type":["boolean","null"]})");
  EXPECT_TRUE(matches(t, "false"));
  EXPECT_TRUE(matches(t, "null"));
  EXPECT_FALSE(matches(t, "0"));
}

TEST(JsonSchemaGrammar, ArraysHonourMinAndMaxItems) {
  auto g = compile(R"({"type":"array","items":{"type":"integer"},"minItems":2,"maxItems":3})");
  EXPECT_FALSE(matches(g, "[]"));
  EXPECT_FALSE(matches(g, "[1]"));
  EXPECT_TRUE(matches(g, "[1,2]"));
  EXPECT_TRUE(matches(g, "[1,2,3]"));
  EXPECT_FALSE(matches(g, "[1,2,3,4]"));
  auto any = compile(R"({"type":"array"})");
  EXPECT_TRUE(matches(any, "[]"));
  EXPECT_TRUE(matches(any, R"([1,"a",[],{"b":null}])"));
}

TEST(JsonSchemaGrammar, RecursiveDefinitions) {
  auto g = compile(R"({"$defs":{"t":{"type":"object","properties":{"v":{"type":"integer"},
      "c":{"type":"array","items":{"$ref":"#/$defs/t"}}},"required":["v","c"]}},"$ref":"#/$defs/t"})");
  EXPECT_TRUE(matches(g, R"({"v":1,"c":[{"v":2,"c":[]},{"v":3,"c":[{"v":4,"c":[]}]}]})"));
  EXPECT_FALSE(matches(g, R"({"v":1,"c":[{"v":2}]})"));
}

TEST(JsonSchemaGrammar, JsonModeIsAnyObject) {
  auto g = std::make_shared<const Grammar>(json_object_grammar());
  EXPECT_TRUE(matches(g, R"({})"));
  EXPECT_TRUE(matches(g, R"({"a":[1,{"b":null}],"c":"d"})"));
  EXPECT_FALSE(matches(g, "[1]"));
  EXPECT_FALSE(matches(g, R"({"a":1} )"));
}

TEST(JsonSchemaGrammar, UnsupportedKeywordsAreRefusedWithTheirPath) {
  EXPECT_EQ(path_of(R"({"type":"object","properties":{"a":{"type":"string","pattern":"^x"}}})"), "/properties/a/pattern");
  EXPECT_EQ(path_of(R"({"type":"integer","minimum":0})"), "/minimum");
  EXPECT_EQ(path_of(R"({"type":"string","format":"date-time"})"), "/format");
  EXPECT_EQ(path_of(R"({"oneOf":[{"type":"string"}]})"), "/oneOf");
  EXPECT_EQ(path_of(R"({"type":"object","required":["x"]})"), "/required");
  EXPECT_EQ(path_of(R"({"type":"array","maxItems":100000})"), "/maxItems");
  EXPECT_EQ(path_of(R"({"$ref":"#/$defs/missing"})"), "/$ref");
  EXPECT_EQ(path_of(R"({"type":"tuple"})"), "/type");
  EXPECT_EQ(path_of(R"({"type":"string","description":"annotations are fine","title":"t"})"), "(accepted)");
}

// zod's int() bounds every integer by JavaScript's safe range: bounds the grammar's 15-digit
// integers meet anyway are accepted (on integers only: a number may be larger), narrower refused.
TEST(JsonSchemaGrammar, IntegerBoundsThatHoldAnywayAreAccepted) {
  const char* zod = R"({"type":"integer","minimum":-9007199254740991,"maximum":9007199254740991})";
  EXPECT_EQ(path_of(zod), "(accepted)");
  EXPECT_EQ(path_of(R"({"type":["integer","null"],"minimum":-1e15,"maximum":1e300})"), "(accepted)");
  EXPECT_EQ(path_of(R"({"type":"integer","minimum":-999999999999999,"maximum":999999999999999})"), "(accepted)");
  EXPECT_EQ(path_of(R"({"type":"integer","maximum":999999999999998})"), "/maximum");
  EXPECT_EQ(path_of(R"({"type":"integer","minimum":-999999999999998})"), "/minimum");
  EXPECT_EQ(path_of(R"({"type":"integer","minimum":1,"maximum":9007199254740991})"), "/minimum");
  EXPECT_EQ(path_of(R"({"type":"number","minimum":-9007199254740991})"), "/minimum");
  EXPECT_EQ(path_of(R"({"type":["integer","number"],"maximum":9007199254740991})"), "/maximum");
  EXPECT_EQ(path_of(R"({"minimum":-9007199254740991})"), "/minimum");
  EXPECT_EQ(path_of(R"({"type":"integer","minimum":"-9007199254740991"})"), "/minimum");
  EXPECT_EQ(path_of(R"({"type":"integer","exclusiveMinimum":-9007199254740991})"), "/exclusiveMinimum");
  auto g = std::make_shared<const Grammar>(json_schema_grammar(json::parse(zod)));
  EXPECT_TRUE(matches(g, "-999999999999999"));
  EXPECT_TRUE(matches(g, "42"));
  EXPECT_FALSE(matches(g, "1000000000000000"));  // 16 digits: beyond the grammar, as before
}

}  // namespace
}  // namespace v4::grammar
