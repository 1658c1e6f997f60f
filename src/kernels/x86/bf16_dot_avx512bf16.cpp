// BF16 dot-product kernels for FP8 / FP4 weights (see bf16_dot.h): the Isa::avx512bf16 variant.
//
// A step of columns is two (FP8: 64 columns) or four (FP4: 128 columns) BF16 vectors of 32 lanes:
//  FP8: the 64 weight bytes index two 128-entry byte tables (high and low byte of the BF16 value;
//       vpermi2b ignores the sign bit, which is put back with one logic op) and the two bytes are
//       interleaved with vpunpck{l,h}bw, so half A holds columns 16 k + 0..7 and half B columns
//       16 k + 8..15 (k = 0..3, one 128-bit lane each). The 128x128 block scale multiplies x
//       instead of the weights (a power of two, so exactly), which makes x depend on the 128-row
//       block: each thread arranges it per block.
//  FP4: the 64 bytes are 32 16-bit lanes of four nibbles; part q holds nibble q of each lane
//       (columns 4 j + q), looked up in a 16-entry BF16 table (vpermw on the lane shifted down by
//       4 q, the table repeated so the next nibble's low bit does not matter). Each fp32 lane of a
//       step's dot products covers one 32-column group, so the step is summed from zero and then
//       multiply-added with the vector of its group scales: one FMA per step instead of a scale per
//       weight.
// Rows with scales outside the ranges below go to the caller's fallback (never the case in real
// checkpoints).
//
// Compiled for every machine: the instructions are enabled by the target pragma below for this
// file's own code only (see x86/linear_avx512.cpp for why the includes and the tables come first).
// linear() calls in here only when the CPU has AVX-512 BF16 and VBMI (kernels/isa.h).
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cstring>
#include <stdexcept>
#include <type_traits>
#include <vector>

#include "kernels/aligned_vector.h"
#include "kernels/bf16_dot.h"
#include "kernels/formats.h"

namespace v4::kernels::bf16dot {
namespace {

constexpr int kRowTile = 4;            // weight rows per tile
constexpr int kXTile = 4;              // x rows per tile
constexpr int64_t kXBlockBytes = 512 * 1024;  // arranged x rows per block: L2-resident

uint16_t bf16_bits(float f) {  // exact for the format values tabulated below
  uint32_t u;
  std::memcpy(&u, &f, 4);
  return uint16_t(u >> 16);
}

// BF16 of e4m3 magnitudes 0..127 (0x7F is NaN), split into high and low bytes for vpermi2b.
struct Fp8Tables {
  alignas(64) std::array<uint8_t, 128> hi;
  alignas(64) std::array<uint8_t, 128> lo;
};
const Fp8Tables kFp8Tables = [] {
  Fp8Tables t{};
  for (int i = 0; i < 128; ++i) {
    const uint16_t b = i == 0x7F ? uint16_t(0x7FC0) : bf16_bits(detail::e4m3_definition(uint8_t(i)));
    t.hi[size_t(i)] = uint8_t(b >> 8);
    t.lo[size_t(i)] = uint8_t(b & 0xFF);
  }
  return t;
}();

// BF16 of e2m1 codes, indexed by the low 5 bits of a 16-bit lane (so the table repeats: bit 4 is
// the next nibble's lowest bit).
struct alignas(64) Fp4Table {
  std::array<uint16_t, 32> v;
};
const Fp4Table kFp4Table = [] {
  Fp4Table t{};
  for (int i = 0; i < 32; ++i) {
    const uint8_t nibble = uint8_t(i & 0xF);
    t.v[size_t(i)] = bf16_bits(detail::e2m1_definition(nibble));
  }
  return t;
}();

}  // namespace
}  // namespace v4::kernels::bf16dot

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx512vbmi"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx512vbmi")
#endif
// GCC 12's AVX-512 headers build results from _mm512_undefined_*(): see x86/linear_avx512.cpp.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "kernels/x86/reduce16_avx512.h"

#define V4_INLINE inline __attribute__((always_inline))
#define V4_INLINE_LAMBDA __attribute__((always_inline))

namespace v4::kernels::bf16dot {

using core::DType;

namespace {

// Scales the BF16 path takes: FP8 block scales 2^-95..2^100 keep quantised activations times the
// scale normal and finite; FP4 group scales must be normal fp32 numbers (not 0 or NaN).
bool bytes_within(const uint8_t* p, int64_t count, uint8_t lo, uint8_t hi) {
  int64_t i = 0;
  // runs once per tile over the tile's scales: 64 at a time
  __m512i mn = _mm512_set1_epi8(char(hi)), mx = _mm512_set1_epi8(char(lo));
  for (; i + 64 <= count; i += 64) {
    const __m512i v = _mm512_loadu_si512(p + i);
    mn = _mm512_min_epu8(mn, v);
    mx = _mm512_max_epu8(mx, v);
  }
  if (_mm512_cmplt_epu8_mask(mn, _mm512_set1_epi8(char(lo))) || _mm512_cmpgt_epu8_mask(mx, _mm512_set1_epi8(char(hi))))
    return false;
  for (; i < count; ++i)
    if (p[i] < lo || p[i] > hi) return false;
  return true;
}
constexpr uint8_t kFp8ScaleMin = 32, kFp8ScaleMax = 227;
constexpr uint8_t kFp4ScaleMin = 1, kFp4ScaleMax = 254;

}  // namespace

namespace {


V4_INLINE __mmask16 float_mask(int64_t valid) {
  return valid >= 16 ? __mmask16(0xFFFF) : valid <= 0 ? __mmask16(0) : __mmask16((1u << valid) - 1);
}

V4_INLINE __m512i to_bf16(__m512 hi16, __m512 lo16) { return (__m512i)_mm512_cvtne2ps_pbh(hi16, lo16); }

// ---- BF16 pairs on fp32 FMAs (PairMode::fma, see bf16_dot.h) -------------------------------------
// The odd element of each 32-bit lane (its high half) and the even one, as fp32 numbers.
V4_INLINE __m512 odd_elements(__m512i v) {
  return _mm512_castsi512_ps(_mm512_and_si512(v, _mm512_set1_epi32(int32_t(0xFFFF0000u))));
}
V4_INLINE __m512 even_elements(__m512i v) { return _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)); }
// 32 BF16 lanes split into dst[0..15] (odd elements) and dst[16..31] (even).
V4_INLINE void store_pairs(float* dst, __m512i v) {
  _mm512_storeu_ps(dst, odd_elements(v));
  _mm512_storeu_ps(dst + 16, even_elements(v));
}
// vdpbf16ps(acc, w, x) with w split in registers and x split at xp: odd product first.
V4_INLINE __m512 fma_pair(__m512 acc, __m512 w_odd, __m512 w_even, const float* xp) {
  return _mm512_fmadd_ps(w_even, _mm512_loadu_ps(xp + 16), _mm512_fmadd_ps(w_odd, _mm512_loadu_ps(xp), acc));
}
void split_pairs(const uint16_t* src, int64_t lanes, float* dst) {  // lanes: a multiple of 32
  for (int64_t i = 0; i < lanes; i += 32) store_pairs(dst + i, _mm512_loadu_si512(src + i));
}

