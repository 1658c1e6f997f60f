// The AVX2 variant of linear() (kernels/isa.h: Isa::avx2), for x86-64 CPUs without AVX-512:
// weights decoded exactly to fp32 (F16C for FP8, a permute for FP4) and multiplied with FMAs.
//
// Fixed accumulation order (linear.h): columns in chunks of 8; each output element has one 8-lane
// fp32 accumulator into which chunk c is multiply-added in order c = 0, 1, ... (the partial last
// chunk zero-padded), then the lanes are summed in one fixed tree. The decode path (n <= 2, weights
// decoded straight into the FMAs) and the matrix path (rows decoded panel by panel into L1, then
// every pair of x rows run over the panel) issue the same FMAs per element, so the result does not
// depend on n, the tile or the thread.
//
// On a core that issues four vector instructions per cycle (AMD Zen 3), the decode is what bounds
// the GEMVs, not memory, so two formats decode with fewer instructions than "decode, scale,
// multiply-add":
//  - FP8 at decode: the 128-column block's scale (a power of two) moves onto x, once per 128 rows,
//    and the tile multiply-adds the unscaled code (F8PlacedRows). The products are the same exact
//    products, so the bits are those of the scaled path, which the tile keeps for any block whose
//    scaled x would not be exact.
//  - FP4: 64 columns (two groups) at a time, vpshufb looks each code up in the group's two byte
//    tables of BF16 values already scaled (kE2m1Bf16), so a chunk is a shift or a mask of the
//    looked-up pairs (F4Rows, x re-ordered to match).
//
// Compiled for every machine: see x86/linear_avx512.cpp for the target pragma and why the
// includes and tables come before it.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>
#include <vector>

#include "kernels/aligned_vector.h"
#include "kernels/formats.h"
#include "kernels/linear_internal.h"

namespace v4::kernels::detail {
namespace {
const std::array<float, 256> kE8m0Avx2 = e8m0_table();

// BF16 bits of e2m1(n) * 2^(k - 127) for every scale byte k and code n, as two vpshufb tables: the
// low bytes [k][0][n] and the high bytes [k][1][n]. Exact for k in [kF4ScaleMin, kF4ScaleMax]
// (two significant bits, normal numbers), the scales F4Rows takes.
constexpr int kF4ScaleMin = 2, kF4ScaleMax = 252;
struct alignas(32) E2m1Bf16Tables {
  uint8_t bytes[256][2][16];
};
const E2m1Bf16Tables kE2m1Bf16 = [] {
  E2m1Bf16Tables t{};
  for (int k = kF4ScaleMin; k <= kF4ScaleMax; ++k)
    for (int n = 0; n < 16; ++n) {
      uint32_t u;
      const float v = e2m1_definition(uint8_t(n)) * std::ldexp(1.0f, k - 127);
      std::memcpy(&u, &v, 4);
      t.bytes[k][0][n] = uint8_t(u >> 16);
      t.bytes[k][1][n] = uint8_t(u >> 24);
    }
  return t;
}();
}  // namespace
}  // namespace v4::kernels::detail

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

#include "kernels/x86/row_set.h"

#define V4_INLINE inline __attribute__((always_inline))

namespace v4::kernels::detail {

using core::DType;

namespace {

constexpr int64_t kChunk = 8;        // columns per vector
constexpr int kRowTile = 4;          // weight rows per tile
constexpr int kXTile = 2;            // x rows per tile (4 x 2 accumulators + 4 weights fit 16 registers)
constexpr int64_t kPanelChunks = 64;  // 512 columns: 4 decoded rows = 8 KiB, L1-resident
constexpr int64_t kPrefetchTiles = 2;  // decode tiles prefetch the rows of the tile this far ahead

V4_INLINE __m256i lanes_below(int64_t valid) {
  return _mm256_cmpgt_epi32(_mm256_set1_epi32(int(valid)), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

// Chunk c of an fp32 row of `cols` values, zero past the end.
V4_INLINE __m256 load_chunk(const float* row, int64_t cols, int64_t c) {
  const int64_t valid = cols - c * kChunk;
  return valid >= kChunk ? _mm256_loadu_ps(row + c * kChunk) : _mm256_maskload_ps(row + c * kChunk, lanes_below(valid));
}

// Up to 8 elements of `size` bytes each from p, zero past `valid`, into the low bytes of a vector.
V4_INLINE __m128i load_partial(const void* p, int64_t valid, int size) {
  alignas(16) uint8_t tmp[16] = {};
  std::memcpy(tmp, p, size_t(std::min<int64_t>(valid, kChunk) * size));
  return _mm_load_si128(reinterpret_cast<const __m128i*>(tmp));
}

V4_INLINE float hsum(__m256 v) {
  const __m128 s4 = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  const __m128 s2 = _mm_add_ps(s4, _mm_movehl_ps(s4, s4));
  return _mm_cvtss_f32(_mm_add_ss(s2, _mm_shuffle_ps(s2, s2, 1)));
}

// Whether every byte of p[0, n) lies in [lo, hi] (scale bytes: 32 at a time).
V4_INLINE bool bytes_within(const uint8_t* p, int64_t n, uint8_t lo, uint8_t hi) {
  __m256i mn = _mm256_set1_epi8(char(hi)), mx = _mm256_set1_epi8(char(lo));
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i));
    mn = _mm256_min_epu8(mn, v);
    mx = _mm256_max_epu8(mx, v);
  }
  // in range iff max(v, lo) == v (v >= lo) and min(v, hi) == v (v <= hi), for the lane extremes
  const __m256i ok = _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_max_epu8(mn, _mm256_set1_epi8(char(lo))), mn),
                                      _mm256_cmpeq_epi8(_mm256_min_epu8(mx, _mm256_set1_epi8(char(hi))), mx));
  if (_mm256_movemask_epi8(ok) != -1) return false;
  for (; i < n; ++i)
    if (p[i] < lo || p[i] > hi) return false;
  return true;
}

