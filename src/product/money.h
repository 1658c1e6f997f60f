#pragma once
// Money is an integer count of nano-dollars (1e-9 USD). Every price of the product sheet is a whole
// number of nano-dollars per token or per call, so costs are exact and never touch floating point.
#include <cstdint>
#include <string>
#include <string_view>

namespace v4::product {

using Nanodollars = int64_t;
inline constexpr Nanodollars kNanosPerDollar = 1'000'000'000;

// Parses a decimal US-dollar amount ("12", "0.013", "-1.5") into nano-dollars, exactly.
// Throws std::invalid_argument on malformed text, more than 9 decimals that are not zero, or overflow.
Nanodollars parse_usd(std::string_view text);

// Formats nano-dollars as a plain decimal ("0.000123456", "12", "-0.5"): no exponent, trailing zeros
// trimmed, valid as a JSON number literal.
std::string format_usd(Nanodollars amount);

// a * b with a std::overflow_error instead of wrap-around.
int64_t checked_mul(int64_t a, int64_t b);
int64_t checked_add(int64_t a, int64_t b);

}  // namespace v4::product