// DAZ and FTZ for the scope (vdpbf16ps's own rules, for the FMAs and everything else rows() does).
class FlushDenormals {
 public:
  FlushDenormals() : saved_(_mm_getcsr()) { _mm_setcsr(saved_ | kDazFtz); }
  ~FlushDenormals() { _mm_setcsr(saved_); }
  FlushDenormals(const FlushDenormals&) = delete;
  FlushDenormals& operator=(const FlushDenormals&) = delete;
  unsigned saved() const { return saved_; }
  static constexpr unsigned kDazFtz = 0x8040;

 private:
  unsigned saved_;
};

// x row -> BF16 in FP8 lane order, times the block scales of one 128-row block (x is BF16-exact
// and the scales are powers of two, so the products stay BF16 numbers). Part p of a step at lanes
// p * 32.
void arrange_fp8(const float* x, int64_t cols, const uint8_t* scale_row, uint16_t* dst) {
  for (int64_t c = 0; c < cols; c += 64) {
    const __m512 mult = _mm512_set1_ps(e8m0_value(scale_row[c / kFp8Block]));
    __m512 v[4];
    for (int j = 0; j < 4; ++j)
      v[j] = _mm512_mul_ps(_mm512_maskz_loadu_ps(float_mask(cols - c - 16 * j), x + c + 16 * j), mult);
    __m512 parts[2][2] = {{_mm512_shuffle_f32x4(v[0], v[1], 0x44), _mm512_shuffle_f32x4(v[2], v[3], 0x44)},
                          {_mm512_shuffle_f32x4(v[0], v[1], 0xEE), _mm512_shuffle_f32x4(v[2], v[3], 0xEE)}};
    for (int p = 0; p < 2; ++p) _mm512_storeu_si512(dst + c + 32 * p, to_bf16(parts[p][1], parts[p][0]));
  }
}

// x row -> BF16 in FP4 lane order: part q of a step holds columns 128 s + 4 j + q, j = 0..31.
void arrange_fp4(const float* x, int64_t cols, uint16_t* dst) {
  for (int64_t c = 0; c < cols; c += 128) {
    __m512 v[8];
    for (int j = 0; j < 8; ++j) v[j] = _mm512_maskz_loadu_ps(float_mask(cols - c - 16 * j), x + c + 16 * j);
    for (int q = 0; q < 4; ++q) {
      // lanes 0..7: every fourth column from offset q of two vectors (32 columns)
      const __m512i pick = _mm512_setr_epi32(q, q + 4, q + 8, q + 12, q + 16, q + 20, q + 24, q + 28, 0, 0, 0, 0, 0, 0, 0, 0);
      __m512 eighths[4];
      for (int h = 0; h < 4; ++h) eighths[h] = _mm512_permutex2var_ps(v[2 * h], pick, v[2 * h + 1]);
      const __m512 lo = _mm512_shuffle_f32x4(eighths[0], eighths[1], 0x44);
      const __m512 hi = _mm512_shuffle_f32x4(eighths[2], eighths[3], 0x44);
      _mm512_storeu_si512(dst + c + 32 * q, to_bf16(hi, lo));
    }
  }
}

// x row -> BF16 in column order (BF16 weights), zero-padded to whole steps of 64 columns.
void arrange_bf16(const float* x, int64_t cols, int64_t padded_cols, uint16_t* dst) {
  for (int64_t c = 0; c < padded_cols; c += 32) {
    const __m512 lo = _mm512_maskz_loadu_ps(float_mask(cols - c), x + c);
    const __m512 hi = _mm512_maskz_loadu_ps(float_mask(cols - c - 16), x + c + 16);
    _mm512_storeu_si512(dst + c, to_bf16(hi, lo));
  }
}

// ---- row decoders ------------------------------------------------------------------------------
// A step is kCols columns in kParts BF16 vectors of 32 lanes. select(k, r) picks weight row r as
// tile row k; refresh/step_begin prepare per-step state; decode(k, s, w) gives step s of tile row
// k (decode_tail: the partial last step); prefetch(k, s, rows_ahead) asks for the same step of a
// later row into L2. prepare(...) says whether rows [r0, r0 + R) take this path and where their
// arranged x rows are.

struct Fp8Rows {
  static constexpr int64_t kCols = 64;
  static constexpr int kParts = 2;
  static constexpr int kTerms = 1;  // BF16 terms per x value
  static constexpr bool kStepScale = false;
  const uint8_t* data;
  const uint8_t* scale;
  int64_t cols, scale_cols;
  __m512i hi0, hi1, lo0, lo1, sign;
  const uint8_t* row[kRowTile] = {};
  // The arranged x of the last (block, first x row) prepared on this thread, and its split for the
  // FMAs when want_pairs.
  AlignedVector<uint16_t>* xbuf;
  AlignedVector<float>* xpairs;
  bool want_pairs = false;
  int64_t built_block = -1, built_i0 = -1;
  bool built_regular = false;

