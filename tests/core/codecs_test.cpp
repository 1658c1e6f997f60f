// Number formats, checked against values worked out by hand from the format definitions.
#include <gtest/gtest.h>

#include <cmath>

#include "core/codecs.h"
#include "core/dequant.h"

using namespace v4::core;

TEST(Bf16, DecodesByWidening) {
  EXPECT_EQ(bf16_to_float(0x3F80), 1.0f);
  EXPECT_EQ(bf16_to_float(0xC000), -2.0f);
  EXPECT_EQ(bf16_to_float(0x3E80), 0.25f);
  EXPECT_EQ(bf16_to_float(0x3FC0), 1.5f);
  EXPECT_TRUE(std::isinf(bf16_to_float(0x7F80)));
  EXPECT_TRUE(std::isnan(bf16_to_float(0x7FC0)));
}

TEST(Bf16, RoundsToNearestEven) {
  EXPECT_EQ(float_to_bf16(1.0f), 0x3F80);
  // 1 + 2^-8 is halfway between 1 (0x3F80, even) and 1 + 2^-7 (0x3F81): stays at 1.
  EXPECT_EQ(float_to_bf16(1.0f + std::ldexp(1.0f, -8)), 0x3F80);
  // 1 + 3*2^-8 is halfway between 0x3F81 (odd) and 0x3F82 (even): goes up.
  EXPECT_EQ(float_to_bf16(1.0f + 3 * std::ldexp(1.0f, -8)), 0x3F82);
  // Just above the halfway point rounds up.
  EXPECT_EQ(float_to_bf16(1.0f + std::ldexp(1.0f, -8) + std::ldexp(1.0f, -20)), 0x3F81);
  EXPECT_EQ(float_to_bf16(-2.0f), 0xC000);
  EXPECT_TRUE(std::isnan(bf16_to_float(float_to_bf16(NAN))));
  EXPECT_EQ(round_bf16(1.0f + std::ldexp(1.0f, -9)), 1.0f);
}

TEST(F16, Decodes) {
  EXPECT_EQ(f16_to_float(0x3C00), 1.0f);
  EXPECT_EQ(f16_to_float(0xC000), -2.0f);
  EXPECT_EQ(f16_to_float(0x7BFF), 65504.0f);              // largest normal
  EXPECT_EQ(f16_to_float(0x0001), std::ldexp(1.0f, -24));  // smallest subnormal
  EXPECT_EQ(f16_to_float(0x0400), std::ldexp(1.0f, -14));  // smallest normal
  EXPECT_EQ(f16_to_float(0x3555), 0.333251953125f);
  EXPECT_TRUE(std::isinf(f16_to_float(0x7C00)));
  EXPECT_TRUE(std::isnan(f16_to_float(0x7E00)));
  EXPECT_TRUE(std::signbit(f16_to_float(0x8000)));
}

TEST(E4m3, DecodesNormalsSubnormalsAndSpecials) {
  EXPECT_EQ(e4m3_to_float(0x00), 0.0f);
  EXPECT_TRUE(std::signbit(e4m3_to_float(0x80)));
  EXPECT_EQ(e4m3_to_float(0x01), 0.001953125f);  // 1 * 2^-9
  EXPECT_EQ(e4m3_to_float(0x04), 0.0078125f);    // 4 * 2^-9
  EXPECT_EQ(e4m3_to_float(0x07), 0.013671875f);  // 7 * 2^-9
  EXPECT_EQ(e4m3_to_float(0x08), 0.015625f);     // 2^-6, smallest normal
  EXPECT_EQ(e4m3_to_float(0x38), 1.0f);          // e = 7
  EXPECT_EQ(e4m3_to_float(0x3C), 1.5f);
  EXPECT_EQ(e4m3_to_float(0x40), 2.0f);
  EXPECT_EQ(e4m3_to_float(0x77), 240.0f);  // 1.875 * 2^7
  EXPECT_EQ(e4m3_to_float(0x78), 256.0f);  // e = 15, m = 0 is finite in e4m3fn
  EXPECT_EQ(e4m3_to_float(0x7E), 448.0f);  // largest finite
  EXPECT_EQ(e4m3_to_float(0xFE), -448.0f);
  EXPECT_EQ(e4m3_to_float(0xB8), -1.0f);
  EXPECT_TRUE(std::isnan(e4m3_to_float(0x7F)));
  EXPECT_TRUE(std::isnan(e4m3_to_float(0xFF)));
}

