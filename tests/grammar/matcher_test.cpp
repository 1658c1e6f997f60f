#include "grammar/matcher.h"

#include <gtest/gtest.h>

#include <random>

#include <boost/json.hpp>

#include "grammar/json_schema.h"
#include "grammar/token_index.h"
#include "grammar/tool_calls.h"

namespace v4::grammar {
namespace {

namespace json = boost::json;

// A small vocabulary with the shapes that matter: single bytes, structural pairs, tokens that
// close a string and go on, escapes, whole and cut UTF-8 characters, and '<' for raw text.
std::vector<std::string> small_vocabulary() {
  std::vector<std::string> v;
  for (int c = 0x20; c < 0x7F; ++c) v.emplace_back(1, char(c));
  for (const char* t : {"{\"", "\":", "\",\"", "\"}", "\"]", "true", "false", "null", "ab", "abc", "a\"", "\\n",
                        "\\u00", "12", "3.5", "e+", "\xC3\xA9", "\xC3", "\xA9", "\xE4\xB8\xAD", "\xE4\xB8", "\n",
                        "\n\n", "<\xEF\xBD\x9C", "DSML", "\xEF\xBD\x9C", "parameter", "invoke", "name=\"", "\">",
                        "\" string=\"", "</", "tool_calls>", "<|special|>", ""})
    v.emplace_back(t);
  return v;
}

// The tokens advance() takes from this state, one by one.
TokenBits brute_force(const Matcher& m, const std::vector<std::string>& vocab, const std::vector<char>& excluded) {
  TokenBits bits((vocab.size() + 63) / 64, 0);
  for (size_t t = 0; t < vocab.size(); ++t) {
    if (vocab[t].empty() || excluded[t]) continue;
    Matcher copy = m;
    if (copy.advance(vocab[t])) set_bit(bits, int32_t(t));
  }
  return bits;
}

std::vector<int32_t> ids_of(const TokenBits& bits, size_t n) {
  std::vector<int32_t> out;
  for (size_t t = 0; t < n; ++t)
    if (test_bit(bits, int32_t(t))) out.push_back(int32_t(t));
  return out;
}

// Walks random allowed tokens, checking the mask against brute force at every step; returns the text.
std::string random_walk(const std::shared_ptr<const Grammar>& g, const std::vector<std::string>& vocab,
                        const std::vector<char>& excluded, const TokenIndex& index, uint32_t seed, int max_steps) {
  Matcher m(g);
  std::mt19937 rng(seed);
  std::string text;
  TokenBits bits;
  for (int step = 0; step < max_steps; ++step) {
    m.allowed_tokens(index, bits);
    const auto allowed = ids_of(bits, vocab.size());
    EXPECT_EQ(allowed, ids_of(brute_force(m, vocab, excluded), vocab.size())) << "after '" << text << "'";
    if (allowed.empty() || (m.accepting() && rng() % 4 == 0)) break;
    const int32_t t = allowed[rng() % allowed.size()];
    EXPECT_TRUE(m.advance(vocab[t]));
    text += vocab[t];
  }
  return text;
}

TEST(Matcher, MaskEqualsTryingEveryTokenOnJsonSchemas) {
  const auto vocab = small_vocabulary();
  std::vector<char> excluded(vocab.size(), 0);
  excluded[vocab.size() - 2] = 1;  // the special token
  const TokenIndex index(vocab, excluded);
  for (const char* schema : {
           R"({"type":"object","properties":{"a":{"type":"string","maxLength":3},"b":{"type":"number"}},"required":["a"]})",
           R"({"type":"array","items":{"enum":["ab","\u00e9",true]},"maxItems":3})",
           R"({"type":"object"})",
           R"({"type":"string","maxLength":2})"}) {
    auto g = std::make_shared<const Grammar>(json_schema_grammar(json::parse(schema)));
    for (uint32_t seed = 0; seed < 20; ++seed) random_walk(g, vocab, excluded, index, seed, 40);
  }
}

TEST(Matcher, MaskEqualsTryingEveryTokenOnToolCalls) {
  const auto vocab = small_vocabulary();
  std::vector<char> excluded(vocab.size(), 0);
  const TokenIndex index(vocab, excluded);
  std::vector<ToolSpec> tools{
      {"get", json::parse(R"({"type":"object","properties":{"q":{"type":"string","maxLength":4},"n":{"type":"integer"}},"required":["q"]})")},
      {"free", json::value(nullptr)}};
  auto g = std::make_shared<const Grammar>(tool_calls_grammar(tools, false));
  for (uint32_t seed = 0; seed < 20; ++seed) random_walk(g, vocab, excluded, index, seed, 60);
}

TEST(Matcher, MaskEqualsTryingEveryTokenOnTextThenOptionalToolCalls) {
  auto vocab = small_vocabulary();
  vocab.push_back("<\xEF\xBD\x9C" "DSML\xEF\xBD\x9Ctool_calls>");  // the block's tag as one token
  std::vector<char> excluded(vocab.size(), 0);
  const TokenIndex index(vocab, excluded);
  std::vector<ToolSpec> tools{{"get", json::parse(R"({"type":"object","properties":{"q":{"type":"string","maxLength":4}},"required":["q"]})")}};
  GrammarBuilder b;
  const uint32_t root = text_then_tool_calls_rule(b, tools, true);
  auto g = std::make_shared<const Grammar>(std::move(b).build(root));
  for (uint32_t seed = 0; seed < 20; ++seed) random_walk(g, vocab, excluded, index, seed, 60);
  Matcher m(g);
  EXPECT_TRUE(m.accepting()) << "empty text is an answer";
  EXPECT_TRUE(m.advance("Sure.\n\n<\xEF\xBD\x9C" "DSML\xEF\xBD\x9Ctool_calls>\n<\xEF\xBD\x9C" "DSML\xEF\xBD\x9Cinvoke name=\"get\">\n"));
  EXPECT_FALSE(m.accepting()) << "once the block is open it must be finished";
  EXPECT_FALSE(m.advance("<\xEF\xBD\x9C" "DSML\xEF\xBD\x9Cparameter name=\"x\""));
}

TEST(Matcher, RefusedBytesLeaveTheStateAsItWas) {
  auto g = std::make_shared<const Grammar>(json_schema_grammar(json::parse(R"({"enum":["ab","ac"]})")));
  Matcher m(g);
  EXPECT_TRUE(m.advance("\"a"));
  EXPECT_FALSE(m.advance("d"));
  EXPECT_TRUE(m.advance("c\""));
  EXPECT_TRUE(m.accepting());
  EXPECT_FALSE(m.can_continue());
}

TEST(Matcher, RawTextEndsAtItsTerminatorAndStaysWithinItsLength) {
  GrammarBuilder b;
  GrammarBuilder::Seq seq{b.raw_until("</x>", 3)};
  b.literal(seq, "!");
  auto g = std::make_shared<const Grammar>(std::move(b).build(b.rule({seq})));
  auto matches = [&](std::string_view text) {
    Matcher m(g);
    return m.advance(text) && m.accepting();
  };
  EXPECT_TRUE(matches("ab</x>!"));
  EXPECT_TRUE(matches("<</</x>!")) << "false starts of the terminator are text";
  EXPECT_FALSE(matches("ab</x>c</x>!")) << "the first terminator ends the text";
  EXPECT_FALSE(matches("abcd</x>!")) << "at most 3 bytes before the terminator";
  EXPECT_TRUE(matches("\xC3\xA9</x>!"));
  EXPECT_FALSE(matches("\xB4</x>!")) << "well-formed UTF-8 only";
  EXPECT_FALSE(matches("\xC3</x>!")) << "no character cut by the terminator";
}

TEST(TokenIndex, JsonPlainCharacters) {
  EXPECT_EQ(json_plain_chars("abc"), 3);
  EXPECT_EQ(json_plain_chars("\xC3\xA9x"), 2);
  EXPECT_EQ(json_plain_chars("\xF0\x9F\x98\x80"), 1);
  EXPECT_EQ(json_plain_chars("a\"b"), -1);
  EXPECT_EQ(json_plain_chars("a\\"), -1);
  EXPECT_EQ(json_plain_chars("\n"), -1);
  EXPECT_EQ(json_plain_chars("\xC3"), -1);
  EXPECT_EQ(json_plain_chars("\xA9"), -1);
  EXPECT_EQ(json_plain_chars("\xED\xA0\x80"), -1);
}

TEST(GrammarBuilder, RefusesLeftRecursion) {
  GrammarBuilder b;
  const uint32_t r = b.declare();
  GrammarBuilder::Seq seq{GrammarBuilder::call(r)};
  b.literal(seq, "a");
  b.add_alternative(r, seq);
  b.add_alternative(r, b.literal("b"));
  EXPECT_THROW(std::move(b).build(r), std::logic_error);
}

}  // namespace
}  // namespace v4::grammar
