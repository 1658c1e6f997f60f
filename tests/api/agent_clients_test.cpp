// What the agent clients send (their captured first requests, ../shared/fixtures/clients) and what
// they read back: every field either honoured or refused naming it (docs/api.md's table).
#include <gtest/gtest.h>

#include <fstream>
#include <sstream>

#include "api/anthropic.h"
#include "api/chat.h"
#include "api/output.h"
#include "api/request.h"
#include "api/responses.h"

using namespace v4::api;
namespace json = boost::json;

namespace {

json::value fixture(const std::string& name) {
  std::ifstream in(std::string(V4_SHARED_DIR) + "/fixtures/clients/" + name);
  std::stringstream ss;
  ss << in.rdbuf();
  EXPECT_FALSE(ss.str().empty()) << name;
  return json::parse(ss.str());
}

json::value J(const char* text) { return json::parse(text); }

template <class Fn>
ApiError error_of(Fn fn) {
  try {
    fn();
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "no ApiError thrown";
  return ApiError(0, "", "");
}

ResponseMeta meta() {
  ResponseMeta m;
  m.id = "resp_1";
  m.item_id = "item";
  m.created = 1750000000;
  m.model = "deepseek-v4-flash";
  return m;
}

Delta call(const std::string& name, const std::string& args) {
  Delta d;
  d.kind = Delta::Kind::tool_call;
  d.call.id = "call_1";
  d.call.name = name;
  d.call.arguments = args;
  return d;
}

bool has_tool(const Request& r, const std::string& name) {
  for (auto& t : r.tools)
    if (t.at("function").at("name").as_string() == name) return true;
  return false;
}

}  // namespace

TEST(ClaudeCode, FirstRequestIsServedWithItsSystemMessageAsDeveloperTurn) {
  auto r = parse_anthropic_request(fixture("claude-default-request.json"));
  EXPECT_EQ(r.tools.size(), 25u);
  EXPECT_TRUE(r.thinking);  // thinking: adaptive
  EXPECT_EQ(r.effort, "high");  // output_config.effort
  EXPECT_EQ(r.max_tokens, 64);
  ASSERT_GE(r.messages.size(), 3u);
  EXPECT_EQ(r.messages[0].role, "system");  // the three system blocks
  EXPECT_NE(r.messages[0].content.find("You are a Claude agent"), std::string::npos);
  EXPECT_EQ(r.messages[1].role, "user");
  EXPECT_EQ(r.messages.back().role, "developer");  // the mid-conversation system message
  EXPECT_NE(r.messages.back().content.find("Available agent types"), std::string::npos);
  check_anthropic_betas(
      "claude-code-20250219,interleaved-thinking-2025-05-14,thinking-token-count-2026-05-13,"
      "context-management-2025-06-27,prompt-caching-scope-2026-01-05,mid-conversation-system-2026-04-07,"
      "effort-2025-11-24");
}

TEST(ClaudeCode, ItsClaudeNamesReachTheModelThroughTheDefaultAlias) {
  auto r = parse_anthropic_request(fixture("claude-bare-nomodel-request.json"));
  EXPECT_EQ(r.model, "claude-opus-4-8");
  ModelCatalog catalog;
  EXPECT_EQ(catalog.resolve("claude-opus-4-8").value_or(""), "deepseek-v4-flash");
  EXPECT_EQ(catalog.resolve("deepseek-v4-flash:variant1").value_or(""), "deepseek-v4-flash:variant1");
  EXPECT_FALSE(catalog.resolve("gpt-4"));
  catalog.aliases = {parse_model_alias("gpt-4=deepseek-v4-flash:variant2")};
  EXPECT_EQ(catalog.resolve("gpt-4").value_or(""), "deepseek-v4-flash:variant2");
  EXPECT_FALSE(catalog.resolve("claude-opus-4-8"));
  EXPECT_THROW(parse_model_alias("claude-*"), std::invalid_argument);
  EXPECT_THROW(parse_model_alias("a*b=deepseek-v4-flash"), std::invalid_argument);
}

TEST(ClaudeCode, UnknownBetaIsRefusedNamingIt) {
  auto e = error_of([] { check_anthropic_betas("effort-2025-11-24, files-api-2025-04-14"); });
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.param, "anthropic-beta");
  EXPECT_NE(std::string(e.what()).find("files-api-2025-04-14"), std::string::npos);
}

