// FP4 weights on AVX-512 VNNI integer dot products (see fp4_vnni.h): the Isa::avx512bf16 variant.
//
// A step is 128 columns = 64 weight bytes: the low nibbles (even columns) and high nibbles (odd
// columns) are looked up with vpermb in a table of 2 e2m1 + 12 (u8), and vpdpbusd multiplies
// them with the activation digits (s8) of the same columns, four products per i32 lane: lane i
// covers columns 8 i .. 8 i + 7 of the step, one quarter of group i / 4.
//
// Compiled for every machine: the instructions are enabled by the target pragma below for this
// file's own code only (see x86/linear_avx512.cpp for why the includes and the tables come first).
#include <immintrin.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels/formats.h"
#include "kernels/fp4_vnni.h"

namespace v4::kernels::fp4vnni {
namespace {

// 2 e2m1(code) + 12 for the 16 codes, repeated to 64 entries for vpermb.
struct alignas(64) WeightTable {
  std::array<uint8_t, 64> v;
};
const WeightTable kWeightTable = [] {
  WeightTable t{};
  for (int i = 0; i < 64; ++i) t.v[size_t(i)] = uint8_t(int(detail::e2m1_definition(uint8_t(i & 0xF)) * 2.0f) + 12);
  return t;
}();

constexpr int kQMin = -60, kQMax = 40;          // activation scale exponents taken
constexpr int kScaleMin = 127 - 40, kScaleMax = 127 + 40;  // E8M0 group scales taken (2^-40..2^40)
constexpr int64_t kXBlockBytes = 512 * 1024;    // arranged x rows per block: L2-resident

}  // namespace
}  // namespace v4::kernels::fp4vnni

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,avx512vnni"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vbmi,avx512vnni")
#endif
// GCC 12's AVX-512 headers build results from _mm512_undefined_*(): see x86/linear_avx512.cpp.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "kernels/x86/reduce16_avx512.h"

#define V4_INLINE inline __attribute__((always_inline))

namespace v4::kernels::fp4vnni {

namespace {

// One 128-column step of x row `x` (valid columns of it: `valid`) -> digits, correction, scale.
// False when a value is not an integer multiple of 2^q or q is out of range.
bool arrange_step(const float* x, int64_t valid, int8_t* digits, int32_t* correction, float* scale) {
  float amax = 0;
  for (int64_t c = 0; c < valid; ++c) amax = std::max(amax, std::fabs(x[c]));
  if (!std::isfinite(amax)) return false;
  const int q = amax > 0 ? std::ilogb(amax) - 17 : 0;
  if (q < kQMin || q > kQMax) return false;
  *scale = std::ldexp(1.0f, q - 1);  // 2^q, halved: the weights are 2 e2m1
  alignas(64) int32_t xi[128] = {};
  const __m512 mult = _mm512_set1_ps(std::ldexp(1.0f, -q));
  __mmask16 inexact = 0;
  for (int64_t c = 0; c < 128; c += 16) {
    const int64_t left = valid - c;
    const __mmask16 m = left >= 16 ? __mmask16(0xFFFF) : left <= 0 ? __mmask16(0) : __mmask16((1u << left) - 1);
    const __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(m, x + c), mult);  // exact: a power of two
    const __m512i iv = _mm512_cvttps_epi32(v);
    inexact |= _mm512_cmp_ps_mask(_mm512_cvtepi32_ps(iv), v, _CMP_NEQ_UQ);
    _mm512_store_si512(xi + c, iv);
  }
  if (inexact) return false;
  // Signed base-128 digits: x = d0 + 128 d1 + 16384 d2, each in [-64, 63].
  const __m512i k64 = _mm512_set1_epi32(64), k127 = _mm512_set1_epi32(127);
  // even columns first, then odd: bytes (0 2 4 .. 14 1 3 .. 15) of each 16
  const __m128i split = _mm_setr_epi8(0, 2, 4, 6, 8, 10, 12, 14, 1, 3, 5, 7, 9, 11, 13, 15);
  for (int64_t c = 0; c < 128; c += 16) {
    const __m512i v = _mm512_load_si512(xi + c);
    __m512i d[3];
    d[0] = _mm512_sub_epi32(_mm512_and_si512(_mm512_add_epi32(v, k64), k127), k64);
    const __m512i r1 = _mm512_srai_epi32(_mm512_sub_epi32(v, d[0]), 7);
    d[1] = _mm512_sub_epi32(_mm512_and_si512(_mm512_add_epi32(r1, k64), k127), k64);
    d[2] = _mm512_srai_epi32(_mm512_sub_epi32(r1, d[1]), 7);
    for (int k = 0; k < 3; ++k) {
      const __m128i b = _mm_shuffle_epi8(_mm512_cvtepi32_epi8(d[k]), split);
      _mm_storel_epi64(reinterpret_cast<__m128i*>(digits + k * 128 + c / 2), b);                         // even
      _mm_storel_epi64(reinterpret_cast<__m128i*>(digits + k * 128 + 64 + c / 2), _mm_srli_si128(b, 8));  // odd
    }
  }
  for (int lane = 0; lane < 16; ++lane) {
    int32_t sum = 0;
    for (int j = 0; j < 8; ++j) sum += xi[lane * 8 + j];
    correction[lane] = -12 * sum;
  }
  return true;
}

}  // namespace

