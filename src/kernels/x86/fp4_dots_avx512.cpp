// kernels/fp4_dots.h on the avx512 variant (target pragma: see x86/linear_avx512.cpp). The integer
// block sums come from multiply-add pairs of unsigned row codes and signed vector codes (no
// saturation: |pair| <= 2 * 24 * 12), so they are exact, like the scalar loop's.
#include <immintrin.h>

#include <cstring>

#include "kernels/fp4_dots.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq")
#endif
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace v4::kernels::detail {

void fp4_dots_avx512(const Fp4Panel& p, const Fp4Vector& v, float* out) {
  const __m512i ones = _mm512_set1_epi16(1);
  __m512 s = _mm512_setzero_ps();
  for (int64_t b = 0; b < p.n / 32; ++b) {
    __m512i acc = _mm512_setzero_si512();
    for (int64_t u = 0; u < 8; ++u) {
      int32_t q4;
      std::memcpy(&q4, v.codes + b * 32 + u * 4, 4);
      const __m512i k = _mm512_load_si512(p.codes + (b * 8 + u) * 64);
      acc = _mm512_add_epi32(acc, _mm512_madd_epi16(_mm512_maddubs_epi16(k, _mm512_set1_epi32(q4)), ones));
    }
    acc = _mm512_sub_epi32(acc, _mm512_set1_epi32(v.offset[b]));
    const __m512 r = _mm512_mul_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(acc), _mm512_set1_ps(v.scale[b])),
                                   _mm512_load_ps(p.scales[b]));
    s = b == 0 ? r : _mm512_add_ps(s, r);
  }
  _mm512_storeu_ps(out, s);
}

}  // namespace v4::kernels::detail

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
