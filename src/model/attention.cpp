// Attention of one layer: low-rank q with per-head norm, one shared kv head, partial RoPE, a window
// of the last 128 positions plus compressed entries (all of them for ratio 128, the indexer's
// selection for ratio 4), a per-head sink in the softmax denominator, inverse RoPE on the output
// and the grouped low-rank output projection.
#include <algorithm>
#include <cmath>
#include <limits>

#include "model/layers.h"

namespace v4::model {

const RopeTable& rope_for_layer(const ForwardContext& ctx, int64_t ratio) {
  return ratio != 0 ? *ctx.rope_compressed : *ctx.rope_dense;
}

void init_layer_state(const core::ModelConfig& c, int64_t layer, LayerState& st) {
  st.head_dim = c.head_dim;
  st.window = c.sliding_window;
  const int64_t ratio = c.compress_ratio(layer);
  if (ratio != 0) {
    st.compressor.init(ratio, c.head_dim);
    if (ratio == 4) st.index_compressor.init(ratio, c.index_head_dim);
  }
}

void attention_forward(const ForwardContext& ctx, const AttentionWeights& w, int64_t layer, LayerState& st,
                       const float* x, int64_t n, int64_t p0, float* out) {
  const core::ModelConfig& c = *ctx.cfg;
  const int64_t D = c.hidden_size, H = c.num_attention_heads, dh = c.head_dim, rd = c.qk_rope_head_dim;
  const int64_t QL = c.q_lora_rank, W = c.sliding_window, ratio = w.ratio;
  const float eps = float(c.rms_norm_eps);
  const RopeTable& rope = rope_for_layer(ctx, ratio);

  // q
  std::vector<float> qr(size_t(n * QL)), q(size_t(n * H * dh));
  ctx.matmul(w.wq_a, x, n, qr.data(), true);
  for (int64_t i = 0; i < n; ++i) rms_norm(qr.data() + i * QL, w.q_norm.data(), QL, eps, qr.data() + i * QL);
  ctx.matmul(w.wq_b, qr.data(), n, q.data(), true);
  for (int64_t i = 0; i < n; ++i) {
    for (int64_t h = 0; h < H; ++h) {
      float* qh = q.data() + (i * H + h) * dh;
      rms_norm(qh, nullptr, dh, eps, qh);
      rope.apply(qh + dh - rd, p0 + i);
    }
  }
  // window kv (K = V)
  std::vector<float> kv(size_t(n * dh));
  ctx.matmul(w.wkv, x, n, kv.data(), true);
  for (int64_t i = 0; i < n; ++i) {
    float* k = kv.data() + i * dh;
    rms_norm(k, w.kv_norm.data(), dh, eps, k);
    rope.apply(k + dh - rd, p0 + i);
    if (ctx.quantize) fp8_quant_dequant(k, dh - rd, 64);
  }
  // compressed entries completed by this chunk, then the indexer's choice among them
  if (w.has_compressor)
    compressor_forward(ctx, w.compressor, st.compressor, rope, x, n, p0, false, st.compressed, st.n_compressed);
  std::vector<int32_t> selected;
  const int64_t topk = c.index_topk;
  if (w.has_indexer) {
    indexer_select(ctx, w.indexer, st, rope, x, qr.data(), n, p0, selected);
    if (ctx.trace && ctx.trace->capture_indexer) {
      auto& rows = ctx.trace->indexer_topk[layer];
      rows.insert(rows.end(), selected.begin(), selected.end());
    }
  }
  if (st.ring.empty()) st.ring.assign(size_t(W * dh), 0.0f);

  auto kv_at = [&](int64_t pos) -> const float* {
    return pos >= p0 ? kv.data() + (pos - p0) * dh : st.ring.data() + (pos % W) * dh;
  };
  const float scale = 1.0f / std::sqrt(float(dh));
  std::vector<float> o(size_t(n * H * dh));
  ctx.parallel(n * H, (std::min(p0 + n, W) + (ratio ? (p0 + n) / ratio : 0)) * dh * 2, [&](int64_t ih) {
    const int64_t i = ih / H, h = ih % H, t = p0 + i;
    const float* qh = q.data() + (i * H + h) * dh;
    // candidate rows: window positions, then compressed entries
    std::vector<const float*> rows;
    for (int64_t pos = std::max<int64_t>(0, t - W + 1); pos <= t; ++pos) rows.push_back(kv_at(pos));
    if (ratio != 0) {
      const int64_t visible = std::min((t + 1) / ratio, st.n_compressed);
      if (w.has_indexer) {
        for (int64_t k = 0; k < topk; ++k) {
          const int32_t e = selected[size_t(i * topk + k)];
          if (e >= 0 && e < visible) rows.push_back(st.compressed.data() + e * dh);
        }
      } else {
        for (int64_t e = 0; e < visible; ++e) rows.push_back(st.compressed.data() + e * dh);
      }
    }
    std::vector<float> s(rows.size());
    float mx = -std::numeric_limits<float>::infinity();
    for (size_t e = 0; e < rows.size(); ++e) {
      s[e] = dot(qh, rows[e], dh) * scale;
      mx = std::max(mx, s[e]);
    }
    float denom = 0;
    for (size_t e = 0; e < rows.size(); ++e) {
      s[e] = std::exp(s[e] - mx);
      denom += s[e];
    }
    denom += std::exp(w.attn_sink[size_t(h)] - mx);
    float* oh = o.data() + (i * H + h) * dh;
    std::fill_n(oh, dh, 0.0f);
    for (size_t e = 0; e < rows.size(); ++e) {
      const float p = s[e] / denom;
      for (int64_t k = 0; k < dh; ++k) oh[k] += p * rows[e][k];
    }
    rope.apply(oh + dh - rd, t, true);
  });
  // the ring keeps the last W window kvs (after every query of the chunk has read the old ones)
  for (int64_t i = std::max<int64_t>(0, n - W); i < n; ++i)
    std::copy_n(kv.data() + i * dh, dh, st.ring.data() + ((p0 + i) % W) * dh);

  // grouped low-rank output projection
  const int64_t G = c.o_groups, R = c.o_lora_rank, gin = H * dh / G;
  std::vector<float> group_in(size_t(n * gin)), u(size_t(n * G * R)), ug(size_t(n * R));
  for (int64_t g = 0; g < G; ++g) {
    for (int64_t i = 0; i < n; ++i) std::copy_n(o.data() + i * H * dh + g * gin, gin, group_in.data() + i * gin);
    // wo_a: the reference uses the dequantised weight with no activation quantisation
    ctx.matmul(weight_rows(w.wo_a, g * R, R), group_in.data(), n, ug.data(), false);
    for (int64_t i = 0; i < n; ++i) std::copy_n(ug.data() + i * R, R, u.data() + i * G * R + g * R);
  }
  ctx.matmul(w.wo_b, u.data(), n, out, true);
  (void)D;
}

}  // namespace v4::model
