// The AVX-512 variant of linear() (kernels/isa.h: Isa::avx512): weight-stationary tiles with fused
// dequantisation into fp32 FMAs.
//
// Fixed accumulation order (the batch-invariance rule of linear.h): columns are read in chunks of
// 16; each output element has one 16-lane fp32 accumulator into which chunk c is multiply-added in
// order c = 0, 1, ...; the lanes are reduced at the end. That order depends only on `cols`, so
// out[i, r] is the same whatever n, the tile it was computed in, or the thread that computed it.
// Weights are decoded exactly (e4m3 * 2^k and e2m1 * 2^k are single correctly rounded products, the
// same ones the reference computes), so fast and reference results differ only by the summation
// order.
//
// Compiled for every machine: the instructions are enabled by the target pragma below for the code
// of this file only. Everything this file includes (the standard library above all) is parsed
// before the pragma, so its inline and template functions keep the baseline target and a copy
// the linker picks for the whole program never holds AVX-512 instructions. linear() calls in here
// only when the CPU has AVX-512 (kernels/isa.h).
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <type_traits>
#include <vector>

#include "kernels/aligned_vector.h"
#include "kernels/formats.h"
#include "kernels/linear_internal.h"

namespace v4::kernels::detail {
namespace {
// Namespace-scope copies of the tables (no initialisation guard on the hot path), initialised
// outside the target region so start-up code runs on any CPU.
const std::array<float, 256> kE8m0 = e8m0_table();
const std::array<float, 16> kE2m1 = e2m1_table();
}  // namespace
}  // namespace v4::kernels::detail

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq")
#endif
// GCC 12's AVX-512 headers build results from _mm512_undefined_*(), which trips these warnings
// at every inlined intrinsic.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "kernels/x86/reduce16_avx512.h"
#include "kernels/x86/row_set.h"

#define V4_INLINE inline __attribute__((always_inline))

