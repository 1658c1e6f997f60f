// The MTP block (the reference's MTPBlock): the next token's embedding and the main model's final
// streams, each normalised and projected, summed into the block's input streams; one ordinary
// block (window attention, its own layer state); then its own hc_head and norm before the shared
// LM head. Every position goes through it once, in order, like a main layer.
#include "model/layers.h"

namespace v4::model {

namespace {

// x[i, j] = e_proj(enorm(embed(next_i))) + h_proj(hnorm(h[i, j])) for each stream j.
std::vector<float> mtp_input(const ForwardContext& ctx, const MtpWeights& m, const core::TensorView& embed,
                             const float* h, const int32_t* next_tokens, int64_t N) {
  const core::ModelConfig& c = *ctx.cfg;
  const int64_t hc = c.hc_mult, D = c.hidden_size, hcD = hc * D;
  const float eps = float(c.rms_norm_eps);
  std::vector<float> e(size_t(N * D)), xh(size_t(N * hcD)), pe(size_t(N * D)), X(size_t(N * hcD));
  for (int64_t i = 0; i < N; ++i) {
    embed_row(embed, D, next_tokens[i], e.data() + i * D);
    rms_norm(e.data() + i * D, m.enorm.data(), D, eps, e.data() + i * D);
    for (int64_t j = 0; j < hc; ++j) rms_norm(h + (i * hc + j) * D, m.hnorm.data(), D, eps, xh.data() + (i * hc + j) * D);
  }
  ctx.matmul(m.e_proj, e.data(), N, pe.data(), true);
  ctx.matmul(m.h_proj, xh.data(), N * hc, X.data(), true);
  for (int64_t i = 0; i < N; ++i)
    for (int64_t j = 0; j < hc; ++j)
      for (int64_t d = 0; d < D; ++d) X[size_t((i * hc + j) * D + d)] += pe[size_t(i * D + d)];
  return X;
}

}  // namespace

std::vector<float> mtp_forward(const ForwardContext& ctx, const MtpWeights& m, const core::TensorView& embed,
                               const kernels::Weight& head, std::span<const Segment> segments, const float* h,
                               const int32_t* next_tokens, int64_t N, std::span<const int64_t> logit_rows,
                               std::vector<float>* streams) {
  std::vector<float> X = mtp_input(ctx, m, embed, h, next_tokens, N);
  block_forward(ctx, m.block, 0, segments, X, next_tokens, N);
  std::vector<float> logits = head_forward(ctx, m.hc_head, m.norm, head, X, logit_rows);
  if (streams) *streams = std::move(X);
  return logits;
}

}  // namespace v4::model