Input::Input(const Weight& w, const float* x, int64_t n)
    : w_(w), n_(n), steps_(ceil_div(w.cols, int64_t(128))) {
  digits_.assign(size_t(n * steps_ * kDigitBytes), 0);
  correction_.assign(size_t(n * steps_ * 16), 0);
  scale_.assign(size_t(n * steps_), 0.0f);
  ok_.assign(size_t(n), 1);
  for (int64_t i = 0; i < n; ++i)
    for (int64_t s = 0; s < steps_ && ok_[size_t(i)]; ++s) {
      const int64_t c0 = s * 128;
      if (!arrange_step(x + i * w.cols + c0, std::min<int64_t>(128, w.cols - c0),
                        digits_.data() + (i * steps_ + s) * kDigitBytes, correction_.data() + (i * steps_ + s) * 16,
                        scale_.data() + i * steps_ + s))
        ok_[size_t(i)] = 0;
    }
}

bool Input::all_ok() const {
  return std::all_of(ok_.begin(), ok_.end(), [](uint8_t v) { return v != 0; });
}

namespace {

bool scales_taken(const uint8_t* p, int64_t count) {
  __m512i mn = _mm512_set1_epi8(char(kScaleMax)), mx = _mm512_set1_epi8(char(kScaleMin));
  int64_t i = 0;
  for (; i + 64 <= count; i += 64) {
    const __m512i v = _mm512_loadu_si512(p + i);
    mn = _mm512_min_epu8(mn, v);
    mx = _mm512_max_epu8(mx, v);
  }
  if (_mm512_cmplt_epu8_mask(mn, _mm512_set1_epi8(char(kScaleMin))) ||
      _mm512_cmpgt_epu8_mask(mx, _mm512_set1_epi8(char(kScaleMax))))
    return false;
  for (; i < count; ++i)
    if (p[i] < kScaleMin || p[i] > kScaleMax) return false;
  return true;
}

// R weight rows x T rows of x (the rows of `in` from i0), every step: decode the R rows' weights
// once, then for each (row, x row) the three digit planes' dot products, recombined, converted
// and multiply-added with the step's scales. Sums into out[t * ldo + k].
// While it runs, the same steps of the rows `ahead` rows on are prefetched into L2 (0: none): the
// rows are short streams (2 KiB at 4096 columns), four at a time, too short for the hardware
// prefetcher to ramp up.
template <int R, int T>
void tile(const Input& in, int64_t r0, int64_t i0, float* out, int64_t ldo, int64_t ahead) {
  const Weight& w = in.weight();
  const int64_t groups = w.cols / kFp4Group, steps = in.steps(), full = w.cols / 128;
  const uint8_t* data = static_cast<const uint8_t*>(w.data);
  const __m512i table = _mm512_load_si512(kWeightTable.v.data());
  __m512 acc[R][T];
#pragma GCC unroll 16
  for (int k = 0; k < R; ++k)
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) acc[k][t] = _mm512_setzero_ps();
  // the group scales of four steps (16 groups) per row as fp32, refreshed every fourth step
  __m512 scales[R];
  for (int64_t s = 0; s < steps; ++s) {
    __m512i wl[R], wh[R];
    __m512 gs[R];
    const int64_t valid_groups = std::min<int64_t>(4, groups - 4 * s);
    if (s % 4 == 0) {
      const int64_t left = groups - 4 * s;
      const __mmask16 m = left >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << left) - 1);
#pragma GCC unroll 16
      for (int k = 0; k < R; ++k)  // 2^(e - 127) from the E8M0 byte in the exponent field (e = 0 past the end: 0)
        scales[k] = _mm512_castsi512_ps(
            _mm512_slli_epi32(_mm512_cvtepu8_epi32(_mm_maskz_loadu_epi8(m, w.scale + (r0 + k) * groups + 4 * s)), 23));
    }
    // lane i takes group 4 (s % 4) + i / 4 of the four steps
    const __m512i pick = _mm512_add_epi32(_mm512_setr_epi32(0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3),
                                          _mm512_set1_epi32(int32_t(4 * (s % 4))));
