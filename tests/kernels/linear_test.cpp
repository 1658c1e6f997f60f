// linear(): the scalar reference against hand-computed values, and every fast variant this CPU runs
// (kernels/isa.h; the others are skipped, visibly) against the reference, batch invariance and
// thread-count independence within the variant.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <ostream>
#include <random>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "core/codecs.h"
#include "kernels/bf16_dot.h"
#include "kernels/formats.h"
#include "kernels/isa.h"
#include "kernels/linear.h"
#include "kernels/linear_internal.h"
#include "kernels/thread_pool.h"

namespace v4::kernels {
namespace {

using core::DType;

TEST(Formats, DecodersMatchFormatDefinitions) {
  EXPECT_EQ(e4m3_value(0x00), 0.0f);
  EXPECT_EQ(e4m3_value(0x38), 1.0f);          // exponent 7 = bias
  EXPECT_EQ(e4m3_value(0xB8), -1.0f);
  EXPECT_EQ(e4m3_value(0x7E), 448.0f);        // largest finite
  EXPECT_EQ(e4m3_value(0x01), 0.001953125f);  // smallest subnormal 2^-9
  EXPECT_EQ(e4m3_value(0x08), 0.015625f);     // smallest normal 2^-6
  EXPECT_EQ(e4m3_value(0x3C), 1.5f);
  EXPECT_TRUE(std::isnan(e4m3_value(0x7F)));
  EXPECT_TRUE(std::isnan(e4m3_value(0xFF)));
  const float e2m1[8] = {0.0f, 0.5f, 1.0f, 1.5f, 2.0f, 3.0f, 4.0f, 6.0f};
  for (int i = 0; i < 8; ++i) {
    EXPECT_EQ(e2m1_value(uint8_t(i)), e2m1[i]);
    EXPECT_EQ(e2m1_value(uint8_t(i | 8)), -e2m1[i]);
  }
  EXPECT_EQ(e8m0_value(127), 1.0f);
  EXPECT_EQ(e8m0_value(130), 8.0f);
  EXPECT_EQ(e8m0_value(120), 0.0078125f);
  EXPECT_TRUE(std::isnan(e8m0_value(255)));
}

TEST(Formats, TablesAgreeWithCoreCodecs) {
  for (int b = 0; b < 256; ++b) {
    const float mine = e4m3_value(uint8_t(b)), core_value = core::e4m3_to_float(uint8_t(b));
    if (std::isnan(core_value))
      EXPECT_TRUE(std::isnan(mine)) << b;
    else
      EXPECT_EQ(mine, core_value) << b;
    const float s = e8m0_value(uint8_t(b)), core_s = core::e8m0_to_float(uint8_t(b));
    if (std::isnan(core_s))
      EXPECT_TRUE(std::isnan(s)) << b;
    else
      EXPECT_EQ(s, core_s) << b;
  }
  for (int n = 0; n < 16; ++n) EXPECT_EQ(e2m1_value(uint8_t(n)), core::e2m1_to_float(uint8_t(n))) << n;
}

TEST(LinearReference, HandComputedF32AndBF16) {
  const float w[2 * 3] = {1, 2, 3, -1, 0.5f, 4};
  const float x[2 * 3] = {1, 1, 1, 2, -1, 0.25f};
  float out[4];
  linear_reference({DType::F32, w, nullptr, 2, 3}, x, 2, out);
  EXPECT_EQ(out[0], 6.0f);     // x0 . w0
  EXPECT_EQ(out[1], 3.5f);     // x0 . w1
  EXPECT_EQ(out[2], 0.75f);    // 2 - 2 + 0.75
  EXPECT_EQ(out[3], -1.5f);    // -2 - 0.5 + 1
  const uint16_t wb[3] = {0x3F80, 0x4000, 0xBFC0};  // 1, 2, -1.5
  linear_reference({DType::BF16, wb, nullptr, 1, 3}, x, 1, out);
  EXPECT_EQ(out[0], 1.5f);
}

TEST(LinearReference, HandComputedFp8BlockScales) {
  // 130 x 130: four 128x128 blocks, scale 2^(e-127) per block; edge blocks are 2 wide/tall.
  const int64_t R = 130, C = 130;
  std::vector<uint8_t> w(R * C, 0x38);  // every weight 1.0 before scaling
  const uint8_t scale[4] = {127, 128, 126, 130};  // 1, 2 (cols 128..129), 0.5 (rows 128..), 8
  std::vector<float> x(C, 1.0f);
  std::vector<float> out(R);
  linear_reference({DType::F8_E4M3, w.data(), scale, R, C}, x.data(), 1, out.data());
  EXPECT_EQ(out[0], 128.0f * 1 + 2 * 2);
  EXPECT_EQ(out[127], 132.0f);
  EXPECT_EQ(out[128], 128.0f * 0.5f + 2 * 8);
  EXPECT_EQ(out[129], 80.0f);
}

TEST(LinearReference, HandComputedFp4Nibbles) {
  // One row, 64 columns: byte 0x2F = low nibble 0xF (-6, column 0), high nibble 0x2 (1, column 1).
  std::vector<uint8_t> w(32, 0);
  w[0] = 0x2F;
  w[16] = 0x71;  // column 32: 0.5, column 33: 6 (second group, scale 4)
  const uint8_t scale[2] = {127, 129};
  std::vector<float> x(64, 0.0f);
  x[0] = 1.0f;
  x[1] = 10.0f;
  x[32] = 2.0f;
  x[33] = 1.0f;
  float out;
  linear_reference({DType::I8, w.data(), scale, 1, 64}, x.data(), 1, &out);
  EXPECT_EQ(out, -6.0f + 10.0f + 4 * (1.0f + 6.0f));
}

// Random weights of a dtype with their scales; FP8 bytes avoid the NaN codes.
struct RandomWeight {
  std::vector<uint8_t> bytes;
  std::vector<uint8_t> scale;
  Weight w;
  RandomWeight(DType t, int64_t rows, int64_t cols, uint32_t seed, int exponent_min = 118, int exponent_max = 132) {
    std::mt19937 rng(seed);
    std::uniform_int_distribution<int> byte(0, 255), exponent(exponent_min, exponent_max);
    std::normal_distribution<float> normal(0.0f, 0.5f);
    w.dtype = t;
    w.rows = rows;
    w.cols = cols;
    switch (t) {
      case DType::F32: {
        bytes.resize(size_t(rows * cols * 4));
        for (int64_t i = 0; i < rows * cols; ++i) {
          const float v = normal(rng);
          std::memcpy(&bytes[size_t(i * 4)], &v, 4);
        }
        break;
      }
      case DType::BF16: {
        bytes.resize(size_t(rows * cols * 2));
        for (int64_t i = 0; i < rows * cols; ++i) {
          const float v = normal(rng);
          uint32_t u;
          std::memcpy(&u, &v, 4);
          const uint16_t h = uint16_t(u >> 16);
          std::memcpy(&bytes[size_t(i * 2)], &h, 2);
        }
        break;
      }
      case DType::F8_E4M3: {
        bytes.resize(size_t(rows * cols));
        for (auto& b : bytes) {
          do b = uint8_t(byte(rng));
          while ((b & 0x7F) == 0x7F);
        }
        scale.resize(size_t(((rows + 127) / 128) * ((cols + 127) / 128)));
        break;
      }
      case DType::I8: {
        bytes.resize(size_t(rows * cols / 2));
        for (auto& b : bytes) b = uint8_t(byte(rng));
        scale.resize(size_t(rows * (cols / 32)));
        break;
      }
      default:
        break;
    }
    for (auto& s : scale) s = uint8_t(exponent(rng));
    w.data = bytes.data();
    w.scale = scale.empty() ? nullptr : scale.data();
  }
};

std::vector<float> random_x(int64_t n, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::vector<float> x(size_t(n * cols));
  for (auto& v : x) v = normal(rng);
  return x;
}

// Bound on the difference of two fp32 summation orders of x . w: a few ulps of sum |x_k w_k|,
// computed by the reference on |x| and the weight with its sign bits cleared.
std::vector<float> abs_dot(const RandomWeight& rw, const std::vector<float>& x, int64_t n) {
  std::vector<uint8_t> abs_bytes = rw.bytes;
  const size_t step = rw.w.dtype == DType::F32 ? 4 : rw.w.dtype == DType::BF16 ? 2 : 1;
  const uint8_t sign_bits = rw.w.dtype == DType::I8 ? 0x88 : 0x80;
  for (size_t i = step - 1; i < abs_bytes.size(); i += step) abs_bytes[i] &= uint8_t(~sign_bits);
  Weight abs_w = rw.w;
  abs_w.data = abs_bytes.data();
  std::vector<float> abs_x(x.size());
  for (size_t i = 0; i < x.size(); ++i) abs_x[i] = std::fabs(x[i]);
  std::vector<float> bound(size_t(n * rw.w.rows));
  linear_reference(abs_w, abs_x.data(), n, bound.data());
  return bound;
}

struct Shape {
  DType dtype;
  int64_t rows, cols;
};
void PrintTo(const Shape& s, std::ostream* os) {
  *os << core::dtype_name(s.dtype) << " [" << s.rows << ", " << s.cols << "]";
}

// The variants with their own kernels (scalar is the reference itself).
const Isa kFastIsas[] = {Isa::avx2, Isa::avx512, Isa::avx512bf16};

// Selects `isa` for the test's scope, or skips the test on a CPU without it.
#define V4_USE_ISA_OR_SKIP(isa)                                                                   \
  if (!isa_supported(isa)) GTEST_SKIP() << "this CPU lacks " << isa_name(isa) << " (best: "      \
                                        << isa_name(best_isa()) << ")";                           \
  const IsaScope isa_scope(isa)

using IsaShape = std::tuple<Isa, Shape>;
std::string isa_shape_name(const ::testing::TestParamInfo<IsaShape>& info) {
  const auto& [isa, s] = info.param;
  return std::string(isa_name(isa)) + "_" + std::string(core::dtype_name(s.dtype)) + "_" + std::to_string(s.rows) + "x" +
         std::to_string(s.cols);
}

// The fast path for `input` against the scalar reference over n_max rows of x: within the
// summation-order bound, bitwise batch invariant (every n computes row i as in the n_max batch) and
// independent of the thread count.
void check_fast_path(const RandomWeight& rw, const std::vector<float>& x, int64_t n_max, InputKind input) {
  const Weight& w = rw.w;
  std::vector<float> ref(size_t(n_max * w.rows));
  linear_reference(w, x.data(), n_max, ref.data());
  const auto bound = abs_dot(rw, x, n_max);

  std::vector<float> fast(size_t(n_max * w.rows));
  linear(w, x.data(), n_max, fast.data(), nullptr, input);
  const float eps = std::ldexp(1.0f, -23);
  for (size_t i = 0; i < fast.size(); ++i)
    ASSERT_NEAR(fast[i], ref[i], 2.0f * float(w.cols) * eps * bound[i] + 1e-30f) << "element " << i;

  for (int64_t n : {1, 2, 3, 4, 5, 7, 8, 16}) {
    for (int64_t start : {int64_t(0), n_max - n}) {
      std::vector<float> part(size_t(n * w.rows));
      linear(w, x.data() + start * w.cols, n, part.data(), nullptr, input);
      ASSERT_EQ(0, std::memcmp(part.data(), fast.data() + start * w.rows, part.size() * 4)) << "n=" << n;
    }
  }
  for (int threads : {2, 3, 5}) {
    ThreadPool pool(threads);
    std::vector<float> par(fast.size());
    linear(w, x.data(), n_max, par.data(), &pool, input);
    ASSERT_EQ(0, std::memcmp(par.data(), fast.data(), par.size() * 4)) << threads << " threads";
    std::vector<float> one(size_t(w.rows));
    linear(w, x.data(), 1, one.data(), &pool, input);
    ASSERT_EQ(0, std::memcmp(one.data(), fast.data(), one.size() * 4)) << threads << " threads, n=1";
  }
}

class LinearFast : public ::testing::TestWithParam<IsaShape> {};

TEST_P(LinearFast, MatchesReferenceBatchInvariantAndThreadIndependent) {
  const auto& [isa, s] = GetParam();
  V4_USE_ISA_OR_SKIP(isa);
  RandomWeight rw(s.dtype, s.rows, s.cols, 1234u + uint32_t(s.rows));
  check_fast_path(rw, random_x(21, s.cols, 99), 21, InputKind::kFp32);
}

INSTANTIATE_TEST_SUITE_P(OddShapes, LinearFast,
                         ::testing::Combine(::testing::ValuesIn(kFastIsas),
                                            ::testing::Values(Shape{DType::F8_E4M3, 200, 300}, Shape{DType::F8_E4M3, 129, 128},
                                                              Shape{DType::F8_E4M3, 3, 77}, Shape{DType::F8_E4M3, 64, 256},
                                                              Shape{DType::F8_E4M3, 20, 4100}, Shape{DType::I8, 37, 96},
                                                              Shape{DType::I8, 5, 32}, Shape{DType::I8, 40, 256},
                                                              Shape{DType::I8, 9, 4096}, Shape{DType::BF16, 33, 77},
                                                              Shape{DType::BF16, 16, 128}, Shape{DType::F32, 19, 45},
                                                              Shape{DType::F32, 17, 64}, Shape{DType::F32, 6, 1030})),
                         isa_shape_name);

// Activations as the FP8 quantiser leaves them: e4m3 values times a power of two per 128 columns,
// so every value is exactly a BF16 number.
std::vector<float> quantised_x(int64_t n, int64_t cols, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int> byte(0, 255), exponent(-12, 4);
  std::vector<float> x(size_t(n * cols));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t b = 0; b < cols; b += 128) {
      const int e = exponent(rng);
      for (int64_t k = b; k < std::min(cols, b + 128); ++k) {
        uint8_t code;
        do code = uint8_t(byte(rng));
        while ((code & 0x7F) == 0x7F);
        x[size_t(i * cols + k)] = std::ldexp(e4m3_value(code), e);
      }
    }
  return x;
}

// The avx2 variant's FP8 decode tiles (n <= 2) move each block's scale onto x and place the codes
// unscaled, as fp32 numbers or through F16C (kernels/linear_internal.h): both placements must give
// the bits of the scaled path (the matrix path, n > 2), also when a block's scaled x overflows
// (every other row here is 2^20 times larger: those blocks keep the scaled path, and a row that
// fits keeps its bits in a tile with one that does not).
TEST(LinearAvx2, Fp8DecodePlacementsKeepTheScaledBits) {
  V4_USE_ISA_OR_SKIP(Isa::avx2);
  const bool initial = detail::fp8_fp32_placement();
  for (const Shape s : {Shape{DType::F8_E4M3, 200, 300}, Shape{DType::F8_E4M3, 260, 4100}, Shape{DType::F8_E4M3, 3, 77}}) {
    RandomWeight rw(s.dtype, s.rows, s.cols, 77u + uint32_t(s.rows), 110, 134);
    auto x = random_x(21, s.cols, 5);
    for (int64_t i = 1; i < 21; i += 2)
      for (int64_t k = 0; k < s.cols; ++k) x[size_t(i * s.cols + k)] *= 0x1p20f;
    std::vector<float> outs[2];
    for (const bool fp32 : {false, true}) {
      detail::set_fp8_fp32_placement(fp32);
      check_fast_path(rw, x, 21, InputKind::kFp32);
      auto& out = outs[fp32 ? 1 : 0];
      out.resize(size_t(2 * s.rows));
      for (int64_t i = 0; i < 21; i += 2) {  // n = 2: a row that fits with one that does not
        linear(rw.w, x.data() + i * s.cols, std::min<int64_t>(2, 21 - i), out.data(), nullptr);
        std::vector<float> one(size_t(s.rows));
        linear(rw.w, x.data() + i * s.cols, 1, one.data(), nullptr);
        ASSERT_EQ(0, std::memcmp(one.data(), out.data(), one.size() * 4)) << "row " << i;
      }
    }
    EXPECT_EQ(0, std::memcmp(outs[0].data(), outs[1].data(), outs[0].size() * 4));
  }
  detail::set_fp8_fp32_placement(initial);
}

class LinearBf16Input : public ::testing::TestWithParam<IsaShape> {};

// The BF16 dot-product path (FP8 / FP4 / BF16 weights, BF16-exact x): within the summation-order bound of
// the scalar reference, bitwise batch invariant (decode tiles n <= 4 and matrix panels n > 4 give
// the same bits) and independent of the thread count. Scales stay in the range the path takes
// (E8M0 100..127); rows outside it are covered by FallbackRowsMatchReference.
TEST_P(LinearBf16Input, MatchesReferenceBatchInvariantAndThreadIndependent) {
  const auto& [isa, s] = GetParam();
  V4_USE_ISA_OR_SKIP(isa);
  RandomWeight rw(s.dtype, s.rows, s.cols, 4321u + uint32_t(s.rows), 100, 127);
  check_fast_path(rw, quantised_x(21, s.cols, 7), 21, InputKind::kBf16Exact);
}

INSTANTIATE_TEST_SUITE_P(OddShapes, LinearBf16Input,
                         ::testing::Combine(::testing::ValuesIn(kFastIsas),
                                            ::testing::Values(Shape{DType::F8_E4M3, 200, 300}, Shape{DType::F8_E4M3, 129, 128},
                                                              Shape{DType::F8_E4M3, 3, 77}, Shape{DType::F8_E4M3, 64, 256},
                                                              Shape{DType::F8_E4M3, 20, 4100}, Shape{DType::F8_E4M3, 6, 2100},
                                                              Shape{DType::I8, 37, 96}, Shape{DType::I8, 5, 32},
                                                              Shape{DType::I8, 40, 256}, Shape{DType::I8, 9, 4096},
                                                              Shape{DType::I8, 7, 2080}, Shape{DType::BF16, 33, 77},
                                                              Shape{DType::BF16, 16, 128}, Shape{DType::BF16, 40, 256},
                                                              Shape{DType::BF16, 21, 4100}, Shape{DType::BF16, 18, 2080})),
                         isa_shape_name);

// FP4 on avx512bf16 takes the VNNI integer path for rows of x that are e4m3 values times a power
// of two per 128 columns and the BF16 path for any other row (kernels/fp4_vnni.h): a batch mixing
// both keeps each row's bits whatever rows it is computed with, and both are within the
// summation-order bound of the reference.
TEST(LinearBf16Input, Fp4RowsOfBothPathsKeepTheirBits) {
  V4_USE_ISA_OR_SKIP(Isa::avx512bf16);
  for (const Shape s : {Shape{DType::I8, 40, 256}, Shape{DType::I8, 9, 4096}, Shape{DType::I8, 7, 2080}}) {
    RandomWeight rw(s.dtype, s.rows, s.cols, 99u + uint32_t(s.rows), 100, 127);
    auto x = quantised_x(21, s.cols, 11);
    std::mt19937 rng(5);
    std::normal_distribution<float> normal(0.0f, 1.0f);
    for (int64_t i = 1; i < 21; i += 3) {  // BF16 numbers of 8 significant bits spread over 2^20: no integers
      for (int64_t k = 0; k < s.cols; ++k) {
        const float v = normal(rng) * std::ldexp(1.0f, int(k % 21) - 10);
        uint32_t u;
        std::memcpy(&u, &v, 4);
        u &= 0xFFFF0000u;
        std::memcpy(&x[size_t(i * s.cols + k)], &u, 4);
      }
    }
    for (int64_t k = 0; k < s.cols; ++k) x[size_t(5 * s.cols + k)] *= 0x1p-90f;  // a scale the integer path leaves
    check_fast_path(rw, x, 21, InputKind::kBf16Exact);
  }
}

// The VNNI path's digit planes and offsets are exact: rows whose products are the largest and the
// smallest quantiser values (448 and the subnormal 2^-9, times the block's power of two) times
// e2m1 codes, at the group scales the path takes at its edges (2^-40, 2^40) and inside, sum to the
// reference's bits (every partial sum is exact in fp32 here).
TEST(LinearBf16Input, Fp4IntegerPathIsExactAtItsEdges) {
  V4_USE_ISA_OR_SKIP(Isa::avx512bf16);
  const int64_t cols = 256;
  for (uint8_t e : {uint8_t(87), uint8_t(100), uint8_t(127), uint8_t(167)}) {
    for (int shift : {-20, 0, 12}) {
      // row r: code r in column 0 (times 448) and code 15 - r in column 1 (times 2^-9); the other
      // columns hold small values times code 0, so the block's scale is set by column 0
      std::vector<uint8_t> w(size_t(16 * cols / 2), 0);
      for (int r = 0; r < 16; ++r) w[size_t(r * cols / 2)] = uint8_t(r | ((15 - r) << 4));
      std::vector<uint8_t> scale(size_t(16 * cols / 32), e);
      const Weight wt{DType::I8, w.data(), scale.data(), 16, cols};
      std::vector<float> x(size_t(3 * cols), 0.0f);
      for (int i = 0; i < 3; ++i) {
        x[size_t(i * cols)] = std::ldexp(i == 1 ? -448.0f : 448.0f, shift);
        x[size_t(i * cols + 1)] = std::ldexp(i == 2 ? -1.0f : 1.0f, shift - 9);
        for (int64_t k = 2; k < cols; ++k) x[size_t(i * cols + k)] = std::ldexp(float(k % 7) * 0.125f, shift);
      }
      for (int64_t n : {1, 3}) {
        float fast[48], ref[48];
        linear(wt, x.data(), n, fast, nullptr, InputKind::kBf16Exact);
        linear_reference(wt, x.data(), n, ref);
        for (int64_t i = 0; i < 16 * n; ++i) ASSERT_EQ(fast[i], ref[i]) << "e=" << int(e) << " shift " << shift << " out " << i;
      }
    }
  }
}

class LinearIsa : public ::testing::TestWithParam<Isa> {};
std::string isa_param_name(const ::testing::TestParamInfo<Isa>& info) { return isa_name(info.param); }

// Subnormal e4m3 weights, -0 FP4 codes and the edge scales of the BF16 path decode exactly:
// hand-made rows whose products are exact in fp32, so the fast result must equal the reference.
TEST_P(LinearIsa, EdgeCodesAndScalesAreExact) {
  V4_USE_ISA_OR_SKIP(GetParam());
  // FP8: one row per code 0x00..0xFE except NaNs, each times x = 1 in its own column, block scales
  // 2^(9-127) and 2^(10-127) (either side of where avx2 takes the vector decode), 2^(32-127),
  // 2^0 and 2^(227-127).
  for (uint8_t e : {uint8_t(9), uint8_t(10), uint8_t(32), uint8_t(127), uint8_t(227)}) {
    const int64_t cols = 128;
    std::vector<uint8_t> w(size_t(2 * cols), 0);
    for (int64_t k = 0; k < cols; ++k) w[size_t(k)] = uint8_t(k == 0x7F ? 0 : k);             // positive codes
    for (int64_t k = 0; k < cols; ++k) w[size_t(cols + k)] = uint8_t(k == 0x7F ? 0 : 0x80 | k);  // negative codes
    const uint8_t scale[1] = {e};
    const Weight wt{DType::F8_E4M3, w.data(), scale, 2, cols};
    for (int64_t pick = 0; pick < cols; ++pick) {
      std::vector<float> x(size_t(5 * cols), 0.0f);
      for (int i = 0; i < 5; ++i) x[size_t(i * cols + pick)] = 1.0f;
      for (int64_t n : {1, 5}) {
        float fast[10], ref[10];
        linear(wt, x.data(), n, fast, nullptr, InputKind::kBf16Exact);
        linear_reference(wt, x.data(), n, ref);
        for (int64_t i = 0; i < 2 * n; ++i) ASSERT_EQ(fast[i], ref[i]) << "e=" << int(e) << " code " << pick;
      }
    }
  }
  // FP4: all 16 codes in a row of 32 (second half zero), group scales 2^(1-127), 2^(2-127), 2^-10,
  // 2^0, 2^73 and 2^125 (avx2's tables take 2..252: above, 6 x 2^126 overflows).
  for (uint8_t e : {uint8_t(1), uint8_t(2), uint8_t(117), uint8_t(127), uint8_t(200), uint8_t(252)}) {
    std::vector<uint8_t> w(16, 0);
    for (int k = 0; k < 16; k += 2) w[size_t(k / 2)] = uint8_t(k | ((k + 1) << 4));
    const uint8_t scale[1] = {e};
    const Weight wt{DType::I8, w.data(), scale, 1, 32};
    for (int pick = 0; pick < 16; ++pick) {
      std::vector<float> x(size_t(5 * 32), 0.0f);
      for (int i = 0; i < 5; ++i) x[size_t(i * 32 + pick)] = 1.0f;  // products below 2^-126 would flush to zero
      for (int64_t n : {1, 5}) {
        float fast[5], ref[5];
        linear(wt, x.data(), n, fast, nullptr, InputKind::kBf16Exact);
        linear_reference(wt, x.data(), n, ref);
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(fast[i], ref[i]) << "e=" << int(e) << " code " << pick;
      }
    }
  }
}

// On avx512bf16, rows whose scales leave the BF16 path's range are computed by the scalar
// reference, per 4-row tile (FP4) or 128-row block (FP8), and the other rows are unaffected: same
// bits for every n. (The fp32 variants take those scales on their vector path: LinearBf16Input
// and LinearFast cover them.)
TEST(LinearBf16Input, FallbackRowsMatchReference) {
  V4_USE_ISA_OR_SKIP(Isa::avx512bf16);
  for (DType t : {DType::F8_E4M3, DType::I8}) {
    const int64_t rows = t == DType::I8 ? 12 : 260, cols = 256;
    RandomWeight rw(t, rows, cols, 77u, 110, 120);
    rw.scale[t == DType::I8 ? 5 * (cols / 32) + 3 : 2] = t == DType::I8 ? 0 : 31;  // FP4 row 5; FP8 block row 1
    const int64_t n_max = 9;
    const auto x = quantised_x(n_max, cols, 3);
    std::vector<float> ref(size_t(n_max * rows)), fast(size_t(n_max * rows));
    linear_reference(rw.w, x.data(), n_max, ref.data());
    linear(rw.w, x.data(), n_max, fast.data(), nullptr, InputKind::kBf16Exact);
    const int64_t fb_begin = t == DType::I8 ? 4 : 128, fb_end = t == DType::I8 ? 8 : 256;
    for (int64_t i = 0; i < n_max; ++i)
      for (int64_t r = fb_begin; r < fb_end; ++r)
        ASSERT_EQ(fast[size_t(i * rows + r)], ref[size_t(i * rows + r)]) << core::dtype_name(t) << " row " << r;
    for (int64_t n : {1, 3}) {
      std::vector<float> part(size_t(n * rows));
      linear(rw.w, x.data(), n, part.data(), nullptr, InputKind::kBf16Exact);
      ASSERT_EQ(0, std::memcmp(part.data(), fast.data(), part.size() * 4)) << core::dtype_name(t) << " n=" << n;
    }
  }
}

// PairMode::fma (kernels/bf16_dot.h): the BF16 pair products on fp32 FMAs give the dot products'
// bits on every path that uses them (BF16 weights' tiles, FP8 and FP4 matrix panels, next to the
// scalar fallback's rows), with check_fast_path's batch and thread checks in each mode. x holds
// BF16 numbers of every magnitude, subnormals included, so a flush or an FMA order that differs
// from the instruction's would show.
TEST(LinearBf16Input, PairModesGiveTheSameBits) {
  V4_USE_ISA_OR_SKIP(Isa::avx512bf16);
  if (!bf16dot::pairs_match_dot()) GTEST_SKIP() << "this CPU's FMAs do not reproduce its BF16 dot products";
  struct Restore {
    bf16dot::PairMode mode = bf16dot::pair_mode();
    ~Restore() { bf16dot::set_pair_mode(mode); }
  } restore;
  for (const Shape s : {Shape{DType::F8_E4M3, 200, 300}, Shape{DType::F8_E4M3, 20, 4100}, Shape{DType::F8_E4M3, 260, 256},
                        Shape{DType::I8, 40, 256}, Shape{DType::I8, 7, 2080}, Shape{DType::BF16, 33, 77},
                        Shape{DType::BF16, 40, 256}, Shape{DType::BF16, 21, 4100}}) {
    RandomWeight rw(s.dtype, s.rows, s.cols, 31u + uint32_t(s.rows), 100, 127);
    if (s.dtype == DType::F8_E4M3 && s.rows == 260) rw.scale[2] = 31;  // block row 1: the scalar fallback
    // FP8 takes quantised x (its path scales x by the block); FP4 and BF16 any BF16 numbers (FP4
    // then leaves the integer path), a few of them subnormal.
    auto x = quantised_x(21, s.cols, 13);
    if (s.dtype != DType::F8_E4M3) {
      std::mt19937 rng(17);
      std::normal_distribution<float> normal(0.0f, 1.0f);
      for (size_t k = 0; k < x.size(); ++k) {
        float v = normal(rng) * std::ldexp(1.0f, int(k % 29) - 14);
        if (k % 97 == 0) v = std::ldexp(normal(rng), -130);
        uint32_t u;
        std::memcpy(&u, &v, 4);
        u &= 0xFFFF0000u;
        std::memcpy(&x[k], &u, 4);
      }
    }
    std::vector<float> out[2];
    for (bf16dot::PairMode mode : {bf16dot::PairMode::dot, bf16dot::PairMode::fma}) {
      bf16dot::set_pair_mode(mode);
      SCOPED_TRACE(std::string(bf16dot::pair_mode_name(mode)) + " " + std::string(core::dtype_name(s.dtype)) + " " +
                   std::to_string(s.rows) + "x" + std::to_string(s.cols));
      check_fast_path(rw, x, 21, InputKind::kBf16Exact);
      auto& o = out[mode == bf16dot::PairMode::fma ? 1 : 0];
      o.resize(size_t(21 * s.rows));
      linear(rw.w, x.data(), 21, o.data(), nullptr, InputKind::kBf16Exact);
    }
    ASSERT_EQ(0, std::memcmp(out[0].data(), out[1].data(), out[0].size() * 4))
        << core::dtype_name(s.dtype) << " " << s.rows << "x" << s.cols;
  }
}

TEST_P(LinearIsa, ExtremeScaleExponentsDecodeExactly) {
  V4_USE_ISA_OR_SKIP(GetParam());
  // A large scale (E8M0 140 = 2^13) takes the vector decode, an extreme one (250 = 2^123, where
  // scale * 2^8 overflows) the scalar decode; both must give the reference's products, including
  // for a subnormal e4m3 weight.
  for (const auto& [e, expected] : {std::pair<uint8_t, float>{140, 0x1p13f + 0x1p4f},
                                    std::pair<uint8_t, float>{250, 0x1p123f + 0x1p114f}}) {
    std::vector<uint8_t> w(16 * 3, 0x38);  // 1.0; three rows, all with the same single block
    w[3] = 0x01;                           // subnormal 2^-9
    const uint8_t scale[1] = {e};
    std::vector<float> x(16 * 5, 0.0f);
    for (int i = 0; i < 5; ++i) {
      x[size_t(i * 16)] = 1.0f;
      x[size_t(i * 16 + 3)] = 1.0f;
    }
    const Weight wt{DType::F8_E4M3, w.data(), scale, 1, 16};
    for (int64_t n : {1, 5}) {  // fused and scratch paths
      std::vector<float> out_fast(static_cast<size_t>(n)), out_ref(static_cast<size_t>(n));
      linear(wt, x.data(), n, out_fast.data(), nullptr);
      linear_reference(wt, x.data(), n, out_ref.data());
      for (int64_t i = 0; i < n; ++i) {
        EXPECT_EQ(out_ref[size_t(i)], expected) << int(e);
        EXPECT_EQ(out_fast[size_t(i)], expected) << int(e) << " n=" << n;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Variants, LinearIsa, ::testing::ValuesIn(kFastIsas), isa_param_name);

TEST(Linear, BadInputThrows) {
  float x[64] = {}, out[4];
  uint8_t data[64] = {};
  EXPECT_THROW(linear({DType::F8_E4M3, data, nullptr, 1, 64}, x, 1, out, nullptr), std::invalid_argument);
  EXPECT_THROW(linear({DType::I8, data, data, 1, 48}, x, 1, out, nullptr), std::invalid_argument);
  EXPECT_THROW(linear({DType::I64, data, nullptr, 1, 4}, x, 1, out, nullptr), std::invalid_argument);
  EXPECT_THROW(linear({DType::F32, nullptr, nullptr, 1, 4}, x, 1, out, nullptr), std::invalid_argument);
  EXPECT_THROW(linear_reference({DType::F32, data, nullptr, 0, 4}, x, 1, out), std::invalid_argument);
}

}  // namespace
}  // namespace v4::kernels
