// Streaming completion parser: reasoning/content/tool calls as the official parser reads them,
// identical results for every split of the text into chunks, malformed DSML degrading to content.
#include <gtest/gtest.h>

#include <random>

#include <boost/json.hpp>

#include "text/completion_parser.h"

namespace v4::text {
namespace {

ParserOptions opts(bool reasoning) {
  ParserOptions o;
  o.start_in_reasoning = reasoning;
  o.make_tool_call_id = [](size_t i) { return "call_" + std::to_string(i); };
  return o;
}

struct Collected {
  std::string reasoning, content;
  std::vector<ToolCall> calls;
  int ends = 0;
  bool saw_eos = false;
  bool operator==(const Collected& o) const {
    if (reasoning != o.reasoning || content != o.content || calls.size() != o.calls.size() || ends != o.ends ||
        saw_eos != o.saw_eos)
      return false;
    for (size_t i = 0; i < calls.size(); ++i)
      if (calls[i].name != o.calls[i].name || calls[i].arguments != o.calls[i].arguments || calls[i].id != o.calls[i].id ||
          calls[i].index != o.calls[i].index)
        return false;
    return true;
  }
};

void collect(Collected& c, const std::vector<CompletionEvent>& events) {
  for (const auto& e : events) {
    switch (e.kind) {
      case CompletionEvent::Kind::reasoning_delta:
        EXPECT_FALSE(e.text.empty());
        c.reasoning += e.text;
        break;
      case CompletionEvent::Kind::content_delta:
        EXPECT_FALSE(e.text.empty());
        c.content += e.text;
        break;
      case CompletionEvent::Kind::tool_call: c.calls.push_back(e.tool_call); break;
      case CompletionEvent::Kind::end:
        ++c.ends;
        c.saw_eos = e.saw_eos;
        break;
    }
  }
}

Collected parse_in_chunks(std::string_view text, bool reasoning, const std::vector<size_t>& cuts) {
  CompletionParser p(opts(reasoning));
  Collected c;
  size_t prev = 0;
  for (size_t cut : cuts) {
    collect(c, p.feed(text.substr(prev, cut - prev)));
    prev = cut;
  }
  collect(c, p.feed(text.substr(prev)));
  collect(c, p.finish());
  collect(c, p.finish());  // idempotent
  return c;
}

const std::string kToolCompletion =
    "The user wants weather.</think>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"get_weather\">\n"
    "<｜DSML｜parameter name=\"location\" string=\"true\">Beijing \"north\"</｜DSML｜parameter>\n"
    "<｜DSML｜parameter name=\"days\" string=\"false\">3</｜DSML｜parameter>\n</｜DSML｜invoke>\n"
    "<｜DSML｜invoke name=\"search\">\n<｜DSML｜parameter name=\"query\" string=\"true\">a\nb</｜DSML｜parameter>\n"
    "</｜DSML｜invoke>\n</｜DSML｜tool_calls><｜end▁of▁sentence｜>";

TEST(CompletionParser, ReasoningContentAndEos) {
  Collected c = parse_in_chunks("Let me think.</think>The answer is 4.<｜end▁of▁sentence｜>ignored", true, {});
  EXPECT_EQ(c.reasoning, "Let me think.");
  EXPECT_EQ(c.content, "The answer is 4.");
  EXPECT_TRUE(c.saw_eos);
  EXPECT_EQ(c.ends, 1);
}

TEST(CompletionParser, ChatModeIsAllContent) {
  Collected c = parse_in_chunks("Hello </thinking> <b>x</b>", false, {});
  EXPECT_EQ(c.reasoning, "");
  EXPECT_EQ(c.content, "Hello </thinking> <b>x</b>");
  EXPECT_FALSE(c.saw_eos);
}

TEST(CompletionParser, LeadingThinkOpensReasoning) {
  Collected c = parse_in_chunks("<think>hmm</think>ok", false, {2});
  EXPECT_EQ(c.reasoning, "hmm");
  EXPECT_EQ(c.content, "ok");
}

TEST(CompletionParser, ToolCallsAsTheOfficialParserReadsThem) {
  Collected c = parse_in_chunks(kToolCompletion, true, {});
  EXPECT_EQ(c.reasoning, "The user wants weather.");
  EXPECT_EQ(c.content, "");
  ASSERT_EQ(c.calls.size(), 2u);
  EXPECT_EQ(c.calls[0].name, "get_weather");
  EXPECT_EQ(c.calls[0].arguments, R"({"location": "Beijing \"north\"", "days": 3})");
  EXPECT_EQ(c.calls[0].id, "call_0");
  EXPECT_EQ(c.calls[1].name, "search");
  EXPECT_EQ(c.calls[1].arguments, R"({"query": "a\nb"})");
  EXPECT_EQ(c.calls[1].index, 1u);
  EXPECT_TRUE(c.saw_eos);
  for (const auto& call : c.calls) EXPECT_NO_THROW(boost::json::parse(call.arguments));
}

TEST(CompletionParser, ContentBeforeToolCallsAndCallsStreamAsTheyClose) {
  std::string text = "Checking.\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n</｜DSML｜invoke>\n";
  CompletionParser p(opts(false));
  Collected c;
  collect(c, p.feed(text));
  EXPECT_EQ(c.content, "Checking.");
  ASSERT_EQ(c.calls.size(), 1u);  // emitted before the block is closed
  EXPECT_EQ(c.calls[0].arguments, "{}");
  collect(c, p.feed("</｜DSML｜tool_calls>"));
  collect(c, p.finish());
  EXPECT_EQ(c.content, "Checking.");
  EXPECT_EQ(c.ends, 1);
}

TEST(CompletionParser, MalformedDsmlDegradesToContent) {
  const std::vector<std::string> bad = {
      "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke nam=\"f\">\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>",
      "\n\n<｜DSML｜tool_calls>garbage</｜DSML｜tool_calls>",
      "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n<｜DSML｜parameter name=\"a\" string=\"maybe\">1</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>",
      "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n<｜DSML｜parameter name=\"a\" string=\"true\">1</｜DSML｜parameter>\n<｜DSML｜parameter name=\"a\" string=\"true\">2</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>",
      "\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n<｜DSML｜param",  // cut off
  };
  for (const std::string& tail : bad) {
    std::string text = "Answer" + tail;
    Collected c = parse_in_chunks(text, false, {});
    EXPECT_EQ(c.content, text) << tail;
    EXPECT_TRUE(c.calls.empty()) << tail;
    EXPECT_EQ(c.ends, 1);
  }
}

TEST(CompletionParser, DisabledToolParsingKeepsDsmlAsContent) {
  ParserOptions o = opts(false);
  o.parse_tool_calls = false;
  ParsedCompletion r = parse_completion("x\n\n<｜DSML｜tool_calls>\n</｜DSML｜tool_calls>", o);
  EXPECT_EQ(r.content, "x\n\n<｜DSML｜tool_calls>\n</｜DSML｜tool_calls>");
}

TEST(CompletionParser, NoMarkupLeaksWhileStreaming) {
  // Byte-by-byte feeding: no delta may contain a fragment of a marker.
  CompletionParser p(opts(true));
  for (char ch : kToolCompletion)
    for (const auto& e : p.feed(std::string_view(&ch, 1)))
      if (e.kind != CompletionEvent::Kind::tool_call) {
        EXPECT_EQ(e.text.find('<'), std::string::npos) << e.text;
        EXPECT_EQ(e.text.find("｜"), std::string::npos) << e.text;
      }
}

TEST(CompletionParser, SameResultForRandomChunkSplits) {
  const std::vector<std::pair<std::string, bool>> texts = {
      {kToolCompletion, true},
      {"Plan: a<b, c>d </thin k> still thinking</think>Final: x < y\n\n\n<｜end▁of", true},
      {"Use \n\n\n\n newlines and <｜DSML｜ markers ｜ and \n\n<｜DSML｜tool_call partial", false},
      {"<think>r</think>c\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n<｜DSML｜parameter name=\"x\" string=\"false\">{\"a\": [1, 2]}</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>trailing<｜end▁of▁sentence｜>", false},
      {"Answer\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\nbroken</｜DSML｜invoke>\n</｜DSML｜tool_calls> after", false},
      // Found by the fuzzer: a block broken after one emitted call, followed by a second block.
      {"a\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"f\">\n</｜DSML｜invoke>\nBAD\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"g\">\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>", false},
      {"你好😀</think>\n\n<｜DSML｜tool_calls>\n<｜DSML｜invoke name=\"g\">\n<｜DSML｜parameter name=\"q\" string=\"true\">中文</｜DSML｜parameter>\n</｜DSML｜invoke>\n</｜DSML｜tool_calls>", true},
  };
  std::mt19937 rng(42);
  for (const auto& [text, reasoning] : texts) {
    Collected whole = parse_in_chunks(text, reasoning, {});
    for (int trial = 0; trial < 300; ++trial) {
      std::vector<size_t> cuts;
      size_t n = rng() % 12;
      for (size_t i = 0; i < n; ++i) cuts.push_back(rng() % (text.size() + 1));
      if (trial % 10 == 0)  // every byte boundary
        for (size_t i = 1; i < text.size(); ++i) cuts.push_back(i);
      std::sort(cuts.begin(), cuts.end());
      Collected split = parse_in_chunks(text, reasoning, cuts);
      ASSERT_TRUE(split == whole) << "text: " << text << "\ntrial " << trial << "\nwhole content: " << whole.content
                                  << "\nsplit content: " << split.content << "\nwhole reasoning: " << whole.reasoning
                                  << "\nsplit reasoning: " << split.reasoning;
    }
  }
}

}  // namespace
}  // namespace v4::text
