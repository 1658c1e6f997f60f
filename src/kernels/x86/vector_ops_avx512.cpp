// kernels/vector_ops.h on the avx512 variants (target pragma: see x86/linear_avx512.cpp).
#include <immintrin.h>

#include <cmath>

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

}  // namespace v4::kernels::detail

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
