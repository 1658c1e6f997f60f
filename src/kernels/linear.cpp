// linear(): weight-stationary matrix kernels with fused dequantisation.
//
// Fixed accumulation order (the batch-invariance rule of linear.h): columns are read in chunks of
// 16; chunk c is multiply-added into accumulator c % 4 (each a 16-lane fp32 vector); at the end
// the four accumulators are summed as (a0 + a1) + (a2 + a3) and the 16 lanes reduced. That order
// depends only on `cols`, so out[i, r] is the same whatever n, the tile of x rows it was computed
// in, or the thread that computed it. Weights are decoded exactly (e4m3 * 2^k and e2m1 * 2^k are
// single correctly rounded products, the same ones the reference computes), so fast and reference
// results differ only by the summation order.
#include "kernels/linear.h"

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/formats.h"
#include "kernels/thread_pool.h"

#if defined(__AVX512F__) && defined(__AVX512BW__) && defined(__AVX512VL__)
#define V4_KERNELS_AVX512 1
#include <immintrin.h>
// GCC 12's AVX-512 headers build results from _mm512_undefined_*(), which trips these warnings
// at every inlined intrinsic.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif

namespace v4::kernels {

using core::DType;

namespace {

constexpr int64_t kFp8Block = 128;  // FP8 weights: one E8M0 scale per 128x128 block
constexpr int64_t kFp4Group = 32;   // FP4 weights: one E8M0 scale per 32 columns of a row

int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

void validate(const Weight& w, const float* x, int64_t n, const float* out) {
  if (w.rows <= 0 || w.cols <= 0) throw std::invalid_argument("linear: weight shape must be positive");
  if (!w.data) throw std::invalid_argument("linear: weight data is null");
  if (n < 0) throw std::invalid_argument("linear: negative row count");
  if (n > 0 && (!x || !out)) throw std::invalid_argument("linear: null input or output");
  switch (w.dtype) {
    case DType::F32:
    case DType::BF16:
      return;
    case DType::F8_E4M3:
      if (!w.scale) throw std::invalid_argument("linear: F8_E4M3 weight needs its block scales");
      return;
    case DType::I8:
      if (!w.scale) throw std::invalid_argument("linear: packed FP4 weight needs its scales");
      if (w.cols % kFp4Group != 0)
        throw std::invalid_argument("linear: packed FP4 weight needs cols % 32 == 0, got " + std::to_string(w.cols));
      return;
    default:
      throw std::invalid_argument("linear: unsupported weight dtype " + std::string(core::dtype_name(w.dtype)));
  }
}

float bf16_value(uint16_t b) {
  const uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

// The dequantised weight w[r, k], straight from the format definitions.
float reference_weight(const Weight& w, int64_t r, int64_t k) {
  switch (w.dtype) {
    case DType::F32:
      return static_cast<const float*>(w.data)[r * w.cols + k];
    case DType::BF16:
      return bf16_value(static_cast<const uint16_t*>(w.data)[r * w.cols + k]);
    case DType::F8_E4M3: {
      const uint8_t b = static_cast<const uint8_t*>(w.data)[r * w.cols + k];
      const int64_t scale_cols = ceil_div(w.cols, kFp8Block);
      return e4m3_value(b) * e8m0_value(w.scale[(r / kFp8Block) * scale_cols + k / kFp8Block]);
    }
    case DType::I8: {
      const uint8_t byte = static_cast<const uint8_t*>(w.data)[(r * w.cols + k) / 2];
      const uint8_t nibble = (k & 1) ? uint8_t(byte >> 4) : uint8_t(byte & 0xF);
      return e2m1_value(nibble) * e8m0_value(w.scale[r * (w.cols / kFp4Group) + k / kFp4Group]);
    }
    default:
      throw std::invalid_argument("linear: unsupported weight dtype");
  }
}

void reference_rows(const Weight& w, const float* x, int64_t n, float* out, int64_t row_begin, int64_t row_end) {
  for (int64_t r = row_begin; r < row_end; ++r)
    for (int64_t i = 0; i < n; ++i) {
      const float* xi = x + i * w.cols;
      float acc = 0.0f;
      for (int64_t k = 0; k < w.cols; ++k) acc += xi[k] * reference_weight(w, r, k);
      out[i * w.rows + r] = acc;
    }
}

// Output rows are handed to threads in groups of 16 so two threads never write one cache line of
// an output row (with 64-byte aligned outputs).
constexpr int64_t kRowGroup = 16;

template <class Fn>
void for_row_ranges(int64_t rows, ThreadPool* pool, const Fn& fn) {
  const int64_t groups = ceil_div(rows, kRowGroup);
  auto body = [&](int64_t gb, int64_t ge) { fn(gb * kRowGroup, std::min(rows, ge * kRowGroup)); };
  if (pool)
    pool->parallel_for(groups, body);
  else
    body(0, groups);
}

#if V4_KERNELS_AVX512

constexpr int64_t kChunk = 16;  // columns per vector
constexpr int kAccs = 4;        // accumulators per output element (chunk c -> c % 4)
constexpr int kTile = 4;        // x rows per register tile

inline __mmask16 chunk_mask(int64_t cols, int64_t c) {
  const int64_t rem = cols - c * kChunk;
  return rem >= kChunk ? __mmask16(0xFFFF) : __mmask16((1u << rem) - 1);
}

// Row decoders: select(r) picks a weight row; quad(c0, w) decodes full chunks c0..c0+3 (c0 % 4 == 0);
// single(c, mask) decodes chunk c with the lanes outside `mask` zero.
struct F32Rows {
  const float* data;
  int64_t cols;
  const float* row = nullptr;
  void select(int64_t r) { row = data + r * cols; }
  void quad(int64_t c0, __m512 w[4]) const {
    for (int j = 0; j < 4; ++j) w[j] = _mm512_loadu_ps(row + (c0 + j) * kChunk);
  }
  __m512 single(int64_t c, __mmask16 m) const { return _mm512_maskz_loadu_ps(m, row + c * kChunk); }
};

struct BF16Rows {
  const uint16_t* data;
  int64_t cols;
  const uint16_t* row = nullptr;
  void select(int64_t r) { row = data + r * cols; }
  static __m512 widen(__m256i h) { return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16)); }
  void quad(int64_t c0, __m512 w[4]) const {
    for (int j = 0; j < 4; ++j)
      w[j] = widen(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + (c0 + j) * kChunk)));
  }
  __m512 single(int64_t c, __mmask16 m) const { return widen(_mm256_maskz_loadu_epi16(m, row + c * kChunk)); }
};