#pragma GCC unroll 16
    for (int k = 0; k < R; ++k) {
      const uint8_t* row = data + (r0 + k) * (w.cols / 2) + s * 64;
      if (ahead > 0) _mm_prefetch(reinterpret_cast<const char*>(row + ahead * (w.cols / 2)), _MM_HINT_T1);
      const __m512i z = s < full ? _mm512_loadu_si512(row)
                                 : _mm512_maskz_loadu_epi8((__mmask64(1) << (valid_groups * 16)) - 1, row);
      // vpermb looks up the low 6 bits of each byte in the 64-entry table (16 values, repeated),
      // so the other nibble's bits need no mask
      wl[k] = _mm512_permutexvar_epi8(z, table);
      wh[k] = _mm512_permutexvar_epi8(_mm512_srli_epi16(z, 4), table);
      gs[k] = _mm512_permutexvar_ps(pick, scales[k]);
    }
#pragma GCC unroll 16
    for (int t = 0; t < T; ++t) {
      const int8_t* d = in.digits(i0 + t, s);
      const __m512i corr = _mm512_loadu_si512(in.correction(i0 + t, s));
      const __m512 xs = _mm512_set1_ps(in.scale(i0 + t, s));
      const __m512i d0l = _mm512_loadu_si512(d), d0h = _mm512_loadu_si512(d + 64);
      const __m512i d1l = _mm512_loadu_si512(d + 128), d1h = _mm512_loadu_si512(d + 192);
      const __m512i d2l = _mm512_loadu_si512(d + 256), d2h = _mm512_loadu_si512(d + 320);
#pragma GCC unroll 16
      for (int k = 0; k < R; ++k) {
        __m512i a0 = _mm512_dpbusd_epi32(corr, wl[k], d0l);
        a0 = _mm512_dpbusd_epi32(a0, wh[k], d0h);
        __m512i a1 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wl[k], d1l);
        a1 = _mm512_dpbusd_epi32(a1, wh[k], d1h);
        __m512i a2 = _mm512_dpbusd_epi32(_mm512_setzero_si512(), wl[k], d2l);
        a2 = _mm512_dpbusd_epi32(a2, wh[k], d2h);
        const __m512i sum = _mm512_add_epi32(a0, _mm512_slli_epi32(_mm512_add_epi32(a1, _mm512_slli_epi32(a2, 7)), 7));
        acc[k][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(sum), _mm512_mul_ps(gs[k], xs), acc[k][t]);
      }
    }
  }
  detail::store_tile_sums<R, T>(acc, out, ldo);
}

template <int R>
void x_tiles(const Input& in, int64_t r0, int64_t i0, int64_t nb, float* out, int64_t ldo, int64_t ahead) {
  int64_t t0 = 0;
  for (; t0 + 2 <= nb; t0 += 2) tile<R, 2>(in, r0, i0 + t0, out + (i0 + t0) * ldo + r0, ldo, t0 == 0 ? ahead : 0);
  if (t0 < nb) tile<R, 1>(in, r0, i0 + t0, out + (i0 + t0) * ldo + r0, ldo, t0 == 0 ? ahead : 0);
}

}  // namespace

void rows(const Input& in, float* out, int64_t row_begin, int64_t row_end, const RowFallback& fallback) {
  const Weight& w = in.weight();
  const int64_t n = in.n(), groups = w.cols / kFp4Group, ldo = w.rows;
  // x rows in blocks whose digits stay in L2 while every weight row tile passes over them
  const int64_t block = std::max<int64_t>(2, kXBlockBytes / (in.steps() * Input::kDigitBytes) / 2 * 2);
  for (int64_t i0 = 0; i0 < n; i0 += block) {
    const int64_t nb = std::min(block, n - i0);
    for (int64_t r0 = row_begin; r0 < row_end; r0 += 4) {
      const int R = int(std::min<int64_t>(4, row_end - r0));
      if (!scales_taken(w.scale + r0 * groups, R * groups)) {
        if (i0 == 0) fallback(r0, r0 + R);
        continue;
      }
      // the tile two ahead, while it is in the range (and on the first block of x only)
      const int64_t ahead = i0 == 0 && r0 + 12 <= row_end ? 8 : 0;
      switch (R) {
        case 1: x_tiles<1>(in, r0, i0, nb, out, ldo, 0); break;
        case 2: x_tiles<2>(in, r0, i0, nb, out, ldo, 0); break;
        case 3: x_tiles<3>(in, r0, i0, nb, out, ldo, 0); break;
        default: x_tiles<4>(in, r0, i0, nb, out, ldo, ahead); break;
      }
    }
  }
}

}  // namespace v4::kernels::fp4vnni

#undef V4_INLINE
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
