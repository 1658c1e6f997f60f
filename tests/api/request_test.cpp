// Request parsing and validation of the three dialects (api.md section 1 defaults and ranges).
#include <gtest/gtest.h>

#include <set>

#include "api/anthropic.h"
#include "api/chat.h"
#include "api/request.h"
#include "api/responses.h"

using namespace v4::api;
namespace json = boost::json;

namespace {

json::value J(const char* text) { return json::parse(text); }

// Runs `fn` and returns the ApiError it throws (fails the test when nothing is thrown).
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

}  // namespace

TEST(ChatRequest, DefaultsOfTheProductSheet) {
  auto r = parse_chat_request(J(R"({"model":"deepseek-v4-flash","messages":[{"role":"user","content":"Hi"}]})"));
  EXPECT_EQ(r.temperature, 0.7);
  EXPECT_EQ(r.top_p, 0.9);
  EXPECT_EQ(r.max_tokens, 4096);
  EXPECT_FALSE(r.max_tokens_given);
  EXPECT_TRUE(r.thinking);
  EXPECT_EQ(r.effort, "medium");
  // medium's 32768, capped to half of the default max_tokens so the answer has room.
  EXPECT_EQ(r.thinking_budget, 2048);
  EXPECT_FALSE(r.stream);
  EXPECT_FALSE(r.include_usage);
  ASSERT_EQ(r.messages.size(), 1u);
  EXPECT_EQ(r.messages[0].content, "Hi");
}

TEST(ChatRequest, AliasesAndToggles) {
  auto r = parse_chat_request(J(R"({"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"a"},{"type":"text","text":"b"}]}],
      "max_completion_tokens":12,"stop":"END","stream":true,"stream_options":{"include_usage":true},
      "thinking":{"type":"disabled"},"seed":42,"logprobs":true,"top_logprobs":3,"response_format":{"type":"json_object"}})"));
  EXPECT_EQ(r.messages[0].content, "ab");
  EXPECT_EQ(r.max_tokens, 12);
  EXPECT_TRUE(r.max_tokens_given);
  ASSERT_EQ(r.stop.size(), 1u);
  EXPECT_EQ(r.stop[0], "END");
  EXPECT_TRUE(r.stream && r.include_usage);
  EXPECT_FALSE(r.thinking);
  EXPECT_EQ(*r.seed, 42u);
  EXPECT_TRUE(r.logprobs);
  EXPECT_EQ(r.top_logprobs, 3);
  EXPECT_EQ(r.output_format.kind, OutputFormat::Kind::json_object);

  auto off = parse_chat_request(J(R"({"model":"m","messages":[{"role":"user","content":"x"}],"reasoning_effort":"none"})"));
  EXPECT_FALSE(off.thinking);
  auto off2 = parse_chat_request(J(R"({"model":"m","messages":[{"role":"user","content":"x"}],"enable_thinking":false})"));
  EXPECT_FALSE(off2.thinking);
}

TEST(ChatRequest, EffortMapsToBudgetsAndEncoderEffort) {
  auto mk = [](const char* effort) {  // max_tokens large enough that the effort's budget applies
    std::string body = std::string(R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":393216,"reasoning_effort":")") + effort + "\"}";
    return parse_chat_request(json::parse(body));
  };
  EXPECT_EQ(mk("minimal").effort, "low");
  EXPECT_EQ(mk("low").thinking_budget, 8192);
  EXPECT_EQ(mk("medium").thinking_budget, 32768);
  EXPECT_EQ(mk("xhigh").effort, "high");
  EXPECT_EQ(mk("high").thinking_budget, 65536);
  EXPECT_EQ(mk("max").thinking_budget, 131072);
  EXPECT_EQ(encoder_effort("max").value_or(""), "max");
  EXPECT_FALSE(encoder_effort("high").has_value());
  // An explicit thinking_budget wins over the effort's.
  auto r = parse_chat_request(J(R"({"model":"m","messages":[{"role":"user","content":"x"}],"reasoning_effort":"max","thinking_budget":100})"));
  EXPECT_EQ(r.thinking_budget, 100);
}