// Row decoders: select(r) picks weight row r; chunk(c) is chunk c of it as fp32 (zero past the
// row's end); regular() says whether the vector decode is exact for the row (else the panel path
// decodes it by the scalar definition). For the decode tiles, at(c) is where chunk c starts
// (for prefetching), kLineChunks the chunks per 64-byte line of the row, and chunk c0 + q of a
// full group of kGroupChunks chunks from c0 is full(group(c0), c0, q): group() is the work the
// group's chunks share, done once, and q a constant, so chunks reading the same bytes share the
// load (the same values chunk() computes).
struct NoGroup {};

struct F32Rows {
  static constexpr int64_t kLineChunks = 2, kGroupChunks = 1;
  const float* data;
  int64_t cols;
  const float* row = nullptr;
  V4_INLINE void select(int64_t r) { row = data + r * cols; }
  V4_INLINE bool regular() const { return true; }
  V4_INLINE const void* at(int64_t c) const { return row + c * kChunk; }
  V4_INLINE __m256 chunk(int64_t c) const { return load_chunk(row, cols, c); }
  V4_INLINE NoGroup group(int64_t) const { return {}; }
  V4_INLINE __m256 full(NoGroup, int64_t c0, int q) const { return _mm256_loadu_ps(row + (c0 + q) * kChunk); }
};

struct BF16Rows {
  static constexpr int64_t kLineChunks = 4, kGroupChunks = 1;
  const uint16_t* data;
  int64_t cols;
  const uint16_t* row = nullptr;
  V4_INLINE void select(int64_t r) { row = data + r * cols; }
  V4_INLINE bool regular() const { return true; }
  V4_INLINE const void* at(int64_t c) const { return row + c * kChunk; }
  static V4_INLINE __m256 widen(__m128i h) {
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
  }
  V4_INLINE __m256 chunk(int64_t c) const {
    const int64_t valid = cols - c * kChunk;
    return widen(valid >= kChunk ? _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + c * kChunk))
                                 : load_partial(row + c * kChunk, valid, 2));
  }
  V4_INLINE NoGroup group(int64_t) const { return {}; }
  V4_INLINE __m256 full(NoGroup, int64_t c0, int q) const {
    return widen(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + (c0 + q) * kChunk)));
  }
};

// e4m3 -> fp16 by placing its fields (value * 2^-8, subnormals included), widened exactly by
// F16C, then one multiply by scale * 2^8: the single rounding the reference's product has. A
// group is a 128-column block: one multiplier.
struct F8Rows {
  static constexpr int64_t kLineChunks = 8, kGroupChunks = kFp8Block / kChunk;
  const uint8_t* data;
  const uint8_t* scale;
  int64_t cols, scale_cols;
  const uint8_t* row = nullptr;
  const uint8_t* scale_row = nullptr;
  V4_INLINE void select(int64_t r) {
    row = data + r * cols;
    scale_row = scale + (r / kFp8Block) * scale_cols;
  }
  // scale * 2^8 stays finite for E8M0 < 247, and code * scale a normal number (so the product
  // with x is the exact one F8PlacedRows gives) for E8M0 >= 10: always so in real checkpoints.
  bool regular() const { return bytes_within(scale_row, scale_cols, 10, 246); }
  V4_INLINE const void* at(int64_t c) const { return row + c * kChunk; }
  static V4_INLINE __m256 placed(__m128i bytes) {
    return _mm256_cvtph_ps(_mm_and_si128(_mm_slli_epi16(_mm_cvtepi8_epi16(bytes), 7), _mm_set1_epi16(int16_t(0xBF80))));
  }
  V4_INLINE __m256 group(int64_t c) const {
    return _mm256_set1_ps(kE8m0Avx2[scale_row[(c * kChunk) / kFp8Block]] * 256.0f);
  }
  V4_INLINE __m256 chunk(int64_t c) const {
    const int64_t valid = cols - c * kChunk;
    const __m128i bytes = valid >= kChunk ? _mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + c * kChunk))
                                          : load_partial(row + c * kChunk, valid, 1);
    return _mm256_mul_ps(placed(bytes), group(c));
  }
  // Chunk q & 1 of the 16 codes at p, placed: chunks c0 + q and c0 + (q ^ 1) share one 16-byte
  // load, widened and placed together.
  static V4_INLINE __m256 placed_of_pair(const uint8_t* p, int q) {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    const __m256i h = _mm256_and_si256(_mm256_slli_epi16(_mm256_cvtepi8_epi16(bytes), 7), _mm256_set1_epi16(int16_t(0xBF80)));
    return _mm256_cvtph_ps(q & 1 ? _mm256_extracti128_si256(h, 1) : _mm256_castsi256_si128(h));
  }
  V4_INLINE __m256 full(__m256 multiplier, int64_t c0, int q) const {
    return _mm256_mul_ps(placed_of_pair(row + (c0 + (q & ~1)) * kChunk, q), multiplier);
  }
};

