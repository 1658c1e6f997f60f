#pragma once
// Rate cards: per model id, what one token (input, cached input, output) and one web-search call cost.
// Defaults are the product sheet (docs/api.md section 1); a JSON file may replace them:
//   {"models": {"deepseek-v4-flash": {"input": "0.14", "cached_input": "0.028", "output": "0.28",
//                                     "web_search_per_call": "0.013"}, ...}}
// input / cached_input / output are USD per 1M tokens, web_search_per_call is USD per call; each may
// be a JSON string or number (numbers are read by their shortest decimal spelling, never as binary
// floats). cached_input may be omitted: cached input is then billed at the input price.
#include <map>
#include <optional>
#include <string>

#include "product/money.h"

namespace v4::product {

struct RateCard {
  Nanodollars input_per_token = 0;
  Nanodollars cached_input_per_token = 0;  // == input_per_token when the sheet lists no cache price
  Nanodollars output_per_token = 0;
  Nanodollars web_search_per_call = 0;
};

// What one request consumed; prompt tokens are split into the cached and uncached parts.
struct Consumption {
  int64_t prompt_cached_tokens = 0;
  int64_t prompt_uncached_tokens = 0;
  int64_t output_tokens = 0;  // includes reasoning tokens (billed as output)
  int64_t web_search_calls = 0;
};

// Exact cost; throws std::invalid_argument for negative counts, std::overflow_error on overflow.
Nanodollars cost_of(const RateCard& card, const Consumption& used);

class RateCards {
 public:
  static RateCards defaults();                        // the product sheet's three model ids
  static RateCards from_json(const std::string& text);  // throws std::invalid_argument with the reason
  static RateCards from_file(const std::string& path);

  const RateCard* find(const std::string& model) const;  // nullptr for an unknown id
  const std::map<std::string, RateCard>& all() const { return cards_; }
  void set(const std::string& model, const RateCard& card) { cards_[model] = card; }

 private:
  std::map<std::string, RateCard> cards_;
};

}  // namespace v4::product
