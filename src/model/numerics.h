#pragma once
// Small numeric building blocks of the forward pass: RMSNorm, RoPE tables, the reference's
// activation quantisers (FP8 e4m3 / FP4 e2m1 with power-of-two block scales) and the Hadamard
// rotation. All fp32, all deterministic (no dependence on threads).
#include <cmath>
#include <cstdint>
#include <vector>

#include "kernels/vector_ops.h"

namespace v4::model {

// Dot product in a fixed order and element-wise FMA, on the kernel variant in use; the bits do not
// depend on the variant, the thread or the batch (kernels/vector_ops.h).
using kernels::axpy;
using kernels::dot;

// y = w * x / sqrt(mean(x^2) + eps); w may be null (no weight). In place allowed (y == x).
void rms_norm(const float* x, const float* w, int64_t n, float eps, float* y);

// Round to the nearest FP8 e4m3 value (RNE, saturating to +-448), returned as float.
float round_e4m3(float v);
// Round to the nearest FP4 e2m1 value (RNE, saturating to +-6), returned as float.
float round_e2m1(float v);
// Quantise-dequantise in place, per block of `block` elements: scale 2^ceil(log2(amax/448)),
// amax clamped to >= 1e-4 (FP8); 2^ceil(log2(amax/6)), amax >= 6*2^-126 (FP4).
void fp8_quant_dequant(float* x, int64_t n, int64_t block);
void fp4_quant_dequant(float* x, int64_t n, int64_t block);

// Walsh-Hadamard transform (Sylvester / natural order) scaled by n^-0.5; n a power of two.
void hadamard_rotate(float* x, int64_t n);

// Frequencies of the interleaved RoPE on the last `dim` dims, as the reference builds them
// (fp32; YaRN ramp when original_seq_len > 0).
class RopeTable {
 public:
  RopeTable() = default;
  RopeTable(int64_t dim, double base, int64_t original_seq_len, double factor, double beta_fast,
            double beta_slow);
  int64_t dim() const { return dim_; }
  // Rotate x[0..dim) (pairs (2i, 2i+1)) by the angles of position `pos`; inverse uses the conjugate.
  void apply(float* x, int64_t pos, bool inverse = false) const;

 private:
  int64_t dim_ = 0;
  std::vector<float> freqs_;
};

}  // namespace v4::model
