// Our prepared requests as an upstream's Chat Completions body, its chunks back as our deltas, and
// its refusals as the caller's errors.
#include <gtest/gtest.h>

#include "gateway/chat_translation.h"
#include "harness.h"

using namespace v4;
namespace json = boost::json;

namespace {

api::PreparedRequest prepared(api::Dialect dialect, const std::string& body) {
  static v4::testing::ServerHarness h(v4::testing::create_scripted_engine(v4::testing::gateway_tokenizer()));
  return h.service->prepare(dialect, body);
}

}  // namespace

TEST(UpstreamChatBody, AnAnthropicRequestBecomesTheSameChatRequest) {
  auto p = prepared(api::Dialect::anthropic, R"({"model": "deepseek-v4-flash", "max_tokens": 300,
      "system": "Be brief.", "stop_sequences": ["END"], "temperature": 0.3,
      "thinking": {"type": "enabled", "budget_tokens": 100},
      "tools": [{"name": "get_weather", "description": "Weather", "strict": true,
                 "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}}}],
      "tool_choice": {"type": "any"},
      "messages": [{"role": "user", "content": "Weather in Paris?"}]})");
  json::object b = gateway::upstream_chat_body(p, "upstream-name", json::object{{"top_k", 5}});
  EXPECT_EQ(b.at("model"), "upstream-name");
  EXPECT_EQ(b.at("stream"), true);
  EXPECT_EQ(b.at("stream_options").at("include_usage"), true);
  EXPECT_EQ(b.at("max_tokens"), 300);
  EXPECT_EQ(b.at("temperature"), 0.3);
  EXPECT_EQ(b.at("stop"), (json::array{"END"}));
  EXPECT_EQ(b.at("chat_template_kwargs").at("thinking"), true);
  EXPECT_EQ(b.at("thinking_budget"), 100);
  auto& msgs = b.at("messages").as_array();
  ASSERT_EQ(msgs.size(), 2u);
  EXPECT_EQ(msgs[0].at("role"), "system");
  EXPECT_EQ(msgs[0].at("content"), "Be brief.");
  EXPECT_EQ(msgs[1].at("content"), "Weather in Paris?");
  auto& fn = b.at("tools").at(0).at("function");
  EXPECT_EQ(fn.at("name"), "get_weather");
  EXPECT_EQ(fn.at("strict"), true);
  EXPECT_EQ(b.at("tool_choice"), "required");
  EXPECT_EQ(b.at("top_k"), 5);  // the deployment's extra_body, merged last
}

TEST(UpstreamChatBody, ResponseFormatAndNoThinking) {
  auto p = prepared(api::Dialect::chat, R"({"model": "deepseek-v4-flash", "thinking": {"type": "disabled"},
      "response_format": {"type": "json_schema", "json_schema": {"name": "x", "schema": {"type": "object"}}},
      "messages": [{"role": "user", "content": "Hi"}]})");
  json::object b = gateway::upstream_chat_body(p, "m", {});
  EXPECT_EQ(b.at("chat_template_kwargs").at("thinking"), false);
  EXPECT_FALSE(b.contains("reasoning_effort"));
  EXPECT_EQ(b.at("response_format").at("type"), "json_schema");
  EXPECT_EQ(b.at("response_format").at("json_schema").at("schema").at("type"), "object");
}

TEST(UpstreamChatBody, TheServersSearchToolIsRefusedNamingIt) {
  api::PreparedRequest p;
  p.req.model = "deepseek-v4-flash";
  p.req.search_tool.emplace();
  p.req.search_tool->param = "tools[1]";
  p.req.search_tool->enabled = true;  // the server searches: its loop needs the local engine
  try {
    gateway::check_upstream_request(p);
    FAIL() << "accepted";
  } catch (const api::ApiError& e) {
    EXPECT_EQ(e.status, 400);
    EXPECT_EQ(e.param, "tools[1]");
  }
  p.req.search_tool->enabled = false;  // withheld (no search on this server): nothing to refuse
  EXPECT_NO_THROW(gateway::check_upstream_request(p));
}

TEST(UpstreamChatBody, LogprobsAreAskedFor) {
  auto p = prepared(api::Dialect::chat, R"({"model": "deepseek-v4-flash", "logprobs": true, "top_logprobs": 3,
      "messages": [{"role": "user", "content": "Hi"}]})");
  json::object b = gateway::upstream_chat_body(p, "m", {});
  EXPECT_EQ(b.at("logprobs"), true);
  EXPECT_EQ(b.at("top_logprobs"), 3);
}