TEST(E4m3, EncodesWithRoundHalfEvenAndSaturation) {
  EXPECT_EQ(float_to_e4m3(1.0f), 0x38);
  EXPECT_EQ(float_to_e4m3(-1.0f), 0xB8);
  EXPECT_EQ(float_to_e4m3(448.0f), 0x7E);
  EXPECT_EQ(float_to_e4m3(464.0f), 0x7E);  // past the top: saturate, not NaN
  EXPECT_EQ(float_to_e4m3(1000.0f), 0x7E);
  EXPECT_EQ(float_to_e4m3(-1000.0f), 0xFE);
  EXPECT_EQ(float_to_e4m3(INFINITY), 0x7E);
  EXPECT_EQ(float_to_e4m3(NAN) & 0x7F, 0x7F);
  EXPECT_EQ(float_to_e4m3(1.0625f), 0x38);   // tie 1.0 / 1.125 -> even mantissa (1.0)
  EXPECT_EQ(float_to_e4m3(1.1875f), 0x3A);   // tie 1.125 / 1.25 -> 1.25
  EXPECT_EQ(float_to_e4m3(1.07f), 0x39);     // nearer 1.125
  EXPECT_EQ(float_to_e4m3(1.96875f), 0x40);  // tie 1.875 / 2.0 -> 2.0 (carries into the exponent)
  EXPECT_EQ(float_to_e4m3(std::ldexp(1.0f, -10)), 0x00);      // half the smallest subnormal -> 0
  EXPECT_EQ(float_to_e4m3(3 * std::ldexp(1.0f, -10)), 0x02);  // tie 1 / 2 subnormal steps -> 2
  EXPECT_EQ(float_to_e4m3(7.5f * std::ldexp(1.0f, -9)), 0x08);  // tie 7 / 8 steps -> smallest normal
  EXPECT_EQ(float_to_e4m3(std::ldexp(1.0f, -12)), 0x00);
  EXPECT_EQ(float_to_e4m3(-std::ldexp(1.0f, -12)), 0x80);
  EXPECT_EQ(float_to_e4m3(240.0f), 0x77);
  EXPECT_EQ(float_to_e4m3(248.0f), 0x78);  // tie 240 / 256 -> 256 (even mantissa 0)
}

TEST(E4m3, EveryFiniteCodeRoundTrips) {
  for (int b = 0; b < 256; ++b) {
    if ((b & 0x7F) == 0x7F) continue;
    EXPECT_EQ(float_to_e4m3(e4m3_to_float(uint8_t(b))), b) << b;
  }
}

TEST(E8m0, PowersOfTwo) {
  EXPECT_EQ(e8m0_to_float(127), 1.0f);
  EXPECT_EQ(e8m0_to_float(128), 2.0f);
  EXPECT_EQ(e8m0_to_float(120), 0.0078125f);  // 2^-7
  EXPECT_EQ(e8m0_to_float(117), std::ldexp(1.0f, -10));
  EXPECT_EQ(e8m0_to_float(254), std::ldexp(1.0f, 127));
  EXPECT_EQ(e8m0_to_float(0), std::ldexp(1.0f, -127));  // a float subnormal, not zero
  EXPECT_GT(e8m0_to_float(0), 0.0f);
  EXPECT_TRUE(std::isnan(e8m0_to_float(0xFF)));
}

TEST(E2m1, TableOfAllSixteenCodes) {
  const float expected[16] = {0, 0.5f, 1, 1.5f, 2, 3, 4, 6, -0.0f, -0.5f, -1, -1.5f, -2, -3, -4, -6};
  for (int n = 0; n < 16; ++n) EXPECT_EQ(e2m1_to_float(uint8_t(n)), expected[n]) << n;
  EXPECT_TRUE(std::signbit(e2m1_to_float(8)));
  EXPECT_EQ(e2m1_to_float(0xF3), 1.5f);  // only the low nibble counts
}