// FP8 codes placed without their scale, for x already multiplied by it (the decode tiles of
// f8_decode_rows). Two placements, the same values times a constant:
//  - kFp32: the code's exponent and mantissa bits moved into an fp32's (value * 2^-120, codes with
//    exponent 0 as fp32 subnormals, exact): three integer instructions per chunk. Taken where
//    subnormal FMA operands cost nothing (fp8_fp32_placement()).
//  - kF16c: as F8Rows (value * 2^-8 through F16C), without its multiply.
enum class Placement { kFp32, kF16c };

template <Placement P>
struct F8PlacedRows {
  static constexpr int64_t kLineChunks = 8, kGroupChunks = P == Placement::kF16c ? 2 : 1;
  // x is multiplied by scale * 2^kExponent: value * 2^-kExponent * x * scale * 2^kExponent
  static constexpr int kExponent = P == Placement::kFp32 ? 120 : 8;
  const uint8_t* data;
  int64_t cols;
  const uint8_t* row = nullptr;
  V4_INLINE void select(int64_t r) { row = data + r * cols; }
  V4_INLINE const void* at(int64_t c) const { return row + c * kChunk; }
  static V4_INLINE __m256 placed(__m128i bytes) {  // the low 8 bytes
    if constexpr (P == Placement::kFp32) {
      const __m256i v = _mm256_slli_epi32(_mm256_cvtepi8_epi32(bytes), 20);  // sign copies land in bits 27..31
      return _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32(int32_t(0x87F00000u))));
    } else {
      return F8Rows::placed(bytes);
    }
  }
  V4_INLINE NoGroup group(int64_t) const { return {}; }
  V4_INLINE __m256 full(NoGroup, int64_t c0, int q) const {
    if constexpr (P == Placement::kFp32) {
      return placed(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + (c0 + q) * kChunk)));
    } else {  // c0 is even (kGroupChunks 2)
      return F8Rows::placed_of_pair(row + c0 * kChunk, q);
    }
  }
  V4_INLINE __m256 chunk(int64_t c) const {
    const int64_t valid = cols - c * kChunk;
    return placed(valid >= kChunk ? _mm_loadl_epi64(reinterpret_cast<const __m128i*>(row + c * kChunk))
                                  : load_partial(row + c * kChunk, valid, 1));
  }
};

