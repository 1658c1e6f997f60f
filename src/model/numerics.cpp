#include "model/numerics.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>

namespace v4::model {

void rms_norm(const float* x, const float* w, int64_t n, float eps, float* y) {
  float sum = 0;
  for (int64_t i = 0; i < n; ++i) sum += x[i] * x[i];
  const float r = 1.0f / std::sqrt(sum / float(n) + eps);
  for (int64_t i = 0; i < n; ++i) y[i] = w ? w[i] * (x[i] * r) : x[i] * r;
}

namespace {
// Power-of-two scale 2^ceil(log2(v)) for positive finite v, as the reference takes it from the
// fp32 exponent bits.
float pow2_ceil(float v) {
  int e = 0;
  const float m = std::frexp(v, &e);  // v = m * 2^e, m in [0.5, 1)
  return m == 0.5f ? std::ldexp(1.0f, e - 1) : std::ldexp(1.0f, e);
}
}  // namespace

float round_e4m3(float v) {
  if (std::isnan(v)) return v;
  const float a = std::fabs(v);
  if (a >= 448.0f) return std::copysign(448.0f, v);
  float step;
  if (a < 0.015625f) {
    step = 0.001953125f;  // subnormal spacing 2^-9
  } else {
    int e = 0;
    std::frexp(a, &e);                    // a in [2^(e-1), 2^e)
    step = std::ldexp(1.0f, e - 1 - 3);  // 3 mantissa bits
  }
  const float r = std::nearbyint(a / step) * step;  // default rounding mode: to nearest even
  return std::copysign(std::min(r, 448.0f), v);
}

float round_e2m1(float v) {
  if (std::isnan(v)) return v;
  const float a = std::fabs(v);
  if (a >= 6.0f) return std::copysign(6.0f, v);
  const float step = a < 2.0f ? 0.5f : (a < 4.0f ? 1.0f : 2.0f);
  const float r = std::nearbyint(a / step) * step;
  return std::copysign(std::min(r, 6.0f), v);
}

namespace {
// round_e4m3 for |v| <= 448 without branches or libm calls: below 2^-6 e4m3 is subnormal (steps of
// 2^-9, rounded by adding and removing 2^14, whose ulp is 2^-9); above, round-to-nearest-even to
// 3 mantissa bits on the fp32 bit pattern. Same results as round_e4m3 (a test checks this).
inline uint32_t float_bits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return u;
}
inline float bits_float(uint32_t u) {
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}
inline float round_e4m3_clamped(float q) {
  const uint32_t sign = float_bits(q) & 0x80000000u;
  const float a = std::fabs(q);
  const float sub = (a + 16384.0f) - 16384.0f;
  const uint32_t u = float_bits(a);
  const float normal = bits_float((u + 0x7FFFFu + ((u >> 20) & 1u)) & 0xFFF00000u);
  const float r = std::min(a < 0.015625f ? sub : normal, 448.0f);
  return bits_float(float_bits(r) | sign);
}
}  // namespace

// The activation quantisers run on every projection's input: their loops are compiled for AVX-512,
// AVX2 and baseline x86-64 and picked at load (the build targets baseline x86-64). Integer and
// rounding operations only, no sums, so every clone gives the same bits.
#if defined(__x86_64__) && defined(__GNUC__)
#define V4_NUMERICS_LOOP __attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#else
#define V4_NUMERICS_LOOP
#endif

namespace {
// max |x[i]| over the non-NaN values of [b0, b1) as fp32 bits (the order of non-negative floats),
// and whether a NaN was among them: integer maxima, so the loop vectorises.
V4_NUMERICS_LOOP uint32_t abs_max_bits(const float* x, int64_t b0, int64_t b1, bool& has_nan) {
  uint32_t amax = 0, nan = 0;
  for (int64_t i = b0; i < b1; ++i) {
    uint32_t u;
    std::memcpy(&u, &x[i], 4);
    u &= 0x7FFFFFFFu;
    const uint32_t is_nan = u > 0x7F800000u;
    nan |= is_nan;
    const uint32_t v = is_nan ? 0u : u;
    amax = amax > v ? amax : v;
  }
  has_nan = nan != 0;
  return amax;
}

V4_NUMERICS_LOOP void fp8_round_block(float* x, int64_t b0, int64_t b1, float inv, float scale) {
  for (int64_t i = b0; i < b1; ++i) x[i] = round_e4m3_clamped(std::clamp(x[i] * inv, -448.0f, 448.0f)) * scale;
}
}  // namespace