TEST(Anthropic, CacheControlIsValidatedAndContextEditsHonouredOrRefused) {
  auto bad_cc = error_of([] {
    parse_anthropic_request(J(R"({"model":"m","max_tokens":8,"messages":[{"role":"user","content":[
        {"type":"text","text":"x","cache_control":{"type":"persistent"}}]}]})"));
  });
  EXPECT_EQ(bad_cc.param, "messages[0].content[0].cache_control.type");
  auto edit = error_of([] {
    parse_anthropic_request(J(R"({"model":"m","max_tokens":8,"messages":[{"role":"user","content":"x"}],
        "context_management":{"edits":[{"type":"clear_tool_uses_20250919"}]}})"));
  });
  EXPECT_EQ(edit.param, "context_management.edits[0].type");
  // clear_thinking keeping one turn: the older turn's thinking leaves the prompt.
  auto r = parse_anthropic_request(J(R"({"model":"m","max_tokens":8,"messages":[
      {"role":"user","content":"a"},
      {"role":"assistant","content":[{"type":"thinking","thinking":"old","signature":"s"},{"type":"text","text":"A"}]},
      {"role":"user","content":"b"},
      {"role":"assistant","content":[{"type":"thinking","thinking":"new","signature":"s"},{"type":"text","text":"B"}]},
      {"role":"user","content":"c"}],
      "context_management":{"edits":[{"type":"clear_thinking_20251015","keep":{"type":"thinking_turns","value":1}}]}})"));
  EXPECT_FALSE(r.messages[1].reasoning_content);
  EXPECT_EQ(r.messages[3].reasoning_content.value_or(""), "new");
  auto all = parse_anthropic_request(J(R"({"model":"m","max_tokens":8,"messages":[
      {"role":"assistant","content":[{"type":"thinking","thinking":"old","signature":"s"},{"type":"text","text":"A"}]},
      {"role":"user","content":"c"}],"context_management":{"edits":[{"type":"clear_thinking_20251015","keep":"all"}]}})"));
  EXPECT_EQ(all.messages[0].reasoning_content.value_or(""), "old");
}

TEST(Anthropic, FieldsNotHonouredAreRefusedNamingThem) {
  for (const char* field : {R"("service_tier":"auto")", R"("container":"c")", R"("mcp_servers":[])"}) {
    std::string body = std::string(R"({"model":"m","max_tokens":8,"messages":[{"role":"user","content":"x"}],)") + field + "}";
    auto e = error_of([&] { parse_anthropic_request(json::parse(body)); });
    EXPECT_EQ(e.status, 400) << field;
    EXPECT_EQ(e.code, "unsupported_parameter") << field;
  }
  // strict tools are honoured now (constrained decoding): read, not refused
  auto strict = parse_anthropic_request(J(R"({"model":"m","max_tokens":8,"messages":[{"role":"user","content":"x"}],
      "tools":[{"name":"f","input_schema":{"type":"object"},"strict":true}]})"));
  EXPECT_EQ(strict.strict_tools, std::vector<std::string>{"f"});
  auto r = parse_anthropic_request(J(R"({"model":"m","max_tokens":8,"messages":[{"role":"user","content":"x"}],
      "tools":[{"name":"f","input_schema":{"type":"object"}}],"tool_choice":{"type":"auto","disable_parallel_tool_use":true}})"));
  EXPECT_FALSE(r.parallel_tool_calls);
}

