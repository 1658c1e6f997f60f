#pragma once
// Lookup-table decoders for the checkpoint's weight formats, built once from the format
// definitions (kept in kernels so the matrix code needs nothing but a load per element).
#include <array>
#include <bit>
#include <cmath>
#include <cstdint>
#include <limits>

namespace v4::kernels {

constexpr int64_t kFp8Block = 128;  // FP8 weights: one E8M0 scale per 128x128 block
constexpr int64_t kFp4Group = 32;   // FP4 weights: one E8M0 scale per 32 columns of a row

constexpr int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

namespace detail {
// FP8 e4m3fn: sign, 4 exponent bits (bias 7), 3 mantissa bits; exponent 0 is subnormal
// (m * 2^-9); 0x7F / 0xFF are NaN; no infinities.
inline float e4m3_definition(uint8_t b) {
  const int sign = b >> 7, exponent = (b >> 3) & 0xF, mantissa = b & 7;
  float v;
  if (exponent == 0xF && mantissa == 7)
    v = std::numeric_limits<float>::quiet_NaN();
  else if (exponent == 0)
    v = std::ldexp(float(mantissa), -9);
  else
    v = std::ldexp(1.0f + float(mantissa) / 8.0f, exponent - 7);
  return sign ? -v : v;
}
// FP4 e2m1 (low 4 bits): sign bit 3, magnitudes {0, 0.5, 1, 1.5, 2, 3, 4, 6}.
inline float e2m1_definition(uint8_t nibble) {
  static constexpr float magnitude[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  const float v = magnitude[nibble & 7];
  return (nibble & 8) ? -v : v;
}
// UE8M0 scale: 2^(e - 127), 0xFF is NaN.
inline float e8m0_definition(uint8_t e) {
  if (e == 0xFF) return std::numeric_limits<float>::quiet_NaN();
  return std::ldexp(1.0f, int(e) - 127);
}

template <class F, size_t N>
std::array<float, N> make_table(F f) {
  std::array<float, N> t{};
  for (size_t i = 0; i < N; ++i) t[i] = f(uint8_t(i));
  return t;
}
}  // namespace detail

inline const std::array<float, 256>& e4m3_table() {
  static const auto t = detail::make_table<decltype(&detail::e4m3_definition), 256>(&detail::e4m3_definition);
  return t;
}
inline const std::array<float, 16>& e2m1_table() {
  static const auto t = detail::make_table<decltype(&detail::e2m1_definition), 16>(&detail::e2m1_definition);
  return t;
}
inline const std::array<float, 256>& e8m0_table() {
  static const auto t = detail::make_table<decltype(&detail::e8m0_definition), 256>(&detail::e8m0_definition);
  return t;
}

// 2^e exactly (from its bits in the normal range; subnormal and out-of-range by ldexp).
inline float pow2(int e) {
  if (e < -126 || e > 127) return std::ldexp(1.0f, e);
  return std::bit_cast<float>(uint32_t(e + 127) << 23);
}

inline float e4m3_value(uint8_t b) { return e4m3_table()[b]; }
inline float e2m1_value(uint8_t nibble) { return e2m1_table()[nibble & 0xF]; }
inline float e8m0_value(uint8_t e) { return e8m0_table()[e]; }

}  // namespace v4::kernels