// Packed FP4, 64 columns (32 bytes: groups g and g + 1, one per 128-bit lane) at a time. The low
// and high nibbles are looked up in the groups' BF16 tables (kE2m1Bf16: the scaled values), and
// the bytes interleaved into four vectors of 16 BF16 values; chunk 2j + 1 of the block is vector
// j masked to its upper halves, chunk 2j vector j shifted up: so lane l (< 4) of chunk 2j + h
// holds column 4 l + 2 h + {0, 16, 1, 17}[j] of group g, lane l + 4 the same of group g + 1
// (zero, with x zero, when the row ends after group g). x is re-ordered to match (arrange_fp4_x),
// and a row of c columns has ceil(c / 64) * 8 chunks.
struct F4Rows {
  static constexpr int64_t kBlockCols = 64, kBlockChunks = 8;
  const uint8_t* data;
  const uint8_t* scale;
  int64_t cols;
  const uint8_t* row = nullptr;
  const uint8_t* scale_row = nullptr;
  V4_INLINE void select(int64_t r) {
    row = data + r * (cols / 2);
    scale_row = scale + r * (cols / kFp4Group);
  }
  bool regular() const { return bytes_within(scale_row, cols / kFp4Group, kF4ScaleMin, kF4ScaleMax); }
  V4_INLINE const void* at(int64_t block) const { return row + block * (kBlockCols / 2); }
  // The four vectors of block b (16 BF16 values each).
  V4_INLINE void block(int64_t b, __m256i v[4]) const {
    const int64_t g = 2 * b;
    const bool pair = (g + 1) * kFp4Group < cols;
    const uint8_t s0 = scale_row[g], s1 = pair ? scale_row[g + 1] : s0;
    const __m256i lo_table = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(kE2m1Bf16.bytes[s0][0]))),
        _mm_load_si128(reinterpret_cast<const __m128i*>(kE2m1Bf16.bytes[s1][0])), 1);
    const __m256i hi_table = _mm256_inserti128_si256(
        _mm256_castsi128_si256(_mm_load_si128(reinterpret_cast<const __m128i*>(kE2m1Bf16.bytes[s0][1]))),
        _mm_load_si128(reinterpret_cast<const __m128i*>(kE2m1Bf16.bytes[s1][1])), 1);
    const uint8_t* p = row + b * (kBlockCols / 2);
    // a lone last group's upper lane is zero bytes: code 0, +0 in every table
    const __m256i bytes = pair ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))
                               : _mm256_zextsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    const __m256i nibble = _mm256_set1_epi8(0x0F);
    const __m256i low = _mm256_and_si256(bytes, nibble), high = _mm256_and_si256(_mm256_srli_epi16(bytes, 4), nibble);
    const __m256i low_lo = _mm256_shuffle_epi8(lo_table, low), low_hi = _mm256_shuffle_epi8(hi_table, low);
    const __m256i high_lo = _mm256_shuffle_epi8(lo_table, high), high_hi = _mm256_shuffle_epi8(hi_table, high);
    v[0] = _mm256_unpacklo_epi8(low_lo, low_hi);
    v[1] = _mm256_unpackhi_epi8(low_lo, low_hi);
    v[2] = _mm256_unpacklo_epi8(high_lo, high_hi);
    v[3] = _mm256_unpackhi_epi8(high_lo, high_hi);
  }
  static V4_INLINE __m256 even(__m256i v) { return _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)); }
  static V4_INLINE __m256 odd(__m256i v) {
    return _mm256_castsi256_ps(_mm256_and_si256(v, _mm256_set1_epi32(int32_t(0xFFFF0000u))));
  }
  // The column lane l of chunk q of a block holds, relative to the block (at or past the row's
  // end for the upper lanes of a lone last group).
  static int64_t column(int64_t q, int64_t l) {
    static constexpr int64_t kBase[4] = {0, 16, 1, 17};
    return (l >= 4 ? kFp4Group : 0) + kBase[q / 2] + 2 * (q % 2) + 4 * (l % 4);
  }
};

template <int R, int T>
V4_INLINE void zero(__m256 (&acc)[R][T]) {
#pragma GCC unroll 16
  for (int k = 0; k < R; ++k)
#pragma GCC unroll 16
    for (int i = 0; i < T; ++i) acc[k][i] = _mm256_setzero_ps();
}

// Keeps a loaded x chunk in a register: without it GCC re-loads it for every FMA (as a memory
// operand), one load per weight row instead of one per chunk.
V4_INLINE void pin_register(__m256& v) { asm volatile("" : "+x"(v)); }

// Decode: R weight rows x T rows of x, weights decoded straight into the FMAs (fully unrolled
// over R and T: GCC at -O2 otherwise keeps the accumulators on the stack, a store-to-load
// round trip per FMA). While a tile streams its R rows it prefetches the same columns of the
// rows at `next_r0` (the tile two ahead, or -1 near the end of the range) into L2: every row is
// short (2-4 KiB), too short for the hardware prefetcher to ramp up on R interleaved streams.
template <int R, int T, class Rows>
void fused_tile(const Rows& proto, int64_t r0, int64_t next_r0, int64_t cols, const float* x, float* out,
                int64_t ldo) {
  constexpr int64_t kStep = std::max(Rows::kLineChunks, Rows::kGroupChunks);  // chunks per step
  const RowSet<R, Rows> set(proto, r0);
  const RowSet<R, Rows> next(proto, next_r0 >= 0 ? next_r0 : r0);
  __m256 acc[R][T];
  zero(acc);
  const int64_t chunks = ceil_div(cols, kChunk), step_end = (cols / kChunk) / kStep * kStep;
  for (int64_t c0 = 0; c0 < step_end; c0 += kStep) {
    if (next_r0 >= 0) {
#pragma GCC unroll 16
      for (int k = 0; k < R; ++k)
#pragma GCC unroll 16
        for (int64_t c = c0; c < c0 + kStep; c += Rows::kLineChunks)
          _mm_prefetch(static_cast<const char*>(next.rows[k].at(c)), _MM_HINT_T1);
    }
#pragma GCC unroll 16
    for (int64_t g = c0; g < c0 + kStep; g += Rows::kGroupChunks) {
      decltype(proto.group(0)) grp[R];
#pragma GCC unroll 16
      for (int k = 0; k < R; ++k) grp[k] = set.rows[k].group(g);
#pragma GCC unroll 16
      for (int q = 0; q < int(Rows::kGroupChunks); ++q) {
        __m256 w[R];
#pragma GCC unroll 16
        for (int k = 0; k < R; ++k) w[k] = set.rows[k].full(grp[k], g, q);
#pragma GCC unroll 16
        for (int i = 0; i < T; ++i) {
          __m256 xv = _mm256_loadu_ps(x + i * cols + (g + q) * kChunk);
          pin_register(xv);
#pragma GCC unroll 16
          for (int k = 0; k < R; ++k) acc[k][i] = _mm256_fmadd_ps(w[k], xv, acc[k][i]);
        }
      }
    }
  }
  for (int64_t c = step_end; c < chunks; ++c) {
    __m256 w[R];
#pragma GCC unroll 16
    for (int k = 0; k < R; ++k) w[k] = set.rows[k].chunk(c);
#pragma GCC unroll 16
    for (int i = 0; i < T; ++i) {
      const __m256 xv = load_chunk(x + i * cols, cols, c);
#pragma GCC unroll 16
      for (int k = 0; k < R; ++k) acc[k][i] = _mm256_fmadd_ps(w[k], xv, acc[k][i]);
    }
  }
#pragma GCC unroll 16
  for (int k = 0; k < R; ++k)
#pragma GCC unroll 16
    for (int i = 0; i < T; ++i) out[i * ldo + k] = hsum(acc[k][i]);
}