void fp8_quant_dequant(float* x, int64_t n, int64_t block) {
  for (int64_t b0 = 0; b0 < n; b0 += block) {
    const int64_t b1 = std::min(n, b0 + block);
    bool has_nan = false;
    const uint32_t bits = abs_max_bits(x, b0, b1, has_nan);
    float amax;
    std::memcpy(&amax, &bits, 4);
    amax = std::max(amax, 1e-4f);
    const float scale = pow2_ceil(amax * (1.0f / 448.0f));
    if (has_nan || !std::isfinite(amax)) {  // the definition, element by element
      for (int64_t i = b0; i < b1; ++i) {
        const float q = std::clamp(x[i] / scale, -448.0f, 448.0f);
        x[i] = round_e4m3(q) * scale;
      }
      continue;
    }
    // x / scale == x * (1 / scale) exactly: scale is a power of two
    const float inv = 1.0f / scale;
    fp8_round_block(x, b0, b1, inv, scale);
  }
}

void fp4_quant_dequant(float* x, int64_t n, int64_t block) {
  const float min_amax = 6.0f * std::ldexp(1.0f, -126);
  for (int64_t b0 = 0; b0 < n; b0 += block) {
    const int64_t b1 = std::min(n, b0 + block);
    float amax = 0;
    for (int64_t i = b0; i < b1; ++i) amax = std::max(amax, std::fabs(x[i]));
    amax = std::max(amax, min_amax);
    const float scale = pow2_ceil(amax * (1.0f / 6.0f));
    for (int64_t i = b0; i < b1; ++i) {
      const float q = std::clamp(x[i] / scale, -6.0f, 6.0f);
      x[i] = round_e2m1(q) * scale;
    }
  }
}

void hadamard_rotate(float* x, int64_t n) {
  if (n <= 0 || (n & (n - 1)) != 0) throw std::invalid_argument("hadamard_rotate: size must be a power of two");
  for (int64_t h = 1; h < n; h *= 2) {
    for (int64_t i = 0; i < n; i += 2 * h) {
      for (int64_t j = i; j < i + h; ++j) {
        const float a = x[j], b = x[j + h];
        x[j] = a + b;
        x[j + h] = a - b;
      }
    }
  }
  const float s = 1.0f / std::sqrt(float(n));
  for (int64_t i = 0; i < n; ++i) x[i] *= s;
}

RopeTable::RopeTable(int64_t dim, double base, int64_t original_seq_len, double factor,
                     double beta_fast, double beta_slow)
    : dim_(dim), freqs_(size_t(dim / 2)) {
  const int64_t half = dim / 2;
  for (int64_t i = 0; i < half; ++i) {
    const float e = float(2 * i) / float(dim);
    freqs_[size_t(i)] = 1.0f / std::pow(float(base), e);
  }
  if (original_seq_len > 0) {
    auto correction_dim = [&](double rotations) {
      return double(dim) * std::log(double(original_seq_len) / (rotations * 2 * M_PI)) / (2 * std::log(base));
    };
    double low = std::max(std::floor(correction_dim(beta_fast)), 0.0);
    double high = std::min(std::ceil(correction_dim(beta_slow)), double(dim - 1));
    if (low == high) high += 0.001;
    for (int64_t i = 0; i < half; ++i) {
      const float ramp = std::clamp((float(i) - float(low)) / float(high - low), 0.0f, 1.0f);
      const float smooth = 1.0f - ramp;
      float& f = freqs_[size_t(i)];
      f = f / float(factor) * (1.0f - smooth) + f * smooth;
    }
  }
}

void RopeTable::apply(float* x, int64_t pos, bool inverse) const {
  const float t = float(pos);
  for (int64_t i = 0; i < dim_ / 2; ++i) {
    const float angle = t * freqs_[size_t(i)];
    const float c = std::cos(angle);
    const float s = inverse ? -std::sin(angle) : std::sin(angle);
    const float a = x[2 * i], b = x[2 * i + 1];
    x[2 * i] = a * c - b * s;
    x[2 * i + 1] = a * s + b * c;
  }
}

}  // namespace v4::model
