// Server-sent events as upstreams send them: split anywhere, CRLF or LF, comments and names skipped.
#include <gtest/gtest.h>

#include "gateway/sse_parser.h"

using v4::gateway::SseParser;

TEST(SseParser, EventsSplitAnywhereComeOutWhole) {
  const std::string stream = ": ping\r\n\r\nevent: x\r\ndata: {\"a\":1}\r\n\r\ndata: one\ndata: two\n\ndata:[DONE]\n\n";
  for (size_t step = 1; step <= stream.size(); ++step) {
    SseParser p;
    std::vector<std::string> got;
    for (size_t i = 0; i < stream.size(); i += step)
      for (auto& e : p.feed(std::string_view(stream).substr(i, step))) got.push_back(e);
    ASSERT_EQ(got, (std::vector<std::string>{"{\"a\":1}", "one\ntwo", "[DONE]"})) << "step " << step;
    EXPECT_EQ(p.pending(), 0u);
  }
}

TEST(SseParser, AnUnfinishedEventIsHeld) {
  SseParser p;
  EXPECT_TRUE(p.feed("data: half").empty());
  EXPECT_GT(p.pending(), 0u);
  EXPECT_EQ(p.feed("\n\n"), (std::vector<std::string>{"half"}));
}