// Decode of FP4 rows: R rows x T rows of x (arranged), a 64-column block at a time, each row's
// four vectors looked up and its 8 chunks multiply-added in order before the next row's (the R
// rows' vectors at once would not fit the registers). Prefetches as fused_tile does.
template <int R, int T>
void f4_fused_tile(const F4Rows& proto, int64_t r0, int64_t next_r0, const float* x, int64_t xcols, float* out,
                   int64_t ldo) {
  constexpr int64_t kLineBlocks = 2;  // a 64-byte line holds two blocks
  const RowSet<R, F4Rows> set(proto, r0);
  const RowSet<R, F4Rows> next(proto, next_r0 >= 0 ? next_r0 : r0);
  __m256 acc[R][T];
  zero(acc);
  const int64_t blocks = xcols / F4Rows::kBlockCols;
  for (int64_t b = 0; b < blocks; ++b) {
    if (next_r0 >= 0 && b % kLineBlocks == 0) {
#pragma GCC unroll 16
      for (int k = 0; k < R; ++k) _mm_prefetch(static_cast<const char*>(next.rows[k].at(b)), _MM_HINT_T1);
    }
#pragma GCC unroll 16
    for (int k = 0; k < R; ++k) {
      __m256i v[4];
      set.rows[k].block(b, v);
      // x again for every row, as memory operands of the FMAs: loaded once for all R rows, its
      // 8 T vectors would not fit the registers beside the accumulators (GCC spills them)
      const float* xk = x + b * F4Rows::kBlockCols;
      asm("" : "+r"(xk));
#pragma GCC unroll 4
      for (int j = 0; j < 4; ++j)
#pragma GCC unroll 16
        for (int i = 0; i < T; ++i) {
          const float* xc = xk + i * xcols + 2 * j * kChunk;
          acc[k][i] = _mm256_fmadd_ps(F4Rows::even(v[j]), _mm256_loadu_ps(xc), acc[k][i]);
          acc[k][i] = _mm256_fmadd_ps(F4Rows::odd(v[j]), _mm256_loadu_ps(xc + kChunk), acc[k][i]);
        }
    }
  }
#pragma GCC unroll 16
  for (int k = 0; k < R; ++k)
#pragma GCC unroll 16
    for (int i = 0; i < T; ++i) out[i * ldo + k] = hsum(acc[k][i]);
}

// Matrix: the same FMAs over chunks [c0, c1) of R decoded rows (chunk c of row k at
// ((c - c0) * R + k) * 8), accumulators carried in acc_io ([T][R] vectors) across panels
// (unrolled over R and T to keep them in registers, as in fused_tile). x rows are xcols apart.
template <int R, int T>
void panel_tile(const float* panel, int64_t c0, int64_t c1, const float* x, int64_t xcols, float* acc_io) {
  __m256 acc[R][T];
#pragma GCC unroll 16
  for (int k = 0; k < R; ++k)
#pragma GCC unroll 16
    for (int i = 0; i < T; ++i) acc[k][i] = _mm256_loadu_ps(acc_io + (i * R + k) * kChunk);
  for (int64_t c = c0; c < c1; ++c) {
    __m256 w[R];
#pragma GCC unroll 16
    for (int k = 0; k < R; ++k) w[k] = _mm256_loadu_ps(panel + ((c - c0) * R + k) * kChunk);
#pragma GCC unroll 16
    for (int i = 0; i < T; ++i) {
      const __m256 xv = load_chunk(x + i * xcols, xcols, c);
#pragma GCC unroll 16
      for (int k = 0; k < R; ++k) acc[k][i] = _mm256_fmadd_ps(w[k], xv, acc[k][i]);
    }
  }
#pragma GCC unroll 16
  for (int k = 0; k < R; ++k)
#pragma GCC unroll 16
    for (int i = 0; i < T; ++i) _mm256_storeu_ps(acc_io + (i * R + k) * kChunk, acc[k][i]);
}