TEST(ChatRequest, EffortBudgetsLeaveRoomForTheAnswer) {
  auto mk = [](const char* effort, int max_tokens) {
    std::string body = std::string(R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":)") +
                       std::to_string(max_tokens) + R"(,"reasoning_effort":")" + effort + "\"}";
    return parse_chat_request(json::parse(body)).thinking_budget;
  };
  // Quarter, half, three quarters, seven eighths of max_tokens, below the effort's own budget.
  EXPECT_EQ(mk("low", 4096), 1024);
  EXPECT_EQ(mk("medium", 4096), 2048);
  EXPECT_EQ(mk("high", 4096), 3072);
  EXPECT_EQ(mk("max", 4096), 3584);
  EXPECT_EQ(mk("medium", 1), 1);
  EXPECT_EQ(mk("medium", 100000), 32768);  // the effort's budget when it is the smaller
  // An explicit budget is the caller's, even past max_tokens (Chat, Responses).
  auto r = parse_chat_request(J(R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":16,"thinking_budget":100})"));
  EXPECT_EQ(r.thinking_budget, 100);
  auto resp = parse_responses_request(J(R"({"model":"m","input":"x","max_output_tokens":50,"reasoning":{"effort":"high"}})"));
  EXPECT_EQ(resp.thinking_budget, 37);
}

TEST(AnthropicRequest, BudgetTokensMustBeBelowMaxTokens) {
  auto e = error_of([] {
    parse_anthropic_request(J(R"({"model":"m","max_tokens":64,"thinking":{"type":"enabled","budget_tokens":64},
        "messages":[{"role":"user","content":"x"}]})"));
  });
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.param, "thinking.budget_tokens");
  auto ok = parse_anthropic_request(J(R"({"model":"m","max_tokens":64,"thinking":{"type":"enabled","budget_tokens":63},
      "messages":[{"role":"user","content":"x"}]})"));
  EXPECT_EQ(ok.thinking_budget, 63);
  // Claude Code's adaptive thinking with effort high and max_tokens 64: three quarters.
  auto cc = parse_anthropic_request(J(R"({"model":"m","max_tokens":64,"thinking":{"type":"adaptive"},
      "output_config":{"effort":"high"},"messages":[{"role":"user","content":"x"}]})"));
  EXPECT_EQ(cc.thinking_budget, 48);
}

TEST(ChatRequest, ReasoningContentAcceptedUnderBothNames) {
  auto r = parse_chat_request(J(R"({"model":"m","messages":[{"role":"user","content":"q"},
      {"role":"assistant","content":"","reasoning":"R","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
      {"role":"tool","tool_call_id":"c1","content":"ok"}]})"));
  ASSERT_EQ(r.messages.size(), 3u);
  EXPECT_EQ(r.messages[1].reasoning_content.value_or(""), "R");
  EXPECT_EQ(r.messages[1].tool_calls.at(0).name, "f");
  EXPECT_EQ(r.messages[2].tool_call_id, "c1");
}

