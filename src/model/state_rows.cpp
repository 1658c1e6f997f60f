#include "model/state_rows.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <stdexcept>
#include <string>

#include "core/codecs.h"
#include "kernels/formats.h"
#include "kernels/vector_ops.h"

namespace v4::model {

namespace {

// The smallest exponent e with amax <= limit * 2^e (compared exactly, no division): a block of
// codes times 2^k with k >= that e scales down to codes again, so the block is stored exactly.
int exponent_for(float amax, float limit) {
  if (!(amax > 0) || !std::isfinite(amax)) return 0;  // zeros (any scale) or a NaN/inf block
  int e;
  std::frexp(amax / limit, &e);
  while (e > -140 && amax <= std::ldexp(limit, e - 1)) --e;
  while (amax > std::ldexp(limit, e)) ++e;
  return std::clamp(e, -127, 127);
}

float block_amax(const float* x, int64_t n) {
  float m = 0;
  for (int64_t k = 0; k < n; ++k) m = std::max(m, std::fabs(x[k]));
  return m;
}

}  // namespace

int64_t StateRows::row_bytes(RowFormat format, int64_t width, int64_t tail) {
  switch (format) {
    case RowFormat::f32: return width * 4;
    case RowFormat::fp8: {
      const int64_t q = width - tail, head = q + q / kFp8Block;
      return (head + 3) / 4 * 4 + tail * 4;  // the fp32 tail 4-byte aligned
    }
    case RowFormat::fp4: return (width / 2 + width / kFp4Block + 3) / 4 * 4;
  }
  return 0;
}

StateRows::StateRows(RowFormat format, int64_t width, int64_t tail) : format_(format), width_(width), tail_(tail) {
  const bool ok = format == RowFormat::f32   ? tail == 0
                  : format == RowFormat::fp8 ? tail >= 0 && tail <= width && (width - tail) % kFp8Block == 0
                                             : tail == 0 && width % kFp4Block == 0;
  if (!ok || width <= 0)
    throw std::invalid_argument("state rows: width " + std::to_string(width) + " (tail " + std::to_string(tail) +
                                ") does not fit the format's blocks");
  row_bytes_ = row_bytes(format, width, tail);
}

std::byte* StateRows::next_row() {
  // Each block is allocated whole, so a copy (a cloned state) has the capacity of the original.
  if (size_ % kBlockRows == 0) blocks_.emplace_back(size_t(kBlockRows * row_bytes_));
  return blocks_.back().data() + size_ % kBlockRows * row_bytes_;
}

void StateRows::pack(RowFormat format, int64_t width, int64_t tail, const float* x, std::byte* out) {
  if (format == RowFormat::f32) {
    std::memcpy(out, x, size_t(width) * 4);
    return;
  }
  auto* codes = reinterpret_cast<uint8_t*>(out);
  if (format == RowFormat::fp8) {
    const int64_t q = width - tail;
    int8_t* exps = reinterpret_cast<int8_t*>(codes + q);
    for (int64_t b = 0; b < q / kFp8Block; ++b) {
      const float* v = x + b * kFp8Block;
      const int e = exponent_for(block_amax(v, kFp8Block), 448.0f);
      exps[b] = int8_t(e);
      const float inv = kernels::pow2(-e);  // exact scaling: a power of two
      for (int64_t k = 0; k < kFp8Block; ++k) codes[b * kFp8Block + k] = core::float_to_e4m3(v[k] * inv);
    }
    std::memcpy(out + (row_bytes(format, width, tail) - tail * 4), x + q, size_t(tail) * 4);
    return;
  }
  int8_t* exps = reinterpret_cast<int8_t*>(codes + width / 2);
  std::memset(codes, 0, size_t(width / 2));
  for (int64_t b = 0; b < width / kFp4Block; ++b) {
    const float* v = x + b * kFp4Block;
    const int e = exponent_for(block_amax(v, kFp4Block), 6.0f);
    exps[b] = int8_t(e);
    const float inv = kernels::pow2(-e);
    for (int64_t k = 0; k < kFp4Block; ++k) {
      const int64_t at = b * kFp4Block + k;
      codes[at / 2] |= uint8_t(core::float_to_e2m1(v[k] * inv) << (at % 2 * 4));
    }
  }
}

void StateRows::push_back(const float* x) {
  pack(format_, width_, tail_, x, next_row());
  ++size_;
}

void StateRows::push_back_raw(const std::byte* bytes, int64_t n) {
  for (int64_t r = 0; r < n; ++r, bytes += row_bytes_) {
    std::memcpy(next_row(), bytes, size_t(row_bytes_));
    ++size_;
  }
}

void StateRows::truncate(int64_t n) {
  size_ = std::clamp<int64_t>(n, 0, size_);
  blocks_.resize(size_t((size_ + kBlockRows - 1) / kBlockRows));
}

void StateRows::decode(int64_t i, int64_t n, float* out) const {
  for (int64_t r = 0; r < n; ++r, out += width_) {
    const std::byte* p = row(i + r);
    const auto* codes = reinterpret_cast<const uint8_t*>(p);
    switch (format_) {
      case RowFormat::f32: std::memcpy(out, p, size_t(width_) * 4); break;
      case RowFormat::fp8: {
        const int64_t q = width_ - tail_;
        const auto* exps = reinterpret_cast<const int8_t*>(codes + q);
        for (int64_t b = 0; b < q / kFp8Block; ++b)
          kernels::decode_e4m3(codes + b * kFp8Block, kFp8Block, kernels::pow2(exps[b]), out + b * kFp8Block);
        std::memcpy(out + q, p + (row_bytes_ - tail_ * 4), size_t(tail_) * 4);
        break;
      }
      case RowFormat::fp4: {
        const auto* exps = reinterpret_cast<const int8_t*>(codes + width_ / 2);
        for (int64_t b = 0; b < width_ / kFp4Block; ++b)
          kernels::decode_e2m1(codes + b * kFp4Block / 2, kFp4Block, kernels::pow2(exps[b]), out + b * kFp4Block);
        break;
      }
    }
  }
}

size_t StateRows::bytes() const {
  return blocks_.size() * size_t(kBlockRows * row_bytes_) + blocks_.capacity() * sizeof(std::vector<std::byte>);
}

}  // namespace v4::model