namespace v4::kernels::detail {

using core::DType;

namespace {

constexpr int64_t kChunk = 16;  // columns per vector



V4_INLINE __mmask16 chunk_mask(int64_t cols, int64_t c) {
  const int64_t rem = cols - c * kChunk;
  return rem >= kChunk ? __mmask16(0xFFFF) : __mmask16((1u << rem) - 1);
}

// Row decoders. select(r) picks a weight row; chunk(c, m) is chunk c of that row as fp32 (lanes
// outside m zero); pair(c0, a, b) decodes the two full chunks c0, c0+1 (c0 even).
struct F32Rows {
  const float* data;
  int64_t cols;
  const float* row = nullptr;
  V4_INLINE void select(int64_t r) { row = data + r * cols; }
  V4_INLINE const void* at(int64_t c) const { return row + c * kChunk; }
  V4_INLINE __m512 chunk(int64_t c, __mmask16 m) const { return _mm512_maskz_loadu_ps(m, row + c * kChunk); }
  V4_INLINE void pair(int64_t c0, __m512& w0, __m512& w1) const {
    w0 = _mm512_loadu_ps(row + c0 * kChunk);
    w1 = _mm512_loadu_ps(row + c0 * kChunk + 16);
  }
};

struct BF16Rows {
  const uint16_t* data;
  int64_t cols;
  const uint16_t* row = nullptr;
  V4_INLINE void select(int64_t r) { row = data + r * cols; }
  V4_INLINE const void* at(int64_t c) const { return row + c * kChunk; }
  static V4_INLINE __m512 widen(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  V4_INLINE __m512 chunk(int64_t c, __mmask16 m) const { return widen(_mm256_maskz_loadu_epi16(m, row + c * kChunk)); }
  // Two chunks from one 64-byte load: each BF16 moved into the high half of its fp32 lane by a
  // zero-masked vpermw, one instruction per chunk instead of a widening move and a shift.
  V4_INLINE void pair(int64_t c0, __m512& w0, __m512& w1) const {
    const __m512i v = _mm512_loadu_si512(row + c0 * kChunk);
    constexpr __mmask32 kHigh = 0xAAAAAAAAu;  // odd 16-bit lanes: the high halves
    const __m512i lo = _mm512_set_epi16(15, 0, 14, 0, 13, 0, 12, 0, 11, 0, 10, 0, 9, 0, 8, 0, 7, 0, 6, 0, 5, 0, 4, 0, 3, 0,
                                        2, 0, 1, 0, 0, 0);
    const __m512i hi = _mm512_add_epi16(lo, _mm512_set1_epi16(16));
    w0 = _mm512_castsi512_ps(_mm512_maskz_permutexvar_epi16(kHigh, lo, v));
    w1 = _mm512_castsi512_ps(_mm512_maskz_permutexvar_epi16(kHigh, hi, v));
  }
};

// e4m3 -> fp32 through fp16: the sign-extended byte shifted left by 7 and masked is an fp16 whose
// exponent and mantissa fields hold e4m3's (value * 2^-8, subnormals included, no fp32 denormals
// on the way); vcvtph2ps widens it exactly and one multiply by scale * 2^8 restores the value and
// applies the block scale: a single rounding of the same product the reference computes.
struct F8Rows {
  const uint8_t* data;
  const uint8_t* scale;
  int64_t cols;
  int64_t scale_cols;
  const uint8_t* row = nullptr;
  const uint8_t* scale_row = nullptr;
  V4_INLINE void select(int64_t r) {
    row = data + r * cols;
    scale_row = scale + (r / kFp8Block) * scale_cols;
  }
  V4_INLINE const void* at(int64_t c) const { return row + c * kChunk; }
  // True when every block scale of the row keeps scale * 2^8 finite (E8M0 < 247); otherwise the
  // row is decoded by the scalar definition (never the case for real checkpoints).
  bool row_is_regular() const {
    for (int64_t b = 0; b < scale_cols; ++b)
      if (scale_row[b] >= 247) return false;
    return true;
  }
  static V4_INLINE __m512 placed(__m128i bytes) {
    const __m256i h = _mm256_and_si256(_mm256_slli_epi16(_mm256_cvtepi8_epi16(bytes), 7),
                                       _mm256_set1_epi16(int16_t(0xBF80)));
    return _mm512_cvtph_ps(h);
  }
  V4_INLINE __m512 multiplier(int64_t c) const {
    return _mm512_set1_ps(kE8m0[scale_row[(c * kChunk) / kFp8Block]] * 256.0f);
  }
  V4_INLINE __m512 chunk(int64_t c, __mmask16 m) const {
    return _mm512_mul_ps(placed(_mm_maskz_loadu_epi8(m, row + c * kChunk)), multiplier(c));
  }
  V4_INLINE void pair(int64_t c0, __m512& w0, __m512& w1) const {
    const __m512 mult = multiplier(c0);  // chunks c0, c0+1 (c0 even) share one 128-column block
    const __m128i* p = reinterpret_cast<const __m128i*>(row + c0 * kChunk);
    w0 = _mm512_mul_ps(placed(_mm_loadu_si128(p)), mult);
    w1 = _mm512_mul_ps(placed(_mm_loadu_si128(p + 1)), mult);
  }
};

// Packed FP4: 32 columns (16 bytes, one scale) give two chunks: chunk 2g holds the even columns
// (low nibbles) of group g, chunk 2g+1 the odd columns; x is de-interleaved to match. The 16-entry
// e2m1 table times the group scale is looked up with one permute per chunk.
struct F4Rows {
  const uint8_t* data;
  const uint8_t* scale;
  int64_t cols;
  const uint8_t* row = nullptr;
  const uint8_t* scale_row = nullptr;
  V4_INLINE void select(int64_t r) {
    row = data + r * (cols / 2);
    scale_row = scale + r * (cols / kFp4Group);
  }
  V4_INLINE const void* at(int64_t c) const { return row + c * (kChunk / 2); }
  V4_INLINE void group(int64_t g, __m512& even, __m512& odd) const {
    const __m512 t = _mm512_mul_ps(_mm512_loadu_ps(kE2m1.data()), _mm512_set1_ps(kE8m0[scale_row[g]]));
    const __m512i z = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + g * 16)));
    even = _mm512_permutexvar_ps(_mm512_and_si512(z, _mm512_set1_epi32(0xF)), t);
    odd = _mm512_permutexvar_ps(_mm512_srli_epi32(z, 4), t);
  }
  V4_INLINE __m512 chunk(int64_t c, __mmask16) const {  // cols % 32 == 0: chunks are always full
    __m512 even, odd;
    group(c / 2, even, odd);
    return (c & 1) ? odd : even;
  }
  V4_INLINE void pair(int64_t c0, __m512& w0, __m512& w1) const { group(c0 / 2, w0, w1); }
};