  Fp8Rows(const Weight& w, AlignedVector<uint16_t>* buf, AlignedVector<float>* pairs_buf)
      : data(static_cast<const uint8_t*>(w.data)), scale(w.scale), cols(w.cols), scale_cols(ceil_div(w.cols, kFp8Block)),
        xbuf(buf), xpairs(pairs_buf) {
    hi0 = _mm512_load_si512(kFp8Tables.hi.data());
    hi1 = _mm512_load_si512(kFp8Tables.hi.data() + 64);
    lo0 = _mm512_load_si512(kFp8Tables.lo.data());
    lo1 = _mm512_load_si512(kFp8Tables.lo.data() + 64);
    sign = _mm512_set1_epi8(char(0x80));
  }
  bool prepare(const Input& in, int64_t r0, int, int64_t i0, int64_t nb, const uint16_t*& xs, const float*& xf) {
    const int64_t block = r0 / kFp8Block;
    if (block != built_block || i0 != built_i0) {
      const uint8_t* srow = scale + block * scale_cols;
      built_regular = bytes_within(srow, scale_cols, kFp8ScaleMin, kFp8ScaleMax);
      if (built_regular) {
        const int64_t ldx = in.x_stride();
        xbuf->resize(size_t(nb * ldx));
        for (int64_t i = 0; i < nb; ++i) arrange_fp8(in.x() + (i0 + i) * cols, cols, srow, xbuf->data() + i * ldx);
        if (want_pairs) {
          xpairs->resize(size_t(nb * ldx));
          split_pairs(xbuf->data(), nb * ldx, xpairs->data());
        }
      }
      built_block = block;
      built_i0 = i0;
    }
    xs = xbuf->data();
    xf = want_pairs ? xpairs->data() : nullptr;
    return built_regular;
  }
  V4_INLINE void select(int k, int64_t r) { row[k] = data + r * cols; }
  V4_INLINE void refresh(int, int64_t) {}
  V4_INLINE void step_begin(int, int64_t) {}
  V4_INLINE __m512 step_scale(int) const { return _mm512_set1_ps(1.0f); }
  V4_INLINE void prefetch(int k, int64_t s, int64_t rows_ahead) const {
    _mm_prefetch(reinterpret_cast<const char*>(row[k] + rows_ahead * cols + s * kCols), _MM_HINT_T1);
  }
  V4_INLINE void decode_bytes(__m512i bytes, __m512i (&w)[kParts]) const {
    __m512i hi = _mm512_permutex2var_epi8(hi0, bytes, hi1);
    hi = _mm512_ternarylogic_epi32(hi, bytes, sign, 0xF8);  // hi | (bytes & 0x80)
    const __m512i lo = _mm512_permutex2var_epi8(lo0, bytes, lo1);
    w[0] = _mm512_unpacklo_epi8(lo, hi);
    w[1] = _mm512_unpackhi_epi8(lo, hi);
  }
  V4_INLINE void decode(int k, int64_t s, __m512i (&w)[kParts]) const {
    decode_bytes(_mm512_loadu_si512(row[k] + s * kCols), w);
  }
  V4_INLINE void decode_tail(int k, int64_t s, int64_t valid_cols, __m512i (&w)[kParts]) const {
    const __mmask64 m = (__mmask64(1) << valid_cols) - 1;  // valid_cols < 64
    decode_bytes(_mm512_maskz_loadu_epi8(m, row[k] + s * kCols), w);
  }
};

// FP4: a step is 128 columns = 64 bytes = 32 16-bit lanes of four nibbles; part q is nibble q of
// every lane (shifted down by 4q and looked up by its low 5 bits in the repeated table). The
// group scales are not in the decoded values: dot-product lane i of a step covers columns of group
// i / 4 only, so a step's partial sums are multiplied by a vector of the four group scales
// (kStepScale).
struct Fp4Rows {
  static constexpr int64_t kCols = 128;
  static constexpr int kParts = 4;
  static constexpr int kTerms = 1;
  static constexpr bool kStepScale = true;
  const uint8_t* data;
  const uint8_t* scale;
  int64_t cols, groups;
  __m512i table, idx_base, idx;
  const uint8_t* row[kRowTile] = {};
  const uint8_t* srow[kRowTile] = {};
  __m512 scales[kRowTile];  // 2^(e-127) of 16 groups (4 steps) from step s_base
  int64_t s_base = 0;