TEST(ChunkReader, LogprobsAndTheMatchedStopString) {
  gateway::ChunkReader r(api::Dialect::chat);
  auto d = r.feed(R"({"choices":[{"index":0,"delta":{"content":"Hi"},"logprobs":{"content":[
      {"token":"Hi","logprob":-0.5,"bytes":[72,105],"top_logprobs":[{"token":"Hi","logprob":-0.5,"bytes":[72,105]},
                                                                     {"token":"Yo","logprob":-1.25,"bytes":[89,111]}]}]}}]})");
  ASSERT_EQ(d.size(), 1u);
  ASSERT_EQ(d[0].logprobs.size(), 1u);
  EXPECT_EQ(d[0].logprobs[0].chosen.token, "Hi");
  EXPECT_EQ(d[0].logprobs[0].chosen.bytes, "Hi");
  EXPECT_EQ(d[0].logprobs[0].chosen.logprob, -0.5);
  ASSERT_EQ(d[0].logprobs[0].top.size(), 2u);
  EXPECT_EQ(d[0].logprobs[0].top[1].token, "Yo");
  EXPECT_EQ(d[0].logprobs[0].top[1].logprob, -1.25);
  r.feed(R"({"choices":[{"index":0,"delta":{},"finish_reason":"stop","stop_reason":"END"}]})");
  EXPECT_EQ(r.finish_reason, "stop");
  EXPECT_EQ(r.matched_stop, "END");
}

TEST(ChunkReader, ReasoningContentToolCallsAndUsage) {
  gateway::ChunkReader r(api::Dialect::anthropic);
  auto d1 = r.feed(R"({"choices":[{"index":0,"delta":{"role":"assistant","reasoning_content":"Hmm"}}]})");
  ASSERT_EQ(d1.size(), 1u);
  EXPECT_EQ(d1[0].kind, api::Delta::Kind::reasoning);
  EXPECT_EQ(d1[0].text, "Hmm");
  auto d2 = r.feed(R"({"choices":[{"index":0,"delta":{"reasoning":"!","content":"Hi"}}]})");  // vLLM's name
  ASSERT_EQ(d2.size(), 2u);
  EXPECT_EQ(d2[1].kind, api::Delta::Kind::content);
  EXPECT_TRUE(r.feed(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"id":"x","type":"function",
      "function":{"name":"get_weather","arguments":"{\"ci"}}]}}]})").empty());
  EXPECT_TRUE(r.feed(R"({"choices":[{"index":0,"delta":{"tool_calls":[{"index":0,"function":{"arguments":"ty\": \"Paris\"}"}}]}}]})").empty());
  auto d3 = r.feed(R"({"choices":[{"index":0,"delta":{},"finish_reason":"tool_calls"}]})");
  ASSERT_EQ(d3.size(), 1u);
  EXPECT_EQ(d3[0].kind, api::Delta::Kind::tool_call);
  EXPECT_EQ(d3[0].call.name, "get_weather");
  EXPECT_EQ(d3[0].call.arguments, R"({"city": "Paris"})");
  EXPECT_EQ(d3[0].call.id.rfind("toolu_", 0), 0u);  // in the caller's dialect's form
  EXPECT_EQ(r.finish_reason, "tool_calls");
  r.feed(R"({"choices":[],"usage":{"prompt_tokens":40,"completion_tokens":12,"prompt_tokens_details":{"cached_tokens":32},
      "completion_tokens_details":{"reasoning_tokens":4}}})");
  ASSERT_TRUE(r.usage.has_value());
  EXPECT_EQ(r.usage->prompt_tokens, 40);
  EXPECT_EQ(r.usage->cached_tokens, 32);
  EXPECT_EQ(r.usage->completion_tokens, 12);
  EXPECT_EQ(r.usage->reasoning_tokens, 4);
  EXPECT_THROW(r.feed("not json"), std::runtime_error);
  r.feed(R"({"error":{"message":"device lost"}})");
  EXPECT_EQ(r.error.value_or(""), "device lost");
}

TEST(UpstreamError, StatusesMapToTheCallersDialect) {
  auto e400 = gateway::upstream_error(api::Dialect::chat, 400,
                                      R"({"error":{"message":"bad top_k","type":"invalid_request_error","param":"top_k"}})", "a");
  EXPECT_EQ(e400.status, 400);
  EXPECT_EQ(e400.param, "top_k");
  EXPECT_STREQ(e400.what(), "bad top_k");
  EXPECT_EQ(gateway::upstream_error(api::Dialect::chat, 401, "{}", "a").status, 502);  // our key, not the caller's
  EXPECT_EQ(gateway::upstream_error(api::Dialect::chat, 500, "oops", "a").status, 502);
  EXPECT_EQ(gateway::upstream_error(api::Dialect::anthropic, 429, "{}", "a").status, 529);
  EXPECT_EQ(gateway::upstream_error(api::Dialect::chat, 429, "{}", "a").status, 503);
}