// The AI SDK's Anthropic provider sends eager_input_streaming: true on every tool of a streamed
// request: a boolean, accepted (each call's input is streamed whole, which it permits).
TEST(Anthropic, EagerInputStreamingIsReadAsABoolean) {
  for (const char* value : {"true", "false"}) {
    std::string body = std::string(R"({"model":"m","max_tokens":8,"messages":[{"role":"user","content":"x"}],
        "tools":[{"name":"f","input_schema":{"type":"object"},"eager_input_streaming":)") + value + "}]}";
    EXPECT_EQ(parse_anthropic_request(json::parse(body)).tools.size(), 1u) << value;
  }
  auto e = error_of([] {
    parse_anthropic_request(J(R"({"model":"m","max_tokens":8,"messages":[{"role":"user","content":"x"}],
        "tools":[{"name":"f","input_schema":{"type":"object"},"eager_input_streaming":"yes"}]})"));
  });
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.param, "tools[0].eager_input_streaming");
}

TEST(Anthropic, NonStreamedTextBlockCarriesNoNullCitations) {
  Request req;
  req.dialect = Dialect::anthropic;
  Turn turn;
  turn.content = "Hi";
  Outcome o;
  auto body = render_response(req, meta(), turn, o);
  auto& block = body.at("content").as_array().at(0).as_object();
  EXPECT_EQ(block.at("type"), "text");
  EXPECT_FALSE(block.contains("citations"));
  req.thinking_token_count = true;
  o.usage = Usage{10, 0, 7, 5};
  EXPECT_EQ(render_response(req, meta(), turn, o).at("usage").at("output_tokens_details").at("thinking_tokens"), 5);
}

TEST(Codex, FirstRequestIsServedAndEachFieldHonoured) {
  auto r = parse_responses_request(fixture("codex-default-request.json"));
  EXPECT_TRUE(has_tool(r, "exec_command"));
  EXPECT_TRUE(has_tool(r, "multi_agent_v1.spawn_agent"));  // the namespace's members
  EXPECT_FALSE(has_tool(r, "web_search"));
  ASSERT_EQ(r.withheld_tools.size(), 1u);
  EXPECT_EQ(r.withheld_tools[0], "web_search");
  EXPECT_TRUE(r.encrypted_reasoning);
  EXPECT_EQ(r.reasoning_summary, "auto");
  EXPECT_FALSE(r.store);
  EXPECT_EQ(r.prompt_cache_key, "01a24aa1-b22d-7e62-802b-aaa49d4c3340");
  EXPECT_TRUE(r.parallel_tool_calls);
  EXPECT_EQ(r.messages.front().role, "developer");
  EXPECT_EQ(r.messages.back().content, "say hi");
}

TEST(Codex, RefusalsNameTheField) {
  struct Case {
    const char* body;
    const char* param;
  } cases[] = {
      {R"({"model":"m","input":"x","conversation":"conv_1"})", "conversation"},
      {R"({"model":"m","input":"x","include":["file_search_call.results"]})", "include[0]"},
      {R"({"model":"m","input":"x","tools":[{"type":"local_shell"}]})", "tools[0].type"},
      {R"({"model":"m","input":"x","tools":[{"type":"custom","name":"apply_patch","format":{"type":"grammar","syntax":"lark","definition":"start: x"}}]})",
       "tools[0].format.type"},
      {R"({"model":"m","input":"x","truncation":"auto"})", "truncation"},
      {R"({"model":"m","input":"x","background":true,"store":false})", "background"},
      {R"({"model":"m","input":"x","background":true,"stream":true})", "stream"},
      {R"({"model":"m","input":"x","previous_response_id":"resp_1"})", "previous_response_id"},  // not looked up
      {R"({"model":"m","input":"x","reasoning":{"summary":"verbose"}})", "reasoning.summary"},
  };
  for (auto& c : cases) {
    auto e = error_of([&] { parse_responses_request(json::parse(c.body)); });
    EXPECT_EQ(e.param, c.param) << c.body;
    EXPECT_TRUE(e.status == 400 || e.status == 422) << c.body;
  }
  // strict function tools are honoured (constrained decoding), a namespace member by its model name
  auto strict = parse_responses_request(json::parse(R"({"model":"m","input":"x","tools":[{"type":"function","name":"f","strict":true},
      {"type":"namespace","name":"ns","tools":[{"type":"function","name":"g","strict":true}]}]})"));
  EXPECT_EQ(strict.strict_tools, (std::vector<std::string>{"f", "ns.g"}));
}

