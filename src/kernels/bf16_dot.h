#pragma once
// Internal to the kernels layer: FP8 and FP4 weights times activations that are exactly
// representable in BF16 (the reference's FP8 activation quantiser guarantees that: e4m3 values
// times a power of two). Weights are decoded to BF16 (exact: every e4m3 and e2m1 value times a
// power-of-two scale is a BF16 number) and multiplied with AVX-512 BF16 dot products: every
// product is exact in fp32 (the instruction flushes results below 2^-126 to zero), sums are fp32, twice the multiply-adds per instruction of fp32 FMAs
// and about half the decode instructions per weight.
//
// Fixed order (batch invariance, see linear.h): each output element has one 16-lane fp32
// accumulator; columns go in steps of 64, each step two dot-product instructions (A then B halves
// of the step, in the format's lane order), then the lanes are reduced. Decode (n <= 4) and
// matrix (n > 4) paths issue the same instructions per element.
#include <cstdint>
#include <functional>
#include <vector>

#include "kernels/linear.h"

namespace v4::kernels::bf16dot {

// Whether this build has the instructions (AVX-512 BF16 and VBMI); false means linear() keeps the
// fp32 path for every input.
bool available();

// Rows whose scales the BF16 path does not take (an exponent that would leave the BF16 range)
// are computed by `fallback(row_begin, row_end)` for all n rows of x. It must be deterministic per
// row; linear() passes the scalar reference.
using RowFallback = std::function<void(int64_t row_begin, int64_t row_end)>;

// One call's input, arranged once for all threads. bf16_exact: x values are BF16 numbers (one
// BF16 term each); otherwise (FP8 weights only) each fp32 x is split exactly into three BF16
// terms, still exact products at three dot products per pair instead of one.
class Input {
 public:
  Input(const Weight& w, const float* x, int64_t n, bool bf16_exact);
  const Weight& weight() const { return w_; }
  const float* x() const { return x_; }
  int64_t n() const { return n_; }
  int terms() const { return terms_; }
  int64_t padded_cols() const { return padded_cols_; }
  int64_t x_stride() const { return padded_cols_ * terms_; }     // BF16 lanes per arranged x row
  const uint16_t* arranged() const { return arranged_.data(); }  // FP4: BF16 x in lane order

 private:
  Weight w_;
  const float* x_;
  int64_t n_;
  int terms_;
  int64_t padded_cols_;
  std::vector<uint16_t> arranged_;
};

// out[i, r] for r in [row_begin, row_end) and every row i of x. row_begin must be a multiple of 16.
void rows(const Input& in, float* out, int64_t row_begin, int64_t row_end, const RowFallback& fallback);

}  // namespace v4::kernels::bf16dot