// Each key of a Chat message is honoured or refused, naming it; the assistant messages this server
// returns (refusal, annotations, a streamed call's index) can be sent back as they are.
TEST(ChatRequest, MessageKeysAreHonouredOrRefused) {
  auto r = parse_chat_request(J(R"({"model":"m","thinking":{"type":"disabled"},"messages":[{"role":"user","content":"q"},
      {"role":"assistant","content":"See [1].","refusal":null,"audio":null,"function_call":null,
       "annotations":[{"type":"url_citation","url_citation":{"url":"https://a.example","title":"A","start_index":4,"end_index":7}}],
       "tool_calls":[{"index":0,"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
      {"role":"tool","tool_call_id":"c1","name":"f","content":"ok"},
      {"role":"assistant","content":null,"refusal":"I can't help with that."},
      {"role":"user","content":"q2"},{"role":"assistant","content":[{"type":"refusal","refusal":"No."}]}]})"));
  ASSERT_EQ(r.messages.size(), 6u);
  EXPECT_EQ(r.messages[5].content, "No.") << "a refusal content part too";
  EXPECT_EQ(r.messages[1].content, "See [1].");
  EXPECT_EQ(r.messages[1].tool_calls.at(0).id, "c1");
  EXPECT_EQ(r.messages[3].content, "I can't help with that.") << "a refusal is the turn's text";
  struct Case {
    std::string messages;
    int status;
    std::string param;
  };
  const std::string call = R"({"role":"assistant","content":"","tool_calls":[{"id":"c1","type":"function","function":{"name":"f"}}]})";
  const std::vector<Case> cases = {
      {R"([{"role":"user","content":"x","name":"alice"}])", 400, "messages[0].name"},
      {R"([{"role":"user","content":"x","prefix":true}])", 400, "messages[0].prefix"},
      {R"([{"role":"assistant","content":"x","audio":{"id":"a1"}}])", 400, "messages[0].audio"},
      {R"([{"role":"assistant","content":"x","function_call":{"name":"f","arguments":"{}"}}])", 400, "messages[0].function_call"},
      {R"([{"role":"user","content":"x","tool_calls":[]}])", 400, "messages[0].tool_calls"},
      {R"([{"role":"user","content":"x","refusal":"no"}])", 400, "messages[0].refusal"},
      {R"([{"role":"user","content":"x","tool_call_id":"c1"}])", 400, "messages[0].tool_call_id"},
      {R"([{"role":"assistant","content":"x","annotations":{}}])", 400, "messages[0].annotations"},
      {"[" + call + R"(,{"role":"tool","tool_call_id":"c1","name":"g","content":"ok"}])", 400, "messages[1].name"},
      {R"([{"role":"assistant","content":"","tool_calls":[{"id":"c1","type":"custom","function":{"name":"f"}}]}])", 422, "messages[0].tool_calls[0].type"},
      {R"([{"role":"assistant","content":"","tool_calls":[{"id":"c1","function":{"name":"f","strict":true}}]}])", 400, "messages[0].tool_calls[0].function.strict"},
      {R"([{"role":"assistant","content":"","tool_calls":[{"id":"c1","extra":1,"function":{"name":"f"}}]}])", 400, "messages[0].tool_calls[0].extra"},
  };
  for (auto& c : cases) {
    const std::string body = R"({"model":"m","thinking":{"type":"disabled"},"messages":)" + c.messages + "}";
    auto e = error_of([&] { parse_chat_request(json::parse(body)); });
    EXPECT_EQ(e.status, c.status) << body;
    EXPECT_EQ(e.param, c.param) << body;
    EXPECT_NE(std::string(e.what()).find(c.param), std::string::npos) << e.what();
  }
}

TEST(ChatRequest, ToolTurnWithoutReasoningIs400InThinkingMode) {
  const char* body = R"({"model":"m","messages":[{"role":"user","content":"q"},
      {"role":"assistant","content":"","tool_calls":[{"id":"c1","type":"function","function":{"name":"f","arguments":"{}"}}]},
      {"role":"tool","tool_call_id":"c1","content":"ok"}]})";
  auto e = error_of([&] { parse_chat_request(J(body)); });
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.param, "messages[1].reasoning_content");
  // Non-thinking mode does not need it.
  std::string off = std::string(body);
  off.insert(off.size() - 1, R"(,"thinking":{"type":"disabled"})");
  EXPECT_NO_THROW(parse_chat_request(json::parse(off)));
}

