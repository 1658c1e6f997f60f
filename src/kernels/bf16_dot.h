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
//
// Pair products on fp32 FMAs: vdpbf16ps adds the odd element's product to the accumulator, then
// the even one's, each rounded as an fp32 FMA with denormal inputs read as zero and denormal
// results flushed (the Intel SDM's definition). Two FMAs in that order under DAZ/FTZ give the same
// bits, so where the CPU issues vdpbf16ps at half the FMA rate (the Intel Xeons measured: 86
// against 175 GFLOP/s per core) the matrix paths and the BF16 weights' tiles multiply on FMAs.
// rows() runs under DAZ/FTZ in both modes (the scalar fallback outside it), so the two modes
// agree bit for bit and a row's bits do not depend on the path that computed it.
#include <cstdint>
#include <functional>
#include <vector>

#include "kernels/aligned_vector.h"
#include "kernels/linear.h"

namespace v4::kernels::bf16dot {

// Rows whose scales the BF16 path does not take (an exponent that would leave the BF16 range)
// are computed by `fallback(row_begin, row_end)` for all n rows of x. It must be deterministic per
// row; linear() passes the scalar reference.
using RowFallback = std::function<void(int64_t row_begin, int64_t row_end)>;

// How BF16 pairs are multiplied (see above). The mode is chosen once, at first use:
// V4FLASH_BF16_PAIRS=dot|fma if set, else fma where pairs_match_dot() and FMAs measure at least
// 1.5x the dot products' FLOP rate on this core. Either mode gives the same bits.
enum class PairMode { dot, fma };
PairMode pair_mode();
// For tests and benchmarks; not while kernels run on other threads.
void set_pair_mode(PairMode mode);
const char* pair_mode_name(PairMode mode);
// Whether two FMAs under DAZ/FTZ reproduce vdpbf16ps on this CPU, on operands chosen to make
// every rounding and flush visible (call only where the CPU has AVX-512 BF16).
bool pairs_match_dot();

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
  // In PairMode::fma, the arranged x split for the FMAs: the 32 BF16 lanes at offset o become
  // floats o..o+15 (odd elements) and o+16..o+31 (even); empty otherwise.
  const float* pairs() const { return pairs_.empty() ? nullptr : pairs_.data(); }
  PairMode mode() const { return mode_; }  // pair_mode() when the input was arranged

 private:
  Weight w_;
  const float* x_;
  int64_t n_;
  int64_t padded_cols_;
  PairMode mode_;
  AlignedVector<uint16_t> arranged_;
  AlignedVector<float> pairs_;
};

// out[i, r] for r in [row_begin, row_end) and every row i of x. row_begin must be a multiple of 16.
void rows(const Input& in, float* out, int64_t row_begin, int64_t row_end, const RowFallback& fallback);

}  // namespace v4::kernels::bf16dot
