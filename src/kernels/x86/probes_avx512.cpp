// kernels/probes.h on the avx512 and avx512bf16 variants (target pragma: see x86/linear_avx512.cpp).
// The BF16 dot-product loop sits in its own target region: only avx512bf16 calls it.
#include <immintrin.h>

#include "kernels/probes.h"

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")
#endif
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace v4::kernels::detail {

namespace {
double bf16_dot_loop(int64_t iters) {
  __m512 a[10];
  for (int k = 0; k < 10; ++k) a[k] = _mm512_set1_ps(1.0f + 0.1f * float(k));
  const __m512 m = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
  const __m512bh w = _mm512_cvtne2ps_pbh(c, c), x = _mm512_cvtne2ps_pbh(m, m);
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 10
    for (int k = 0; k < 10; ++k) a[k] = _mm512_dpbf16_ps(a[k], w, x);
  __m512 s = a[0];
  for (int k = 1; k < 10; ++k) s = _mm512_add_ps(s, a[k]);
  volatile float keep = _mm512_reduce_add_ps(s);
  (void)keep;
  return double(iters) * 10 * 64;  // 32 products + 32 additions
}
}  // namespace

}  // namespace v4::kernels::detail

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq")
#endif
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"

namespace v4::kernels::detail {

float stream_sum_avx512(const float* p, int64_t n, int64_t ahead_bytes) {
  __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
  const int64_t ahead = ahead_bytes / 4;
  int64_t i = 0;
  for (; i + 64 <= n; i += 64) {
    if (ahead > 0 && i + ahead + 64 <= n)
      for (int line = 0; line < 4; ++line) _mm_prefetch(reinterpret_cast<const char*>(p + i + ahead + 16 * line), _MM_HINT_T1);
    a0 = _mm512_add_ps(a0, _mm512_loadu_ps(p + i));
    a1 = _mm512_add_ps(a1, _mm512_loadu_ps(p + i + 16));
    a2 = _mm512_add_ps(a2, _mm512_loadu_ps(p + i + 32));
    a3 = _mm512_add_ps(a3, _mm512_loadu_ps(p + i + 48));
  }
  float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
  for (; i < n; ++i) s += p[i];
  return s;
}

double peak_loop_avx512(PeakKind kind, int64_t iters) {
  if (kind == PeakKind::bf16_dot) return bf16_dot_loop(iters);
  __m512 a[10];
  for (int k = 0; k < 10; ++k) a[k] = _mm512_set1_ps(1.0f + 0.1f * float(k));
  const __m512 m = _mm512_set1_ps(0.9999999f), c = _mm512_set1_ps(1e-7f);
  for (int64_t i = 0; i < iters; ++i)
#pragma GCC unroll 10
    for (int k = 0; k < 10; ++k) a[k] = _mm512_fmadd_ps(a[k], m, c);
  __m512 s = a[0];
  for (int k = 1; k < 10; ++k) s = _mm512_add_ps(s, a[k]);
  volatile float keep = _mm512_reduce_add_ps(s);
  (void)keep;
  return double(iters) * 10 * 32;  // 16 lanes x 2 FLOPs
}

}  // namespace v4::kernels::detail

#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
