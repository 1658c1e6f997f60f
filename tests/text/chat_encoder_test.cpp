// V4 prompt encoding: the official fixtures byte for byte, the spec's worked examples (§6.3), the
// rules of §6.2 one by one, and Python-compatible JSON.
#include <gtest/gtest.h>

#include "text/chat_encoder.h"
#include "text_test_util.h"

namespace v4::text {
namespace {
namespace json = boost::json;
using testing::read_file;

const std::string kShared = V4_SHARED_DIR;

std::string render(std::string_view messages_json, ThinkingMode mode, std::optional<std::string> effort = std::nullopt,
                   bool drop_thinking = true) {
  ChatEncodeOptions o;
  o.mode = mode;
  o.reasoning_effort = std::move(effort);
  o.drop_thinking = drop_thinking;
  return encode_messages(json::parse(messages_json).as_array(), o);
}

TEST(ChatEncoder, OfficialCasesByteForByte) {
  for (int c : {1, 2}) {
    json::value input = json::parse(read_file(kShared + "/fixtures/encoding/test_input_" + std::to_string(c) + ".json"));
    json::array messages;
    if (input.is_array()) {
      messages = input.as_array();
    } else {
      // The official test attaches the request's tools to the first (system) message.
      messages = input.as_object().at("messages").as_array();
      messages[0].as_object()["tools"] = input.as_object().at("tools");
    }
    std::string expected = read_file(kShared + "/fixtures/encoding/test_output_" + std::to_string(c) + ".txt");
    EXPECT_EQ(encode_messages(messages, {}), expected) << "case " << c;
  }
}

TEST(ChatEncoder, SpecWorkedExamples) {
  EXPECT_EQ(render(R"([{"role":"user","content":"Hi"}])", ThinkingMode::chat),
            "<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜></think>");
  EXPECT_EQ(render(R"([{"role":"user","content":"Hi"}])", ThinkingMode::thinking),
            "<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜><think>");
  EXPECT_EQ(render(R"([{"role":"system","content":"S"},{"role":"user","content":"Q1"},
                       {"role":"assistant","reasoning_content":"R1","content":"A1"},{"role":"user","content":"Q2"}])",
                   ThinkingMode::thinking),
            "<｜begin▁of▁sentence｜>S<｜User｜>Q1<｜Assistant｜></think>A1<｜end▁of▁sentence｜><｜User｜>Q2<｜Assistant｜><think>");
}

TEST(ChatEncoder, ToolCallHistoryKeepsReasoningAndRendersDsml) {
  // §6.3's fourth example (tools present => drop_thinking off).
  std::string out = render(R"([
    {"role":"system","content":"","tools":[{"type":"function","function":{"name":"get_weather","parameters":{}}}]},
    {"role":"user","content":"Q"},
    {"role":"assistant","reasoning_content":"R","content":"","tool_calls":[{"id":"c1","type":"function","function":{"name":"get_weather","arguments":"{\"city\": \"Paris\"}"}}]},
    {"role":"tool","tool_call_id":"c1","content":"sunny"}])",
                           ThinkingMode::thinking);
  const std::string tail =
      "<｜User｜>Q<｜Assistant｜><think>R</think>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"get_weather\">\n"
      "<｜DSML｜parameter name=\"city\" string=\"true\">Paris</｜DSML｜parameter>\n</｜DSML｜invoke>\n"
      "</｜DSML｜tool_calls><｜end▁of▁sentence｜><｜User｜><tool_result>sunny</tool_result><｜Assistant｜><think>";
  ASSERT_GE(out.size(), tail.size());
  EXPECT_EQ(out.substr(out.size() - tail.size()), tail);
}

