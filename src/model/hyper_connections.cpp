// mHC: hc_pre (weights from one fp32 mix, Sinkhorn-normalised combination), hc_post, hc_head.
#include <cmath>

#include "model/layers.h"

namespace v4::model {

namespace {

float sigmoid(float v) { return 1.0f / (1.0f + std::exp(-v)); }

// mixes[n, mix] = (fn . v) * rsqrt(mean(v^2) + eps) per token (the unweighted RMSNorm folded in).
std::vector<float> hc_mixes(const ForwardContext& ctx, const HyperConnectionWeights& w, const float* X, int64_t n) {
  const int64_t width = w.fn.cols, mix = w.fn.rows;
  std::vector<float> m(size_t(n * mix));
  ctx.matmul(w.fn, X, n, m.data(), false);
  const float eps = float(ctx.cfg->rms_norm_eps);
  ctx.parallel(n, width * 2, [&](int64_t i) {
    const float* v = X + i * width;
    float sum = 0;
    for (int64_t k = 0; k < width; ++k) sum += v[k] * v[k];
    const float r = 1.0f / std::sqrt(sum / float(width) + eps);
    for (int64_t k = 0; k < mix; ++k) m[size_t(i * mix + k)] *= r;
  });
  return m;
}

// Row softmax, + eps, one column normalisation, then (iters - 1) row/column rounds; every
// normalisation divides by (sum + eps). C[j*hc + k], row j, column k.
void sinkhorn(float* C, int64_t hc, int64_t iters, float eps) {
  for (int64_t j = 0; j < hc; ++j) {
    float* row = C + j * hc;
    float mx = row[0];
    for (int64_t k = 1; k < hc; ++k) mx = std::max(mx, row[k]);
    float sum = 0;
    for (int64_t k = 0; k < hc; ++k) {
      row[k] = std::exp(row[k] - mx);
      sum += row[k];
    }
    for (int64_t k = 0; k < hc; ++k) row[k] = row[k] / sum + eps;
  }
  auto normalise_columns = [&] {
    for (int64_t k = 0; k < hc; ++k) {
      float sum = 0;
      for (int64_t j = 0; j < hc; ++j) sum += C[j * hc + k];
      for (int64_t j = 0; j < hc; ++j) C[j * hc + k] /= (sum + eps);
    }
  };
  auto normalise_rows = [&] {
    for (int64_t j = 0; j < hc; ++j) {
      float sum = 0;
      for (int64_t k = 0; k < hc; ++k) sum += C[j * hc + k];
      for (int64_t k = 0; k < hc; ++k) C[j * hc + k] /= (sum + eps);
    }
  };
  normalise_columns();
  for (int64_t it = 1; it < iters; ++it) {
    normalise_rows();
    normalise_columns();
  }
}

void weighted_sum(const float* pre, const float* X, int64_t hc, int64_t D, float* y) {
  for (int64_t d = 0; d < D; ++d) {
    float acc = 0;
    for (int64_t j = 0; j < hc; ++j) acc += pre[j] * X[j * D + d];
    y[d] = acc;
  }
}

}  // namespace

HcMix hc_pre(const ForwardContext& ctx, const HyperConnectionWeights& w, const float* X, int64_t n, float* y) {
  const core::ModelConfig& c = *ctx.cfg;
  const int64_t hc = c.hc_mult, D = c.hidden_size, mix = w.fn.rows;
  const float eps = float(c.hc_eps);
  std::vector<float> m = hc_mixes(ctx, w, X, n);
  HcMix r;
  r.pre.resize(size_t(n * hc));
  r.post.resize(size_t(n * hc));
  r.comb.resize(size_t(n * hc * hc));
  // Tokens are independent: a prefill chunk's spread over the pool (serial, the mixes were a
  // quarter of a 2-thread prefill's time outside the matrix products).
  ctx.parallel(n, hc * D * 2, [&](int64_t i) {
    const float* mi = m.data() + i * mix;
    float* pre = r.pre.data() + i * hc;
    float* post = r.post.data() + i * hc;
    float* C = r.comb.data() + i * hc * hc;
    for (int64_t j = 0; j < hc; ++j) {
      pre[j] = sigmoid(mi[j] * w.scale[0] + w.base[size_t(j)]) + eps;
      post[j] = 2.0f * sigmoid(mi[hc + j] * w.scale[1] + w.base[size_t(hc + j)]);
    }
    for (int64_t k = 0; k < hc * hc; ++k) C[k] = mi[2 * hc + k] * w.scale[2] + w.base[size_t(2 * hc + k)];
    sinkhorn(C, hc, c.hc_sinkhorn_iters, eps);
    weighted_sum(pre, X + i * hc * D, hc, D, y + i * D);
  });
  return r;
}

namespace {
// out_k[d] = post_k h[d] + sum_j C[j, k] R_j[d] for one row, the sum from 0 in j order: computed a
// whole stream at a time (j outer), so the loops over d vectorise with the same operations per
// element. Compiled for AVX-512, AVX2 and baseline x86-64, picked at load.
#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target_clones("arch=x86-64-v4", "arch=x86-64-v3", "default")))
#endif
void hc_post_row(int64_t hc, int64_t D, const float* post, const float* C, const float* R, const float* h,
                 float* __restrict out) {
  for (int64_t k = 0; k < hc; ++k) {
    float* o = out + k * D;
    for (int64_t d = 0; d < D; ++d) o[d] = 0.0f;
    for (int64_t j = 0; j < hc; ++j) {
      const float cjk = C[j * hc + k];
      const float* r = R + j * D;
      for (int64_t d = 0; d < D; ++d) o[d] += cjk * r[d];
    }
    for (int64_t d = 0; d < D; ++d) o[d] = post[k] * h[d] + o[d];
  }
}
}  // namespace

void hc_post(const ForwardContext& ctx, const HcMix& mix, const float* h, const float* R, int64_t n, float* out) {
  const int64_t hc = ctx.cfg->hc_mult, D = ctx.cfg->hidden_size;
  ctx.parallel(n, hc * hc * D * 2, [&](int64_t i) {
    hc_post_row(hc, D, mix.post.data() + i * hc, mix.comb.data() + i * hc * hc, R + i * hc * D, h + i * D,
                out + i * hc * D);
  });
}

void hc_head(const ForwardContext& ctx, const HyperConnectionWeights& w, const float* X, int64_t n, float* y) {
  const core::ModelConfig& c = *ctx.cfg;
  const int64_t hc = c.hc_mult, D = c.hidden_size;
  std::vector<float> m = hc_mixes(ctx, w, X, n);
  std::vector<float> pre(static_cast<size_t>(hc));
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t j = 0; j < hc; ++j)
      pre[size_t(j)] = sigmoid(m[size_t(i * hc + j)] * w.scale[0] + w.base[size_t(j)]) + float(c.hc_eps);
    weighted_sum(pre.data(), X + i * hc * D, hc, D, y + i * D);
  }
}

}  // namespace v4::model
