// Exact decimal <-> nano-dollar conversion.
#include "product/money.h"

#include <cstdlib>
#include <limits>
#include <stdexcept>

namespace v4::product {

int64_t checked_mul(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r)) throw std::overflow_error("amount overflows 64-bit nano-dollars");
  return r;
}

int64_t checked_add(int64_t a, int64_t b) {
  int64_t r = 0;
  if (__builtin_add_overflow(a, b, &r)) throw std::overflow_error("amount overflows 64-bit nano-dollars");
  return r;
}

// Accepts [-]digits[.digits][(e|E)[+-]digits]; the result must be a whole number of nano-dollars.
Nanodollars parse_usd(std::string_view text) {
  auto bad = [&](const char* why) {
    return std::invalid_argument("invalid USD amount '" + std::string(text) + "': " + why);
  };
  size_t i = 0;
  bool negative = false;
  if (i < text.size() && (text[i] == '-' || text[i] == '+')) negative = text[i++] == '-';
  std::string digits;  // all mantissa digits, decimal point removed
  int64_t fraction_digits = 0;
  bool seen_point = false, seen_digit = false;
  for (; i < text.size(); ++i) {
    char c = text[i];
    if (c >= '0' && c <= '9') {
      digits += c;
      seen_digit = true;
      if (seen_point) ++fraction_digits;
    } else if (c == '.' && !seen_point) {
      seen_point = true;
    } else {
      break;
    }
  }
  if (!seen_digit) throw bad("no digits");
  int64_t exponent = 0;
  if (i < text.size() && (text[i] == 'e' || text[i] == 'E')) {
    ++i;
    bool exp_negative = false;
    if (i < text.size() && (text[i] == '-' || text[i] == '+')) exp_negative = text[i++] == '-';
    if (i >= text.size()) throw bad("empty exponent");
    for (; i < text.size(); ++i) {
      if (text[i] < '0' || text[i] > '9') throw bad("bad exponent");
      exponent = exponent * 10 + (text[i] - '0');
      if (exponent > 100) throw bad("exponent out of range");
    }
    if (exp_negative) exponent = -exponent;
  }
  if (i != text.size()) throw bad("unexpected character");
  // value = digits * 10^(exponent - fraction_digits) dollars = digits * 10^(scale) nano-dollars
  int64_t scale = exponent - fraction_digits + 9;
  while (scale < 0) {  // dropping digits is only allowed when they are zeros
    if (digits.empty()) break;
    if (digits.back() != '0') throw bad("finer than one nano-dollar");
    digits.pop_back();
    ++scale;
  }
  if (digits.empty()) return 0;
  int64_t value = 0;
  for (char c : digits) value = checked_add(checked_mul(value, 10), c - '0');
  for (; scale > 0; --scale) value = checked_mul(value, 10);
  return negative ? -value : value;
}

std::string format_usd(Nanodollars amount) {
  bool negative = amount < 0;
  uint64_t magnitude = negative ? uint64_t(0) - uint64_t(amount) : uint64_t(amount);
  uint64_t whole = magnitude / uint64_t(kNanosPerDollar), frac = magnitude % uint64_t(kNanosPerDollar);
  std::string out = negative ? "-" : "";
  out += std::to_string(whole);
  if (frac) {
    std::string f = std::to_string(frac);
    f.insert(0, 9 - f.size(), '0');
    while (f.back() == '0') f.pop_back();
    out += "." + f;
  }
  return out;
}

}  // namespace v4::product