// Chat `n`: 1 to 8 choices; each choice's seed is derived from the request's (choice 0 keeps it).
TEST(ChatRequest, NUpToEightChoicesEachWithItsOwnSeed) {
  EXPECT_EQ(parse_chat_request(J(R"({"model":"m","messages":[{"role":"user","content":"x"}]})")).n, 1);
  EXPECT_EQ(parse_chat_request(J(R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":8})")).n, 8);
  EXPECT_EQ(choice_seed(42, 0), 42u);
  std::set<uint64_t> seeds;
  for (uint64_t seed : {41, 42, 43})
    for (int i = 0; i < kMaxChoices; ++i) seeds.insert(choice_seed(seed, i));
  EXPECT_EQ(seeds.size(), size_t(3 * kMaxChoices)) << "neighbouring seeds share no choice's stream";
  for (uint64_t seed : seeds) EXPECT_LE(seed, uint64_t(INT64_MAX)) << "a seed a request can send";
}

struct BadCase {
  const char* body;
  int status;
  const char* param;
};

TEST(ChatRequest, BadInputTable) {
  const BadCase cases[] = {
      {R"({"messages":[{"role":"user","content":"x"}]})", 400, "model"},
      {R"({"model":5,"messages":[{"role":"user","content":"x"}]})", 400, "model"},
      {R"({"model":"m"})", 400, "messages"},
      {R"({"model":"m","messages":[]})", 400, "messages"},
      {R"({"model":"m","messages":"hi"})", 400, "messages"},
      {R"({"model":"m","messages":[{"content":"x"}]})", 400, "messages[0].role"},
      {R"({"model":"m","messages":[{"role":"wizard","content":"x"}]})", 422, "messages[0].role"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":"hot"})", 400, "temperature"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"temperature":2.5})", 422, "temperature"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"top_p":1.5})", 422, "top_p"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":0})", 422, "max_tokens"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":393217})", 422, "max_tokens"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_tokens":1.5})", 400, "max_tokens"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"max_completion_tokens":-3})", 422, "max_completion_tokens"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"stop":["a","b","c","d","e"]})", 422, "stop"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"stop":5})", 400, "stop"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"reasoning_effort":"extreme"})", 422, "reasoning_effort"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"thinking_budget":0})", 422, "thinking_budget"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"thinking":{"type":"sometimes"}})", 422, "thinking.type"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"top_logprobs":3})", 422, "top_logprobs"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"logprobs":true,"top_logprobs":21})", 422, "top_logprobs"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":9})", 422, "n"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":128})", 422, "n"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":0})", 422, "n"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"n":"2"})", 400, "n"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"stream":"yes"})", 400, "stream"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function"}]})", 400, "tools[0].function"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"tool_choice":"sometimes"})", 422, "tool_choice"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"function","function":{"name":"g"}}})", 422, "tool_choice"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f","examples":[]}}]})", 400, "tools[0].function.examples"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"},"cache_control":{}}]})", 400, "tools[0].cache_control"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":[{"type":"function","function":{"name":"f"}}],"tool_choice":{"type":"allowed_tools","allowed_tools":{}}})", 422, "tool_choice.type"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"web_search_options":{"search_context_size":"low","filters":{}}})", 400, "web_search_options.filters"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_schema","json_schema":{"name":"n","schema":{},"examples":[]}}})", 400, "response_format.json_schema.examples"},
      {R"({"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"json_object","schema":{}}})", 400, "response_format.schema"},
      {R"({"model":"m","messages":[{"role":"user","content":[{"type":"image_url","image_url":{"url":"x"}}]}]})", 400, "messages[0].content[0].type"},
      {R"({"model":"m","messages":[{"role":"tool","content":"x"}]})", 400, "messages[0].tool_call_id"},
  };
  for (auto& c : cases) {
    auto e = error_of([&] { parse_chat_request(json::parse(c.body)); });
    EXPECT_EQ(e.status, c.status) << c.body;
    EXPECT_EQ(e.param, c.param) << c.body;
    EXPECT_EQ(e.type, "invalid_request_error") << c.body;
    EXPECT_NE(std::string(e.what()).find(c.param), std::string::npos) << "message names the parameter: " << e.what();
  }
}