  explicit Fp4Rows(const Weight& w)
      : data(static_cast<const uint8_t*>(w.data)), scale(w.scale), cols(w.cols), groups(w.cols / kFp4Group) {
    table = _mm512_load_si512(kFp4Table.v.data());
    idx_base = _mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3);
    idx = idx_base;
    for (auto& e : scales) e = _mm512_setzero_ps();
  }
  bool prepare(const Input& in, int64_t r0, int R, int64_t i0, int64_t, const uint16_t*& xs, const float*& xf) {
    xs = in.arranged() + i0 * in.x_stride();
    xf = in.pairs() ? in.pairs() + i0 * in.x_stride() : nullptr;
    return bytes_within(scale + r0 * groups, R * groups, kFp4ScaleMin, kFp4ScaleMax);
  }
  V4_INLINE void select(int k, int64_t r) {
    row[k] = data + r * (cols / 2);
    srow[k] = scale + r * groups;
  }
  V4_INLINE void refresh(int R, int64_t s) {
    s_base = s;
    const int64_t remaining = groups - 4 * s;
    const __mmask16 m = remaining >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << remaining) - 1);
    for (int k = 0; k < R; ++k)  // E8M0 e -> the fp32 bits of 2^(e-127): e in the exponent field
      scales[k] = _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, srow[k] + 4 * s)), 23));
  }
  V4_INLINE void step_begin(int R, int64_t s) {
    if (s - s_base >= 4) refresh(R, s);
    idx = _mm512_add_epi32(idx_base, _mm512_set1_epi32(int32_t(4 * (s - s_base))));
  }
  V4_INLINE __m512 step_scale(int k) const { return _mm512_permutexvar_ps(idx, scales[k]); }
  V4_INLINE void prefetch(int k, int64_t s, int64_t rows_ahead) const {
    _mm_prefetch(reinterpret_cast<const char*>(row[k] + rows_ahead * (cols / 2) + s * (kCols / 2)), _MM_HINT_T1);
  }
  V4_INLINE void decode_lanes(__m512i z, __m512i (&w)[kParts]) const {
    w[0] = _mm512_permutexvar_epi16(z, table);
    w[1] = _mm512_permutexvar_epi16(_mm512_srli_epi16(z, 4), table);
    w[2] = _mm512_permutexvar_epi16(_mm512_srli_epi16(z, 8), table);
    w[3] = _mm512_permutexvar_epi16(_mm512_srli_epi16(z, 12), table);
  }
  V4_INLINE void decode(int k, int64_t s, __m512i (&w)[kParts]) const {
    decode_lanes(_mm512_loadu_si512(row[k] + s * (kCols / 2)), w);
  }
  V4_INLINE void decode_tail(int k, int64_t s, int64_t valid_cols, __m512i (&w)[kParts]) const {
    const __mmask64 m = (__mmask64(1) << (valid_cols / 2)) - 1;  // valid_cols < 128
    decode_lanes(_mm512_maskz_loadu_epi8(m, row[k] + s * (kCols / 2)), w);
  }
};

// BF16 weights: nothing to decode. A step is 64 columns, two vectors of 32 lanes in column order
// (dot-product lane j of part p covers columns 64 s + 32 p + 2 j, + 1), x arranged the same way.
struct Bf16Rows {
  static constexpr int64_t kCols = 64;
  static constexpr int kParts = 2;
  static constexpr int kTerms = 1;
  static constexpr bool kStepScale = false;
  const uint16_t* data;
  int64_t cols;
  const uint16_t* row[kRowTile] = {};

  explicit Bf16Rows(const Weight& w) : data(static_cast<const uint16_t*>(w.data)), cols(w.cols) {}
  bool prepare(const Input& in, int64_t, int, int64_t i0, int64_t, const uint16_t*& xs, const float*& xf) {
    xs = in.arranged() + i0 * in.x_stride();
    xf = in.pairs() ? in.pairs() + i0 * in.x_stride() : nullptr;
    return true;
  }
  V4_INLINE void select(int k, int64_t r) { row[k] = data + r * cols; }
  V4_INLINE void refresh(int, int64_t) {}
  V4_INLINE void step_begin(int, int64_t) {}
  V4_INLINE __m512 step_scale(int) const { return _mm512_set1_ps(1.0f); }
  V4_INLINE void prefetch(int k, int64_t s, int64_t rows_ahead) const {
    const char* p = reinterpret_cast<const char*>(row[k] + rows_ahead * cols + s * kCols);
    _mm_prefetch(p, _MM_HINT_T1);
    _mm_prefetch(p + 64, _MM_HINT_T1);
  }
  V4_INLINE void decode(int k, int64_t s, __m512i (&w)[kParts]) const {
    w[0] = _mm512_loadu_si512(row[k] + s * kCols);
    w[1] = _mm512_loadu_si512(row[k] + s * kCols + 32);
  }
  V4_INLINE void decode_tail(int k, int64_t s, int64_t valid_cols, __m512i (&w)[kParts]) const {
    auto lanes = [](int64_t v) { return v >= 32 ? ~__mmask32(0) : v <= 0 ? __mmask32(0) : (__mmask32(1) << v) - 1; };
    w[0] = _mm512_maskz_loadu_epi16(lanes(valid_cols), row[k] + s * kCols);
    w[1] = _mm512_maskz_loadu_epi16(lanes(valid_cols - 32), row[k] + s * kCols + 32);
  }
};

// ---- tiles -------------------------------------------------------------------------------------

// Step s of tile row k: full steps (s < full) straight, the partial last one with masked loads.
template <class Rows>
V4_INLINE void decode_step(const Rows& rw, int k, int64_t s, int64_t full, int64_t cols,
                           __m512i (&w)[Rows::kParts]) {
  if (s < full)
    rw.decode(k, s, w);
  else
    rw.decode_tail(k, s, cols - s * Rows::kCols, w);
}

// Decode (n <= 4): R weight rows x T rows of arranged x (stride ldx lanes), weights decoded
// straight into the dot products. Rows are short streams (4 KiB), so while a tile runs, the same
// steps of the tile two ahead are prefetched into L2 (`ahead` rows on, 0 at the end of a range).
// The R x T accumulators' lanes are summed by detail::store_tile_sums into out[t * ldo + k].