// e4m3 -> fp32 by bit placement: the sign-extended byte shifted left by 20 puts exponent and
// mantissa in fp32's fields (and the sign in bit 31), which reads as value * 2^-120 (subnormals
// included); one multiply by scale * 2^120 restores the value and applies the block scale.
struct F8Rows {
  const uint8_t* data;
  const uint8_t* scale;
  int64_t cols;
  int64_t scale_cols;
  const uint8_t* row = nullptr;
  const uint8_t* scale_row = nullptr;
  void select(int64_t r) {
    row = data + r * cols;
    scale_row = scale + (r / kFp8Block) * scale_cols;
  }
  static __m512 placed(__m128i bytes) {
    const __m512i v = _mm512_slli_epi32(_mm512_cvtepi8_epi32(bytes), 20);
    return _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(int32_t(0x87F00000u))));
  }
  // Returns the multiplier for chunk c's block, or 0 when scale * 2^120 would overflow (then the
  // caller uses the two-step decode below).
  float multiplier(int64_t c) const {
    const uint8_t e = scale_row[(c * kChunk) / kFp8Block];
    return e < 135 ? e8m0_value(uint8_t(e + 120)) : 0.0f;
  }
  __m512 scaled(__m512 p, int64_t c, float mult) const {
    if (mult != 0.0f) return _mm512_mul_ps(p, _mm512_set1_ps(mult));
    const __m512 exact = _mm512_mul_ps(p, _mm512_set1_ps(0x1p120f));
    return _mm512_mul_ps(exact, _mm512_set1_ps(e8m0_value(scale_row[(c * kChunk) / kFp8Block])));
  }
  void quad(int64_t c0, __m512 w[4]) const {
    const float mult = multiplier(c0);  // chunks c0..c0+3 share one 128-column block
    for (int j = 0; j < 4; ++j)
      w[j] = scaled(placed(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + (c0 + j) * kChunk))), c0, mult);
  }
  __m512 single(int64_t c, __mmask16 m) const {
    return scaled(placed(_mm_maskz_loadu_epi8(m, row + c * kChunk)), c, multiplier(c));
  }
};