TEST(ChatEncoder, ReasoningEffortMaxOnlyInThinkingMode) {
  std::string max = render(R"([{"role":"user","content":"Hi"}])", ThinkingMode::thinking, "max");
  EXPECT_EQ(max.rfind("<｜begin▁of▁sentence｜>Reasoning Effort: Absolute maximum with no shortcuts permitted.\n", 0), 0u);
  EXPECT_NE(max.find("left unchecked.\n\n<｜User｜>Hi"), std::string::npos);
  EXPECT_EQ(render(R"([{"role":"user","content":"Hi"}])", ThinkingMode::thinking, "high"),
            render(R"([{"role":"user","content":"Hi"}])", ThinkingMode::thinking));
  EXPECT_EQ(render(R"([{"role":"user","content":"Hi"}])", ThinkingMode::chat, "max"),
            "<｜begin▁of▁sentence｜><｜User｜>Hi<｜Assistant｜></think>");
  EXPECT_THROW(render(R"([{"role":"user","content":"Hi"}])", ThinkingMode::thinking, "low"), ChatEncodingError);
}

TEST(ChatEncoder, ToolResultsMergeIntoOneUserTurnInCallOrder) {
  std::string out = render(R"([
    {"role":"user","content":"Q"},
    {"role":"assistant","content":"","tool_calls":[
      {"id":"a","type":"function","function":{"name":"f","arguments":"{}"}},
      {"id":"b","type":"function","function":{"name":"g","arguments":"{\"n\": 2, \"x\": [1, 2.5], \"s\": \"t\"}"}}]},
    {"role":"tool","tool_call_id":"b","content":"B"},
    {"role":"tool","tool_call_id":"a","content":"A"},
    {"role":"user","content":"more"}])",
                           ThinkingMode::chat);
  EXPECT_NE(out.find("<｜User｜><tool_result>A</tool_result>\n\n<tool_result>B</tool_result>\n\nmore<｜Assistant｜></think>"),
            std::string::npos)
      << out;
  EXPECT_NE(out.find("<｜DSML｜invoke name=\"f\">\n\n</｜DSML｜invoke>"), std::string::npos) << out;
  EXPECT_NE(out.find("<｜DSML｜parameter name=\"n\" string=\"false\">2</｜DSML｜parameter>\n"
                     "<｜DSML｜parameter name=\"x\" string=\"false\">[1, 2.5]</｜DSML｜parameter>\n"
                     "<｜DSML｜parameter name=\"s\" string=\"true\">t</｜DSML｜parameter>"),
            std::string::npos)
      << out;
}

TEST(ChatEncoder, InvalidArgumentsBecomeOneRawParameter) {
  std::string out = render(R"([{"role":"user","content":"Q"},
    {"role":"assistant","content":"","tool_calls":[{"id":"a","type":"function","function":{"name":"f","arguments":"not json"}}]}])",
                           ThinkingMode::chat);
  EXPECT_NE(out.find("<｜DSML｜parameter name=\"arguments\" string=\"true\">not json</｜DSML｜parameter>"), std::string::npos);
}

TEST(ChatEncoder, DeveloperLatestReminderAndTasks) {
  // developer before the last user is dropped in thinking mode with drop_thinking.
  EXPECT_EQ(render(R"([{"role":"developer","content":"D"},{"role":"user","content":"Q"}])", ThinkingMode::thinking),
            "<｜begin▁of▁sentence｜><｜User｜>Q<｜Assistant｜><think>");
  EXPECT_EQ(render(R"([{"role":"user","content":"Q"},{"role":"developer","content":"D"}])", ThinkingMode::thinking),
            "<｜begin▁of▁sentence｜><｜User｜>Q<｜User｜>D<｜Assistant｜><think>");
  EXPECT_EQ(render(R"([{"role":"user","content":"Q"},{"role":"latest_reminder","content":"L"}])", ThinkingMode::chat),
            "<｜begin▁of▁sentence｜><｜User｜>Q<｜Assistant｜></think><｜latest_reminder｜>L");
  EXPECT_EQ(render(R"([{"role":"user","content":"Q","task":"query"}])", ThinkingMode::thinking),
            "<｜begin▁of▁sentence｜><｜User｜>Q<｜query｜>");
  EXPECT_EQ(render(R"([{"role":"user","content":"Q","task":"action"}])", ThinkingMode::thinking),
            "<｜begin▁of▁sentence｜><｜User｜>Q<｜Assistant｜><think><｜action｜>");
  EXPECT_EQ(render(R"([{"role":"user","content":"Q","task":"action"}])", ThinkingMode::chat),
            "<｜begin▁of▁sentence｜><｜User｜>Q<｜Assistant｜></think><｜action｜>");
  // The assistant answering a task renders no reasoning.
  EXPECT_EQ(render(R"([{"role":"user","content":"Q","task":"title"},{"role":"assistant","content":"T"}])", ThinkingMode::thinking),
            "<｜begin▁of▁sentence｜><｜User｜>Q<｜title｜>T<｜end▁of▁sentence｜>");
  EXPECT_THROW(render(R"([{"role":"user","content":"Q","task":"nope"}])", ThinkingMode::chat), ChatEncodingError);
  EXPECT_THROW(render(R"([{"role":"wizard","content":"Q"}])", ThinkingMode::chat), ChatEncodingError);
  EXPECT_THROW(render(R"([{"role":"developer","content":""}])", ThinkingMode::chat), ChatEncodingError);
}