TEST(E2m1, EncodesWithRoundHalfEvenAndSaturation) {
  EXPECT_EQ(float_to_e2m1(0.0f), 0);
  EXPECT_EQ(float_to_e2m1(0.25f), 0);  // tie 0 / 0.5 -> 0 (even code)
  EXPECT_EQ(float_to_e2m1(0.3f), 1);
  EXPECT_EQ(float_to_e2m1(0.75f), 2);  // tie 0.5 / 1 -> 1.0
  EXPECT_EQ(float_to_e2m1(1.25f), 2);  // tie 1 / 1.5 -> 1.0
  EXPECT_EQ(float_to_e2m1(1.75f), 4);  // tie 1.5 / 2 -> 2.0
  EXPECT_EQ(float_to_e2m1(2.5f), 4);   // tie 2 / 3 -> 2.0
  EXPECT_EQ(float_to_e2m1(3.5f), 6);   // tie 3 / 4 -> 4.0
  EXPECT_EQ(float_to_e2m1(5.0f), 6);   // tie 4 / 6 -> 4.0
  EXPECT_EQ(float_to_e2m1(5.1f), 7);
  EXPECT_EQ(float_to_e2m1(6.0f), 7);
  EXPECT_EQ(float_to_e2m1(100.0f), 7);  // saturates
  EXPECT_EQ(float_to_e2m1(-100.0f), 0xF);
  EXPECT_EQ(float_to_e2m1(-0.3f), 0x9);
  EXPECT_EQ(float_to_e2m1(-2.9f), 0xD);
}

namespace {
TensorView view(const char* name, DType t, std::vector<int64_t> shape, const std::vector<uint8_t>& bytes) {
  TensorView v;
  v.name = name;
  v.dtype = t;
  v.shape = std::move(shape);
  v.data = bytes.data();
  v.nbytes = bytes.size();
  return v;
}
}  // namespace

TEST(Fp8BlockScale, EdgeBlocksUseTheirOwnScale) {
  // A 130 x 129 weight: scale blocks [0,128) x [0,128), [0,128) x [128,129), [128,130) x ...
  std::vector<uint8_t> w(130 * 129, 0x38);  // every element 1.0
  w[0] = 0x40;                              // 2.0
  w[129 * 129 + 128] = 0xB8;                // -1.0, last element
  std::vector<uint8_t> s = {127, 128, 126, 130};  // scales 1, 2, 0.5, 8
  const TensorView wv = view("x.weight", DType::F8_E4M3, {130, 129}, w);
  const TensorView sv = view("x.scale", DType::F8_E8M0, {2, 2}, s);
  const auto q = describe(wv, &sv);
  ASSERT_EQ(q.encoding, Encoding::Fp8Block);
  const auto out = q.dequantize();
  auto at = [&](int r, int c) { return out[size_t(r) * 129 + size_t(c)]; };
  EXPECT_EQ(at(0, 0), 2.0f);
  EXPECT_EQ(at(127, 127), 1.0f);
  EXPECT_EQ(at(0, 128), 2.0f);    // right edge block, scale 2
  EXPECT_EQ(at(128, 0), 0.5f);    // bottom edge block, scale 0.5
  EXPECT_EQ(at(129, 127), 0.5f);
  EXPECT_EQ(at(128, 128), 8.0f);  // corner block, scale 8
  EXPECT_EQ(at(129, 128), -8.0f);
}

TEST(Fp8BlockScale, RejectsAScaleOfTheWrongShape) {
  std::vector<uint8_t> w(130 * 129, 0x38), s(2, 127);
  const TensorView wv = view("x.weight", DType::F8_E4M3, {130, 129}, w);
  const TensorView sv = view("x.scale", DType::F8_E8M0, {1, 2}, s);
  try {
    describe(wv, &sv);
    FAIL();
  } catch (const CheckpointError& e) {
    EXPECT_NE(std::string(e.what()).find("expected F8_E8M0 [2, 2]"), std::string::npos) << e.what();
  }
}

