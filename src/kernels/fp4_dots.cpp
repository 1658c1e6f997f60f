#include "kernels/fp4_dots.h"

#include <array>
#include <cstring>
#include <stdexcept>

#include "kernels/formats.h"
#include "kernels/isa.h"

namespace v4::kernels {

namespace {
void check(int64_t n) {
  if (n % 32 != 0 || n <= 0 || n > Fp4Panel::kMaxDims)
    throw std::invalid_argument("fp4 dots: 32..128 dims in blocks of 32");
}
}  // namespace

void Fp4Vector::load(const uint8_t* v, int64_t dims) {
  check(dims);
  n = dims;
  const auto* exps = reinterpret_cast<const int8_t*>(v + n / 2);
  for (int64_t b = 0; b < n / 32; ++b) {
    int32_t sum = 0;
    for (int64_t k = b * 32; k < b * 32 + 32; ++k) {
      codes[k] = detail::e2m1_doubled(uint8_t(v[k / 2] >> (k % 2 * 4)));
      sum += codes[k];
    }
    offset[b] = 12 * sum;
    scale[b] = pow2(exps[b] - 2);
  }
}

void Fp4Panel::load(const uint8_t* rows, int64_t nrows, int64_t stride, int64_t dims) {
  check(dims);
  if (nrows < 0 || nrows > kRows) throw std::invalid_argument("fp4 dots: at most 16 rows");
  n = dims;
  // A byte of two nibbles -> their two unsigned codes (doubled + 12), low nibble first.
  static const auto pairs = [] {
    std::array<uint16_t, 256> t{};
    for (int byte = 0; byte < 256; ++byte)
      t[size_t(byte)] = uint16_t(uint8_t(detail::e2m1_doubled(uint8_t(byte & 15)) + 12) |
                                 uint16_t(uint8_t(detail::e2m1_doubled(uint8_t(byte >> 4)) + 12)) << 8);
    return t;
  }();
  const int64_t blocks = dims / 32;
  for (int64_t j = 0; j < kRows; ++j) {
    if (j >= nrows) {  // code 0 (12 unsigned), scale 0: scores 0
      for (int64_t bu = 0; bu < blocks * 8; ++bu) std::memset(codes + (bu * 16 + j) * 4, 12, 4);
      for (int64_t b = 0; b < blocks; ++b) scales[b][j] = 0.0f;
      continue;
    }
    const uint8_t* row = rows + j * stride;
    const auto* exps = reinterpret_cast<const int8_t*>(row + dims / 2);
    for (int64_t b = 0; b < blocks; ++b) scales[b][j] = pow2(exps[b]);
    for (int64_t bu = 0; bu < blocks * 8; ++bu) {  // quad bu: dims 4bu..4bu+3, two bytes of the row
      const uint32_t quad = uint32_t(pairs[row[bu * 2]]) | uint32_t(pairs[row[bu * 2 + 1]]) << 16;
      std::memcpy(codes + (bu * 16 + j) * 4, &quad, 4);
    }
  }
}

void Fp4Panel::dots(const Fp4Vector& q, float* out) const {
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