TEST(JsonBody, MalformedAndNonObjectBodiesAre400) {
  for (const char* body : {"", "{", "{\"model\":}", "[1,2]", "42", "null"}) {
    auto e = error_of([&] { parse_json_body(body); });
    EXPECT_EQ(e.status, 400) << body;
    EXPECT_EQ(e.type, "invalid_request_error");
  }
}

TEST(ResponsesRequest, InputItemsAndFields) {
  auto r = parse_responses_request(J(R"({"model":"m","instructions":"Be brief.","max_output_tokens":50,
      "reasoning":{"effort":"high"},"tools":[{"type":"function","name":"get_weather","parameters":{"type":"object"}}],
      "input":[{"role":"user","content":"weather?"},
               {"type":"reasoning","id":"rs_1","summary":[],"content":[{"type":"reasoning_text","text":"R"}]},
               {"type":"function_call","call_id":"call_1","name":"get_weather","arguments":"{\"city\":\"Paris\"}"},
               {"type":"function_call_output","call_id":"call_1","output":"sunny"}]})"));
  EXPECT_EQ(r.max_tokens, 50);
  EXPECT_EQ(r.effort, "high");
  EXPECT_EQ(r.thinking_budget, 37);  // three quarters of max_output_tokens 50
  ASSERT_EQ(r.messages.size(), 4u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[0].content, "Be brief.");
  EXPECT_EQ(r.messages[2].role, "assistant");
  EXPECT_EQ(r.messages[2].reasoning_content.value_or(""), "R");
  EXPECT_EQ(r.messages[2].tool_calls.at(0).id, "call_1");
  EXPECT_EQ(r.messages[3].role, "tool");
  EXPECT_EQ(r.messages[3].content, "sunny");
  EXPECT_EQ(r.tools.size(), 1u);
  EXPECT_TRUE(r.include_usage);

  auto none = parse_responses_request(J(R"({"model":"m","input":"hi","reasoning":{"effort":"none"}})"));
  EXPECT_FALSE(none.thinking);
}

TEST(ResponsesRequest, BadInput) {
  const BadCase cases[] = {
      {R"({"model":"m"})", 400, "input"},
      {R"({"model":"m","input":5})", 400, "input"},
      {R"({"model":"m","input":"x","max_output_tokens":0})", 422, "max_output_tokens"},
      {R"({"model":"m","input":"x","reasoning":{"effort":"huge"}})", 422, "reasoning.effort"},
      {R"({"model":"m","input":"x","previous_response_id":"resp_1"})", 400, "previous_response_id"},
      {R"({"model":"m","input":"x","tools":[{"type":"file_search"}]})", 422, "tools[0].type"},
      {R"({"model":"m","input":[{"type":"mystery"}]})", 400, "input[0].type"},
  };
  for (auto& c : cases) {
    auto e = error_of([&] { parse_responses_request(json::parse(c.body)); });
    EXPECT_EQ(e.status, c.status) << c.body;
    EXPECT_EQ(e.param, c.param) << c.body;
  }
}