// ---- tiles -----------------------------------------------------------------------------------
// One fp32 accumulator vector per output element; chunk c of the row is multiply-added in order
// c = 0, 1, 2, ... and the 16 lanes are reduced at the end. Tiles of R weight rows x T rows of x
// keep R*T accumulators in registers; the weight chunks are decoded once per tile and each x
// chunk load is shared by the R weight rows.

// Keeps a loaded vector in a register: without it GCC re-loads it from L1 for every use (as a
// memory operand of each FMA), which makes the tile load-bound.
V4_INLINE void pin_register(__m512& v) { asm volatile("" : "+v"(v)); }

// T rows of x (stride ldx) x R weight rows, decoding straight into the multiply-adds.
// While a tile streams its R rows it prefetches the same columns of the tile two ahead into L2
// (`next_r0`, or -1 near the end of the range): every row stream is short (4 KiB for an FP8 row of
// 4096), too short for the hardware prefetcher to ramp up on four interleaved streams, and one
// tile ahead into L1 leaves too little time for the lines to arrive.
template <int R, int T, class Rows>
void fused_tile(const Rows& proto, int64_t r0, int64_t next_r0, int64_t cols, const float* x, int64_t ldx, float* out,
                int64_t ldo) {
  const RowSet<R, Rows> set(proto, r0);
  const RowSet<R, Rows> next(proto, next_r0 >= 0 ? next_r0 : r0);
  __m512 acc[R][T];
#pragma GCC unroll 16
  for (int k = 0; k < R; ++k)
#pragma GCC unroll 16
    for (int i = 0; i < T; ++i) acc[k][i] = _mm512_setzero_ps();
  const int64_t chunks = ceil_div(cols, kChunk);
  const int64_t pair_end = (cols / kChunk) / 2 * 2;
  for (int64_t c0 = 0; c0 < pair_end; c0 += 2) {
    __m512 w0[R], w1[R];
#pragma GCC unroll 16
    for (int k = 0; k < R; ++k) set.rows[k].pair(c0, w0[k], w1[k]);
    if (next_r0 >= 0) {
#pragma GCC unroll 16
      for (int k = 0; k < R; ++k) {
        _mm_prefetch(static_cast<const char*>(next.rows[k].at(c0)), _MM_HINT_T1);
        if constexpr (std::is_same_v<Rows, F32Rows>)  // 128 bytes per pair of chunks
          _mm_prefetch(static_cast<const char*>(next.rows[k].at(c0 + 1)), _MM_HINT_T1);
      }
    }
#pragma GCC unroll 16
    for (int i = 0; i < T; ++i) {
      __m512 xv = _mm512_loadu_ps(x + i * ldx + c0 * kChunk);
      pin_register(xv);
#pragma GCC unroll 16
      for (int k = 0; k < R; ++k) acc[k][i] = _mm512_fmadd_ps(w0[k], xv, acc[k][i]);
    }
#pragma GCC unroll 16
    for (int i = 0; i < T; ++i) {
      __m512 xv = _mm512_loadu_ps(x + i * ldx + (c0 + 1) * kChunk);
      pin_register(xv);
#pragma GCC unroll 16
      for (int k = 0; k < R; ++k) acc[k][i] = _mm512_fmadd_ps(w1[k], xv, acc[k][i]);
    }
  }
  for (int64_t c = pair_end; c < chunks; ++c) {
    const __mmask16 m = chunk_mask(cols, c);
    __m512 wv[R];
#pragma GCC unroll 16
    for (int k = 0; k < R; ++k) wv[k] = set.rows[k].chunk(c, m);
#pragma GCC unroll 16
    for (int i = 0; i < T; ++i) {
      const __m512 xv = _mm512_maskz_loadu_ps(m, x + i * ldx + c * kChunk);
#pragma GCC unroll 16
      for (int k = 0; k < R; ++k) acc[k][i] = _mm512_fmadd_ps(wv[k], xv, acc[k][i]);
    }
  }
  store_tile_sums<R, T>(acc, out, ldo);
}

