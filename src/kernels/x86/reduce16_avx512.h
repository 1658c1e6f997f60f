#pragma once
// Internal to the AVX-512 kernels; include after the file's AVX-512 target pragma.
//
// The lanes of 16 accumulators summed at once, each to the same bits as _mm512_reduce_add_ps
// (the batch-invariance rule of linear.h fixes that order: halves of 8, then 4, then lanes j and
// j + 2, then the last pair): the same additions, done on four accumulators' partial sums per
// instruction instead of one, so a tile's 16 outputs cost 15 adds and 30 shuffles instead of
// 16 x (4 adds + 4 shuffles + a scalar move). Short rows (the demo's LM head, 256 columns) spent
// as long on the reduction as on the dot products.
#include <immintrin.h>

#include <cstdint>

namespace v4::kernels::detail {

// res[a] = _mm512_reduce_add_ps(v[a]), a = 0..15.
static inline __attribute__((always_inline)) void reduce16_add(const __m512 (&v)[16], float* res) {
  __m512 c[8], d[4], e[2];
  for (int i = 0; i < 8; ++i)  // 128-bit lanes (0, 1) = v[2i]'s halves summed, (2, 3) = v[2i + 1]'s
    c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0x44), _mm512_shuffle_f32x4(v[2 * i], v[2 * i + 1], 0xEE));
  for (int i = 0; i < 4; ++i)  // lane L = v[4i + L]'s 4-wide partial sums
    d[i] = _mm512_add_ps(_mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], 0x88), _mm512_shuffle_f32x4(c[2 * i], c[2 * i + 1], 0xDD));
  for (int i = 0; i < 2; ++i)  // in lane L: elements j + (j ^ 2) of v[8i + L] then of v[8i + 4 + L]
    e[i] = _mm512_add_ps(_mm512_shuffle_ps(d[2 * i], d[2 * i + 1], 0x44), _mm512_shuffle_ps(d[2 * i], d[2 * i + 1], 0xEE));
  // element 4 L + m = the sum of v[4 m + L]
  const __m512 f = _mm512_add_ps(_mm512_shuffle_ps(e[0], e[1], 0x88), _mm512_shuffle_ps(e[0], e[1], 0xDD));
  const __m512i order = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
  _mm512_storeu_ps(res, _mm512_permutexvar_ps(order, f));
}

// A register tile's R x T accumulators (R, T <= 4) reduced together, each in reduce16_add's order,
// into out[t * ldo + k] (k: weight row, t: x row).
template <int R, int T>
static inline __attribute__((always_inline)) void store_tile_sums(const __m512 (&acc)[R][T], float* out, int64_t ldo) {
  static_assert(R * T <= 16);
  __m512 all[16];
#pragma GCC unroll 16
  for (int j = 0; j < 16; ++j) all[j] = j < R * T ? acc[j / T][j % T] : _mm512_setzero_ps();
  float sums[16];
  reduce16_add(all, sums);
#pragma GCC unroll 4
  for (int k = 0; k < R; ++k)
#pragma GCC unroll 4
    for (int t = 0; t < T; ++t) out[t * ldo + k] = sums[k * T + t];
}

}  // namespace v4::kernels::detail