TEST(Fp4PerGroupScale, LowNibbleIsTheEvenElement) {
  // Stored [2, 32] bytes = logical [2, 64]; one scale per 32 logical elements -> scale [2, 2].
  std::vector<uint8_t> w(2 * 32, 0x00);
  w[0] = 0x21;   // element 0 = code 1 (0.5), element 1 = code 2 (1.0)
  w[15] = 0xF7;  // elements 30, 31 = 6, -6
  w[16] = 0x5C;  // elements 32, 33 = code 0xC (-2), code 5 (3)
  w[63] = 0x0B;  // row 1, elements 62, 63 = -1.5, 0
  std::vector<uint8_t> s = {128, 129, 127, 125};  // row 0: 2, 4; row 1: 1, 0.25
  const TensorView wv = view("e.weight", DType::I8, {2, 32}, w);
  const TensorView sv = view("e.scale", DType::F8_E8M0, {2, 2}, s);
  const auto q = describe(wv, &sv);
  ASSERT_EQ(q.encoding, Encoding::Fp4Packed);
  EXPECT_EQ(q.logical_shape(), (std::vector<int64_t>{2, 64}));
  const auto out = q.dequantize();
  ASSERT_EQ(out.size(), 128u);
  EXPECT_EQ(out[0], 1.0f);    // 0.5 * 2
  EXPECT_EQ(out[1], 2.0f);    // 1.0 * 2
  EXPECT_EQ(out[2], 0.0f);
  EXPECT_EQ(out[30], 12.0f);  // 6 * 2
  EXPECT_EQ(out[31], -12.0f);
  EXPECT_EQ(out[32], -8.0f);  // -2 * 4: second group of row 0
  EXPECT_EQ(out[33], 12.0f);  // 3 * 4
  EXPECT_EQ(out[64 + 62], -0.375f);  // -1.5 * 0.25
  EXPECT_EQ(out[64 + 63], 0.0f);
}

TEST(Fp4PerGroupScale, RejectsAScaleOfTheWrongShape) {
  std::vector<uint8_t> w(2 * 32, 0), s(2, 127);
  const TensorView wv = view("e.weight", DType::I8, {2, 32}, w);
  const TensorView sv = view("e.scale", DType::F8_E8M0, {2, 1}, s);
  EXPECT_THROW(describe(wv, &sv), CheckpointError);
}

TEST(PlainDecode, EveryDtype) {
  std::vector<uint8_t> f32(8), i64(16), i32(8);
  const float fv[2] = {1.5f, -3.0f};
  std::memcpy(f32.data(), fv, 8);
  const int64_t iv[2] = {-7, 123456789};
  std::memcpy(i64.data(), iv, 16);
  const int32_t jv[2] = {-2, 5};
  std::memcpy(i32.data(), jv, 8);
  std::vector<uint8_t> bf16 = {0x80, 0x3F, 0x00, 0xC0};  // little-endian 0x3F80, 0xC000
  std::vector<uint8_t> i8 = {0xFF, 0x05};
  auto decode = [](const TensorView& v) { return describe(v, nullptr).dequantize(); };
  EXPECT_EQ(decode(view("a", DType::F32, {2}, f32)), (std::vector<float>{1.5f, -3.0f}));
  EXPECT_EQ(decode(view("b", DType::I64, {2}, i64)), (std::vector<float>{-7.0f, 123456789.0f}));
  EXPECT_EQ(decode(view("c", DType::I32, {2}, i32)), (std::vector<float>{-2.0f, 5.0f}));
  EXPECT_EQ(decode(view("d", DType::BF16, {2}, bf16)), (std::vector<float>{1.0f, -2.0f}));
  EXPECT_EQ(decode(view("e", DType::I8, {2}, i8)), (std::vector<float>{-1.0f, 5.0f}));
  EXPECT_EQ(decode(view("f", DType::U8, {2}, i8)), (std::vector<float>{255.0f, 5.0f}));
  EXPECT_EQ(decode(view("g", DType::F8_E8M0, {2}, i8)).at(1), std::ldexp(1.0f, 5 - 127));
}