// The same order over a decoded panel: chunks [c_begin, c_end) of R weight rows interleaved in
// `w` (chunk c of row k at ((c - c_begin) * R + k) * 16) and T rows of x packed the same way (chunk c
// of x row i at (c * xs + i) * 16, zero-padded, xs the rows of the packed tile), so both stream
// sequentially through L1 instead of rows a power-of-two apart competing for the same cache sets.
// Accumulators are carried in `acc_io` ([T][R] vectors) across panels.
template <int R, int T>
void panel_tile(const float* w, int64_t c_begin, int64_t c_end, const float* xp, int64_t xs, float* acc_io) {
  __m512 acc[R][T];
#pragma GCC unroll 16
  for (int k = 0; k < R; ++k)
#pragma GCC unroll 16
    for (int i = 0; i < T; ++i) acc[k][i] = _mm512_loadu_ps(acc_io + (i * R + k) * kChunk);
  for (int64_t c = c_begin; c < c_end; ++c) {
    const float* wc = w + (c - c_begin) * R * kChunk;
    __m512 wv[R];
#pragma GCC unroll 16
    for (int k = 0; k < R; ++k) {
      wv[k] = _mm512_loadu_ps(wc + k * kChunk);
      pin_register(wv[k]);
    }
#pragma GCC unroll 16
    for (int i = 0; i < T; ++i) {
      __m512 xv = _mm512_loadu_ps(xp + (c * xs + i) * kChunk);
      pin_register(xv);
#pragma GCC unroll 16
      for (int k = 0; k < R; ++k) acc[k][i] = _mm512_fmadd_ps(wv[k], xv, acc[k][i]);
    }
  }
#pragma GCC unroll 16
  for (int k = 0; k < R; ++k)
#pragma GCC unroll 16
    for (int i = 0; i < T; ++i) _mm512_storeu_ps(acc_io + (i * R + k) * kChunk, acc[k][i]);
}

// T rows of x (stride cols) packed for panel_tile: chunk c of row i at (c * T + i) * 16, the
// partial last chunk zero-padded.
void pack_x_tile(const float* x, int64_t cols, int T, float* xp) {
  const int64_t chunks = ceil_div(cols, kChunk);
  for (int64_t c = 0; c < chunks; ++c)
    for (int i = 0; i < T; ++i)
      _mm512_storeu_ps(xp + (c * T + i) * kChunk, _mm512_maskz_loadu_ps(chunk_mask(cols, c), x + i * cols + c * kChunk));
}

constexpr int kRowTile = 4;    // weight rows per tile
constexpr int kXTile = 4;      // x rows per tile
constexpr int64_t kPanelChunks = 32;  // 512 columns: R decoded panel rows = 16 KiB, L1-resident
// Weight rows per panel: each x vector loaded feeds 8 FMAs. With 4 the x tiles, streamed from L2
// once per row tile, took as many loads as the FMAs could issue and the panel ran at half their rate.
constexpr int kPanelRows = 8;

template <int R, class Rows>
void fused_rows(const Rows& proto, int64_t r0, int64_t next_r0, int64_t cols, const float* x, int64_t n, float* out,
                int64_t ldo) {
  switch (n) {
    case 1: fused_tile<R, 1>(proto, r0, next_r0, cols, x, cols, out, ldo); break;
    case 2: fused_tile<R, 2>(proto, r0, next_r0, cols, x, cols, out, ldo); break;
    case 3: fused_tile<R, 3>(proto, r0, next_r0, cols, x, cols, out, ldo); break;
    default: fused_tile<R, 4>(proto, r0, next_r0, cols, x, cols, out, ldo); break;
  }
}

// One packed x tile of t rows against R panel rows: up to 4 rows, one register tile; 5-8 rows, two
// tiles of at most 2 x rows (the accumulators of 8 x 4 would not fit the 32 registers).
template <int R>
void panel_rows(const float* w, int64_t c_begin, int64_t c_end, const float* xp, int64_t t, float* acc) {
  if constexpr (R <= 4) {
    switch (t) {
      case 1: panel_tile<R, 1>(w, c_begin, c_end, xp, t, acc); break;
      case 2: panel_tile<R, 2>(w, c_begin, c_end, xp, t, acc); break;
      case 3: panel_tile<R, 3>(w, c_begin, c_end, xp, t, acc); break;
      default: panel_tile<R, 4>(w, c_begin, c_end, xp, t, acc); break;
    }
  } else {
    if (t == 1) return panel_tile<R, 1>(w, c_begin, c_end, xp, t, acc);
    panel_tile<R, 2>(w, c_begin, c_end, xp, t, acc);
    if (t == 3) panel_tile<R, 1>(w, c_begin, c_end, xp + 2 * kChunk, t, acc + 2 * R * kChunk);
    if (t == 4) panel_tile<R, 2>(w, c_begin, c_end, xp + 2 * kChunk, t, acc + 2 * R * kChunk);
  }
}