template <int R, class Rows>
void fused_rows(const Rows& proto, int64_t r0, int64_t next_r0, int64_t xcols, const float* x, int64_t n, float* out,
                int64_t ldo) {
  const auto run = [&](auto t_tag) {
    constexpr int T = decltype(t_tag)::value;
    if constexpr (std::is_same_v<Rows, F4Rows>)  // its own tile: a block's vectors per row
      f4_fused_tile<R, T>(proto, r0, next_r0, x, xcols, out, ldo);
    else
      fused_tile<R, T>(proto, r0, next_r0, xcols, x, out, ldo);
  };
  if (n == 1)
    run(std::integral_constant<int, 1>{});
  else
    run(std::integral_constant<int, 2>{});
}

template <int R>
void panel_rows(const float* panel, int64_t c0, int64_t c1, const float* x, int64_t xcols, int64_t t, float* acc) {
  if (t == 1)
    panel_tile<R, 1>(panel, c0, c1, x, xcols, acc);
  else
    panel_tile<R, 2>(panel, c0, c1, x, xcols, acc);
}

// Chunks [c0, c1) of weight row r as tile row k of R into the panel: the vector decode, or the
// scalar definition for an irregular row (same values as the reference).
template <class Rows>
void decode_panel_row(const Rows& proto, const Weight& w, int64_t r, int64_t c0, int64_t c1, int R, int k, float* panel) {
  Rows rw = proto;
  rw.select(r);
  if (rw.regular()) {
    constexpr int64_t kGroup = Rows::kGroupChunks;  // c0 is a multiple of it
    const int64_t full_end = std::min(c1, w.cols / kChunk);
    int64_t c = c0;
    for (; c + kGroup <= full_end; c += kGroup) {
      const auto grp = rw.group(c);
#pragma GCC unroll 16
      for (int q = 0; q < int(kGroup); ++q) _mm256_storeu_ps(panel + ((c + q - c0) * R + k) * kChunk, rw.full(grp, c, q));
    }
    for (; c < c1; ++c) _mm256_storeu_ps(panel + ((c - c0) * R + k) * kChunk, rw.chunk(c));
    return;
  }
  for (int64_t c = c0; c < c1; ++c)
    for (int64_t j = 0; j < kChunk; ++j) {
      const int64_t col = c * kChunk + j;
      panel[((c - c0) * R + k) * kChunk + j] = col < w.cols ? reference_weight(w, r, col) : 0.0f;
    }
}

// The same for FP4 rows, in F4Rows' chunk order (c0 and c1 are multiples of a block's 8 chunks).
void decode_panel_row(const F4Rows& proto, const Weight& w, int64_t r, int64_t c0, int64_t c1, int R, int k, float* panel) {
  F4Rows rw = proto;
  rw.select(r);
  constexpr int64_t kBlock = F4Rows::kBlockChunks;
  if (rw.regular()) {
    for (int64_t c = c0; c < c1; c += kBlock) {
      __m256i v[4];
      rw.block(c / kBlock, v);
      for (int j = 0; j < 4; ++j) {
        _mm256_storeu_ps(panel + ((c + 2 * j - c0) * R + k) * kChunk, F4Rows::even(v[j]));
        _mm256_storeu_ps(panel + ((c + 2 * j + 1 - c0) * R + k) * kChunk, F4Rows::odd(v[j]));
      }
    }
    return;
  }
  for (int64_t c = c0; c < c1; ++c)
    for (int64_t l = 0; l < kChunk; ++l) {
      const int64_t col = (c / kBlock) * F4Rows::kBlockCols + F4Rows::column(c % kBlock, l);
      panel[((c - c0) * R + k) * kChunk + l] = col < w.cols ? reference_weight(w, r, col) : 0.0f;
    }
}

template <int R, class Rows>
void matrix_tile(const Rows& proto, const Weight& w, int64_t r0, const float* x, int64_t xcols, int64_t n, float* out,
                 AlignedVector<float>& panel, AlignedVector<float>& accs) {
  const int64_t chunks = ceil_div(xcols, kChunk);
  std::fill(accs.begin(), accs.begin() + n * R * kChunk, 0.0f);
  for (int64_t c0 = 0; c0 < chunks; c0 += kPanelChunks) {
    const int64_t c1 = std::min(chunks, c0 + kPanelChunks);
    for (int k = 0; k < R; ++k) decode_panel_row(proto, w, r0 + k, c0, c1, R, k, panel.data());
    for (int64_t i = 0; i < n; i += kXTile)
      panel_rows<R>(panel.data(), c0, c1, x + i * xcols, xcols, std::min<int64_t>(kXTile, n - i), accs.data() + i * R * kChunk);
  }
  for (int64_t i = 0; i < n; ++i)
    for (int k = 0; k < R; ++k) {
      const int64_t base = (i / kXTile) * kXTile, ti = i - base;
      out[i * w.rows + r0 + k] = hsum(_mm256_loadu_ps(accs.data() + (base * R + ti * R + k) * kChunk));
    }
}

template <int R, class Rows>
bool tile_regular(const Rows& proto, int64_t r0) {
  for (int k = 0; k < R; ++k) {
    Rows rw = proto;
    rw.select(r0 + k);
    if (!rw.regular()) return false;
  }
  return true;
}

