// kernels/fp4_dots.h on the avx2 variant (target pragma: see x86/linear_avx512.cpp). The integer
// block sums come from multiply-add pairs of unsigned row codes and signed vector codes (no
// saturation: |pair| <= 2 * 24 * 12), so they are exact, like the scalar loop's.
#include <immintrin.h>

#include <cstring>

#include "kernels/fp4_dots.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

namespace v4::kernels::detail {

void fp4_dots_avx2(const Fp4Panel& p, const Fp4Vector& v, float* out) {
  const __m256i ones = _mm256_set1_epi16(1);
  for (int half = 0; half < 2; ++half) {  // rows 0..7, then 8..15
    __m256 s = _mm256_setzero_ps();
    for (int64_t b = 0; b < p.n / 32; ++b) {
      __m256i acc = _mm256_setzero_si256();
      for (int64_t u = 0; u < 8; ++u) {
        int32_t q4;
        std::memcpy(&q4, v.codes + b * 32 + u * 4, 4);
        const __m256i k = _mm256_load_si256(reinterpret_cast<const __m256i*>(p.codes + (b * 8 + u) * 64 + half * 32));
        acc = _mm256_add_epi32(acc, _mm256_madd_epi16(_mm256_maddubs_epi16(k, _mm256_set1_epi32(q4)), ones));
      }
      acc = _mm256_sub_epi32(acc, _mm256_set1_epi32(v.offset[b]));
      const __m256 r = _mm256_mul_ps(_mm256_mul_ps(_mm256_cvtepi32_ps(acc), _mm256_set1_ps(v.scale[b])),
                                     _mm256_loadu_ps(p.scales[b] + half * 8));
      s = b == 0 ? r : _mm256_add_ps(s, r);
    }
    _mm256_storeu_ps(out + half * 8, s);
  }
}

}  // namespace v4::kernels::detail

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