// FP8 rows with an extreme block scale: the scalar definition, same values as the reference.
// Row k of R in the interleaved panel layout (see panel_tile).
void decode_panel_scalar(const Weight& weight, int64_t r, int64_t c_begin, int64_t c_end, int R, int k, float* panel) {
  for (int64_t c = c_begin; c < c_end; ++c)
    for (int64_t j = 0; j < kChunk; ++j) {
      const int64_t col = c * kChunk + j;
      panel[((c - c_begin) * R + k) * kChunk + j] = col < weight.cols ? reference_weight(weight, r, col) : 0.0f;
    }
}

template <class Rows>
bool row_is_regular(const Rows&) {
  return true;
}
template <>
bool row_is_regular<F8Rows>(const F8Rows& w) {
  return w.row_is_regular();
}

// Longest BF16 row fused_x_tiles takes: kRowTile rows of it (16 KiB at 2048) stay in L1 across the
// x tiles.
constexpr int64_t kFusedBf16MaxCols = 2048;

// Every x tile (kXTile rows) against each tile of kRowTile weight rows, the weights decoded into
// the multiply-adds once per x tile; the order per output element is fused_tile's, whatever n.
template <class Rows>
void fused_x_tiles(const Rows& proto, int64_t cols, const float* x, int64_t n, float* out, int64_t ldo,
                   int64_t row_begin, int64_t row_end) {
  auto row_tile = [&]<int R>(int64_t r0, int64_t next) {
    for (int64_t i = 0; i < n; i += kXTile)
      fused_rows<R>(proto, r0, i == 0 ? next : -1, cols, x + i * cols, std::min<int64_t>(kXTile, n - i),
                    out + i * ldo + r0, ldo);
  };
  int64_t r0 = row_begin;
  for (; r0 + kRowTile <= row_end; r0 += kRowTile)
    row_tile.template operator()<kRowTile>(r0, r0 + 3 * kRowTile <= row_end ? r0 + 2 * kRowTile : -1);
  switch (row_end - r0) {
    case 1: row_tile.template operator()<1>(r0, -1); break;
    case 2: row_tile.template operator()<2>(r0, -1); break;
    case 3: row_tile.template operator()<3>(r0, -1); break;
    default: break;
  }
}

