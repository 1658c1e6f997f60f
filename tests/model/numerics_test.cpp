// The model's numeric building blocks on hand-computed values: FP8/FP4 rounding (RNE, saturation,
// subnormals), the power-of-two block scales, the Hadamard rotation, RoPE with the YaRN ramp.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <random>
#include <vector>

#include "core/codecs.h"
#include "model/numerics.h"

namespace v4::model {
namespace {

TEST(Numerics, RoundE4m3) {
  EXPECT_EQ(round_e4m3(448.0f), 448.0f);
  EXPECT_EQ(round_e4m3(500.0f), 448.0f);    // saturates
  EXPECT_EQ(round_e4m3(-1e9f), -448.0f);
  EXPECT_EQ(round_e4m3(0.0f), 0.0f);
  EXPECT_EQ(round_e4m3(1.0625f), 1.0f);     // tie between 1 and 1.125: even mantissa
  EXPECT_EQ(round_e4m3(1.1875f), 1.25f);    // tie between 1.125 and 1.25: even mantissa
  EXPECT_EQ(round_e4m3(1.07f), 1.125f);
  EXPECT_EQ(round_e4m3(300.0f), 288.0f);    // step 32 in [256, 448]
  EXPECT_EQ(round_e4m3(0.001953125f), 0.001953125f);  // 2^-9, smallest subnormal
  EXPECT_EQ(round_e4m3(0.0009765625f), 0.0f);          // 2^-10: tie to 0
  EXPECT_EQ(round_e4m3(0.0029296875f), 0.00390625f);   // 3*2^-10: tie to 2^-8 (even)
  EXPECT_EQ(round_e4m3(-0.0156f), -0.015625f);         // just under the smallest normal 2^-6
}

TEST(Numerics, RoundingAgreesWithTheCoreCodecs) {
  // The core layer's encoders are an independent implementation of the same rules.
  for (int i = -200000; i <= 200000; ++i) {
    const float v = float(i) * 0.00731f * (1.0f + float(i % 13) * 0.01f);
    ASSERT_EQ(round_e4m3(v), core::e4m3_to_float(core::float_to_e4m3(v))) << v;
    const float w = v * 0.01f;
    ASSERT_EQ(round_e2m1(w), core::e2m1_to_float(core::float_to_e2m1(w))) << w;
  }
}

TEST(Numerics, RoundE2m1) {
  EXPECT_EQ(round_e2m1(5.0f), 4.0f);   // tie between 4 and 6: even
  EXPECT_EQ(round_e2m1(5.1f), 6.0f);
  EXPECT_EQ(round_e2m1(2.5f), 2.0f);
  EXPECT_EQ(round_e2m1(0.25f), 0.0f);
  EXPECT_EQ(round_e2m1(0.75f), 1.0f);
  EXPECT_EQ(round_e2m1(7.0f), 6.0f);
  EXPECT_EQ(round_e2m1(-1.75f), -2.0f);
  EXPECT_EQ(round_e2m1(1.3f), 1.5f);
}

TEST(Numerics, Fp8BlockQuantisation) {
  std::vector<float> v = {1.0f, 300.0f, 0.3f, -2.0f};
  fp8_quant_dequant(v.data(), 4, 4);  // amax 300: scale 2^ceil(log2(300/448)) = 1
  EXPECT_EQ(v, (std::vector<float>{1.0f, 288.0f, 0.3125f, -2.0f}));
  v = {1000.0f, 3.0f};
  fp8_quant_dequant(v.data(), 2, 2);  // scale 4: 250 -> 256, 0.75 -> 0.75
  EXPECT_EQ(v, (std::vector<float>{1024.0f, 3.0f}));
  v = {448.0f, 1.0f};
  fp8_quant_dequant(v.data(), 2, 2);  // amax/448 = 1 exactly: scale 1, not 2
  EXPECT_EQ(v, (std::vector<float>{448.0f, 1.0f}));
  v = {0.0f, 0.0f, 5.0f, 0.0f};
  fp8_quant_dequant(v.data(), 4, 2);  // an all-zero block stays zero (amax clamped to 1e-4)
  EXPECT_EQ(v, (std::vector<float>{0.0f, 0.0f, 5.0f, 0.0f}));
}

// The fast quantiser (bit-pattern rounding) against the definition element by element: clamp
// x / scale to +-448, round_e4m3, times scale; blocks of every magnitude, ties, subnormal e4m3,
// zeros and a NaN block.
TEST(Numerics, Fp8QuantisationEqualsDefinition) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> mant(-1.0f, 1.0f);
  std::uniform_int_distribution<int> expo(-40, 40), small(0, 9);
  for (int trial = 0; trial < 2000; ++trial) {
    const int64_t block = trial % 2 ? 128 : 64, n = block * 3 + trial % 5;
    std::vector<float> x(static_cast<size_t>(n));
    const int e = expo(rng);
    for (auto& v : x) {
      v = std::ldexp(mant(rng), e - small(rng));
      if (small(rng) == 0) v = std::ldexp(std::round(v * 64.0f), e) / 64.0f;  // ties and exact values
      if (small(rng) == 1) v = 0.0f;
    }
    if (trial % 97 == 0) x[3] = std::nanf("");
    std::vector<float> expected = x;
    for (int64_t b0 = 0; b0 < n; b0 += block) {
      const int64_t b1 = std::min(n, b0 + block);
      float amax = 0;
      for (int64_t i = b0; i < b1; ++i) amax = std::max(amax, std::fabs(x[size_t(i)]));
      amax = std::max(amax, 1e-4f);
      int ex = 0;
      const float m = std::frexp(amax / 448.0f, &ex);
      const float scale = m == 0.5f ? std::ldexp(1.0f, ex - 1) : std::ldexp(1.0f, ex);
      for (int64_t i = b0; i < b1; ++i)
        expected[size_t(i)] = round_e4m3(std::clamp(x[size_t(i)] / scale, -448.0f, 448.0f)) * scale;
    }
    fp8_quant_dequant(x.data(), n, block);
    for (int64_t i = 0; i < n; ++i) {
      if (std::isnan(expected[size_t(i)])) {
        ASSERT_TRUE(std::isnan(x[size_t(i)])) << trial << " " << i;
        continue;
      }
      ASSERT_EQ(x[size_t(i)], expected[size_t(i)]) << "trial " << trial << " element " << i;
    }
  }
}

TEST(Numerics, AxpyRoundsEachElementOnce) {
  std::vector<float> x(37), y(37), expected(37);
  for (int k = 0; k < 37; ++k) {
    x[size_t(k)] = 1.0f / float(k + 3);
    y[size_t(k)] = float(k) / 7.0f;
    expected[size_t(k)] = std::fma(0.3f, x[size_t(k)], y[size_t(k)]);
  }
  axpy(0.3f, x.data(), y.data(), 37);
  EXPECT_EQ(y, expected);
}

TEST(Numerics, Fp4BlockQuantisation) {
  std::vector<float> v = {6.0f, 0.4f};
  fp4_quant_dequant(v.data(), 2, 2);  // scale 1
  EXPECT_EQ(v, (std::vector<float>{6.0f, 0.5f}));
  v = {12.0f, 1.4f, -5.0f};
  fp4_quant_dequant(v.data(), 3, 3);  // scale 2: 0.7 -> 0.5, -2.5 -> -2
  EXPECT_EQ(v, (std::vector<float>{12.0f, 1.0f, -4.0f}));
  v = {0.0f, 0.0f};
  fp4_quant_dequant(v.data(), 2, 2);
  EXPECT_EQ(v, (std::vector<float>{0.0f, 0.0f}));
}

TEST(Numerics, HadamardIsSylvesterOrderAndOrthonormal) {
  std::vector<float> v = {1, 2, 3, 4};
  hadamard_rotate(v.data(), 4);  // rows [1,1,1,1] [1,-1,1,-1] [1,1,-1,-1] [1,-1,-1,1], / 2
  EXPECT_EQ(v, (std::vector<float>{5, -1, -2, 0}));
  std::vector<float> e(8, 0.0f);
  e[0] = 1;
  hadamard_rotate(e.data(), 8);
  for (float x : e) EXPECT_FLOAT_EQ(x, 1.0f / std::sqrt(8.0f));
  EXPECT_THROW(hadamard_rotate(v.data(), 3), std::invalid_argument);
}

TEST(Numerics, RopeYarnRampForTheCompressedLayers) {
  const RopeTable yarn(64, 160000, 65536, 16, 32, 1);
  const RopeTable plain(64, 10000, 0, 16, 32, 1);
  auto angle_at_position_1 = [](const RopeTable& r, int pair) {
    std::vector<float> x(64, 0.0f);
    x[size_t(2 * pair)] = 1;
    r.apply(x.data(), 1);
    return std::atan2(double(x[size_t(2 * pair + 1)]), double(x[size_t(2 * pair)]));
  };
  // base 160000: low = 15, high = 25 (spec): pairs <= 15 keep the base frequency, >= 25 are / 16
  for (int i : {0, 7, 15, 20, 25, 31}) {
    const double f = std::pow(160000.0, -2.0 * i / 64.0);
    const double ramp = std::clamp((i - 15) / 10.0, 0.0, 1.0);
    const double want = f / 16 * ramp + f * (1 - ramp);
    EXPECT_NEAR(angle_at_position_1(yarn, i), want, 1e-6 * std::max(1.0, want)) << "pair " << i;
    EXPECT_NEAR(angle_at_position_1(plain, i), std::pow(10000.0, -2.0 * i / 64.0), 1e-6) << "pair " << i;
  }
  // inverse undoes the rotation
  std::vector<float> x(64);
  for (size_t k = 0; k < x.size(); ++k) x[k] = float(k) * 0.1f - 3;
  std::vector<float> y = x;
  yarn.apply(y.data(), 12345);
  yarn.apply(y.data(), 12345, true);
  for (size_t k = 0; k < x.size(); ++k) EXPECT_NEAR(y[k], x[k], 1e-5);
}

TEST(Numerics, DotHasAFixedOrderIndependentOfAlignment) {
  std::vector<float> a(100), b(100);
  for (size_t k = 0; k < a.size(); ++k) {
    a[k] = float(k % 7) - 3.0f;
    b[k] = float(k % 5) * 0.5f;
  }
  double want = 0;
  for (size_t k = 0; k < a.size(); ++k) want += double(a[k]) * b[k];
  EXPECT_FLOAT_EQ(dot(a.data(), b.data(), 100), float(want));
  EXPECT_EQ(dot(a.data(), b.data(), 0), 0.0f);
}

}  // namespace
}  // namespace v4::model
