// Lightning indexer: scores every visible compressed entry per query token and keeps the top-k
// (exact ties broken by the lower entry index). Its own compressor (the keys) is fed by the caller
// first, so a block completed by this chunk can be selected.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "model/layers.h"

namespace v4::model {

IndexerQueries indexer_queries(const ForwardContext& ctx, const IndexerWeights& w, const RopeTable& rope, const float* x,
                               const float* qr, std::span<const int64_t> pos) {
  const core::ModelConfig& c = *ctx.cfg;
  const int64_t IH = c.index_n_heads, Id = c.index_head_dim, rd = rope.dim(), n = int64_t(pos.size());
  IndexerQueries iq;
  iq.q.resize(size_t(n * IH * Id));
  ctx.matmul(w.wq_b, qr, n, iq.q.data(), true);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t h = 0; h < IH; ++h) {
      float* qh = iq.q.data() + (i * IH + h) * Id;
      rope.apply(qh + Id - rd, pos[size_t(i)]);
      hadamard_rotate(qh, Id);
      if (ctx.quantize) fp4_quant_dequant(qh, Id, 32);
    }
  }
  iq.weights.resize(size_t(n * IH));
  ctx.matmul(w.weights_proj, x, n, iq.weights.data(), false);
  const float wscale = float(std::pow(double(Id), -0.5) * std::pow(double(IH), -0.5));
  for (float& v : iq.weights) v *= wscale;
  return iq;
}

void indexer_select(const ForwardContext& ctx, const IndexerWeights& w, const LayerState& st, const IndexerQueries& iq,
                    int64_t row0, int64_t n, int64_t p0, std::vector<int32_t>& sel) {
  const core::ModelConfig& c = *ctx.cfg;
  const int64_t IH = c.index_n_heads, Id = c.index_head_dim, topk = c.index_topk;
  const int64_t ratio = w.compressor.ratio;
  const float* q = iq.q.data() + row0 * IH * Id;
  const float* weights = iq.weights.data() + row0 * IH;
  sel.assign(size_t(n * topk), -1);
  ctx.parallel(n, ((p0 + n) / ratio + 1) * IH * Id, [&](int64_t i) {
    const int64_t t = p0 + i;
    const int64_t visible = std::min((t + 1) / ratio, st.n_index_keys);
    if (visible <= 0) return;
    std::vector<float> score(static_cast<size_t>(visible));
    const float* wi = weights + i * IH;
    for (int64_t s = 0; s < visible; ++s) {
      const float* ks = st.index_keys.data() + s * Id;
      float total = 0;
      for (int64_t h = 0; h < IH; ++h) {
        const float* qh = q + (i * IH + h) * Id;
        total += std::max(dot(qh, ks, Id), 0.0f) * wi[h];
      }
      score[size_t(s)] = total;
    }
    const int64_t k = std::min(topk, visible);
    std::vector<int32_t> order(static_cast<size_t>(visible));
    std::iota(order.begin(), order.end(), 0);
    std::partial_sort(order.begin(), order.begin() + k, order.end(), [&](int32_t a, int32_t b) {
      const float sa = score[size_t(a)], sb = score[size_t(b)];
      return sa != sb ? sa > sb : a < b;
    });
    std::copy_n(order.begin(), k, sel.begin() + i * topk);
  });
}

}  // namespace v4::model