// Rows [row_begin, row_end) of the output for all n rows of x. Up to one x tile (decode): tiles
// decode the weights straight into the multiply-adds, every weight byte read once. More rows
// (batched decode, prefill): R weight rows are decoded panel by panel into an L1-resident buffer
// and every x tile of a block of x rows (sized to stay in L2) runs over the panel.
template <class Rows>
void fast_rows(const Rows& proto, const Weight& weight, const float* x, int64_t n, float* out, int64_t row_begin,
               int64_t row_end) {
  const int64_t rows = weight.rows, cols = weight.cols;
  const int64_t chunks = ceil_div(cols, kChunk);
  bool all_regular = true;
  for (int64_t r = row_begin; r < row_end && all_regular; r += kFp8Block) {
    Rows probe = proto;
    probe.select(r);
    all_regular = row_is_regular(probe);
  }
  if constexpr (std::is_same_v<Rows, BF16Rows>) {
    // One row at a time for a single x row of BF16 (the LM head): its decode costs next to
    // nothing, so it runs at memory speed, and one sequential stream (prefetched two rows ahead)
    // reads faster than four interleaved ones (measured: 27-28 vs 22-25 GB/s on one core; F32
    // measured slower this way).
    if (n == 1) {
      for (int64_t r0 = row_begin; r0 < row_end; ++r0)
        fused_rows<1>(proto, r0, r0 + 2 < row_end ? r0 + 2 : -1, cols, x, n, out + r0, rows);
      return;
    }
  }
  if constexpr (std::is_same_v<Rows, BF16Rows>) {
    // Batched BF16 (the LM head in batched decode): widening a BF16 chunk is two cheap
    // instructions, so each x tile re-decodes the tile's weight rows (L1-resident after the first
    // x tile) straight into its multiply-adds instead of going through the panel, whose per-tile
    // accumulator traffic costs more than the work for short rows (cols 256 on the demo shape).
    if (n > kXTile && cols <= kFusedBf16MaxCols) {
      fused_x_tiles(proto, cols, x, n, out, rows, row_begin, row_end);
      return;
    }
  }
  if (n <= kXTile && all_regular) {
    int64_t r0 = row_begin;
    for (; r0 + kRowTile <= row_end; r0 += kRowTile) {
      const int64_t next = r0 + 3 * kRowTile <= row_end ? r0 + 2 * kRowTile : -1;
      fused_rows<kRowTile>(proto, r0, next, cols, x, n, out + r0, rows);
    }
    switch (row_end - r0) {
      case 1: fused_rows<1>(proto, r0, -1, cols, x, n, out + r0, rows); break;
      case 2: fused_rows<2>(proto, r0, -1, cols, x, n, out + r0, rows); break;
      case 3: fused_rows<3>(proto, r0, -1, cols, x, n, out + r0, rows); break;
      default: break;
    }
    return;
  }
  thread_local AlignedVector<float> panel;  // R decoded rows, interleaved by chunk
  thread_local AlignedVector<float> accs;   // [x tile][R x T] accumulator vectors between panels
  thread_local AlignedVector<float> xpack;  // the block's x rows, packed by x tile
  panel.resize(size_t(kPanelRows * kPanelChunks * kChunk));
  const int64_t block = std::max<int64_t>(kXTile, (int64_t(256 * 1024) / (cols * 4)) / kXTile * kXTile);
  accs.resize(size_t(block * kPanelRows * kChunk));
  xpack.resize(size_t(block * chunks * kChunk));
  for (int64_t i0 = 0; i0 < n; i0 += block) {
    const int64_t nb = std::min(block, n - i0);
    for (int64_t i = 0; i < nb; i += kXTile)
      pack_x_tile(x + (i0 + i) * cols, cols, int(std::min<int64_t>(kXTile, nb - i)), xpack.data() + i * chunks * kChunk);
    for (int64_t r0 = row_begin; r0 < row_end; r0 += kPanelRows) {
      const int R = int(std::min<int64_t>(kPanelRows, row_end - r0));
      // Only the block's accumulators: the buffer is sized for the largest block (256 KiB of x), and
      // clearing all of it per row tile cost more than the multiply-adds for short rows (the LM head
      // of the demo shape, cols 256, at batch 8: 64 KiB cleared per 4 weight rows).
      std::fill(accs.begin(), accs.begin() + nb * kPanelRows * kChunk, 0.0f);
      for (int64_t p0 = 0; p0 < chunks; p0 += kPanelChunks) {
        const int64_t p1 = std::min(chunks, p0 + kPanelChunks);
        for (int k = 0; k < R; ++k) {
          Rows rw = proto;
          rw.select(r0 + k);
          if (!row_is_regular(rw)) {
            decode_panel_scalar(weight, r0 + k, p0, p1, R, k, panel.data());
            continue;
          }
          auto dst = [&](int64_t c) { return panel.data() + ((c - p0) * R + k) * kChunk; };
          // The same columns of the next tile's row go to L2 meanwhile: this tile's multiply-adds
          // over every x tile then hide their reading from memory (without it the panel's decode
          // waited for memory and the multiply-adds for the decode, one after the other).
          const bool ahead = i0 == 0 && r0 + kPanelRows + k < row_end;
          Rows next = proto;
          if (ahead) next.select(r0 + kPanelRows + k);
          int64_t c = p0;
          for (; c + 2 <= p1 && c + 2 <= cols / kChunk; c += 2) {
            if (ahead) {
              _mm_prefetch(static_cast<const char*>(next.at(c)), _MM_HINT_T1);
              if constexpr (std::is_same_v<Rows, F32Rows>)  // 128 bytes per pair of chunks
                _mm_prefetch(static_cast<const char*>(next.at(c + 1)), _MM_HINT_T1);
            }
            __m512 a, b;
            rw.pair(c, a, b);
            _mm512_storeu_ps(dst(c), a);
            _mm512_storeu_ps(dst(c + 1), b);
          }
          for (; c < p1; ++c) _mm512_storeu_ps(dst(c), rw.chunk(c, chunk_mask(cols, c)));
        }
        for (int64_t i = 0; i < nb; i += kXTile) {
          const int64_t t = std::min<int64_t>(kXTile, nb - i);
          const float* xp = xpack.data() + i * chunks * kChunk;
          float* at = accs.data() + i * kPanelRows * kChunk;
          switch (R) {
            case 1: panel_rows<1>(panel.data(), p0, p1, xp, t, at); break;
            case 2: panel_rows<2>(panel.data(), p0, p1, xp, t, at); break;
            case 3: panel_rows<3>(panel.data(), p0, p1, xp, t, at); break;
            case 4: panel_rows<4>(panel.data(), p0, p1, xp, t, at); break;
            case 5: panel_rows<5>(panel.data(), p0, p1, xp, t, at); break;
            case 6: panel_rows<6>(panel.data(), p0, p1, xp, t, at); break;
            case 7: panel_rows<7>(panel.data(), p0, p1, xp, t, at); break;
            default: panel_rows<8>(panel.data(), p0, p1, xp, t, at); break;
          }
        }
      }
      for (int64_t j0 = 0; j0 < nb * R; j0 += 16) {  // output (i, k) = j / R, j % R
        const int64_t m = std::min<int64_t>(16, nb * R - j0);
        __m512 all[16];
        for (int j = 0; j < 16; ++j) {
          const int64_t i = (j0 + j) / R, k = (j0 + j) % R, t_base = (i / kXTile) * kXTile;
          all[j] = j < m ? _mm512_loadu_ps(accs.data() + (t_base * kPanelRows + (i - t_base) * R + k) * kChunk)
                         : _mm512_setzero_ps();
        }
        float sums[16];
        reduce16_add(all, sums);
        for (int64_t j = 0; j < m; ++j) out[(i0 + (j0 + j) / R) * rows + r0 + (j0 + j) % R] = sums[j];
      }
    }
  }
}

