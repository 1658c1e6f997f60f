// Money parsing/formatting and cost arithmetic; expected values computed by hand from the product
// sheet (docs/api.md section 1: USD per 1M tokens -> nano-dollars per token = price * 1000).
#include <gtest/gtest.h>

#include "product/money.h"
#include "product/rate_card.h"

using namespace v4::product;

TEST(Money, ParsesDecimalDollarsExactly) {
  EXPECT_EQ(parse_usd("0.14"), 140'000'000);
  EXPECT_EQ(parse_usd("12"), 12'000'000'000);
  EXPECT_EQ(parse_usd("-1.5"), -1'500'000'000);
  EXPECT_EQ(parse_usd("0.000000001"), 1);
  EXPECT_EQ(parse_usd("0.1234567890"), 123'456'789);  // a trailing zero past nano is fine
  EXPECT_EQ(parse_usd("1.4E-1"), 140'000'000);        // how Boost.JSON spells the number 0.14
  EXPECT_EQ(parse_usd("1e-9"), 1);
  EXPECT_EQ(parse_usd("2.5e1"), 25'000'000'000);
  EXPECT_EQ(parse_usd(".5"), 500'000'000);
}

TEST(Money, RejectsMalformedOrTooFine) {
  for (const char* bad : {"", "-", "abc", "1.2.3", "0.0000000001", "1e", "1e-10", "12$", "1 ", "99999999999"})
    EXPECT_THROW(parse_usd(bad), std::exception) << bad;
}

TEST(Money, FormatsWithoutExponentOrTrailingZeros) {
  EXPECT_EQ(format_usd(0), "0");
  EXPECT_EQ(format_usd(26'266'000), "0.026266");
  EXPECT_EQ(format_usd(12'000'000'000), "12");
  EXPECT_EQ(format_usd(-500'000'000), "-0.5");
  EXPECT_EQ(format_usd(1), "0.000000001");
  EXPECT_EQ(format_usd(INT64_MIN), "-9223372036.854775808");
}

TEST(RateCards, DefaultsAreTheProductSheet) {
  auto cards = RateCards::defaults();
  ASSERT_EQ(cards.all().size(), 3u);
  const RateCard* flash = cards.find("deepseek-v4-flash");
  ASSERT_NE(flash, nullptr);
  EXPECT_EQ(flash->input_per_token, 140);
  EXPECT_EQ(flash->cached_input_per_token, 140);  // no cache price listed: billed as input
  EXPECT_EQ(flash->output_per_token, 280);
  EXPECT_EQ(flash->web_search_per_call, 13'000'000);
  const RateCard* v1 = cards.find("deepseek-v4-flash:variant1");
  ASSERT_NE(v1, nullptr);
  EXPECT_EQ(v1->input_per_token, 200);
  EXPECT_EQ(v1->cached_input_per_token, 200);
  EXPECT_EQ(v1->output_per_token, 400);
  EXPECT_EQ(v1->web_search_per_call, 20'000'000);
  const RateCard* v2 = cards.find("deepseek-v4-flash:variant2");
  ASSERT_NE(v2, nullptr);
  EXPECT_EQ(v2->input_per_token, 138);
  EXPECT_EQ(v2->cached_input_per_token, 28);
  EXPECT_EQ(v2->output_per_token, 275);
  EXPECT_EQ(v2->web_search_per_call, 10'000'000);
  EXPECT_EQ(cards.find("gpt-4o"), nullptr);
}

TEST(RateCards, CostIsHandComputed) {
  auto cards = RateCards::defaults();
  // 1000 uncached*140 + 500 cached*140 + 200 out*280 + 2 searches*13e6 = 26,266,000 n$ = $0.026266
  EXPECT_EQ(cost_of(*cards.find("deepseek-v4-flash"), {500, 1000, 200, 2}), 26'266'000);
  // variant2, one million of each token kind + one search: 0.138 + 0.028 + 0.275 + 0.01 = $0.451
  EXPECT_EQ(cost_of(*cards.find("deepseek-v4-flash:variant2"), {1'000'000, 1'000'000, 1'000'000, 1}), 451'000'000);
  // variant1: 3 in, 7 out = 3*200 + 7*400 = 3400 n$
  EXPECT_EQ(cost_of(*cards.find("deepseek-v4-flash:variant1"), {0, 3, 7, 0}), 3400);
  // variant2 cached share is cheaper: 100 cached = 2800 n$ vs 100 uncached = 13800 n$
  EXPECT_EQ(cost_of(*cards.find("deepseek-v4-flash:variant2"), {100, 0, 0, 0}), 2800);
  EXPECT_EQ(cost_of(*cards.find("deepseek-v4-flash:variant2"), {0, 100, 0, 0}), 13800);
  EXPECT_EQ(cost_of(*cards.find("deepseek-v4-flash"), {0, 0, 0, 0}), 0);
}

TEST(RateCards, CostRejectsNegativeAndOverflow) {
  auto card = *RateCards::defaults().find("deepseek-v4-flash");
  EXPECT_THROW(cost_of(card, {-1, 0, 0, 0}), std::invalid_argument);
  EXPECT_THROW(cost_of(card, {0, 0, INT64_MAX / 2, 0}), std::overflow_error);
}

TEST(RateCards, LoadsJsonWithStringsAndNumbers) {
  auto cards = RateCards::from_json(R"({"models": {
      "m-num": {"input": 0.14, "output": 0.28, "web_search_per_call": 0.013},
      "m-str": {"input": "0.2", "cached_input": "0.05", "output": "1", "web_search_per_call": "0.02"},
      "m-int": {"input": 3, "output": 15}}})");
  ASSERT_EQ(cards.all().size(), 3u);
  EXPECT_EQ(cards.find("m-num")->input_per_token, 140);
  EXPECT_EQ(cards.find("m-num")->cached_input_per_token, 140);
  EXPECT_EQ(cards.find("m-num")->output_per_token, 280);
  EXPECT_EQ(cards.find("m-num")->web_search_per_call, 13'000'000);
  EXPECT_EQ(cards.find("m-str")->input_per_token, 200);
  EXPECT_EQ(cards.find("m-str")->cached_input_per_token, 50);
  EXPECT_EQ(cards.find("m-str")->output_per_token, 1000);
  EXPECT_EQ(cards.find("m-str")->web_search_per_call, 20'000'000);
  EXPECT_EQ(cards.find("m-int")->input_per_token, 3000);
  EXPECT_EQ(cards.find("m-int")->web_search_per_call, 0);
}

TEST(RateCards, RejectsBadJsonWithReason) {
  auto message_of = [](const char* text) {
    try {
      RateCards::from_json(text);
    } catch (const std::invalid_argument& e) {
      return std::string(e.what());
    }
    return std::string("no error");
  };
  EXPECT_NE(message_of("{").find("rate card JSON"), std::string::npos);
  EXPECT_NE(message_of(R"({"models": {}})").find("no models"), std::string::npos);
  EXPECT_NE(message_of(R"({"models": {"m": {"input": 1}}})").find("needs"), std::string::npos);
  EXPECT_NE(message_of(R"({"models": {"m": {"input": "0.1385", "output": 1}}})").find("whole number"), std::string::npos);
  EXPECT_NE(message_of(R"({"models": {"m": {"input": 1, "output": 1, "inptu": 2}}})").find("unknown field"), std::string::npos);
  EXPECT_NE(message_of(R"({"models": {"m": {"input": -1, "output": 1}}})").find("negative"), std::string::npos);
  EXPECT_NE(message_of(R"({"models": {"m": {"input": true, "output": 1}}})").find("number"), std::string::npos);
  EXPECT_THROW(RateCards::from_file("/nonexistent/cards.json"), std::invalid_argument);
}
