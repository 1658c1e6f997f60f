// kernels/vector_ops.h on the avx512 variants (target pragma: see x86/linear_avx512.cpp).
#include <immintrin.h>

#include <cmath>
#include <limits>

#include "kernels/formats.h"
#include "kernels/vector_ops.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq")
#endif
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

#include "kernels/x86/reduce16_avx512.h"

namespace v4::kernels::detail {

float dot_avx512(const float* a, const float* b, int64_t n) {
  __m512 sums = _mm512_setzero_ps();
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) sums = _mm512_add_ps(sums, _mm512_mul_ps(_mm512_loadu_ps(a + k), _mm512_loadu_ps(b + k)));
  float acc[16];
  _mm512_storeu_ps(acc, sums);
  return dot_finish(acc, a, b, k, n);
}

void dots_avx512(const float* a, int64_t rows, int64_t lda, const float* b, int64_t n, float* out) {
  int64_t r = 0;
  if (n % 16 == 0) {  // whole chunks only: a tail would go to sums 0, 1, ... (dot_finish)
    for (; r + 16 <= rows; r += 16) {
      __m512 sums[16];
      for (int j = 0; j < 16; ++j) sums[j] = _mm512_setzero_ps();
      for (int64_t k = 0; k < n; k += 16) {
        const __m512 bv = _mm512_loadu_ps(b + k);
        for (int j = 0; j < 16; ++j)
          sums[j] = _mm512_add_ps(sums[j], _mm512_mul_ps(_mm512_loadu_ps(a + (r + j) * lda + k), bv));
      }
      reduce16_add(sums, out + r);  // dot_finish's pairwise order: halves, quarters, j and j + 2, the pair
    }
  }
  for (; r < rows; ++r) out[r] = dot_avx512(a + r * lda, b, n);
}

void axpy_avx512(float a, const float* x, float* y, int64_t n) {
  const __m512 av = _mm512_set1_ps(a);
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) _mm512_storeu_ps(y + k, _mm512_fmadd_ps(av, _mm512_loadu_ps(x + k), _mm512_loadu_ps(y + k)));
  for (; k < n; ++k) y[k] = std::fma(a, x[k], y[k]);
}

// e4m3 -> fp16 bits (sign to bit 15, exponent and mantissa to bits 13..7) is the value times 2^-8,
// subnormals included; fp16 -> fp32 and the two power-of-two products are exact. NaN codes apart.
void decode_e4m3_avx512(const uint8_t* codes, int64_t n, float scale, float* out) {
  const __m512 s256 = _mm512_set1_ps(256.0f), sv = _mm512_set1_ps(scale);
  const __m512 nan = _mm512_set1_ps(std::numeric_limits<float>::quiet_NaN());
  const __m512i m7f = _mm512_set1_epi32(0x7F), m80 = _mm512_set1_epi32(0x80);
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    const __m512i w = _mm512_cvtepu8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + k)));
    const __m512i mag = _mm512_and_si512(w, m7f);
    const __m512i h = _mm512_or_si512(_mm512_slli_epi32(_mm512_and_si512(w, m80), 8), _mm512_slli_epi32(mag, 7));
    __m512 f = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtph_ps(_mm512_cvtepi32_epi16(h)), s256), sv);
    f = _mm512_mask_blend_ps(_mm512_cmpeq_epi32_mask(mag, m7f), f, nan);
    _mm512_storeu_ps(out + k, f);
  }
  for (; k < n; ++k) out[k] = e4m3_value(codes[k]) * scale;
}

// The 16 e2m1 values times the scale (exact) looked up by nibble.
void decode_e2m1_avx512(const uint8_t* packed, int64_t n, float scale, float* out) {
  alignas(64) float table[16];
  for (int c = 0; c < 16; ++c) table[c] = e2m1_value(uint8_t(c)) * scale;
  const __m512 t = _mm512_load_ps(table);
  const __m128i low = _mm_set1_epi8(0x0F);
  int64_t k = 0;
  for (; k + 16 <= n; k += 16) {
    const __m128i bytes = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(packed + k / 2));
    const __m128i lo = _mm_and_si128(bytes, low), hi = _mm_and_si128(_mm_srli_epi16(bytes, 4), low);
    const __m512i idx = _mm512_cvtepu8_epi32(_mm_unpacklo_epi8(lo, hi));
    _mm512_storeu_ps(out + k, _mm512_permutexvar_ps(idx, t));
  }
  for (; k < n; ++k) out[k] = table[(packed[k / 2] >> (k % 2 * 4)) & 0xF];
}

}  // namespace v4::kernels::detail

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
