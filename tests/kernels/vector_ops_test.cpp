// dot and axpy: every variant this CPU runs gives the scalar definition's bits.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/codecs.h"
#include "kernels/isa.h"
#include "kernels/vector_ops.h"

namespace v4::kernels {
namespace {

// The definition, written out: 16 partial sums of rounded products, pairwise reduction.
float dot_definition(const float* a, const float* b, int64_t n) {
  float acc[16] = {};
  for (int64_t k = 0; k < n; ++k) {
    const int64_t full = n / 16 * 16;
    const int l = k < full ? int(k % 16) : int(k - full);
    const float p = a[k] * b[k];
    acc[l] = acc[l] + p;
  }
  for (int w = 8; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  return acc[0];
}

TEST(VectorOps, EveryVariantGivesTheDefinitionsBits) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal(0.0f, 3.0f);
  for (int64_t n : {1, 7, 15, 16, 17, 33, 128, 512, 1000}) {
    std::vector<float> a(static_cast<size_t>(n)), b(static_cast<size_t>(n)), y0(static_cast<size_t>(n));
    for (auto* v : {&a, &b, &y0})
      for (auto& e : *v) e = normal(rng);
    const float want = dot_definition(a.data(), b.data(), n);
    std::vector<float> want_y = y0;
    for (int64_t k = 0; k < n; ++k) want_y[size_t(k)] = std::fma(0.37f, a[size_t(k)], want_y[size_t(k)]);
    for (Isa isa : supported_isas()) {
      const IsaScope scope(isa);
      const float got = dot(a.data(), b.data(), n);
      EXPECT_EQ(std::memcmp(&got, &want, 4), 0) << isa_name(isa) << " n=" << n << ": " << got << " vs " << want;
      std::vector<float> y = y0;
      axpy(0.37f, a.data(), y.data(), n);
      EXPECT_EQ(std::memcmp(y.data(), want_y.data(), y.size() * 4), 0) << isa_name(isa) << " n=" << n;
    }
  }
}

// dots: every row's result is dot()'s bits, in every variant, for row counts around the 16-row
// groups (and lda wider than n), and lengths with and without a partial chunk.
TEST(VectorOps, DotsGiveEachRowTheDefinitionsBits) {
  std::mt19937 rng(9);
  std::normal_distribution<float> normal(0.0f, 2.0f);
  for (int64_t n : {16, 100, 128, 512}) {
    for (int64_t rows : {1, 15, 16, 17, 64, 70}) {
      const int64_t lda = n + 3;
      std::vector<float> a(static_cast<size_t>(rows * lda)), b(static_cast<size_t>(n));
      for (auto* v : {&a, &b})
        for (auto& e : *v) e = normal(rng);
      for (Isa isa : supported_isas()) {
        const IsaScope scope(isa);
        std::vector<float> got(size_t(rows), -1.0f);
        dots(a.data(), rows, lda, b.data(), n, got.data());
        for (int64_t r = 0; r < rows; ++r) {
          const float want = dot_definition(a.data() + r * lda, b.data(), n);
          EXPECT_EQ(std::memcmp(&got[size_t(r)], &want, 4), 0)
              << isa_name(isa) << " n=" << n << " rows=" << rows << " r=" << r << ": " << got[size_t(r)] << " vs " << want;
        }
      }
    }
  }
}

// decode_e4m3 / decode_e2m1: every code times power-of-two scales (subnormal results included) is
// the scalar definition's value, on every variant, through the vector body and the tail.
TEST(VectorOps, DecodersGiveEveryCodesValue) {
  std::vector<uint8_t> codes(256 + 7);
  for (size_t k = 0; k < codes.size(); ++k) codes[k] = uint8_t(k * 37 % 256);
  for (int e : {-127, -40, -3, 0, 5, 100}) {
    const float scale = std::ldexp(1.0f, e);
    for (Isa isa : supported_isas()) {
      const IsaScope scope(isa);
      std::vector<float> got(codes.size() * 2);
      decode_e4m3(codes.data(), int64_t(codes.size()), scale, got.data());
      for (size_t k = 0; k < codes.size(); ++k) {
        const float want = core::e4m3_to_float(codes[k]) * scale;
        if (std::isnan(want))
          EXPECT_TRUE(std::isnan(got[k])) << isa_name(isa) << " code " << int(codes[k]);
        else
          EXPECT_EQ(std::memcmp(&got[k], &want, 4), 0) << isa_name(isa) << " e4m3 code " << int(codes[k]) << " e " << e;
      }
      const int64_t n = int64_t(codes.size() - 1) * 2;  // two per byte, an even count with a tail
      decode_e2m1(codes.data(), n, scale, got.data());
      for (int64_t k = 0; k < n; ++k) {
        const float want = core::e2m1_to_float(uint8_t(codes[size_t(k / 2)] >> (k % 2 * 4))) * scale;
        EXPECT_EQ(std::memcmp(&got[size_t(k)], &want, 4), 0) << isa_name(isa) << " e2m1 element " << k << " e " << e;
      }
    }
  }
}

}  // namespace
}  // namespace v4::kernels
