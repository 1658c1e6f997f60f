#pragma once
// Internal to the kernels layer: FP4 (e2m1) weights times quantised activations with AVX-512 VNNI
// integer dot products (the Isa::avx512bf16 variant, x86/fp4_vnni_avx512.cpp; call only when the
// CPU has it). On an Intel Xeon (family 6 model 207) vdpbf16ps issues once per two cycles while
// vpdpbusd issues twice per cycle with twice the products, so the BF16 path was bound by its dot
// products at 0.65 of the read bandwidth in decode (docs/performance.md).
//
// Exact integers: a weight is 2 e2m1 = an integer in [-12, 12], stored as u8 w + 12 in [0, 24]; an
// activation of a 128-column block (the quantiser's block: an e4m3 value times a power of two)
// is an integer x_int times 2^q, q = ilogb(block amax) - 17, |x_int| < 2^18, split into three
// signed base-128 digits (s8). vpdpbusd sums four u8 x s8 products into an i32 lane, so a lane
// (8 columns of one 32-column group) holds sum (w + 12) d exactly; the offset is taken out with
// 12 sum x_int (per lane, computed once per x row) and the digits recombined with shifts: the
// lane's 2 sum w x_int, exact in i32 (|.| < 2^25). It is converted to fp32 (rounded once when
// above 2^24) and multiply-added with the group scale times 2^q / 2.
//
// Fixed order (batch invariance, see linear.h): each output element has one 16-lane fp32
// accumulator fed one 128-column step at a time in column order (one FMA per step), then the
// lanes are reduced (reduce16_add). Decode and matrix paths issue the same operations per
// element, so a row's result does not depend on n or the tile.
#include <cstdint>
#include <vector>

#include "kernels/bf16_dot.h"
#include "kernels/aligned_vector.h"
#include "kernels/linear.h"

namespace v4::kernels::fp4vnni {

using RowFallback = bf16dot::RowFallback;

// One call's activations, arranged once for all threads: per row and 128-column step the three
// digit planes (even and odd columns apart, as the packed weight bytes hold them), the offset
// correction per lane and 2^q. A row whose values are not such integers, or whose scale exponent
// q leaves [-60, 40] (so products stay normal fp32 numbers), is not `ok`: linear() sends it to
// the BF16 path (a row's path depends only on the row).
class Input {
 public:
  Input(const Weight& w, const float* x, int64_t n);
  const Weight& weight() const { return w_; }
  int64_t n() const { return n_; }
  int64_t steps() const { return steps_; }
  bool ok(int64_t i) const { return ok_[size_t(i)] != 0; }
  bool all_ok() const;
  const int8_t* digits(int64_t i, int64_t s) const { return digits_.data() + (i * steps_ + s) * kDigitBytes; }
  const int32_t* correction(int64_t i, int64_t s) const { return correction_.data() + (i * steps_ + s) * 16; }
  float scale(int64_t i, int64_t s) const { return scale_[size_t(i * steps_ + s)]; }

  static constexpr int64_t kDigitBytes = 3 * 2 * 64;  // digit k, even / odd columns, 64 each

 private:
  Weight w_;
  int64_t n_, steps_;
  AlignedVector<int8_t> digits_;
  AlignedVector<int32_t> correction_;  // -12 x the lane's 8 x_int
  std::vector<float> scale_;         // 2^q / 2 (the weights are 2 e2m1)
  std::vector<uint8_t> ok_;
};

// out[i, r] for r in [row_begin, row_end) and every row i of x (all ok). Weight rows whose group
// scales leave 2^[-40, 40] go to `fallback(row_begin, row_end)`.
void rows(const Input& in, float* out, int64_t row_begin, int64_t row_end, const RowFallback& fallback);

}  // namespace v4::kernels::fp4vnni