// Packed FP4: 32 columns (16 bytes, one scale) give two chunks: chunk 2g holds the even columns
// (low nibbles) of group g, chunk 2g+1 the odd columns; x is de-interleaved to match. The 16-entry
// e2m1 table times the group scale is looked up with one permute per chunk.
struct F4Rows {
  const uint8_t* data;
  const uint8_t* scale;
  int64_t cols;
  __m512 table;
  const uint8_t* row = nullptr;
  const uint8_t* scale_row = nullptr;
  F4Rows(const uint8_t* d, const uint8_t* s, int64_t c) : data(d), scale(s), cols(c) {
    table = _mm512_loadu_ps(e2m1_table().data());
  }
  void select(int64_t r) {
    row = data + r * (cols / 2);
    scale_row = scale + r * (cols / kFp4Group);
  }
  void group(int64_t g, __m512* even, __m512* odd) const {
    const __m512 t = _mm512_mul_ps(table, _mm512_set1_ps(e8m0_value(scale_row[g])));
    const __m512i z = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row + g * 16)));
    *even = _mm512_permutexvar_ps(_mm512_and_si512(z, _mm512_set1_epi32(0xF)), t);
    *odd = _mm512_permutexvar_ps(_mm512_srli_epi32(z, 4), t);
  }
  void quad(int64_t c0, __m512 w[4]) const {
    group(c0 / 2, &w[0], &w[1]);
    group(c0 / 2 + 1, &w[2], &w[3]);
  }
  __m512 single(int64_t c, __mmask16) const {  // cols % 32 == 0: chunks are always full
    __m512 even, odd;
    group(c / 2, &even, &odd);
    return (c & 1) ? odd : even;
  }
};

inline float reduce_accumulators(const __m512 acc[kAccs]) {
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]), _mm512_add_ps(acc[2], acc[3])));
}

// T rows of x (stride ldx) against the selected weight row; results to out[i * ldo].
template <int T, class Rows>
void dot_tile(const Rows& w, int64_t cols, const float* x, int64_t ldx, float* out, int64_t ldo) {
  __m512 acc[T][kAccs];
  for (int i = 0; i < T; ++i)
    for (int j = 0; j < kAccs; ++j) acc[i][j] = _mm512_setzero_ps();
  const int64_t chunks = ceil_div(cols, kChunk);
  const int64_t quad_end = (cols / kChunk) / 4 * 4;
  for (int64_t c0 = 0; c0 < quad_end; c0 += 4) {
    __m512 wv[4];
    w.quad(c0, wv);
    for (int j = 0; j < 4; ++j)
      for (int i = 0; i < T; ++i)
        acc[i][j] = _mm512_fmadd_ps(wv[j], _mm512_loadu_ps(x + i * ldx + (c0 + j) * kChunk), acc[i][j]);
  }
#pragma GCC unroll 4
  for (int j = 0; j < 4; ++j) {
    const int64_t c = quad_end + j;
    if (c >= chunks) break;
    const __mmask16 m = chunk_mask(cols, c);
    const __m512 wv = w.single(c, m);
    for (int i = 0; i < T; ++i)
      acc[i][j] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x + i * ldx + c * kChunk), acc[i][j]);
  }
  for (int i = 0; i < T; ++i) out[i * ldo] = reduce_accumulators(acc[i]);
}

template <class Rows>
void dot_rows(const Rows& w, int64_t cols, const float* x, int64_t ldx, int64_t n, float* out, int64_t ldo) {
  int64_t i = 0;
  for (; i + kTile <= n; i += kTile) dot_tile<kTile>(w, cols, x + i * ldx, ldx, out + i * ldo, ldo);
  switch (n - i) {
    case 1: dot_tile<1>(w, cols, x + i * ldx, ldx, out + i * ldo, ldo); break;
    case 2: dot_tile<2>(w, cols, x + i * ldx, ldx, out + i * ldo, ldo); break;
    case 3: dot_tile<3>(w, cols, x + i * ldx, ldx, out + i * ldo, ldo); break;
    default: break;
  }
}

// Decodes the selected row into `dst` (whole chunks, zero beyond cols).
template <class Rows>
void decode_row(const Rows& w, int64_t cols, float* dst) {
  const int64_t chunks = ceil_div(cols, kChunk);
  const int64_t quad_end = (cols / kChunk) / 4 * 4;
  for (int64_t c0 = 0; c0 < quad_end; c0 += 4) {
    __m512 wv[4];
    w.quad(c0, wv);
    for (int j = 0; j < 4; ++j) _mm512_storeu_ps(dst + (c0 + j) * kChunk, wv[j]);
  }
  for (int64_t c = quad_end; c < chunks; ++c) _mm512_storeu_ps(dst + c * kChunk, w.single(c, chunk_mask(cols, c)));
}

