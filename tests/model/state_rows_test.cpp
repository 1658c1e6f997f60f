// StateRows: a sequence's cached attention rows, fp32 or packed as the quantisers' codes, held in
// whole blocks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "kernels/isa.h"
#include "model/numerics.h"
#include "model/state_rows.h"

namespace v4::model {
namespace {

// Rows spanning many magnitudes (each block its own, 1e-30 .. 1e20) and some exact zeros.
std::vector<float> random_row(std::mt19937& rng, int64_t width) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  std::uniform_int_distribution<int> magnitude(-100, 66);
  std::vector<float> r(static_cast<size_t>(width));
  for (int64_t b = 0; b < width; b += 32) {
    const float scale = std::ldexp(1.0f, magnitude(rng));
    for (int64_t k = b; k < std::min(width, b + 32); ++k) r[size_t(k)] = k % 7 == 3 ? 0.0f : normal(rng) * scale;
  }
  return r;
}

bool same_bits(const float* a, const float* b, int64_t n) { return std::memcmp(a, b, size_t(n) * 4) == 0; }

// What the model stores, the quantisers' output, comes back to the same bits on every variant.
TEST(StateRows, PackedRowsDecodeToTheQuantisersBits) {
  constexpr int64_t width = 512, rope = 64, index_width = 128;
  std::mt19937 rng(21);
  StateRows entries(RowFormat::fp8, width, rope), keys(RowFormat::fp4, index_width);
  std::vector<std::vector<float>> want_entries, want_keys;
  for (int64_t i = 0; i < 150; ++i) {
    std::vector<float> e = random_row(rng, width), k = random_row(rng, index_width);
    fp8_quant_dequant(e.data(), width - rope, 64);  // as attention.cpp and compressor.cpp do
    fp4_quant_dequant(k.data(), index_width, 32);
    entries.push_back(e.data());
    keys.push_back(k.data());
    want_entries.push_back(e);
    want_keys.push_back(k);
  }
  for (kernels::Isa isa : kernels::supported_isas()) {
    const kernels::IsaScope scope(isa);
    std::vector<float> got(static_cast<size_t>(width * 16));
    for (int64_t i = 0; i < 150; ++i) {
      entries.decode(i, 1, got.data());
      EXPECT_TRUE(same_bits(got.data(), want_entries[size_t(i)].data(), width)) << kernels::isa_name(isa) << " row " << i;
    }
    for (int64_t i = 0; i + 16 <= 150; i += 16) {  // 16 rows of one block at once (the indexer's read)
      keys.decode(i, 16, got.data());
      for (int64_t r = 0; r < 16; ++r)
        EXPECT_TRUE(same_bits(got.data() + r * index_width, want_keys[size_t(i + r)].data(), index_width))
            << kernels::isa_name(isa) << " key " << i + r;
    }
  }
  // A third of fp32, under the reference's BF16 cache (1024 and 256 bytes).
  EXPECT_EQ(entries.row_bytes(), 448 + 7 + 1 + 64 * 4);
  EXPECT_EQ(keys.row_bytes(), 64 + 4);
}

// Values no quantiser made are stored as their nearest codes; NaN stays NaN in FP8.
TEST(StateRows, OtherValuesAreRounded) {
  StateRows entries(RowFormat::fp8, 64), keys(RowFormat::fp4, 32);
  std::vector<float> row(64, 1.0f);
  row[1] = 1.03f;  // between e4m3 1.0 and 1.125
  row[2] = std::nanf("");
  entries.push_back(row.data());
  keys.push_back(row.data());
  std::vector<float> got(64);
  entries.decode(0, 1, got.data());
  EXPECT_EQ(got[0], 1.0f);
  EXPECT_EQ(got[1], 1.0f);
  EXPECT_TRUE(std::isnan(got[2]));
  keys.decode(0, 1, got.data());
  EXPECT_EQ(got[0], 1.0f);
  EXPECT_EQ(got[1], 1.0f);
}

TEST(StateRows, F32RowsAreKeptVerbatim) {
  constexpr int64_t width = 24;
  std::mt19937 rng(3);
  StateRows rows(RowFormat::f32, width);
  std::vector<float> last;
  for (int64_t i = 0; i < 70; ++i) {
    last = random_row(rng, width);
    rows.push_back(last.data());
  }
  EXPECT_TRUE(same_bits(rows.f32(69), last.data(), width));
  EXPECT_EQ(rows.f32(65), rows.f32(64) + width);  // rows of one block are contiguous
}

// Memory is whole blocks: the rows' bytes plus less than one block.
TEST(StateRows, HoldsWholeBlocksAndReleasesThemOnTruncate) {
  constexpr int64_t width = 512, B = StateRows::kBlockRows;
  std::mt19937 rng(4);
  StateRows rows(RowFormat::fp8, width, 64);
  EXPECT_EQ(rows.bytes(), 0u);
  for (int64_t i = 0; i < 2 * B + 1; ++i) rows.push_back(random_row(rng, width).data());
  const size_t block = size_t(B * rows.row_bytes()), overhead = 4 * sizeof(std::vector<std::byte>);
  EXPECT_GE(rows.bytes(), 3 * block);
  EXPECT_LE(rows.bytes(), 3 * block + overhead);
  rows.truncate(B);
  EXPECT_EQ(rows.size(), B);
  EXPECT_LE(rows.bytes(), block + overhead);
  // A copy (a cloned state) appends where the original would, leaving the original as it was.
  StateRows copy = rows;
  const std::vector<float> extra = random_row(rng, width);
  copy.push_back(extra.data());
  EXPECT_EQ(copy.size(), B + 1);
  EXPECT_EQ(rows.size(), B);
  EXPECT_EQ(std::memcmp(copy.raw(B - 1), rows.raw(B - 1), size_t(rows.row_bytes())), 0);
}

TEST(StateRows, RawBytesRoundTrip) {
  std::mt19937 rng(5);
  StateRows rows(RowFormat::fp4, 128), back(RowFormat::fp4, 128);
  for (int64_t i = 0; i < 100; ++i) rows.push_back(random_row(rng, 128).data());
  for (int64_t i = 0; i < rows.size(); i += StateRows::kBlockRows)
    back.push_back_raw(rows.raw(i), std::min(StateRows::kBlockRows, rows.size() - i));
  ASSERT_EQ(back.size(), rows.size());
  for (int64_t i = 0; i < rows.size(); ++i)
    EXPECT_EQ(std::memcmp(back.raw(i), rows.raw(i), size_t(rows.row_bytes())), 0) << i;
}

TEST(StateRows, WidthsThatDoNotFitTheBlocksAreRefused) {
  EXPECT_THROW(StateRows(RowFormat::fp8, 100, 64), std::invalid_argument);
  EXPECT_THROW(StateRows(RowFormat::fp4, 48), std::invalid_argument);
  EXPECT_NO_THROW(StateRows(RowFormat::fp8, 128, 64));
}

}  // namespace
}  // namespace v4::model
