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
// Compiled for every machine: see x86/linear_avx512.cpp for the target pragma and why the
// includes and tables come before it.
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <vector>

#include "kernels/aligned_vector.h"
#include "kernels/formats.h"
#include "kernels/linear_internal.h"

namespace v4::kernels::detail {
namespace {
const std::array<float, 256> kE8m0Avx2 = e8m0_table();
const std::array<float, 16> kE2m1Avx2 = e2m1_table();
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
  // scale * 2^8 stays finite for E8M0 < 247 (always so in real checkpoints).
  bool regular() const {
    for (int64_t b = 0; b < scale_cols; ++b)
      if (scale_row[b] >= 247) return false;
    return true;
  }
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
  // Chunks c0 + q and c0 + (q ^ 1) share one 16-byte load, widened and placed together.
  V4_INLINE __m256 full(__m256 multiplier, int64_t c0, int q) const {
    const __m128i bytes = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + (c0 + (q & ~1)) * kChunk));
    const __m256i h = _mm256_and_si256(_mm256_slli_epi16(_mm256_cvtepi8_epi16(bytes), 7), _mm256_set1_epi16(int16_t(0xBF80)));
    return _mm256_mul_ps(_mm256_cvtph_ps(q & 1 ? _mm256_extracti128_si256(h, 1) : _mm256_castsi256_si128(h)), multiplier);
  }
};

// Packed FP4: a 32-column group is 16 bytes and one scale; x is re-ordered per group as
// [16 even columns][16 odd columns], so chunk 4g + q holds the low nibbles (q = 0, 1) or the high
// nibbles (q = 2, 3) of bytes 8 (q & 1) .. 8 (q & 1) + 7. Magnitude by a permute of the 8-entry
// table times the scale (once per group), sign from bit 3 of the nibble.
struct F4Rows {
  static constexpr int64_t kLineChunks = 16, kGroupChunks = kFp4Group / kChunk;
  const uint8_t* data;
  const uint8_t* scale;
  int64_t cols;
  const uint8_t* row = nullptr;
  const uint8_t* scale_row = nullptr;
  V4_INLINE void select(int64_t r) {
    row = data + r * (cols / 2);
    scale_row = scale + r * (cols / kFp4Group);
  }
  V4_INLINE bool regular() const { return true; }
  V4_INLINE const void* at(int64_t c) const { return row + c * (kChunk / 2); }
  // Entry m of the table is m's magnitude times the group's scale, XORed with m << 28 (see full).
  V4_INLINE __m256 group(int64_t c0) const {
    const __m256 t = _mm256_mul_ps(_mm256_loadu_ps(kE2m1Avx2.data()), _mm256_set1_ps(kE8m0Avx2[scale_row[c0 / 4]]));
    const __m256i tags = _mm256_setr_epi32(0, 1 << 28, 2 << 28, 3 << 28, 4 << 28, 5 << 28, 6 << 28, 7 << 28);
    return _mm256_xor_ps(t, _mm256_castsi256_ps(tags));
  }
  // The permute reads the low 3 bits m of nibble n; n << 28 is m << 28 (cancelling the table's
  // tag) plus the sign bit, so one XOR gives the signed value.
  V4_INLINE __m256 full(__m256 table, int64_t c0, int q) const {  // cols % 32 == 0: chunks are always full
    const uint8_t* bytes = row + (c0 / 4) * 16 + (q & 1) * 8;
    const __m256i z = _mm256_cvtepu8_epi32(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(bytes)));
    const __m256i n = q < 2 ? z : _mm256_srli_epi32(z, 4);  // z's bits above the nibble: ignored and shifted out
    return _mm256_xor_ps(_mm256_permutevar8x32_ps(table, n), _mm256_castsi256_ps(_mm256_slli_epi32(n, 28)));
  }
  V4_INLINE __m256 chunk(int64_t c) const { return full(group(c / 4 * 4), c / 4 * 4, int(c % 4)); }
};

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
#pragma GCC unroll 16
  for (int k = 0; k < R; ++k)
#pragma GCC unroll 16
    for (int i = 0; i < T; ++i) acc[k][i] = _mm256_setzero_ps();
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

