#pragma once
// Internal to the kernels layer: FP8 and FP4 weights on AVX-512 BF16 dot products (the
// Isa::avx512bf16 variant, x86/bf16_dot_avx512bf16.cpp; call only when the CPU has it). FP4 comes
// here only where the CPU lacks AVX-512 VNNI, or for rows of x the integer path of fp4_vnni.h does
// not take. Weights are
// decoded to BF16 (exact: every e4m3 and e2m1 value times a power-of-two scale is a BF16 number).
// Activations are BF16 numbers already (the reference's FP8 activation quantiser leaves e4m3 values
// times a power of two; fp32 activations go to the fp32 FMAs of linear_avx512, which on an Intel
// Xeon ran 2.5x faster than splitting them into three BF16 terms). Every product is exact in fp32
// (the instruction flushes results below 2^-126 to zero); sums are fp32; an instruction does 32
// multiply-adds, and decoding to BF16 takes fewer instructions per weight than decoding to fp32.
//
// Fixed order (batch invariance, see linear.h): each output element has one 16-lane fp32
// accumulator fed step by step in column order (a step is 64 FP8 or 128 FP4 columns, a fixed
// sequence of dot products, plus one FMA with the group scales for FP4), then the lanes are
// reduced. Decode (n <= 4) and matrix (n > 4) paths issue the same instructions per element.
#include <cstdint>
#include <functional>
#include <vector>

#include "kernels/linear.h"

namespace v4::kernels::bf16dot {

// Rows whose scales the BF16 path does not take (an exponent that would leave the BF16 range)
// are computed by `fallback(row_begin, row_end)` for all n rows of x. It must be deterministic per
// row; linear() passes the scalar reference.
using RowFallback = std::function<void(int64_t row_begin, int64_t row_end)>;

// One call's input, arranged once for all threads; every x value must be a BF16 number.
class Input {
 public:
  Input(const Weight& w, const float* x, int64_t n);
  const Weight& weight() const { return w_; }
  const float* x() const { return x_; }
  int64_t n() const { return n_; }
  int64_t padded_cols() const { return padded_cols_; }
  int64_t x_stride() const { return padded_cols_; }  // BF16 lanes per arranged x row
  const uint16_t* arranged() const { return arranged_.data(); }  // FP4: BF16 x in lane order

 private:
  Weight w_;
  const float* x_;
  int64_t n_;
  int64_t padded_cols_;
  std::vector<uint16_t> arranged_;
};

// out[i, r] for r in [row_begin, row_end) and every row i of x. row_begin must be a multiple of 16.
void rows(const Input& in, float* out, int64_t row_begin, int64_t row_end, const RowFallback& fallback);

}  // namespace v4::kernels::bf16dot