TEST(ChatEncoder, WoEosAndKeepThinking) {
  EXPECT_EQ(render(R"([{"role":"user","content":"Q"},{"role":"assistant","reasoning_content":"R","content":"A","wo_eos":true}])",
                   ThinkingMode::thinking),
            "<｜begin▁of▁sentence｜><｜User｜>Q<｜Assistant｜><think>R</think>A");
  // drop_thinking=false keeps history reasoning and opens <think> after every user turn.
  EXPECT_EQ(render(R"([{"role":"user","content":"Q1"},{"role":"assistant","reasoning_content":"R1","content":"A1"},{"role":"user","content":"Q2"}])",
                   ThinkingMode::thinking, std::nullopt, /*drop_thinking=*/false),
            "<｜begin▁of▁sentence｜><｜User｜>Q1<｜Assistant｜><think>R1</think>A1<｜end▁of▁sentence｜><｜User｜>Q2<｜Assistant｜><think>");
}

TEST(ChatEncoder, ResponseFormatAndAttachRequestFields) {
  json::array messages = json::parse(R"([{"role":"user","content":"Q"}])").as_array();
  json::value format = json::parse(R"({"type":"json_schema","json_schema":{"name":"x"}})");
  json::array with = attach_request_fields(messages, nullptr, &format);
  ASSERT_EQ(with.size(), 2u);
  ChatEncodeOptions chat;
  chat.mode = ThinkingMode::chat;
  EXPECT_EQ(encode_messages(with, chat),
            "<｜begin▁of▁sentence｜>\n\n## Response Format:\n\nYou MUST strictly adhere to the following schema to reply:\n"
            "{\"type\": \"json_schema\", \"json_schema\": {\"name\": \"x\"}}<｜User｜>Q<｜Assistant｜></think>");
}

TEST(PythonJson, MatchesJsonDumpsEnsureAsciiFalse) {
  // Expected strings produced by CPython 3 json.dumps(..., ensure_ascii=False).
  EXPECT_EQ(python_json_dumps(json::parse(R"({"a": 1.0, "b": [1, 2.5, 1e16, 1e-05, 0.0001, 123456789012345680.0, 100.0, 1e15, -0.0, 0.1, 1e300, 5e-324]})")),
            "{\"a\": 1.0, \"b\": [1, 2.5, 1e+16, 1e-05, 0.0001, 1.2345678901234568e+17, 100.0, 1000000000000000.0, -0.0, 0.1, 1e+300, 5e-324]}");
  EXPECT_EQ(python_json_dumps(json::parse(R"({"c": "é\n\"\\\u0001\t\u007f中", "d": null, "e": true, "f": {}, "g": [], "h": -7})")),
            "{\"c\": \"é\\n\\\"\\\\\\u0001\\t\u007f中\", \"d\": null, \"e\": true, \"f\": {}, \"g\": [], \"h\": -7}");
}

}  // namespace
}  // namespace v4::text