// fused_tile for BF16 weights: the same dot products in the same order, with the row pointers in
// registers and the full steps in a loop of their own (the generic tile's per-step decoder
// dispatch and reloads of the row pointers cost more than the dot products on short rows).
// Fma: the same pair products on FMAs, x split at xf (Input::pairs()).
template <int R, int T, bool Fma>
void bf16_tile(const Bf16Rows& rw, int64_t r0, int64_t ahead, int64_t cols, const uint16_t* xs, const float* xf,
               int64_t ldx, float* out, int64_t ldo) {
  const uint16_t* wr[R];
#pragma GCC unroll 4
  for (int k = 0; k < R; ++k) wr[k] = rw.data + (r0 + k) * cols;
  __m512 acc[R][T];
#pragma GCC unroll 4
  for (int k = 0; k < R; ++k)
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) acc[k][t] = _mm512_setzero_ps();
  auto step = [&](int64_t c, const __m512i (&w)[R][2]) V4_INLINE_LAMBDA {
#pragma GCC unroll 2
    for (int p = 0; p < 2; ++p) {
      if constexpr (Fma) {
        __m512 w_odd[R], w_even[R];
#pragma GCC unroll 4
        for (int k = 0; k < R; ++k) {
          w_odd[k] = odd_elements(w[k][p]);
          w_even[k] = even_elements(w[k][p]);
        }
#pragma GCC unroll 4
        for (int t = 0; t < T; ++t) {
          const float* xp = xf + t * ldx + c + 32 * p;
#pragma GCC unroll 4
          for (int k = 0; k < R; ++k) acc[k][t] = fma_pair(acc[k][t], w_odd[k], w_even[k], xp);
        }
      } else {
#pragma GCC unroll 4
        for (int t = 0; t < T; ++t) {
          const __m512i xv = _mm512_loadu_si512(xs + t * ldx + c + 32 * p);
#pragma GCC unroll 4
          for (int k = 0; k < R; ++k) acc[k][t] = _mm512_dpbf16_ps(acc[k][t], (__m512bh)w[k][p], (__m512bh)xv);
        }
      }
    }
  };
  const int64_t full = cols / Bf16Rows::kCols * Bf16Rows::kCols;
  for (int64_t c = 0; c < full; c += Bf16Rows::kCols) {
    __m512i w[R][2];
#pragma GCC unroll 4
    for (int k = 0; k < R; ++k) {
      w[k][0] = _mm512_loadu_si512(wr[k] + c);
      w[k][1] = _mm512_loadu_si512(wr[k] + c + 32);
      if (ahead > 0) {
        _mm_prefetch(reinterpret_cast<const char*>(wr[k] + ahead * cols + c), _MM_HINT_T1);
        _mm_prefetch(reinterpret_cast<const char*>(wr[k] + ahead * cols + c + 32), _MM_HINT_T1);
      }
    }
    step(c, w);
  }
  if (full < cols) {
    __m512i w[R][2];
#pragma GCC unroll 4
    for (int k = 0; k < R; ++k) {
      __m512i v[2];
      rw.decode_tail(k, 0, cols - full, v);  // decode_tail reads from row[k] + s * kCols
      w[k][0] = v[0];
      w[k][1] = v[1];
    }
    step(full, w);
  }
  detail::store_tile_sums<R, T>(acc, out, ldo);
}

// FP8/FP4 decode tiles stay on dot products in either mode (same bits; they wait on memory).
template <int R, int T, bool Fma, class Rows>
void fused_tile(Rows& rw, int64_t r0, int64_t ahead, int64_t cols, const uint16_t* xs, const float* xf, int64_t ldx,
                float* out, int64_t ldo) {
  if constexpr (std::is_same_v<Rows, Bf16Rows>) {
    for (int k = 0; k < R; ++k) rw.row[k] = rw.data + (r0 + k) * cols + cols / Bf16Rows::kCols * Bf16Rows::kCols;
    // one x row: the dot products (one instruction per 32 weights against five; the 1 GB head of
    // V4-Flash at batch 1 waits on memory, and ran 10% slower on the FMAs on 2 threads)
    return bf16_tile<R, T, Fma && (T >= 2)>(rw, r0, ahead, cols, xs, xf, ldx, out, ldo);
  }
  constexpr int P = Rows::kParts, Q = Rows::kTerms;
  constexpr int64_t C = Rows::kCols;
#pragma GCC unroll 4
  for (int k = 0; k < R; ++k) rw.select(k, r0 + k);
  __m512 acc[R][T];
#pragma GCC unroll 4
  for (int k = 0; k < R; ++k)
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) acc[k][t] = _mm512_setzero_ps();
  const int64_t full = cols / C, steps = ceil_div(cols, C);
  rw.refresh(R, 0);
  for (int64_t s = 0; s < steps; ++s) {
    rw.step_begin(R, s);
    if (ahead > 0) {
#pragma GCC unroll 4
      for (int k = 0; k < R; ++k) rw.prefetch(k, s, ahead);
    }
#pragma GCC unroll 4
    for (int k = 0; k < R; ++k) {
      __m512i w[P];
      decode_step(rw, k, s, full, cols, w);
      if constexpr (Rows::kStepScale) {
        const __m512 sv = rw.step_scale(k);
#pragma GCC unroll 4
        for (int t = 0; t < T; ++t) {
          __m512 part = _mm512_setzero_ps();
#pragma GCC unroll 4
          for (int p = 0; p < P; ++p)
            part = _mm512_dpbf16_ps(part, (__m512bh)w[p], (__m512bh)_mm512_loadu_si512(xs + t * ldx + s * C + 32 * p));
          acc[k][t] = _mm512_fmadd_ps(part, sv, acc[k][t]);
        }
      } else {
#pragma GCC unroll 4
        for (int t = 0; t < T; ++t)
#pragma GCC unroll 4
          for (int p = 0; p < P; ++p)
#pragma GCC unroll 3
            for (int q = 0; q < Q; ++q)
              acc[k][t] = _mm512_dpbf16_ps(acc[k][t], (__m512bh)w[p],
                                           (__m512bh)_mm512_loadu_si512(xs + t * ldx + (s * C + 32 * p) * Q + 32 * q));
      }
    }
  }
  detail::store_tile_sums<R, T>(acc, out, ldo);
}

// Step s of a decoded panel into sums[k][t]: every part (and term) of the step in order, one dot
// product per (weight row, x row), as the decode tiles issue them.
template <int R, int T, int P, int Q, int64_t C>
V4_INLINE void panel_step(const uint16_t* wp, int64_t s, const uint16_t* xs, int64_t ldx, __m512 (&sums)[R][T]) {
#pragma GCC unroll 4
  for (int p = 0; p < P; ++p) {
    __m512i w[R];
#pragma GCC unroll 4
    for (int k = 0; k < R; ++k) w[k] = _mm512_loadu_si512(wp + ((s * P + p) * R + k) * 32);
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t)
#pragma GCC unroll 3
      for (int q = 0; q < Q; ++q) {
        const __m512i xv = _mm512_loadu_si512(xs + t * ldx + (s * C + 32 * p) * Q + 32 * q);
#pragma GCC unroll 4
        for (int k = 0; k < R; ++k) sums[k][t] = _mm512_dpbf16_ps(sums[k][t], (__m512bh)w[k], (__m512bh)xv);
      }
  }
}

