#include "core/codecs.h"

#include <cmath>
#include <limits>

namespace v4::core {

namespace {

// Round-half-to-even of a non-negative value, independent of the FPU rounding mode.
double round_half_even(double x) {
  double lower = std::floor(x);
  double diff = x - lower;
  if (diff > 0.5) return lower + 1;
  if (diff < 0.5) return lower;
  return std::fmod(lower, 2.0) == 0 ? lower : lower + 1;
}

}  // namespace

uint16_t float_to_bf16(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  if (std::isnan(f)) return uint16_t((u >> 16) | 0x0040);  // keep it a (quiet) NaN
  u += 0x7FFF + ((u >> 16) & 1);
  return uint16_t(u >> 16);
}

float round_bf16(float f) { return bf16_to_float(float_to_bf16(f)); }

float f16_to_float(uint16_t h) {
  const uint32_t sign = (h >> 15) & 1, exponent = (h >> 10) & 0x1F, mantissa = h & 0x3FF;
  float magnitude;
  if (exponent == 0)
    magnitude = std::ldexp(float(mantissa), -24);  // subnormal: m * 2^-24
  else if (exponent == 31)
    magnitude = mantissa ? std::numeric_limits<float>::quiet_NaN() : std::numeric_limits<float>::infinity();
  else
    magnitude = std::ldexp(float(mantissa | 0x400), int(exponent) - 25);
  return sign ? -magnitude : magnitude;
}

float e4m3_to_float(uint8_t b) {
  const uint32_t sign = b >> 7, exponent = (b >> 3) & 0xF, mantissa = b & 0x7;
  if (exponent == 15 && mantissa == 7) return std::numeric_limits<float>::quiet_NaN();
  float magnitude = exponent == 0 ? std::ldexp(float(mantissa), -9)  // subnormal: m * 2^-9
                                  : std::ldexp(float(mantissa | 8), int(exponent) - 10);
  return sign ? -magnitude : magnitude;
}

uint8_t float_to_e4m3(float f) {
  const uint8_t sign = std::signbit(f) ? 0x80 : 0x00;
  if (std::isnan(f)) return sign | 0x7F;
  const double a = std::fabs(double(f));
  if (a >= 448.0) return sign | 0x7E;  // saturate (also +-inf)
  if (a < std::ldexp(1.0, -6)) {
    // Subnormal range: steps of 2^-9; a count of 8 is exactly the smallest normal (code 0x08).
    return sign | uint8_t(round_half_even(a * 512.0));
  }
  int exp2;
  std::frexp(a, &exp2);  // a = fr * 2^exp2, fr in [0.5, 1)
  int unbiased = exp2 - 1;
  double steps = round_half_even((std::ldexp(a, -unbiased) - 1.0) * 8.0);
  if (steps == 8) {
    steps = 0;
    ++unbiased;
  }
  const int biased = unbiased + 7;
  if (biased > 15 || (biased == 15 && steps == 7)) return sign | 0x7E;
  return sign | uint8_t(biased << 3) | uint8_t(steps);
}

float e8m0_to_float(uint8_t e) {
  if (e == 0xFF) return std::numeric_limits<float>::quiet_NaN();
  return std::ldexp(1.0f, int(e) - 127);
}

namespace {
constexpr float kE2m1Magnitudes[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
}

float e2m1_to_float(uint8_t nibble) {
  const float magnitude = kE2m1Magnitudes[nibble & 7];
  return (nibble & 8) ? -magnitude : magnitude;
}

uint8_t float_to_e2m1(float f) {
  const uint8_t sign = std::signbit(f) ? 0x8 : 0x0;
  if (std::isnan(f)) return 0;  // e2m1 has no NaN; callers quantise finite values
  const float a = std::fabs(f);
  if (a >= 6.0f) return sign | 7;
  // Nearest of the 8 magnitudes; on an exact tie the even code (mantissa bit 0) wins.
  uint8_t best = 0;
  for (uint8_t code = 1; code < 8; ++code) {
    const float d_new = std::fabs(a - kE2m1Magnitudes[code]), d_best = std::fabs(a - kE2m1Magnitudes[best]);
    if (d_new < d_best || (d_new == d_best && (code & 1) == 0)) best = code;
  }
  return sign | best;
}

}  // namespace v4::core
