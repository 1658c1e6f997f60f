// Incremental detokenizer: only complete UTF-8 comes out, split characters are held back, added
// tokens are silent unless passed through.
#include <gtest/gtest.h>

#include <algorithm>

#include "text/detokenizer.h"
#include "text_test_util.h"

namespace v4::text {
namespace {
using testing::v3_tokenizer;
using testing::v4_like_tokenizer;

bool is_valid_utf8(const std::string& s) { return sanitize_utf8(s) == s; }

TEST(Utf8, SanitizeReplacesMaximalInvalidSubparts) {
  EXPECT_EQ(sanitize_utf8("abc"), "abc");
  EXPECT_EQ(sanitize_utf8("\xC0\xAF"), "\uFFFD\uFFFD");                    // overlong
  EXPECT_EQ(sanitize_utf8("\xED\xA0\x80"), "\uFFFD\uFFFD\uFFFD");          // surrogate
  EXPECT_EQ(sanitize_utf8("\xE4\xBDx"), "\uFFFDx");                        // truncated then ASCII
  EXPECT_EQ(sanitize_utf8("\xE4\xBD"), "\uFFFD");                          // truncated at the end
  EXPECT_EQ(sanitize_utf8("\xF4\x90\x80\x80"), "\uFFFD\uFFFD\uFFFD\uFFFD");  // > U+10FFFF
  EXPECT_EQ(sanitize_utf8("\xF0\x9F\x98\x80"), "\U0001F600");
}

TEST(Utf8, CompletePrefixStopsBeforeAnUnfinishedCharacter) {
  EXPECT_EQ(complete_utf8_prefix("ab\xE4\xBD"), 2u);
  EXPECT_EQ(complete_utf8_prefix("ab\xE4\xBD\xA0"), 5u);
  EXPECT_EQ(complete_utf8_prefix("ab\xFF"), 3u);  // invalid bytes never block the stream
  EXPECT_EQ(complete_utf8_prefix("\xF0\x9F\x98"), 0u);
}

TEST(Detokenizer, StreamsMultilingualTextExactly) {
  const Tokenizer& tok = v3_tokenizer();
  const std::string text = "Hello 你好 😀👍🏽👨‍👩‍👧 e\u0301 Привет ∑ 𝔘 done";
  auto ids = tok.encode(text, /*allow_special=*/false);
  IncrementalDetokenizer detok(tok);
  std::string out;
  bool held_back_something = false;
  for (int32_t id : ids) {
    std::string piece = detok.push(id);
    EXPECT_TRUE(is_valid_utf8(piece)) << "piece with incomplete UTF-8 for id " << id;
    held_back_something |= detok.pending_bytes() > 0;
    out += piece;
  }
  out += detok.flush();
  EXPECT_EQ(out, text);
  EXPECT_TRUE(held_back_something) << "the text should contain tokens that split a character";
}

TEST(Detokenizer, AddedTokensAreSilentUnlessAsked) {
  const Tokenizer& tok = v4_like_tokenizer();
  auto ids = tok.encode("<｜User｜>hi<｜Assistant｜><think>why</think>ok<｜end▁of▁sentence｜>");
  IncrementalDetokenizer detok(tok);
  std::string out;
  for (int32_t id : ids) out += detok.push(id);
  EXPECT_EQ(out, "hi<think>why</think>ok");  // reasoning markers pass through for the parser
  IncrementalDetokenizer all(tok, DetokenizerOptions{.emit_all_special = true, .pass_through = {}});
  std::string everything;
  for (int32_t id : ids) everything += all.push(id);
  EXPECT_EQ(everything, "<｜User｜>hi<｜Assistant｜><think>why</think>ok<｜end▁of▁sentence｜>");
  IncrementalDetokenizer none(tok, DetokenizerOptions{.emit_all_special = false, .pass_through = {}});
  std::string plain;
  for (int32_t id : ids) plain += none.push(id);
  EXPECT_EQ(plain, "hiwhyok");
}

TEST(Detokenizer, DsmlMarkupReachesTheParser) {
  const Tokenizer& tok = v4_like_tokenizer();
  auto ids = tok.encode("x\n\n<｜DSML｜tool_calls>\n</｜DSML｜tool_calls>");
  ASSERT_NE(std::find(ids.begin(), ids.end(), 128825), ids.end());
  std::string out, stripped;
  IncrementalDetokenizer detok(tok);
  IncrementalDetokenizer strict(tok, DetokenizerOptions{.emit_all_special = false, .pass_through = {}, .pass_through_dsml = false});
  for (int32_t id : ids) {
    out += detok.push(id);
    stripped += strict.push(id);
  }
  EXPECT_EQ(out, "x\n\n<｜DSML｜tool_calls>\n</｜DSML｜tool_calls>");
  EXPECT_EQ(stripped, "x\n\n<tool_calls>\n</tool_calls>");
  EXPECT_EQ(testing::v3_tokenizer().added_token_ids().size(), 818u);  // spec §5: V3 has 818 added tokens
}

TEST(Detokenizer, FlushReplacesAnUnfinishedCharacter) {
  const Tokenizer& tok = v3_tokenizer();
  auto ids = tok.encode("😀", false);
  ASSERT_GT(ids.size(), 1u) << "expected the emoji to span several byte tokens";
  IncrementalDetokenizer detok(tok);
  EXPECT_EQ(detok.push(ids[0]), "");
  EXPECT_GT(detok.pending_bytes(), 0u);
  EXPECT_EQ(detok.flush(), "\uFFFD");
  EXPECT_THROW(detok.push(-1), TokenizerError);
}

}  // namespace
}  // namespace v4::text
