#pragma once
// The lightning indexer's scores on FP4 codes (the model as trained: its keys and queries are FP4
// e2m1 with a power-of-two scale per 32 dims). Rows and the vector come in the packed layout of
// model/state_rows.h: n/2 bytes of codes (element 2i in the low nibble), then n/32 int8 exponents
// (value = e2m1(code) * 2^e). Per 32-dim block the codes' products are summed exactly as integers
// (the doubled codes are integers of magnitude <= 12), scaled by the two blocks' powers of two, and
// the block results added in block order: every variant gives the same bits, and each is at least
// as close to the exact dot product as an fp32 sum of the products.
#include <cstdint>

#include "kernels/formats.h"

namespace v4::kernels {

// The vector side, prepared once (a query head, for every group of keys): its doubled codes, each
// block's 2^(e - 2) (both sides doubled) and 12 * the block's sum of codes (what the panel's +12 adds).
struct Fp4Vector {
  // DeepSeek-V4's index_head_dim; a prefill chunk keeps one vector per token and head.
  static constexpr int kMaxDims = 128;
  void load(const uint8_t* v, int64_t n);  // packed, n % 32 == 0, n <= kMaxDims
  alignas(64) int8_t codes[kMaxDims];
  float scale[kMaxDims / 32];
  int32_t offset[kMaxDims / 32];
  int64_t n = 0;
};

class Fp4Panel {
 public:
  static constexpr int kRows = 16, kMaxDims = Fp4Vector::kMaxDims;

  // Up to 16 rows of n dims (n % 32 == 0, n <= kMaxDims), `stride` bytes apart; missing rows score 0.
  void load(const uint8_t* rows, int64_t nrows, int64_t stride, int64_t n);
  // out[r] = the score of row r against v (of the panel's n dims), r < 16.
  void dots(const Fp4Vector& v, float* out) const;

  // The layout the variants read (public for them): block b, quad u (dims 4u..4u+3 of the block),
  // row j: bytes [((b * 8 + u) * 16 + j) * 4, +4) hold the row's doubled codes + 12 (unsigned).
  alignas(64) uint8_t codes[kMaxDims / 32 * 8 * 16 * 4];
  alignas(64) float scales[kMaxDims / 32][kRows];  // 2^e of row j's block b (0 for missing rows)
  int64_t n = 0;
};

namespace detail {
// The doubled e2m1 value of a nibble (an integer: 0, 1, 2, 3, 4, 6, 8, 12 with the sign of bit 3).
inline int8_t e2m1_doubled(uint8_t nibble) { return int8_t(2.0f * e2m1_definition(nibble)); }
// The block results in order: out[r] = ((b0 + b1) + b2) + ..., b = float(sum) * scale_q * scale_row.
void fp4_dots_avx512(const Fp4Panel& p, const Fp4Vector& v, float* out);
void fp4_dots_avx2(const Fp4Panel& p, const Fp4Vector& v, float* out);
}  // namespace detail

}  // namespace v4::kernels
