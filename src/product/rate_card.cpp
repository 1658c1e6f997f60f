// Rate cards: the product sheet's prices as exact nano-dollar rates, optionally replaced from JSON.
#include "product/rate_card.h"

#include <boost/json.hpp>
#include <fstream>
#include <sstream>
#include <stdexcept>

namespace v4::product {

Nanodollars cost_of(const RateCard& card, const Consumption& used) {
  if (used.prompt_cached_tokens < 0 || used.prompt_uncached_tokens < 0 || used.output_tokens < 0 ||
      used.web_search_calls < 0)
    throw std::invalid_argument("token and call counts must not be negative");
  Nanodollars total = checked_mul(used.prompt_uncached_tokens, card.input_per_token);
  total = checked_add(total, checked_mul(used.prompt_cached_tokens, card.cached_input_per_token));
  total = checked_add(total, checked_mul(used.output_tokens, card.output_per_token));
  total = checked_add(total, checked_mul(used.web_search_calls, card.web_search_per_call));
  return total;
}

RateCards RateCards::defaults() {
  // docs/api.md section 1: USD per 1M tokens -> nano-dollars per token is the same number * 1000.
  RateCards cards;
  cards.set("deepseek-v4-flash", {/*input*/ 140, /*cached: not listed, bill as input*/ 140, /*output*/ 280,
                                  /*web search $0.013*/ 13'000'000});
  cards.set("deepseek-v4-flash:variant1", {200, 200, 400, 20'000'000});
  cards.set("deepseek-v4-flash:variant2", {138, 28, 275, 10'000'000});
  return cards;
}

namespace {

// A price as exact decimal text: strings as written, numbers by their shortest round-trip spelling.
std::string price_text(const boost::json::value& v, const std::string& where) {
  if (v.is_string()) return std::string(v.as_string());
  if (v.is_number()) return boost::json::serialize(v);
  throw std::invalid_argument(where + " must be a number or a decimal string");
}

Nanodollars per_token_from_per_million(const boost::json::value& v, const std::string& where) {
  Nanodollars per_million = parse_usd(price_text(v, where));
  if (per_million < 0) throw std::invalid_argument(where + " must not be negative");
  if (per_million % 1'000'000 != 0)
    throw std::invalid_argument(where + " is not a whole number of nano-dollars per token");
  return per_million / 1'000'000;
}

}  // namespace

RateCards RateCards::from_json(const std::string& text) {
  boost::system::error_code ec;
  boost::json::value root = boost::json::parse(text, ec);
  if (ec) throw std::invalid_argument("rate card JSON: " + ec.message());
  if (!root.is_object() || !root.as_object().contains("models") || !root.at("models").is_object())
    throw std::invalid_argument("rate card JSON needs an object \"models\": {\"<model id>\": {...}}");
  RateCards cards;
  for (const auto& [id, spec] : root.at("models").as_object()) {
    std::string model(id);
    std::string where = "rate card for '" + model + "'";
    if (!spec.is_object()) throw std::invalid_argument(where + " must be an object");
    const auto& o = spec.as_object();
    for (const auto& [field, _] : o)
      if (field != "input" && field != "cached_input" && field != "output" && field != "web_search_per_call")
        throw std::invalid_argument(where + ": unknown field '" + std::string(field) + "'");
    if (!o.contains("input") || !o.contains("output"))
      throw std::invalid_argument(where + " needs \"input\" and \"output\" (USD per 1M tokens)");
    RateCard card;
    card.input_per_token = per_token_from_per_million(o.at("input"), where + " input");
    card.output_per_token = per_token_from_per_million(o.at("output"), where + " output");
    card.cached_input_per_token = o.contains("cached_input")
                                      ? per_token_from_per_million(o.at("cached_input"), where + " cached_input")
                                      : card.input_per_token;
    if (o.contains("web_search_per_call")) {
      card.web_search_per_call = parse_usd(price_text(o.at("web_search_per_call"), where));
      if (card.web_search_per_call < 0) throw std::invalid_argument(where + " web_search_per_call is negative");
    }
    cards.set(model, card);
  }
  if (cards.all().empty()) throw std::invalid_argument("rate card JSON lists no models");
  return cards;
}

RateCards RateCards::from_file(const std::string& path) {
  std::ifstream in(path);
  if (!in) throw std::invalid_argument("cannot read rate card file '" + path + "'");
  std::stringstream ss;
  ss << in.rdbuf();
  try {
    return from_json(ss.str());
  } catch (const std::invalid_argument& e) {
    throw std::invalid_argument(path + ": " + e.what());
  }
}

const RateCard* RateCards::find(const std::string& model) const {
  auto it = cards_.find(model);
  return it == cards_.end() ? nullptr : &it->second;
}

}  // namespace v4::product