// Rows [row_begin, row_end) of the output for all n rows of x. Each weight row is read from
// memory once per block of x rows; with more than one register tile of x rows it is decoded once
// into an L1-resident scratch row and the tiles read that.
template <class Rows>
void fast_rows(Rows w, int64_t rows, int64_t cols, const float* x, int64_t n, float* out, int64_t row_begin,
               int64_t row_end) {
  if (n <= kTile) {
    for (int64_t r = row_begin; r < row_end; ++r) {
      w.select(r);
      dot_rows(w, cols, x, cols, n, out + r, rows);
    }
    return;
  }
  thread_local std::vector<float> scratch;
  scratch.resize(size_t(ceil_div(cols, kChunk) * kChunk));
  F32Rows decoded{scratch.data(), 0};
  decoded.row = scratch.data();
  // Keep a block of x rows within about 256 KiB so it stays in L2 while the weight rows stream.
  const int64_t block = std::max<int64_t>(kTile, (int64_t(256 * 1024) / (cols * 4)) / kTile * kTile);
  for (int64_t i0 = 0; i0 < n; i0 += block) {
    const int64_t nb = std::min(block, n - i0);
    for (int64_t r = row_begin; r < row_end; ++r) {
      w.select(r);
      decode_row(w, cols, scratch.data());
      dot_rows(decoded, cols, x + i0 * cols, cols, nb, out + i0 * rows + r, rows);
    }
  }
}

template <>
void fast_rows<F32Rows>(F32Rows w, int64_t rows, int64_t cols, const float* x, int64_t n, float* out,
                        int64_t row_begin, int64_t row_end) {
  const int64_t block = std::max<int64_t>(kTile, (int64_t(256 * 1024) / (cols * 4)) / kTile * kTile);
  for (int64_t i0 = 0; i0 < n; i0 += block) {
    const int64_t nb = std::min(block, n - i0);
    for (int64_t r = row_begin; r < row_end; ++r) {
      w.select(r);
      dot_rows(w, cols, x + i0 * cols, cols, nb, out + i0 * rows + r, rows);
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

#endif  // V4_KERNELS_AVX512

}  // namespace

void linear_reference(const Weight& w, const float* x, int64_t n, float* out) {
  validate(w, x, n, out);
  if (n == 0) return;
  reference_rows(w, x, n, out, 0, w.rows);
}

void linear(const Weight& w, const float* x, int64_t n, float* out, ThreadPool* pool) {
  validate(w, x, n, out);
  if (n == 0) return;
#if V4_KERNELS_AVX512
  const int64_t rows = w.rows, cols = w.cols;
  switch (w.dtype) {
    case DType::F32: {
      F32Rows rw{static_cast<const float*>(w.data), cols};
      for_row_ranges(rows, pool, [&](int64_t b, int64_t e) { fast_rows(rw, rows, cols, x, n, out, b, e); });
      return;
    }
    case DType::BF16: {
      BF16Rows rw{static_cast<const uint16_t*>(w.data), cols};
      for_row_ranges(rows, pool, [&](int64_t b, int64_t e) { fast_rows(rw, rows, cols, x, n, out, b, e); });
      return;
    }
    case DType::F8_E4M3: {
      F8Rows rw{static_cast<const uint8_t*>(w.data), w.scale, cols, ceil_div(cols, kFp8Block)};
      for_row_ranges(rows, pool, [&](int64_t b, int64_t e) { fast_rows(rw, rows, cols, x, n, out, b, e); });
      return;
    }
    case DType::I8: {
      const std::vector<float> xd = deinterleave_pairs(x, n, cols);
      F4Rows rw(static_cast<const uint8_t*>(w.data), w.scale, cols);
      for_row_ranges(rows, pool, [&](int64_t b, int64_t e) { fast_rows(rw, rows, cols, xd.data(), n, out, b, e); });
      return;
    }
    default:
      break;
  }
#endif
  // Portable path: the reference, split by output rows.
  for_row_ranges(w.rows, pool, [&](int64_t b, int64_t e) { reference_rows(w, x, n, out, b, e); });
}

}  // namespace v4::kernels
