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
#include <array>
#include <type_traits>
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

#define V4_INLINE inline __attribute__((always_inline))

// Namespace-scope copies of the tables (no initialisation guard on the hot path).
const std::array<float, 256> kE8m0 = e8m0_table();
const std::array<float, 16> kE2m1 = e2m1_table();

V4_INLINE __mmask16 chunk_mask(int64_t cols, int64_t c) {
  const int64_t rem = cols - c * kChunk;
  return rem >= kChunk ? __mmask16(0xFFFF) : __mmask16((1u << rem) - 1);
}

// Row decoders. select(r) picks a weight row; chunk(c, m) is chunk c of that row as fp32 (lanes
// outside m zero); quad(c0, w) decodes the four full chunks c0..c0+3 (c0 % 4 == 0).
struct F32Rows {
  const float* data;
  int64_t cols;
  const float* row = nullptr;
  V4_INLINE void select(int64_t r) { row = data + r * cols; }
  V4_INLINE __m512 chunk(int64_t c, __mmask16 m) const { return _mm512_maskz_loadu_ps(m, row + c * kChunk); }
  V4_INLINE void quad(int64_t c0, __m512& w0, __m512& w1, __m512& w2, __m512& w3) const {
    const float* p = row + c0 * kChunk;
    w0 = _mm512_loadu_ps(p);
    w1 = _mm512_loadu_ps(p + 16);
    w2 = _mm512_loadu_ps(p + 32);
    w3 = _mm512_loadu_ps(p + 48);
  }
};

struct BF16Rows {
  const uint16_t* data;
  int64_t cols;
  const uint16_t* row = nullptr;
  V4_INLINE void select(int64_t r) { row = data + r * cols; }
  static V4_INLINE __m512 widen(__m256i h) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
  }
  V4_INLINE __m512 chunk(int64_t c, __mmask16 m) const { return widen(_mm256_maskz_loadu_epi16(m, row + c * kChunk)); }
  V4_INLINE void quad(int64_t c0, __m512& w0, __m512& w1, __m512& w2, __m512& w3) const {
    const __m256i* p = reinterpret_cast<const __m256i*>(row + c0 * kChunk);
    w0 = widen(_mm256_loadu_si256(p));
    w1 = widen(_mm256_loadu_si256(p + 1));
    w2 = widen(_mm256_loadu_si256(p + 2));
    w3 = widen(_mm256_loadu_si256(p + 3));
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
  V4_INLINE void quad(int64_t c0, __m512& w0, __m512& w1, __m512& w2, __m512& w3) const {
    const __m512 mult = multiplier(c0);  // chunks c0..c0+3 share one 128-column block
    const __m128i* p = reinterpret_cast<const __m128i*>(row + c0 * kChunk);
    w0 = _mm512_mul_ps(placed(_mm_loadu_si128(p)), mult);
    w1 = _mm512_mul_ps(placed(_mm_loadu_si128(p + 1)), mult);
    w2 = _mm512_mul_ps(placed(_mm_loadu_si128(p + 2)), mult);
    w3 = _mm512_mul_ps(placed(_mm_loadu_si128(p + 3)), mult);
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
  V4_INLINE void quad(int64_t c0, __m512& w0, __m512& w1, __m512& w2, __m512& w3) const {
    group(c0 / 2, w0, w1);
    group(c0 / 2 + 1, w2, w3);
  }
};

V4_INLINE float reduce4(__m512 a0, __m512 a1, __m512 a2, __m512 a3) {
  return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}

// T (1..4) rows of x (stride ldx) against the selected weight row; results to out[i * ldo].
template <int T, class Rows>
void dot_tile(const Rows& w, int64_t cols, const float* x, int64_t ldx, float* out, int64_t ldo) {
  const float* x0 = x;
  const float* x1 = x + (T > 1 ? ldx : 0);
  const float* x2 = x + (T > 2 ? 2 * ldx : 0);
  const float* x3 = x + (T > 3 ? 3 * ldx : 0);
  __m512 a00 = _mm512_setzero_ps(), a01 = a00, a02 = a00, a03 = a00;
  __m512 a10 = a00, a11 = a00, a12 = a00, a13 = a00;
  __m512 a20 = a00, a21 = a00, a22 = a00, a23 = a00;
  __m512 a30 = a00, a31 = a00, a32 = a00, a33 = a00;
#define V4_FMA_ROWS(wv, off, J, LOAD)                                      \
  do {                                                                     \
    a0##J = _mm512_fmadd_ps(wv, LOAD(x0 + (off)), a0##J);                  \
    if constexpr (T > 1) a1##J = _mm512_fmadd_ps(wv, LOAD(x1 + (off)), a1##J); \
    if constexpr (T > 2) a2##J = _mm512_fmadd_ps(wv, LOAD(x2 + (off)), a2##J); \
    if constexpr (T > 3) a3##J = _mm512_fmadd_ps(wv, LOAD(x3 + (off)), a3##J); \
  } while (0)
  const int64_t chunks = ceil_div(cols, kChunk);
  const int64_t quad_end = (cols / kChunk) / 4 * 4;
  for (int64_t c0 = 0; c0 < quad_end; c0 += 4) {
    __m512 w0, w1, w2, w3;
    w.quad(c0, w0, w1, w2, w3);
    const int64_t off = c0 * kChunk;
    V4_FMA_ROWS(w0, off, 0, _mm512_loadu_ps);
    V4_FMA_ROWS(w1, off + 16, 1, _mm512_loadu_ps);
    V4_FMA_ROWS(w2, off + 32, 2, _mm512_loadu_ps);
    V4_FMA_ROWS(w3, off + 48, 3, _mm512_loadu_ps);
  }
  // Up to four remaining chunks (the last may be partial), in the same chunk -> accumulator map.
  const int64_t rest = chunks - quad_end;
  __mmask16 m;
#define V4_MASKED_LOAD(p) _mm512_maskz_loadu_ps(m, p)
  if (rest > 0) {
    m = chunk_mask(cols, quad_end);
    const __m512 wv = w.chunk(quad_end, m);
    V4_FMA_ROWS(wv, quad_end * kChunk, 0, V4_MASKED_LOAD);
  }
  if (rest > 1) {
    m = chunk_mask(cols, quad_end + 1);
    const __m512 wv = w.chunk(quad_end + 1, m);
    V4_FMA_ROWS(wv, (quad_end + 1) * kChunk, 1, V4_MASKED_LOAD);
  }
  if (rest > 2) {
    m = chunk_mask(cols, quad_end + 2);
    const __m512 wv = w.chunk(quad_end + 2, m);
    V4_FMA_ROWS(wv, (quad_end + 2) * kChunk, 2, V4_MASKED_LOAD);
  }
  if (rest > 3) {
    m = chunk_mask(cols, quad_end + 3);
    const __m512 wv = w.chunk(quad_end + 3, m);
    V4_FMA_ROWS(wv, (quad_end + 3) * kChunk, 3, V4_MASKED_LOAD);
  }
#undef V4_MASKED_LOAD
#undef V4_FMA_ROWS
  out[0] = reduce4(a00, a01, a02, a03);
  if constexpr (T > 1) out[ldo] = reduce4(a10, a11, a12, a13);
  if constexpr (T > 2) out[2 * ldo] = reduce4(a20, a21, a22, a23);
  if constexpr (T > 3) out[3 * ldo] = reduce4(a30, a31, a32, a33);
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
    __m512 w0, w1, w2, w3;
    w.quad(c0, w0, w1, w2, w3);
    _mm512_storeu_ps(dst + c0 * kChunk, w0);
    _mm512_storeu_ps(dst + c0 * kChunk + 16, w1);
    _mm512_storeu_ps(dst + c0 * kChunk + 32, w2);
    _mm512_storeu_ps(dst + c0 * kChunk + 48, w3);
  }
  for (int64_t c = quad_end; c < chunks; ++c) _mm512_storeu_ps(dst + c * kChunk, w.chunk(c, chunk_mask(cols, c)));
}