TEST(Codex, CustomAndNamespacedCallsGoBackInTheirOwnShape) {
  auto req = parse_responses_request(J(R"({"model":"m","input":"x","tools":[
      {"type":"custom","name":"apply_patch","description":"patch","format":{"type":"text"}},
      {"type":"namespace","name":"ns","description":"group","tools":[{"type":"function","name":"f","parameters":{"type":"object"}}]}]})"));
  ASSERT_EQ(req.tools.size(), 2u);
  EXPECT_EQ(req.tools[0].at("function").at("parameters").at("required").at(0), "input");
  Turn turn;
  turn.add(call("apply_patch", R"({"input":"*** Begin Patch"})"));
  turn.add(call("ns.f", R"({"a":1})"));
  Outcome o;
  o.stop = StopKind::tool_calls;
  auto out = render_response(req, meta(), turn, o).at("output").as_array();
  ASSERT_EQ(out.size(), 2u);
  EXPECT_EQ(out[0].at("type"), "custom_tool_call");
  EXPECT_EQ(out[0].at("name"), "apply_patch");
  EXPECT_EQ(out[0].at("input"), "*** Begin Patch");
  EXPECT_EQ(out[1].at("type"), "function_call");
  EXPECT_EQ(out[1].at("name"), "f");
  EXPECT_EQ(out[1].at("namespace"), "ns");
  // ... and come back as the same calls in the next request's input.
  auto next = parse_responses_request(J(R"({"model":"m","reasoning":{"effort":"none"},"input":[
      {"type":"message","role":"user","content":"x"},
      {"type":"custom_tool_call","call_id":"c1","name":"apply_patch","input":"*** Begin Patch"},
      {"type":"custom_tool_call_output","call_id":"c1","output":"ok"},
      {"type":"function_call","call_id":"c2","name":"f","namespace":"ns","arguments":"{}"},
      {"type":"function_call_output","call_id":"c2","output":"done"}]})"));
  ASSERT_EQ(next.messages.size(), 5u);
  EXPECT_EQ(next.messages[1].tool_calls.at(0).name, "apply_patch");
  EXPECT_EQ(json::parse(next.messages[1].tool_calls.at(0).arguments).at("input"), "*** Begin Patch");
  EXPECT_EQ(next.messages[3].tool_calls.at(0).name, "ns.f");
}

TEST(Codex, EncryptedReasoningRoundTripsAndForgeriesAreRefused) {
  auto req = parse_responses_request(J(R"({"model":"m","input":"x","include":["reasoning.encrypted_content"],
      "reasoning":{"summary":"auto"}})"));
  Turn turn;
  turn.reasoning = "secret chain of thought";
  turn.content = "answer";
  Outcome o;
  auto item = render_response(req, meta(), turn, o).at("output").at(0).as_object();
  EXPECT_EQ(item.at("type"), "reasoning");
  EXPECT_EQ(item.at("summary").at(0).at("text"), "secret chain of thought");
  const std::string sealed(item.at("encrypted_content").as_string());
  EXPECT_EQ(sealed.find("secret"), std::string::npos);  // opaque
  json::object body{{"model", "m"},
                    {"input", json::array{json::object{{"type", "message"}, {"role", "user"}, {"content", "x"}},
                                          json::object{{"type", "reasoning"}, {"id", "rs_1"}, {"summary", json::array{}},
                                                       {"encrypted_content", sealed}},
                                          json::object{{"type", "function_call"}, {"call_id", "c"}, {"name", "f"},
                                                       {"arguments", "{}"}},
                                          json::object{{"type", "function_call_output"}, {"call_id", "c"}, {"output", "1"}}}}};
  auto next = parse_responses_request(body);
  EXPECT_EQ(next.messages.at(1).reasoning_content.value_or(""), "secret chain of thought");
  std::string forged = sealed;
  forged[forged.size() / 2] = forged[forged.size() / 2] == 'A' ? 'B' : 'A';
  body["input"].as_array()[1].as_object()["encrypted_content"] = forged;
  EXPECT_EQ(error_of([&] { parse_responses_request(body); }).param, "input[1].encrypted_content");
}