// The same pair products on FMAs (PairMode::fma): the panel and x already split (store_pairs,
// Input::pairs()), so a step is loads and FMAs only; the x rows of a part are held in registers
// and each weight row's pair is loaded once for them. Same order per accumulator as above.
template <int R, int T, int P, int Q, int64_t C>
V4_INLINE void panel_step(const float* wp, int64_t s, const float* xs, int64_t ldx, __m512 (&sums)[R][T]) {
#pragma GCC unroll 4
  for (int p = 0; p < P; ++p)
#pragma GCC unroll 3
    for (int q = 0; q < Q; ++q) {
      __m512 x_odd[T], x_even[T];
#pragma GCC unroll 4
      for (int t = 0; t < T; ++t) {
        const float* xp = xs + t * ldx + (s * C + 32 * p) * Q + 32 * q;
        x_odd[t] = _mm512_loadu_ps(xp);
        x_even[t] = _mm512_loadu_ps(xp + 16);
      }
#pragma GCC unroll 4
      for (int k = 0; k < R; ++k) {
        const float* wk = wp + ((s * P + p) * R + k) * 32;
        const __m512 w_odd = _mm512_loadu_ps(wk), w_even = _mm512_loadu_ps(wk + 16);
#pragma GCC unroll 4
        for (int t = 0; t < T; ++t)
          sums[k][t] = _mm512_fmadd_ps(w_even, x_even[t], _mm512_fmadd_ps(w_odd, x_odd[t], sums[k][t]));
      }
    }
}

// Matrix (n > 4): the same instructions per element over a decoded panel of `steps` steps of R
// rows, interleaved so the loads stream (part p of step s of row k at ((s * P + p) * R + k) * 32;
// with step scales, their vectors at sp + (k * steps_max + s) * 16), accumulators carried in
// acc_io (element (t, k) at (t * R + k) * 16). W: the panel's element type, uint16_t (BF16 lanes,
// dot products) or float (split, FMAs).
template <int R, int T, int P, int Q, int64_t C, bool kStepScale, class W>
void panel_tile(const W* wp, const float* sp, int64_t steps_max, int64_t steps, const W* xs, int64_t ldx,
                float* acc_io) {
  __m512 acc[R][T];
#pragma GCC unroll 4
  for (int k = 0; k < R; ++k)
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) acc[k][t] = _mm512_loadu_ps(acc_io + (t * R + k) * 16);
  for (int64_t s = 0; s < steps; ++s) {
    // Step-scale formats (T <= 2) sum the step into `part` and scale it into acc after.
    __m512 part[R][T];
    if constexpr (kStepScale) {
#pragma GCC unroll 4
      for (int k = 0; k < R; ++k)
#pragma GCC unroll 4
        for (int t = 0; t < T; ++t) part[k][t] = _mm512_setzero_ps();
    }
    __m512(&sums)[R][T] = kStepScale ? part : acc;
    panel_step<R, T, P, Q, C>(wp, s, xs, ldx, sums);
    if constexpr (kStepScale) {
#pragma GCC unroll 4
      for (int k = 0; k < R; ++k) {
        const __m512 sv = _mm512_loadu_ps(sp + (k * steps_max + s) * 16);
#pragma GCC unroll 4
        for (int t = 0; t < T; ++t) acc[k][t] = _mm512_fmadd_ps(part[k][t], sv, acc[k][t]);
      }
    }
  }
#pragma GCC unroll 4
  for (int k = 0; k < R; ++k)
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) _mm512_storeu_ps(acc_io + (t * R + k) * 16, acc[k][t]);
}

template <int R, bool Fma, class Rows>
void fused_rows(Rows& rw, int64_t r0, int64_t ahead, int64_t cols, const uint16_t* xs, const float* xf, int64_t ldx,
                int64_t n, float* out, int64_t ldo) {
  switch (n) {
    case 1: fused_tile<R, 1, Fma>(rw, r0, ahead, cols, xs, xf, ldx, out, ldo); break;
    case 2: fused_tile<R, 2, Fma>(rw, r0, ahead, cols, xs, xf, ldx, out, ldo); break;
    case 3: fused_tile<R, 3, Fma>(rw, r0, ahead, cols, xs, xf, ldx, out, ldo); break;
    default: fused_tile<R, 4, Fma>(rw, r0, ahead, cols, xs, xf, ldx, out, ldo); break;
  }
}

template <int R, int P, int Q, int64_t C, bool S, class W>
void panel_rows(const W* wp, const float* sp, int64_t steps_max, int64_t steps, const W* xs, int64_t ldx, int64_t t,
                float* acc) {
  if constexpr (S) {
    switch (t) {
      case 1: panel_tile<R, 1, P, Q, C, S>(wp, sp, steps_max, steps, xs, ldx, acc); break;
      default: panel_tile<R, 2, P, Q, C, S>(wp, sp, steps_max, steps, xs, ldx, acc); break;
    }
  } else {
    switch (t) {
      case 1: panel_tile<R, 1, P, Q, C, S>(wp, sp, steps_max, steps, xs, ldx, acc); break;
      case 2: panel_tile<R, 2, P, Q, C, S>(wp, sp, steps_max, steps, xs, ldx, acc); break;
      case 3: panel_tile<R, 3, P, Q, C, S>(wp, sp, steps_max, steps, xs, ldx, acc); break;
      default: panel_tile<R, 4, P, Q, C, S>(wp, sp, steps_max, steps, xs, ldx, acc); break;
    }
  }
}

constexpr int64_t kPanelCols = 1024;  // decoded panel row: 2 KiB of BF16 (4 KiB split); R rows stay in L1