// x rows re-ordered per 32-column group as [16 even columns][16 odd columns] (FP4 chunk layout).
std::vector<float> deinterleave_pairs(const float* x, int64_t n, int64_t cols) {
  std::vector<float> d(size_t(n * cols));
  for (int64_t i = 0; i < n; ++i)
    for (int64_t g = 0; g < cols; g += kFp4Group)
      for (int64_t j = 0; j < kFp4Group / 2; ++j) {
        d[size_t(i * cols + g + j)] = x[i * cols + g + 2 * j];
        d[size_t(i * cols + g + kFp4Group / 2 + j)] = x[i * cols + g + 2 * j + 1];
      }
  return d;
}

}  // namespace

void linear_avx512(const Weight& w, const float* x, int64_t n, float* out, ThreadPool* pool) {
  const int64_t rows = w.rows, cols = w.cols;
  switch (w.dtype) {
    case DType::F32: {
      const F32Rows rw{static_cast<const float*>(w.data), cols};
      for_row_ranges(rows, pool, [&](int64_t b, int64_t e) { fast_rows(rw, w, x, n, out, b, e); });
      return;
    }
    case DType::BF16: {
      const BF16Rows rw{static_cast<const uint16_t*>(w.data), cols};
      for_row_ranges(rows, pool, [&](int64_t b, int64_t e) { fast_rows(rw, w, x, n, out, b, e); });
      return;
    }
    case DType::F8_E4M3: {
      const F8Rows rw{static_cast<const uint8_t*>(w.data), w.scale, cols, ceil_div(cols, kFp8Block)};
      for_row_ranges(rows, pool, [&](int64_t b, int64_t e) { fast_rows(rw, w, x, n, out, b, e); });
      return;
    }
    case DType::I8: {
      const std::vector<float> xd = deinterleave_pairs(x, n, cols);
      const F4Rows rw{static_cast<const uint8_t*>(w.data), w.scale, cols};
      for_row_ranges(rows, pool, [&](int64_t b, int64_t e) { fast_rows(rw, w, xd.data(), n, out, b, e); });
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