TEST(AnthropicRequest, BlocksSystemToolsThinking) {
  auto r = parse_anthropic_request(J(R"({"model":"m","max_tokens":64,"system":[{"type":"text","text":"S"}],
      "stop_sequences":["X"],"top_k":5,"thinking":{"type":"enabled","budget_tokens":48},
      "tools":[{"name":"get_weather","description":"d","input_schema":{"type":"object"}}],
      "tool_choice":{"type":"any"},
      "messages":[{"role":"user","content":"weather?"},
                  {"role":"assistant","content":[{"type":"thinking","thinking":"T","signature":"s"},
                                                 {"type":"tool_use","id":"toolu_1","name":"get_weather","input":{"city":"Paris"}}]},
                  {"role":"user","content":[{"type":"tool_result","tool_use_id":"toolu_1","content":"sunny"},{"type":"text","text":"thanks"}]}]})"));
  EXPECT_EQ(r.max_tokens, 64);
  EXPECT_EQ(r.top_k, 5);
  EXPECT_EQ(r.thinking_budget, 48);
  EXPECT_EQ(r.tool_choice.mode, ToolChoice::Mode::required);
  ASSERT_EQ(r.messages.size(), 5u);
  EXPECT_EQ(r.messages[0].role, "system");
  EXPECT_EQ(r.messages[2].reasoning_content.value_or(""), "T");
  EXPECT_EQ(r.messages[2].tool_calls.at(0).arguments, R"({"city":"Paris"})");
  EXPECT_EQ(r.messages[3].role, "tool");
  EXPECT_EQ(r.messages[3].tool_call_id, "toolu_1");
  EXPECT_EQ(r.messages[4].content, "thanks");

  auto eff = parse_anthropic_request(J(R"({"model":"m","max_tokens":5,"output_config":{"effort":"xhigh"},"messages":[{"role":"user","content":"x"}]})"));
  EXPECT_EQ(eff.effort, "high");
  auto off = parse_anthropic_request(J(R"({"model":"m","max_tokens":5,"thinking":{"type":"disabled"},"messages":[{"role":"user","content":"x"}]})"));
  EXPECT_FALSE(off.thinking);
}

TEST(AnthropicRequest, BadInputIsAlways400) {
  const BadCase cases[] = {
      {R"({"model":"m","messages":[{"role":"user","content":"x"}]})", 400, "max_tokens"},
      {R"({"model":"m","max_tokens":0,"messages":[{"role":"user","content":"x"}]})", 400, "max_tokens"},
      {R"({"model":"m","max_tokens":10,"temperature":3,"messages":[{"role":"user","content":"x"}]})", 400, "temperature"},
      {R"({"model":"m","max_tokens":10,"messages":[{"role":"tool","content":"x"}]})", 400, "messages[0].role"},
      {R"({"model":"m","max_tokens":10,"messages":[{"role":"user","content":5}]})", 400, "messages[0].content"},
      {R"({"model":"m","max_tokens":10,"stop_sequences":["1","2","3","4","5"],"messages":[{"role":"user","content":"x"}]})", 400, "stop_sequences"},
      {R"({"model":"m","max_tokens":10,"tools":[{"name":"f"}],"messages":[{"role":"user","content":"x"}]})", 400, "tools[0].input_schema"},
      {R"({"model":"m","max_tokens":10,"tools":[{"type":"web_search_20260209","name":"web_search"}],"messages":[{"role":"user","content":"x"}]})", 400, "tools[0].type"},
      {R"({"model":"m","max_tokens":10,"tools":[{"type":"web_search_20250305","name":"search"}],"messages":[{"role":"user","content":"x"}]})", 400, "tools[0].name"},
  };
  for (auto& c : cases) {
    auto e = error_of([&] { parse_anthropic_request(json::parse(c.body)); });
    EXPECT_EQ(e.status, c.status) << c.body;
    EXPECT_EQ(e.param, c.param) << c.body;
  }
  // count_tokens does not need max_tokens.
  EXPECT_NO_THROW(parse_anthropic_request(J(R"({"model":"m","messages":[{"role":"user","content":"x"}]})"), true));
}

TEST(ChatRequest, PenaltiesAndLogitBiasAreHonouredFields) {
  auto r = parse_chat_request(J(R"({"model":"deepseek-v4-flash","messages":[{"role":"user","content":"Hi"}],
    "frequency_penalty":0.5,"presence_penalty":-1,"logit_bias":{"5":10,"70000":-100}})"));
  EXPECT_EQ(r.frequency_penalty, 0.5);
  EXPECT_EQ(r.presence_penalty, -1);
  ASSERT_EQ(r.logit_bias.size(), 2u);
  EXPECT_EQ(r.logit_bias[0], (std::pair<int32_t, float>{5, 10.0f}));
  EXPECT_EQ(r.logit_bias[1], (std::pair<int32_t, float>{70000, -100.0f}));
  auto bad_key = error_of([] {
    parse_chat_request(J(R"({"model":"deepseek-v4-flash","messages":[{"role":"user","content":"Hi"}],"logit_bias":{"abc":1}})"));
  });
  EXPECT_EQ(bad_key.param, "logit_bias.abc");
  EXPECT_NE(std::string(bad_key.what()).find("logit_bias"), std::string::npos);
  auto bad_value = error_of([] {
    parse_chat_request(J(R"({"model":"deepseek-v4-flash","messages":[{"role":"user","content":"Hi"}],"logit_bias":{"5":101}})"));
  });
  EXPECT_EQ(bad_value.param, "logit_bias.5");
}

