#pragma once
// Small numeric building blocks of the forward pass: RMSNorm, RoPE tables, the reference's
// activation quantisers (FP8 e4m3 / FP4 e2m1 with power-of-two block scales) and the Hadamard
// rotation. All fp32, all deterministic (no dependence on threads).
#include <cmath>
#include <cstdint>
#include <vector>

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace v4::model {

// Dot product in a fixed order (16 interleaved partial sums, then a fixed reduction), so it
// vectorises without depending on the thread or the batch.
inline float dot(const float* a, const float* b, int64_t n) {
  float acc[16] = {};
  int64_t k = 0;
  for (; k + 16 <= n; k += 16)
    for (int l = 0; l < 16; ++l) acc[l] += a[k + l] * b[k + l];
  for (int l = 0; k < n; ++k, ++l) acc[l] += a[k] * b[k];
  for (int w = 8; w >= 1; w /= 2)
    for (int l = 0; l < w; ++l) acc[l] += acc[l + w];
  return acc[0];
}

// y[k] = fma(a, x[k], y[k]) for k < n: each element rounded once, so vectorised or not the
// result is the same.
inline void axpy(float a, const float* x, float* y, int64_t n) {
  int64_t k = 0;
#if defined(__AVX512F__)
  const __m512 av = _mm512_set1_ps(a);
  for (; k + 16 <= n; k += 16) _mm512_storeu_ps(y + k, _mm512_fmadd_ps(av, _mm512_loadu_ps(x + k), _mm512_loadu_ps(y + k)));
#endif
  for (; k < n; ++k) y[k] = std::fma(a, x[k], y[k]);
}

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