// W: as panel_rows; the decoded panel is stored split when W is float.
template <int R, class W, class Rows>
void matrix_tile(Rows& rw, int64_t r0, int64_t cols, const W* xs, int64_t ldx, int64_t nb, W* panel,
                 float* panel_scales, float* accs) {
  constexpr int P = Rows::kParts, Q = Rows::kTerms;
  constexpr int64_t C = Rows::kCols, panel_steps = kPanelCols / C;
#pragma GCC unroll 4
  for (int k = 0; k < R; ++k) rw.select(k, r0 + k);
  rw.refresh(R, 0);
  const int64_t full = cols / C, steps = ceil_div(cols, C);
  for (int64_t p0 = 0; p0 < steps; p0 += panel_steps) {
    const int64_t p1 = std::min(steps, p0 + panel_steps);
    for (int64_t s = p0; s < p1; ++s) {
      rw.step_begin(R, s);
#pragma GCC unroll 4
      for (int k = 0; k < R; ++k) {
        __m512i w[P];
        decode_step(rw, k, s, full, cols, w);
#pragma GCC unroll 4
        for (int p = 0; p < P; ++p) {
          W* dst = panel + (((s - p0) * P + p) * R + k) * 32;
          if constexpr (std::is_same_v<W, float>)
            store_pairs(dst, w[p]);
          else
            _mm512_storeu_si512(dst, w[p]);
        }
        if constexpr (Rows::kStepScale) _mm512_storeu_ps(panel_scales + (k * panel_steps + (s - p0)) * 16, rw.step_scale(k));
      }
    }
    constexpr int64_t x_tile = Rows::kStepScale ? 2 : kXTile;  // see the tiles' registers
    for (int64_t t0 = 0; t0 < nb; t0 += x_tile)
      panel_rows<R, P, Q, C, Rows::kStepScale, W>(panel, panel_scales, panel_steps, p1 - p0,
                                               xs + t0 * ldx + p0 * C * Q, ldx, std::min<int64_t>(x_tile, nb - t0),
                                               accs + t0 * R * 16);
  }
}

// Fma: PairMode::fma (the matrix path and BF16 weights' tiles on FMAs).
template <bool Fma, class Rows>
void rows_impl(const Input& in, Rows rw, float* out, int64_t row_begin, int64_t row_end, const RowFallback& fallback) {
  const Weight& w = in.weight();
  const int64_t n = in.n(), rows = w.rows, cols = w.cols, ldx = in.x_stride();
  if constexpr (std::is_same_v<Rows, Fp8Rows>) rw.want_pairs = Fma && n > kXTile;
  // BF16 weights need no decoding, so every x tile reads the tile's rows straight into its dot
  // products (L1/L2-resident after the first x tile) instead of copying them into a panel, which
  // cost more than the dot products on the demo's LM head (256 columns).
  if (n <= kXTile || std::is_same_v<Rows, Bf16Rows>) {
    for (int64_t r0 = row_begin; r0 < row_end; r0 += kRowTile) {
      const int R = int(std::min<int64_t>(kRowTile, row_end - r0));
      const uint16_t* xs = nullptr;
      const float* xf = nullptr;
      if (!rw.prepare(in, r0, R, 0, n, xs, xf)) {
        fallback(r0, r0 + R);
        continue;
      }
      for (int64_t i = 0; i < n; i += kXTile) {
        const int64_t t = std::min<int64_t>(kXTile, n - i);
        const int64_t ahead = i == 0 && r0 + 3 * kRowTile <= row_end ? 2 * kRowTile : 0;
        const uint16_t* xt = xs + i * ldx;
        const float* xft = xf ? xf + i * ldx : nullptr;
        float* o = out + i * rows + r0;
        switch (R) {
          case 1: fused_rows<1, Fma>(rw, r0, 0, cols, xt, xft, ldx, t, o, rows); break;
          case 2: fused_rows<2, Fma>(rw, r0, 0, cols, xt, xft, ldx, t, o, rows); break;
          case 3: fused_rows<3, Fma>(rw, r0, 0, cols, xt, xft, ldx, t, o, rows); break;
          default: fused_rows<4, Fma>(rw, r0, ahead, cols, xt, xft, ldx, t, o, rows); break;
        }
      }
    }
    return;
  }
  using W = std::conditional_t<Fma, float, uint16_t>;
  thread_local AlignedVector<W> panel;
  thread_local AlignedVector<float> panel_scales;
  thread_local AlignedVector<float> accs;
  const int64_t block = std::max<int64_t>(kXTile, kXBlockBytes / (ldx * int64_t(sizeof(W))) / kXTile * kXTile);
  panel.resize(size_t(kRowTile * kPanelCols));
  panel_scales.resize(size_t(kRowTile * kPanelCols / Rows::kCols * 16));
  accs.resize(size_t(block * kRowTile * 16));
  for (int64_t i0 = 0; i0 < n; i0 += block) {
    const int64_t nb = std::min(block, n - i0);
    for (int64_t r0 = row_begin; r0 < row_end; r0 += kRowTile) {
      const int R = int(std::min<int64_t>(kRowTile, row_end - r0));
      const uint16_t* xs = nullptr;
      const float* xf = nullptr;
      if (!rw.prepare(in, r0, R, i0, nb, xs, xf)) {
        if (i0 == 0) fallback(r0, r0 + R);
        continue;
      }
      const W* xw;
      if constexpr (Fma)
        xw = xf;
      else
        xw = xs;
      std::fill(accs.begin(), accs.begin() + nb * R * 16, 0.0f);
      switch (R) {
        case 1: matrix_tile<1>(rw, r0, cols, xw, ldx, nb, panel.data(), panel_scales.data(), accs.data()); break;
        case 2: matrix_tile<2>(rw, r0, cols, xw, ldx, nb, panel.data(), panel_scales.data(), accs.data()); break;
        case 3: matrix_tile<3>(rw, r0, cols, xw, ldx, nb, panel.data(), panel_scales.data(), accs.data()); break;
        default: matrix_tile<4>(rw, r0, cols, xw, ldx, nb, panel.data(), panel_scales.data(), accs.data()); break;
      }
      for (int64_t j0 = 0; j0 < nb * R; j0 += 16) {  // accumulator j = (i, k) at j * 16
        const int64_t m = std::min<int64_t>(16, nb * R - j0);
        __m512 all[16];
        for (int j = 0; j < 16; ++j) all[j] = j < m ? _mm512_loadu_ps(accs.data() + (j0 + j) * 16) : _mm512_setzero_ps();
        float sums[16];
        detail::reduce16_add(all, sums);
        for (int64_t j = 0; j < m; ++j) out[(i0 + (j0 + j) / R) * rows + r0 + (j0 + j) % R] = sums[j];
      }
    }
  }
}

}  // namespace