TEST(Codex, StreamCarriesReasoningSummaryEventsWhenAskedFor) {
  auto req = parse_responses_request(J(R"({"model":"m","input":"x","stream":true,"reasoning":{"summary":"detailed"}})"));
  auto s = make_stream_renderer(req, meta(), 3);
  std::string text = s->start(0);
  text += s->delta(Delta{Delta::Kind::reasoning, "think", {}, {}});
  text += s->delta(Delta{Delta::Kind::content, "hi", {}, {}});
  Outcome o;
  text += s->finish(o);
  for (const char* ev : {"response.reasoning_summary_part.added", "response.reasoning_summary_text.delta",
                         "response.reasoning_summary_text.done", "response.reasoning_summary_part.done"})
    EXPECT_NE(text.find(std::string("event: ") + ev), std::string::npos) << ev;
  auto plain = parse_responses_request(J(R"({"model":"m","input":"x","stream":true})"));
  auto s2 = make_stream_renderer(plain, meta(), 3);
  std::string t2 = s2->start(0) + s2->delta(Delta{Delta::Kind::reasoning, "think", {}, {}}) + s2->finish(o);
  EXPECT_EQ(t2.find("reasoning_summary"), std::string::npos);
}

TEST(Opencode, BothProvidersFirstRequestsAreServed) {
  auto chat = parse_chat_request(fixture("opencode-openai-compatible-request.json"));
  EXPECT_EQ(chat.tools.size(), 10u);
  EXPECT_TRUE(chat.include_usage);
  auto msgs = parse_anthropic_request(fixture("opencode-anthropic-request.json"));
  EXPECT_EQ(msgs.tools.size(), 10u);
  EXPECT_EQ(msgs.tool_choice.mode, ToolChoice::Mode::automatic);
}

TEST(Chat, FieldsNotHonouredAreRefusedAndParallelToolCallsRead) {
  for (const char* field : {R"("user":"u")", R"("service_tier":"auto")", R"("safety_identifier":"k")", R"("verbosity":"low")"}) {
    std::string body = std::string(R"({"model":"m","messages":[{"role":"user","content":"x"}],)") + field + "}";
    auto e = error_of([&] { parse_chat_request(json::parse(body)); });
    EXPECT_EQ(e.code, "unsupported_parameter") << field;
  }
  auto r = parse_chat_request(J(R"({"model":"m","messages":[{"role":"user","content":"x"}],"parallel_tool_calls":false})"));
  EXPECT_FALSE(r.parallel_tool_calls);
}

TEST(Anthropic, ToolResultErrorFlagReachesTheModelAsText) {
  auto r = parse_anthropic_request(J(R"({"model":"m","max_tokens":8,"thinking":{"type":"disabled"},"messages":[
      {"role":"user","content":"go"},
      {"role":"assistant","content":[{"type":"tool_use","id":"t1","name":"f","input":{}}]},
      {"role":"user","content":[{"type":"tool_result","tool_use_id":"t1","is_error":true,"content":"no such file"}]}],
      "tools":[{"name":"f","input_schema":{"type":"object"}}]})"));
  ASSERT_EQ(r.messages.back().role, "tool");
  EXPECT_EQ(r.messages.back().content, "Error: no such file");
}