// FP8 rows with an extreme block scale: the scalar definition, same values as the reference.
void decode_row_scalar(const Weight& weight, int64_t r, float* dst) {
  const int64_t chunks = ceil_div(weight.cols, kChunk);
  for (int64_t k = 0; k < chunks * kChunk; ++k) dst[k] = k < weight.cols ? reference_weight(weight, r, k) : 0.0f;
}

template <class Rows>
bool row_is_regular(const Rows&) {
  return true;
}
template <>
bool row_is_regular<F8Rows>(const F8Rows& w) {
  return w.row_is_regular();
}

// Rows [row_begin, row_end) of the output for all n rows of x. With at most one register tile
// of x rows the weight row is decoded straight into the multiply-adds; with more it is decoded
// once into an L1-resident scratch row that every tile reads. x is taken in blocks that stay in
// L2 while the weight rows stream. Both ways feed identical values in the identical order.
template <class Rows>
void fast_rows(Rows w, const Weight& weight, const float* x, int64_t n, float* out, int64_t row_begin,
               int64_t row_end) {
  const int64_t rows = weight.rows, cols = weight.cols;
  thread_local std::vector<float> scratch;
  scratch.resize(size_t(ceil_div(cols, kChunk) * kChunk));
  F32Rows decoded{scratch.data(), 0};
  decoded.row = scratch.data();
  constexpr bool kIsF32 = std::is_same_v<Rows, F32Rows>;
  const int64_t block = std::max<int64_t>(kTile, (int64_t(256 * 1024) / (cols * 4)) / kTile * kTile);
  for (int64_t i0 = 0; i0 < n; i0 += block) {
    const int64_t nb = std::min(block, n - i0);
    const float* xb = x + i0 * cols;
    float* ob = out + i0 * rows;
    for (int64_t r = row_begin; r < row_end; ++r) {
      w.select(r);
      if (!row_is_regular(w)) {
        decode_row_scalar(weight, r, scratch.data());
        dot_rows(decoded, cols, xb, cols, nb, ob + r, rows);
      } else if (kIsF32 || nb <= kTile) {
        dot_rows(w, cols, xb, cols, nb, ob + r, rows);
      } else {
        decode_row(w, cols, scratch.data());
        dot_rows(decoded, cols, xb, cols, nb, ob + r, rows);
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
      break;
  }
#endif
  // Portable path: the reference, split by output rows.
  for_row_ranges(w.rows, pool, [&](int64_t b, int64_t e) { reference_rows(w, x, n, out, b, e); });
}

}  // namespace v4::kernels
