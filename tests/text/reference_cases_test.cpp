// Cases whose expected output comes from DeepSeek's reference Python encoder (not from this code):
//   * official test 3 (thinking, developer + latest_reminder + search results) with its gold output,
//   * official test 4 (chat mode, action task) with the output of the reference encoder,
//   * random_cases.jsonl: 300 random conversations (all roles, tools, tool calls with random
//     argument types, tasks, wo_eos, both modes, drop_thinking on/off, effort None/high/max) and
//     200 random completions parsed by parse_message_from_completion_text.
// See encoding_cases/generate_random_cases.py for how they were produced.
#include <gtest/gtest.h>

#include <sstream>

#include "text/chat_encoder.h"
#include "text/completion_parser.h"
#include "text_test_util.h"

namespace v4::text {
namespace {
namespace json = boost::json;
using testing::read_file;

const std::string kDir = std::string(V4_SOURCE_DIR) + "/tests/text/encoding_cases/";

TEST(ReferenceCases, OfficialCaseThreeGold) {
  json::array messages = json::parse(read_file(kDir + "test_input_3.json")).as_array();
  EXPECT_EQ(encode_messages(messages, {}), read_file(kDir + "test_output_3.txt"));
}

TEST(ReferenceCases, OfficialCaseFourChatModeActionTask) {
  json::array messages = json::parse(read_file(kDir + "test_input_4.json")).as_array();
  ChatEncodeOptions chat;
  chat.mode = ThinkingMode::chat;
  EXPECT_EQ(encode_messages(messages, chat), read_file(kDir + "test_output_4_from_python_encoder.txt"));
}

TEST(ReferenceCases, RandomConversationsAndCompletions) {
  std::istringstream in(read_file(kDir + "random_cases.jsonl"));
  std::string line;
  int encode_cases = 0, parse_cases = 0, failures = 0;
  while (std::getline(in, line)) {
    json::object c = json::parse(line).as_object();
    if (c.at("kind").as_string() == "encode") {
      ++encode_cases;
      ChatEncodeOptions o;
      o.mode = c.at("mode").as_string() == "chat" ? ThinkingMode::chat : ThinkingMode::thinking;
      o.drop_thinking = c.at("drop_thinking").as_bool();
      if (c.at("reasoning_effort").is_string()) o.reasoning_effort = std::string(c.at("reasoning_effort").as_string());
      std::string got = encode_messages(c.at("messages").as_array(), o);
      if (got != c.at("expected").as_string()) {
        ++failures;
        ADD_FAILURE() << "encode case " << encode_cases << "\ninput: " << line << "\ngot:\n" << got;
      }
    } else {
      ++parse_cases;
      ParserOptions o;
      o.start_in_reasoning = c.at("thinking").as_bool();
      ParsedCompletion r = parse_completion(c.at("completion").as_string(), o);
      const json::object& e = c.at("expected").as_object();
      bool same = r.reasoning_content == e.at("reasoning_content").as_string() && r.content == e.at("content").as_string() &&
                  r.saw_eos && r.tool_calls.size() == e.at("tool_calls").as_array().size();
      for (size_t i = 0; same && i < r.tool_calls.size(); ++i) {
        const json::array& t = e.at("tool_calls").as_array()[i].as_array();
        same = r.tool_calls[i].name == t[0].as_string() && r.tool_calls[i].arguments == t[1].as_string();
      }
      if (!same) {
        ++failures;
        ADD_FAILURE() << "parse case " << parse_cases << "\ninput: " << line << "\ngot content: " << r.content
                      << "\ngot reasoning: " << r.reasoning_content << "\ncalls: " << r.tool_calls.size()
                      << (r.tool_calls.empty() ? "" : "\nfirst args: " + r.tool_calls[0].arguments);
      }
    }
    if (failures > 5) break;
  }
  EXPECT_EQ(encode_cases, 300);
  EXPECT_EQ(parse_cases, 200);
}

}  // namespace
}  // namespace v4::text
