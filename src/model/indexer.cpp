// Lightning indexer: scores every visible compressed entry per query token and keeps the top-k
// (exact ties broken by the lower entry index). Its own compressor (the keys) is fed by the caller
// first, so a block completed by this chunk can be selected.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "kernels/fp4_dots.h"
#include "kernels/vector_ops.h"
#include "model/layers.h"

namespace v4::model {

IndexerQueries indexer_queries(const ForwardContext& ctx, const IndexerWeights& w, const RopeTable& rope, const float* x,
                               const float* qr, std::span<const int64_t> pos) {
  const core::ModelConfig& c = *ctx.cfg;
  const int64_t IH = c.index_n_heads, Id = c.index_head_dim, rd = rope.dim(), n = int64_t(pos.size());
  IndexerQueries iq;
  iq.q.resize(size_t(n * IH * Id));
  ctx.matmul(w.wq_b, qr, n, iq.q.data(), true);
  const bool packed_fp4 = ctx.quantize && Id % 32 == 0 && Id <= kernels::Fp4Vector::kMaxDims;  // else the fp32 dots
  if (packed_fp4) iq.fp4.resize(size_t(n * IH));
  // Per token and head, independent: a prefill chunk's tokens spread over the pool.
  ctx.parallel(n, IH * Id * 32, [&](int64_t i) {
    std::vector<std::byte> packed(packed_fp4 ? size_t(StateRows::row_bytes(RowFormat::fp4, Id, 0)) : 0);
    for (int64_t h = 0; h < IH; ++h) {
      float* qh = iq.q.data() + (i * IH + h) * Id;
      rope.apply(qh + Id - rd, pos[size_t(i)]);
      hadamard_rotate(qh, Id);
      if (ctx.quantize) fp4_quant_dequant(qh, Id, 32);
      if (packed_fp4) {
        StateRows::pack(RowFormat::fp4, Id, 0, qh, packed.data());
        iq.fp4[size_t(i * IH + h)].load(reinterpret_cast<const uint8_t*>(packed.data()), Id);
      }
    }
  });
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
  // Scores of every (token, visible entry), spread over the pool in blocks of entries: a decode
  // step has one token, and at long contexts its thousands of entries are most of a CSA layer's
  // work. Each score is computed whole by one thread, so the split changes no value.
  constexpr int64_t kBlock = 256;
  std::vector<int64_t> visible(static_cast<size_t>(n)), first_block(static_cast<size_t>(n) + 1, 0);
  for (int64_t i = 0; i < n; ++i) {
    visible[size_t(i)] = std::max<int64_t>(0, std::min((p0 + i + 1) / ratio, st.index_keys.size()));
    first_block[size_t(i) + 1] = first_block[size_t(i)] + (visible[size_t(i)] + kBlock - 1) / kBlock;
  }
  std::vector<std::vector<float>> scores(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) scores[size_t(i)].resize(size_t(visible[size_t(i)]));
  ctx.parallel(first_block[size_t(n)], kBlock * IH * Id, [&](int64_t b) {
    const int64_t i = int64_t(std::upper_bound(first_block.begin(), first_block.end(), b) - first_block.begin()) - 1;
    const int64_t s0 = (b - first_block[size_t(i)]) * kBlock, s1 = std::min(visible[size_t(i)], s0 + kBlock);
    const float* wi = weights + i * IH;
    // Sixteen entries at a time: per head, their 16 scores from one kernels::dots call (the keys as
    // the rows, dot()'s bits each), then added to the entries' weighted sums in head order, so the
    // sums run across the entries in vector lanes.
    // Packed (FP4) keys: the 16 keys' codes laid out once for all the heads, and each head's
    // scores as exact integer block sums (kernels/fp4_dots.h).
    constexpr int64_t kGroup = 16;
    static_assert(StateRows::kBlockRows % kGroup == 0 && kBlock % StateRows::kBlockRows == 0);
    const bool fp4 = st.index_keys.format() == RowFormat::fp4 && !iq.fp4.empty();
    kernels::Fp4Panel panel;
    std::vector<float> decoded(fp4 || st.index_keys.format() == RowFormat::f32 ? 0 : size_t(kGroup * Id));
    for (int64_t s = s0; s < s1; s += kGroup) {
      const int64_t g = std::min(kGroup, s1 - s);
      float part[kGroup] = {}, total[kGroup] = {};
      if (fp4) {
        panel.load(reinterpret_cast<const uint8_t*>(st.index_keys.raw(s)), g, st.index_keys.row_bytes(), Id);
        for (int64_t h = 0; h < IH; ++h) {
          panel.dots(iq.fp4[size_t((row0 + i) * IH + h)], part);
          for (int64_t e = 0; e < kGroup; ++e) total[e] += std::max(part[e], 0.0f) * wi[h];
        }
      } else {
        const float* keys = decoded.empty() ? st.index_keys.f32(s) : decoded.data();
        if (!decoded.empty()) st.index_keys.decode(s, g, decoded.data());
        for (int64_t h = 0; h < IH; ++h) {
          kernels::dots(keys, g, Id, q + (i * IH + h) * Id, Id, part);
          for (int64_t e = 0; e < kGroup; ++e) total[e] += std::max(part[e], 0.0f) * wi[h];
        }
      }
      std::copy_n(total, g, scores[size_t(i)].data() + s);
    }
  });
  ctx.parallel(n, st.index_keys.size() * 8, [&](int64_t i) {
    const std::vector<float>& score = scores[size_t(i)];
    const int64_t v = visible[size_t(i)], k = std::min(topk, v);
    if (v <= 0) return;
    std::vector<int32_t> order(static_cast<size_t>(v));
    std::iota(order.begin(), order.end(), 0);
    // A strict total order (score, then the lower index), so selecting then sorting the k gives
    // partial_sort's result in linear rather than v log k time (256K entries at 1M positions).
    const auto before = [&](int32_t a, int32_t b) {
      const float sa = score[size_t(a)], sb = score[size_t(b)];
      return sa != sb ? sa > sb : a < b;
    };
    if (k < v) std::nth_element(order.begin(), order.begin() + (k - 1), order.end(), before);
    std::sort(order.begin(), order.begin() + k, before);
    std::copy_n(order.begin(), k, sel.begin() + i * topk);
  });
}

}  // namespace v4::model
