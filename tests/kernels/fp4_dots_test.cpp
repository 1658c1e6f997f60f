// Fp4Panel: the indexer's scores on FP4 codes, against a definition from the decoded values.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "core/codecs.h"
#include "kernels/fp4_dots.h"
#include "kernels/isa.h"

namespace v4::kernels {
namespace {

// A packed row (model/state_rows.h's fp4 layout): n/2 bytes of nibbles, n/32 exponents, padding.
std::vector<uint8_t> random_row(std::mt19937& rng, int64_t n, int64_t bytes) {
  std::vector<uint8_t> r(static_cast<size_t>(bytes), 0);
  std::uniform_int_distribution<int> byte(0, 255), exponent(-20, 20);
  for (int64_t k = 0; k < n / 2; ++k) r[size_t(k)] = uint8_t(byte(rng));
  for (int64_t b = 0; b < n / 32; ++b) r[size_t(n / 2 + b)] = uint8_t(int8_t(exponent(rng)));
  return r;
}

double value(const uint8_t* row, int64_t n, int64_t k) {
  const int8_t e = int8_t(row[n / 2 + k / 32]);
  return double(core::e2m1_to_float(uint8_t(row[k / 2] >> (k % 2 * 4)))) * std::ldexp(1.0, e);
}

// Each block's dot product exactly (double holds it), as fp32 (exact too: an integer below 2^13
// times a power of two), the blocks added in order in fp32.
float definition(const uint8_t* row, const uint8_t* v, int64_t n) {
  float s = 0;
  for (int64_t b = 0; b < n / 32; ++b) {
    double block = 0;
    for (int64_t k = b * 32; k < b * 32 + 32; ++k) block += value(row, n, k) * value(v, n, k);
    s = b == 0 ? float(block) : s + float(block);
  }
  return s;
}

TEST(Fp4Dots, EveryVariantGivesTheDefinitionsBits) {
  std::mt19937 rng(17);
  for (int64_t n : {32, 96, 128}) {
    const int64_t bytes = (n / 2 + n / 32 + 3) / 4 * 4;
    for (int64_t nrows : {1, 7, 16}) {
      std::vector<uint8_t> rows;
      for (int64_t r = 0; r < nrows; ++r) {
        const auto row = random_row(rng, n, bytes);
        rows.insert(rows.end(), row.begin(), row.end());
      }
      const auto v = random_row(rng, n, bytes);
      for (Isa isa : supported_isas()) {
        const IsaScope scope(isa);
        Fp4Panel panel;
        panel.load(rows.data(), nrows, bytes, n);
        Fp4Vector q;
        q.load(v.data(), n);
        float got[16];
        panel.dots(q, got);
        for (int64_t r = 0; r < 16; ++r) {
          const float want = r < nrows ? definition(rows.data() + r * bytes, v.data(), n) : 0.0f;
          EXPECT_EQ(std::memcmp(&got[r], &want, 4), 0)
              << isa_name(isa) << " n=" << n << " rows=" << nrows << " r=" << r << ": " << got[r] << " vs " << want;
        }
      }
    }
  }
}

TEST(Fp4Dots, ShapesOutsideThePanelAreRefused) {
  Fp4Panel panel;
  std::vector<uint8_t> rows(17 * 80);
  EXPECT_THROW(panel.load(rows.data(), 17, 80, 128), std::invalid_argument);
  EXPECT_THROW(panel.load(rows.data(), 4, 80, 100), std::invalid_argument);
  EXPECT_THROW(panel.load(rows.data(), 4, 80, 160), std::invalid_argument);
}

}  // namespace
}  // namespace v4::kernels