// Each dialect's tool choice and output format read into the one typed shape the grammar, the
// prompt and the renderers switch on.
TEST(InternalRequest, EveryDialectsToolChoiceAndFormatReadIntoOneShape) {
  const char* tool = R"({"type":"function","function":{"name":"f","parameters":{"type":"object"}}})";
  auto chat = parse_chat_request(J((std::string(R"({"model":"m","messages":[{"role":"user","content":"x"}],"tools":[)") + tool +
                                    R"(],"tool_choice":{"type":"function","function":{"name":"f"}},
      "response_format":{"type":"json_schema","json_schema":{"name":"answer","strict":true,"schema":{"type":"object"}}}})")
                                       .c_str()));
  EXPECT_EQ(chat.tool_choice.mode, ToolChoice::Mode::named);
  EXPECT_EQ(chat.tool_choice.name, "f");
  EXPECT_TRUE(chat.tool_choice.forced());
  EXPECT_EQ(chat.output_format.kind, OutputFormat::Kind::json_schema);
  EXPECT_EQ(chat.output_format.name, "answer");
  EXPECT_TRUE(chat.output_format.strict);
  EXPECT_EQ(chat.output_format.schema, J(R"({"type":"object"})"));
  EXPECT_EQ(format_for_prompt(chat.output_format), J(R"({"type":"json_schema","schema":{"type":"object"}})"));

  auto resp = parse_responses_request(J(R"({"model":"m","input":"x","tool_choice":"none",
      "text":{"format":{"type":"json_schema","name":"flat","schema":{"type":"object"}}}})"));
  EXPECT_EQ(resp.tool_choice.mode, ToolChoice::Mode::none);
  EXPECT_FALSE(resp.tool_choice.offers_tools());
  EXPECT_EQ(resp.output_format.name, "flat");
  EXPECT_FALSE(resp.output_format.strict);

  auto anth = parse_anthropic_request(J(R"({"model":"m","max_tokens":9,"messages":[{"role":"user","content":"x"}],
      "tools":[{"name":"g","input_schema":{"type":"object"}}],"tool_choice":{"type":"tool","name":"g"},
      "output_config":{"format":{"type":"json_schema","schema":{"type":"object"}}}})"));
  EXPECT_EQ(anth.tool_choice.mode, ToolChoice::Mode::named);
  EXPECT_EQ(anth.tool_choice.name, "g");
  EXPECT_EQ(anth.output_format.kind, OutputFormat::Kind::json_schema);

  auto text = parse_chat_request(J(R"({"model":"m","messages":[{"role":"user","content":"x"}],"response_format":{"type":"text"}})"));
  EXPECT_EQ(text.output_format.kind, OutputFormat::Kind::text);
  EXPECT_EQ(text.tool_choice.mode, ToolChoice::Mode::automatic);
  EXPECT_FALSE(format_for_prompt(text.output_format));
  // A typed schema's name and strict are checked like every other field.
  auto bad = error_of([] {
    parse_chat_request(J(R"({"model":"m","messages":[{"role":"user","content":"x"}],
        "response_format":{"type":"json_schema","json_schema":{"name":"a","strict":"yes","schema":{"type":"object"}}}})"));
  });
  EXPECT_EQ(bad.param, "response_format.json_schema.strict");
}
