#include "kernels/vector_ops.h"

#include <cmath>

#include "kernels/formats.h"
#include "kernels/isa.h"

namespace v4::kernels {

namespace detail {
float dot_finish(float (&acc)[16], const float* a, const float* b, int64_t k, int64_t n) {
  for (int l = 0; k < n; ++k, ++l) acc[l] += a[k] * b[k];
  for (int w = 8; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  return acc[0];
}
}  // namespace detail

float dot(const float* a, const float* b, int64_t n) {
  switch (active_isa()) {
    case Isa::avx512bf16:
    case Isa::avx512: return detail::dot_avx512(a, b, n);
    case Isa::avx2: return detail::dot_avx2(a, b, n);
    case Isa::scalar: break;
  }
  float acc[16] = {};
  int64_t k = 0;
  for (; k + 16 <= n; k += 16)
    for (int l = 0; l < 16; ++l) acc[l] += a[k + l] * b[k + l];
  return detail::dot_finish(acc, a, b, k, n);
}

void dots(const float* a, int64_t rows, int64_t lda, const float* b, int64_t n, float* out) {
  switch (active_isa()) {
    case Isa::avx512bf16:
    case Isa::avx512: detail::dots_avx512(a, rows, lda, b, n, out); return;
    default: break;
  }
  for (int64_t r = 0; r < rows; ++r) out[r] = dot(a + r * lda, b, n);
}

void axpy(float a, const float* x, float* y, int64_t n) {
  switch (active_isa()) {
    case Isa::avx512bf16:
    case Isa::avx512: detail::axpy_avx512(a, x, y, n); return;
    case Isa::avx2: detail::axpy_avx2(a, x, y, n); return;
    case Isa::scalar: break;
  }
  for (int64_t k = 0; k < n; ++k) y[k] = std::fma(a, x[k], y[k]);
}

void decode_e4m3(const uint8_t* codes, int64_t n, float scale, float* out) {
  switch (active_isa()) {
    case Isa::avx512bf16:
    case Isa::avx512: detail::decode_e4m3_avx512(codes, n, scale, out); return;
    default: break;
  }
  for (int64_t k = 0; k < n; ++k) out[k] = e4m3_value(codes[k]) * scale;
}

void decode_e2m1(const uint8_t* packed, int64_t n, float scale, float* out) {
  switch (active_isa()) {
    case Isa::avx512bf16:
    case Isa::avx512: detail::decode_e2m1_avx512(packed, n, scale, out); return;
    default: break;
  }
  for (int64_t k = 0; k < n; ++k) out[k] = e2m1_value(uint8_t(packed[k / 2] >> (k % 2 * 4))) * scale;
}

}  // namespace v4::kernels
