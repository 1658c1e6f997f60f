#include "kernels/fp4_dots.h"

#include <cmath>
#include <stdexcept>

#include "kernels/isa.h"

namespace v4::kernels {

void Fp4Panel::load(const uint8_t* rows, int64_t nrows, int64_t stride, int64_t dims) {
  if (dims % 32 != 0 || dims <= 0 || dims > kMaxDims || nrows < 0 || nrows > kRows)
    throw std::invalid_argument("Fp4Panel: rows of 32..512 dims in blocks of 32, at most 16 rows");
  n = dims;
  const int64_t blocks = dims / 32;
  for (int64_t j = 0; j < kRows; ++j) {
    const uint8_t* row = j < nrows ? rows + j * stride : nullptr;
    const auto* exps = row ? reinterpret_cast<const int8_t*>(row + dims / 2) : nullptr;
    for (int64_t b = 0; b < blocks; ++b) {
      scales[b][j] = row ? std::ldexp(1.0f, exps[b]) : 0.0f;
      for (int64_t u = 0; u < 8; ++u)
        for (int64_t t = 0; t < 4; ++t) {
          const int64_t k = b * 32 + u * 4 + t;
          const int8_t c = row ? detail::e2m1_doubled(uint8_t(row[k / 2] >> (k % 2 * 4))) : 0;
          codes[((b * 8 + u) * 16 + j) * 4 + t] = uint8_t(c + 12);
        }
    }
  }
}

namespace detail {

void fp4_vector(const uint8_t* v, int64_t n, Fp4Vector& out) {
  const auto* exps = reinterpret_cast<const int8_t*>(v + n / 2);
  for (int64_t b = 0; b < n / 32; ++b) {
    int32_t sum = 0;
    for (int64_t k = b * 32; k < b * 32 + 32; ++k) {
      out.codes[k] = e2m1_doubled(uint8_t(v[k / 2] >> (k % 2 * 4)));
      sum += out.codes[k];
    }
    out.offset[b] = 12 * sum;  // what the +12 of the row codes adds
    out.scale[b] = std::ldexp(1.0f, exps[b] - 2);  // both sides doubled
  }
}

}  // namespace detail

void Fp4Panel::dots(const uint8_t* v, float* out) const {
  detail::Fp4Vector q;
  detail::fp4_vector(v, n, q);
  switch (active_isa()) {
    case Isa::avx512bf16:
    case Isa::avx512: detail::fp4_dots_avx512(*this, q, out); return;
    case Isa::avx2: detail::fp4_dots_avx2(*this, q, out); return;
    case Isa::scalar: break;
  }
  for (int j = 0; j < kRows; ++j) {
    float s = 0;
    for (int64_t b = 0; b < n / 32; ++b) {
      int32_t sum = 0;
      for (int64_t k = 0; k < 32; ++k)
        sum += int32_t(codes[((b * 8 + k / 4) * 16 + j) * 4 + k % 4]) * q.codes[b * 32 + k];
      const float r = float(sum - q.offset[b]) * q.scale[b] * scales[b][j];
      s = b == 0 ? r : s + r;
    }
    out[j] = s;
  }
}

}  // namespace v4::kernels