// Matrix: the same FMAs over chunks [c0, c1) of R decoded rows (chunk c of row k at
// ((c - c0) * R + k) * 8), accumulators carried in acc_io ([T][R] vectors) across panels
// (unrolled over R and T to keep them in registers, as in fused_tile).
template <int R, int T>
void panel_tile(const float* panel, int64_t c0, int64_t c1, const float* x, int64_t cols, float* acc_io) {
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
      const __m256 xv = load_chunk(x + i * cols, cols, c);
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
void fused_rows(const Rows& proto, int64_t r0, int64_t next_r0, int64_t cols, const float* x, int64_t n, float* out,
                int64_t ldo) {
  if (n == 1)
    fused_tile<R, 1>(proto, r0, next_r0, cols, x, out, ldo);
  else
    fused_tile<R, 2>(proto, r0, next_r0, cols, x, out, ldo);
}

template <int R>
void panel_rows(const float* panel, int64_t c0, int64_t c1, const float* x, int64_t cols, int64_t t, float* acc) {
  if (t == 1)
    panel_tile<R, 1>(panel, c0, c1, x, cols, acc);
  else
    panel_tile<R, 2>(panel, c0, c1, x, cols, acc);
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

template <int R, class Rows>
void matrix_tile(const Rows& proto, const Weight& w, int64_t r0, const float* x, int64_t n, float* out,
                 AlignedVector<float>& panel, AlignedVector<float>& accs) {
  const int64_t cols = w.cols, chunks = ceil_div(cols, kChunk);
  std::fill(accs.begin(), accs.begin() + n * R * kChunk, 0.0f);
  for (int64_t c0 = 0; c0 < chunks; c0 += kPanelChunks) {
    const int64_t c1 = std::min(chunks, c0 + kPanelChunks);
    for (int k = 0; k < R; ++k) decode_panel_row(proto, w, r0 + k, c0, c1, R, k, panel.data());
    for (int64_t i = 0; i < n; i += kXTile)
      panel_rows<R>(panel.data(), c0, c1, x + i * cols, cols, std::min<int64_t>(kXTile, n - i), accs.data() + i * R * kChunk);
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
void rows_tile(const Rows& proto, const Weight& w, int64_t r0, int64_t next_r0, const float* x, int64_t n, float* out,
               AlignedVector<float>& panel, AlignedVector<float>& accs) {
  if (n <= kXTile && tile_regular<R>(proto, r0))
    fused_rows<R>(proto, r0, next_r0, w.cols, x, n, out + r0, w.rows);
  else
    matrix_tile<R>(proto, w, r0, x, n, out, panel, accs);
}

// Rows [row_begin, row_end) of the output for all n rows of x (blocks of x rows sized for L2).
template <class Rows>
void fast_rows(const Rows& proto, const Weight& w, const float* x, int64_t n, float* out, int64_t row_begin,
               int64_t row_end) {
  thread_local AlignedVector<float> panel, accs;
  const int64_t block = std::max<int64_t>(kXTile, (int64_t(256 * 1024) / (w.cols * 4)) / kXTile * kXTile);
  panel.resize(size_t(kRowTile * kPanelChunks * kChunk));
  accs.resize(size_t(std::min(block, n) * kRowTile * kChunk + kXTile * kRowTile * kChunk));
  for (int64_t i0 = 0; i0 < n; i0 += block) {
    const int64_t nb = std::min(block, n - i0);
    const float* xb = x + i0 * w.cols;
    float* ob = out + i0 * w.rows;
    int64_t r0 = row_begin;
    for (; r0 + kRowTile <= row_end; r0 += kRowTile) {
      const int64_t next = r0 + (kPrefetchTiles + 1) * kRowTile <= row_end ? r0 + kPrefetchTiles * kRowTile : -1;
      rows_tile<kRowTile>(proto, w, r0, next, xb, nb, ob, panel, accs);
    }
    switch (row_end - r0) {
      case 1: rows_tile<1>(proto, w, r0, -1, xb, nb, ob, panel, accs); break;
      case 2: rows_tile<2>(proto, w, r0, -1, xb, nb, ob, panel, accs); break;
      case 3: rows_tile<3>(proto, w, r0, -1, xb, nb, ob, panel, accs); break;
      default: break;
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

void linear_avx2(const Weight& w, const float* x, int64_t n, float* out, ThreadPool* pool) {
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