template <int R, class Rows>
void rows_tile(const Rows& proto, const Weight& w, int64_t r0, int64_t next_r0, const float* x, int64_t xcols, int64_t n,
               float* out, AlignedVector<float>& panel, AlignedVector<float>& accs) {
  if (n <= kXTile && tile_regular<R>(proto, r0))
    fused_rows<R>(proto, r0, next_r0, xcols, x, n, out + r0, w.rows);
  else
    matrix_tile<R>(proto, w, r0, x, xcols, n, out, panel, accs);
}

// Rows [row_begin, row_end) for every x row of the block: tiles of kRowTile rows, the rest in one
// smaller tile. `tile(R-tag, r0, next_r0)` runs one; next_r0 is the tile to prefetch, while it
// ends before prefetch_end (-1 past it).
template <class Tile>
void row_tiles(int64_t row_begin, int64_t row_end, int64_t prefetch_end, const Tile& tile) {
  int64_t r0 = row_begin;
  for (; r0 + kRowTile <= row_end; r0 += kRowTile) {
    const int64_t next = r0 + (kPrefetchTiles + 1) * kRowTile <= prefetch_end ? r0 + kPrefetchTiles * kRowTile : -1;
    tile(std::integral_constant<int, kRowTile>{}, r0, next);
  }
  switch (row_end - r0) {
    case 1: tile(std::integral_constant<int, 1>{}, r0, int64_t(-1)); break;
    case 2: tile(std::integral_constant<int, 2>{}, r0, int64_t(-1)); break;
    case 3: tile(std::integral_constant<int, 3>{}, r0, int64_t(-1)); break;
    default: break;
  }
}

// Rows [row_begin, row_end) of the output for all n rows of x, xcols apart (blocks of x rows sized
// for L2).
template <class Rows>
void fast_rows(const Rows& proto, const Weight& w, const float* x, int64_t xcols, int64_t n, float* out,
               int64_t row_begin, int64_t row_end) {
  thread_local AlignedVector<float> panel, accs;
  const int64_t block = std::max<int64_t>(kXTile, (int64_t(256 * 1024) / (xcols * 4)) / kXTile * kXTile);
  panel.resize(size_t(kRowTile * kPanelChunks * kChunk));
  accs.resize(size_t(std::min(block, n) * kRowTile * kChunk + kXTile * kRowTile * kChunk));
  for (int64_t i0 = 0; i0 < n; i0 += block) {
    const int64_t nb = std::min(block, n - i0);
    const float* xb = x + i0 * xcols;
    float* ob = out + i0 * w.rows;
    row_tiles(row_begin, row_end, row_end, [&](auto r_tag, int64_t r0, int64_t next) {
      rows_tile<decltype(r_tag)::value>(proto, w, r0, next, xb, xcols, nb, ob, panel, accs);
    });
  }
}

// x times 2^(scale - 127 + kExponent) per 128-column block (scale_row's bytes) into xs: false
// where that is not exact for every value (the power of two itself, or a product, out of the
// normal range), so the caller keeps the scaled decode.
bool prescale_x(const float* x, int64_t n, int64_t cols, const uint8_t* scale_row, int exponent, float* xs) {
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7FFFFFFF));
  const __m256 max = _mm256_set1_ps(std::numeric_limits<float>::max()), min = _mm256_set1_ps(std::numeric_limits<float>::min());
  __m256 bad = _mm256_setzero_ps();
  for (int64_t b = 0; b < ceil_div(cols, kFp8Block); ++b) {
    const int e = int(scale_row[b]) - 127 + exponent;
    if (e < -126 || e > 127) return false;
    const __m256 m = _mm256_set1_ps(pow2(e));
    const int64_t end = std::min(cols, (b + 1) * kFp8Block);
    for (int64_t i = 0; i < n; ++i)
      for (int64_t c = b * kFp8Block; c < end; c += kChunk) {
        const __m256 v = load_chunk(x + i * cols, cols, c / kChunk), p = _mm256_mul_ps(v, m);
        const __m256 a = _mm256_and_ps(p, abs_mask);
        // not finite (NaN compares "not less-or-equal"), or a nonzero value gone subnormal or zero
        bad = _mm256_or_ps(bad, _mm256_cmp_ps(a, max, _CMP_NLE_UQ));
        bad = _mm256_or_ps(bad, _mm256_and_ps(_mm256_cmp_ps(a, min, _CMP_LT_OQ), _mm256_cmp_ps(v, _mm256_setzero_ps(), _CMP_NEQ_OQ)));
        const int64_t valid = end - c;
        if (valid >= kChunk)
          _mm256_storeu_ps(xs + i * cols + c, p);
        else
          _mm256_maskstore_ps(xs + i * cols + c, lanes_below(valid), p);
      }
  }
  return _mm256_movemask_ps(bad) == 0;
}