namespace {
int64_t step_cols(DType t) {
  return t == DType::I8 ? Fp4Rows::kCols : t == DType::BF16 ? Bf16Rows::kCols : Fp8Rows::kCols;
}
}  // namespace

// The split x for PairMode::fma goes with the call: the BF16 tiles of two or more x rows use it
// (so a single row, the head at batch 1, is not split), FP4 only on the matrix path (n > kXTile);
// FP8 x is arranged per 128-row block by the threads (Fp8Rows).
Input::Input(const Weight& w, const float* x, int64_t n)
    : w_(w), x_(x), n_(n), padded_cols_(ceil_div(w.cols, step_cols(w.dtype)) * step_cols(w.dtype)), mode_(pair_mode()) {
  if (w.dtype == DType::BF16) {
    arranged_.resize(size_t(n * padded_cols_));
    for (int64_t i = 0; i < n; ++i) arrange_bf16(x + i * w.cols, w.cols, padded_cols_, arranged_.data() + i * padded_cols_);
  }
  if (w.dtype == DType::I8) {
    arranged_.resize(size_t(n * padded_cols_));
    for (int64_t i = 0; i < n; ++i) arrange_fp4(x + i * w.cols, w.cols, arranged_.data() + i * padded_cols_);
  }
  if (mode_ == PairMode::fma && ((w.dtype == DType::BF16 && n >= 2) || (w.dtype == DType::I8 && n > kXTile))) {
    pairs_.resize(arranged_.size());
    split_pairs(arranged_.data(), int64_t(arranged_.size()), pairs_.data());
  }
}

template <bool Fma>
void rows_in_mode(const Input& in, float* out, int64_t row_begin, int64_t row_end, const RowFallback& fallback) {
  switch (in.weight().dtype) {
    case DType::F8_E4M3: {
      thread_local AlignedVector<uint16_t> xbuf;
      thread_local AlignedVector<float> xpairs;
      rows_impl<Fma>(in, Fp8Rows(in.weight(), &xbuf, &xpairs), out, row_begin, row_end, fallback);
      return;
    }
    case DType::I8:
      rows_impl<Fma>(in, Fp4Rows(in.weight()), out, row_begin, row_end, fallback);
      return;
    case DType::BF16:
      rows_impl<Fma>(in, Bf16Rows(in.weight()), out, row_begin, row_end, fallback);
      return;
    default:
      fallback(row_begin, row_end);
  }
}

void rows(const Input& in, float* out, int64_t row_begin, int64_t row_end, const RowFallback& fallback) {
  const FlushDenormals daz_ftz;
  // The fallback (the scalar reference) runs under the caller's own MXCSR.
  const RowFallback plain = [&](int64_t b, int64_t e) {
    _mm_setcsr(daz_ftz.saved());
    fallback(b, e);
    _mm_setcsr(daz_ftz.saved() | FlushDenormals::kDazFtz);
  };
  if (in.mode() == PairMode::fma)
    rows_in_mode<true>(in, out, row_begin, row_end, plain);
  else
    rows_in_mode<false>(in, out, row_begin, row_end, plain);
}

// Operands that show each rounding of vdpbf16ps: random BF16 pairs over the whole exponent range
// (denormal inputs and results, overflow), accumulators that cancel the first product or
// differ from it by a few units, so an FMA order, a fused pair or a missing flush would differ.
bool pairs_match_dot() {
  const FlushDenormals daz_ftz;
  uint64_t state = 0x9E3779B97F4A7C15ull;
  auto next = [&state] {
    state ^= state << 13;
    state ^= state >> 7;
    state ^= state << 17;
    return state;
  };
  alignas(64) uint32_t a[16], b[16];
  alignas(64) float c[16];
  for (int round = 0; round < 4096; ++round) {
    const bool wide = round % 2 == 1;
    auto bf16 = [&] {
      const uint64_t r = next();
      const uint32_t exponent = wide ? uint32_t(r % 255) : uint32_t(100 + r % 55);
      return uint32_t(((r >> 8) & 1) << 15 | exponent << 7 | ((r >> 16) & 0x7F));
    };
    for (int j = 0; j < 16; ++j) {
      a[j] = bf16() | bf16() << 16;
      b[j] = bf16() | bf16() << 16;
      const uint32_t ah = a[j] & 0xFFFF0000u, bh = b[j] & 0xFFFF0000u;
      float fa, fb;
      std::memcpy(&fa, &ah, 4);
      std::memcpy(&fb, &bh, 4);
      const uint64_t r = next();
      c[j] = r % 3 == 0 ? -fa * fb * (1.0f + float(r >> 60) * 0x1p-20f) : float(int32_t(r >> 40) - (1 << 23)) * 0x1p-22f;
    }
    const __m512i va = _mm512_load_si512(a), vb = _mm512_load_si512(b);
    const __m512 acc = _mm512_load_ps(c);
    const __m512 dot = _mm512_dpbf16_ps(acc, (__m512bh)va, (__m512bh)vb);
    alignas(64) float bs[32];
    store_pairs(bs, vb);
    const __m512 fma = fma_pair(acc, odd_elements(va), even_elements(va), bs);
    if (_mm512_cmpneq_epi32_mask(_mm512_castps_si512(dot), _mm512_castps_si512(fma))) return false;
  }
  return true;
}

}  // namespace v4::kernels::bf16dot

#undef V4_INLINE
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
