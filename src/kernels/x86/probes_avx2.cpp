// kernels/probes.h on the avx2 variant (target pragma: see x86/linear_avx512.cpp).
#include <immintrin.h>

#include <chrono>

#include "kernels/probes.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#endif

namespace v4::kernels::detail {

float stream_sum_avx2(const float* p, int64_t n, int64_t ahead_bytes) {
  __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  const int64_t ahead = ahead_bytes / 4;
  int64_t i = 0;
  for (; i + 32 <= n; i += 32) {
    if (ahead > 0 && i + ahead + 32 <= n)
      for (int line = 0; line < 2; ++line) _mm_prefetch(reinterpret_cast<const char*>(p + i + ahead + 16 * line), _MM_HINT_T1);
    a0 = _mm256_add_ps(a0, _mm256_loadu_ps(p + i));
    a1 = _mm256_add_ps(a1, _mm256_loadu_ps(p + i + 8));
    a2 = _mm256_add_ps(a2, _mm256_loadu_ps(p + i + 16));
    a3 = _mm256_add_ps(a3, _mm256_loadu_ps(p + i + 24));
  }
  alignas(32) float lanes[8];
  _mm256_store_ps(lanes, _mm256_add_ps(_mm256_add_ps(a0, a1), _mm256_add_ps(a2, a3)));
  float s = 0;
  for (float v : lanes) s += v;
  for (; i < n; ++i) s += p[i];
  return s;
}

double peak_loop_avx2(int64_t iters) {
  __m256 a[10];
  for (int k = 0; k < 10; ++k) a[k] = _mm256_set1_ps(1.0f + 0.1f * float(k));
  const __m256 m = _mm256_set1_ps(0.9999999f), c = _mm256_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 10
    for (int k = 0; k < 10; ++k) a[k] = _mm256_fmadd_ps(a[k], m, c);
  __m256 s = a[0];
  for (int k = 1; k < 10; ++k) s = _mm256_add_ps(s, a[k]);
  volatile float keep = _mm256_cvtss_f32(s);
  (void)keep;
  return double(iters) * 10 * 16;  // 8 lanes x 2 FLOPs
}

double fma_operand_loop_avx2(bool subnormal, int64_t iters) {
  __m256 a[10];
  for (int k = 0; k < 10; ++k) a[k] = _mm256_set1_ps(1e-10f * float(k + 1));
  // x86 keeps subnormals unless MXCSR's DAZ/FTZ are set, which nothing here does
  const __m256 w = _mm256_set1_ps(subnormal ? 1e-40f : 1e-30f), x = _mm256_set1_ps(subnormal ? 1e30f : 1e20f);
  const auto t0 = std::chrono::steady_clock::now();
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 10
    for (int k = 0; k < 10; ++k) a[k] = _mm256_fmadd_ps(w, x, a[k]);
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  __m256 sum = a[0];
  for (int k = 1; k < 10; ++k) sum = _mm256_add_ps(sum, a[k]);
  volatile float keep = _mm256_cvtss_f32(sum);
  (void)keep;
  return s;
}

}  // namespace v4::kernels::detail

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