// FP8 rows at decode (n <= kXTile), a 128-row block at a time: x scaled by the block row's scales
// once, then F8PlacedRows tiles (the products and so the bits of F8Rows); rows_tile's F8Rows path
// for a block whose scaled x is not exact and for irregular tiles.
template <Placement P>
void f8_decode_rows(const F8Rows& proto, const Weight& w, const float* x, int64_t n, float* out, int64_t row_begin,
                    int64_t row_end) {
  thread_local AlignedVector<float> xs, panel, accs;
  const int64_t cols = w.cols;
  xs.resize(size_t(n * cols));
  panel.resize(size_t(kRowTile * kPanelChunks * kChunk));
  accs.resize(size_t(2 * kXTile * kRowTile * kChunk));
  const F8PlacedRows<P> placed{proto.data, cols};
  for (int64_t b0 = row_begin; b0 < row_end;) {
    const int64_t b1 = std::min(row_end, (b0 / kFp8Block + 1) * kFp8Block);
    const bool scaled = prescale_x(x, n, cols, proto.scale + (b0 / kFp8Block) * proto.scale_cols,
                                   F8PlacedRows<P>::kExponent, xs.data());
    row_tiles(b0, b1, row_end, [&](auto r_tag, int64_t r0, int64_t next) {  // prefetching across blocks
      constexpr int R = decltype(r_tag)::value;
      if (scaled && tile_regular<R>(proto, r0))
        fused_rows<R>(placed, r0, next, cols, xs.data(), n, out + r0, w.rows);
      else
        rows_tile<R>(proto, w, r0, next, x, cols, n, out, panel, accs);
    });
    b0 = b1;
  }
}

// x rows in F4Rows' chunk order: column F4Rows::column(q, l) of block b at b * 64 + 8 q + l, zero
// past the row's end; rows ceil(cols / 64) * 64 apart.
std::vector<float> arrange_fp4_x(const float* x, int64_t n, int64_t cols, int64_t xcols) {
  static const std::array<int, F4Rows::kBlockCols> kColumn = [] {
    std::array<int, F4Rows::kBlockCols> c{};
    for (int64_t p = 0; p < F4Rows::kBlockCols; ++p) c[size_t(p)] = int(F4Rows::column(p / kChunk, p % kChunk));
    return c;
  }();
  std::vector<float> a(size_t(n * xcols), 0.0f);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t b = 0; b < xcols; b += F4Rows::kBlockCols) {
      const float* src = x + i * cols + b;
      float* dst = a.data() + i * xcols + b;
      if (b + F4Rows::kBlockCols <= cols) {
        for (int64_t p = 0; p < F4Rows::kBlockCols; ++p) dst[p] = src[kColumn[size_t(p)]];
      } else {
        for (int64_t p = 0; p < F4Rows::kBlockCols; ++p)
          if (b + kColumn[size_t(p)] < cols) dst[p] = src[kColumn[size_t(p)]];
      }
    }
  return a;
}

}  // namespace

void linear_avx2(const Weight& w, const float* x, int64_t n, float* out, ThreadPool* pool) {
  const int64_t rows = w.rows, cols = w.cols;
  switch (w.dtype) {
    case DType::F32: {
      const F32Rows rw{static_cast<const float*>(w.data), cols};
      for_row_ranges(rows, pool, [&](int64_t b, int64_t e) { fast_rows(rw, w, x, cols, n, out, b, e); });
      return;
    }
    case DType::BF16: {
      const BF16Rows rw{static_cast<const uint16_t*>(w.data), cols};
      for_row_ranges(rows, pool, [&](int64_t b, int64_t e) { fast_rows(rw, w, x, cols, n, out, b, e); });
      return;
    }
    case DType::F8_E4M3: {
      const F8Rows rw{static_cast<const uint8_t*>(w.data), w.scale, cols, ceil_div(cols, kFp8Block)};
      if (n > kXTile) {
        for_row_ranges(rows, pool, [&](int64_t b, int64_t e) { fast_rows(rw, w, x, cols, n, out, b, e); });
      } else if (fp8_fp32_placement()) {
        for_row_ranges(rows, pool, [&](int64_t b, int64_t e) { f8_decode_rows<Placement::kFp32>(rw, w, x, n, out, b, e); });
      } else {
        for_row_ranges(rows, pool, [&](int64_t b, int64_t e) { f8_decode_rows<Placement::kF16c>(rw, w, x, n, out, b, e); });
      }
      return;
    }
    case DType::I8: {
      const int64_t xcols = ceil_div(cols, F4Rows::kBlockCols) * F4Rows::kBlockCols;
      const std::vector<float> xa = arrange_fp4_x(x, n, cols, xcols);
      const F4Rows rw{static_cast<const uint8_t*>(w.data), w.scale, cols};
      for_row_ranges(rows, pool, [&](int64_t b, int64_t e) { fast_rows(rw, w, xa.data(), xcols, n, out, b, e); });
      return;
    }
    default:
      for_row_ranges(rows, pool, [&](int64_t b, int64_t e) { reference_rows(w, x, n, out, b, e); });
      return;
  }
}

}  // namespace v4::kernels::detail

#undef V4_INLINE
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
