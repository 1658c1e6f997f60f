// Attention of one layer: low-rank q with per-head norm, one shared kv head, partial RoPE, a window
// of the last 128 positions plus compressed entries (all of them for ratio 128, the indexer's
// selection for ratio 4), a per-head sink in the softmax denominator, inverse RoPE on the output
// and the grouped low-rank output projection.
#include <algorithm>
#include <cmath>
#include <limits>
#include <span>

#include "model/layers.h"

namespace v4::model {

const RopeTable& rope_for_layer(const ForwardContext& ctx, int64_t ratio) {
  return ratio != 0 ? *ctx.rope_compressed : *ctx.rope_dense;
}

void init_layer_state(const core::ModelConfig& c, int64_t layer, bool packed, LayerState& st) {
  st.head_dim = c.head_dim;
  st.window = c.sliding_window;
  const int64_t ratio = c.compress_ratio(layer);
  if (ratio != 0) {
    st.compressor.init(ratio, c.head_dim);
    st.compressed = compressed_rows(c, packed);
    if (ratio == 4) {
      st.index_compressor.init(ratio, c.index_head_dim);
      st.index_keys = index_key_rows(c, packed);
    }
  }
}

namespace {

// Before a speculative step changes the layer: the window rows its tokens will overwrite, the entry
// counts and the compressors (attention_forward adds the new tokens' projections).
void save_undo(const LayerState& st, const Segment& sg, LayerUndo& undo) {
  const int64_t dh = st.head_dim, W = st.window;
  undo.ring_rows.resize(size_t(sg.n * dh));
  for (int64_t i = 0; i < sg.n; ++i)
    std::copy_n(st.ring.data() + ((sg.p0 + i) % W) * dh, dh, undo.ring_rows.data() + i * dh);
  undo.n_compressed = st.compressed.size();
  undo.n_index_keys = st.index_keys.size();
  if (st.compressor.ratio) save_compressor(st.compressor, sg.p0, sg.n, undo.compressor);
  if (st.index_compressor.ratio) save_compressor(st.index_compressor, sg.p0, sg.n, undo.index_compressor);
}

// Attention of hg heads of one token (q, o: hg x dh) over its candidate rows: the fp32 ones, then
// the packed entries listed (decoded into a row buffer where used: for the scores, then for the
// values). A per-head sink joins the softmax denominator. Each head adds its rows in candidate
// order, the values a row at a time for all the heads.
void attend_heads(const float* q, int64_t hg, int64_t dh, std::span<const float* const> rows, const StateRows& entries,
                  std::span<const int64_t> packed, const float* sinks, float scale, float* o) {
  const size_t E32 = rows.size(), E = E32 + packed.size();
  std::vector<float> row_buffer(packed.empty() ? 0 : static_cast<size_t>(dh));
  const auto row_at = [&](size_t e) -> const float* {
    if (e < E32) return rows[e];
    entries.decode(packed[e - E32], 1, row_buffer.data());
    return row_buffer.data();
  };
  std::vector<float> dots_e(static_cast<size_t>(hg)), s(static_cast<size_t>(hg) * E);  // s[j * E + e]: head j, row e
  for (size_t e = 0; e < E; ++e) {
    kernels::dots(q, hg, dh, row_at(e), dh, dots_e.data());
    for (int64_t j = 0; j < hg; ++j) s[size_t(j) * E + e] = dots_e[size_t(j)] * scale;
  }
  std::vector<float> denom(static_cast<size_t>(hg));
  for (int64_t j = 0; j < hg; ++j) {
    float* sh = s.data() + size_t(j) * E;
    float mx = -std::numeric_limits<float>::infinity();
    for (size_t e = 0; e < E; ++e) mx = std::max(mx, sh[e]);
    float sum = 0;
    for (size_t e = 0; e < E; ++e) {
      sh[e] = std::exp(sh[e] - mx);
      sum += sh[e];
    }
    denom[size_t(j)] = sum + std::exp(sinks[j] - mx);
    std::fill_n(o + j * dh, dh, 0.0f);
  }
  for (size_t e = 0; e < E; ++e) {
    const float* row = row_at(e);
    for (int64_t j = 0; j < hg; ++j) axpy(s[size_t(j) * E + e] / denom[size_t(j)], row, o + j * dh, dh);
  }
}

}  // namespace

void attention_rollback(const ForwardContext& ctx, const AttentionWeights& w, LayerState& st, const LayerUndo& undo,
                        int64_t p0, int64_t n, int64_t keep) {
  const int64_t dh = st.head_dim, W = st.window;
  for (int64_t i = keep; i < n; ++i)
    std::copy_n(undo.ring_rows.data() + i * dh, dh, st.ring.data() + ((p0 + i) % W) * dh);
  const RopeTable& rope = rope_for_layer(ctx, w.ratio);
  // The compressors as they were, then the kept tokens again (entries are append-only).
  if (w.has_compressor) {
    restore_compressor(st.compressor, undo.compressor);
    st.compressed.truncate(undo.n_compressed);
    compressor_absorb(ctx, w.compressor, st.compressor, rope, undo.compressor.input, keep, p0, false, st.compressed);
  }
  if (w.has_indexer) {
    restore_compressor(st.index_compressor, undo.index_compressor);
    st.index_keys.truncate(undo.n_index_keys);
    compressor_absorb(ctx, w.indexer.compressor, st.index_compressor, rope, undo.index_compressor.input, keep, p0, true,
                      st.index_keys);
  }
}

void attention_forward(const ForwardContext& ctx, const AttentionWeights& w, int64_t layer, size_t state_index,
                       std::span<const Segment> segments, const float* x, int64_t N, float* out) {
  const core::ModelConfig& c = *ctx.cfg;
  const int64_t H = c.num_attention_heads, dh = c.head_dim, rd = c.qk_rope_head_dim;
  const int64_t QL = c.q_lora_rank, W = c.sliding_window, ratio = w.ratio, topk = c.index_topk;
  const float eps = float(c.rms_norm_eps);
  const RopeTable& rope = rope_for_layer(ctx, ratio);

  // absolute position and segment of every row
  std::vector<int64_t> pos(static_cast<size_t>(N)), seg_of(static_cast<size_t>(N));
  for (size_t s = 0; s < segments.size(); ++s)
    for (int64_t i = 0; i < segments[s].n; ++i) {
      pos[size_t(segments[s].row0 + i)] = segments[s].p0 + i;
      seg_of[size_t(segments[s].row0 + i)] = int64_t(s);
    }

  using Op = ForwardTrace::Op;
  // q (all rows at once)
  OpTimer q_timer(ctx.trace, Op::attn_q);
  std::vector<float> qr(size_t(N * QL)), q(size_t(N * H * dh));
  ctx.matmul(w.wq_a, x, N, qr.data(), true);
  // The per-token norms and rotations below are independent per row: spread over the pool.
  ctx.parallel(N, QL * 4, [&](int64_t i) { rms_norm(qr.data() + i * QL, w.q_norm.data(), QL, eps, qr.data() + i * QL); });
  ctx.matmul(w.wq_b, qr.data(), N, q.data(), true);
  ctx.parallel(N, H * dh * 4, [&](int64_t i) {
    for (int64_t h = 0; h < H; ++h) {
      float* qh = q.data() + (i * H + h) * dh;
      rms_norm(qh, nullptr, dh, eps, qh);
      rope.apply(qh + dh - rd, pos[size_t(i)]);
    }
  });
  q_timer.stop();
  // window kv (K = V)
  OpTimer kv_timer(ctx.trace, Op::attn_kv);
  std::vector<float> kv(size_t(N * dh));
  ctx.matmul(w.wkv, x, N, kv.data(), true);
  ctx.parallel(N, dh * 8, [&](int64_t i) {
    float* k = kv.data() + i * dh;
    rms_norm(k, w.kv_norm.data(), dh, eps, k);
    rope.apply(k + dh - rd, pos[size_t(i)]);
    if (ctx.quantize) fp8_quant_dequant(k, dh - rd, 64);
  });
  kv_timer.stop();
  // per sequence: compressed entries completed by its new tokens, then the indexer's choice; the
  // row-wise projections for all sequences at once (bitwise the same as per sequence)
  OpTimer compressor_timer(ctx.trace, Op::compressor);
  CompressorInput projected;
  if (w.has_compressor) projected = compressor_project(ctx, w.compressor, x, N);
  compressor_timer.stop();
  OpTimer indexer_timer(ctx.trace, Op::indexer);
  CompressorInput index_projected;
  IndexerQueries iq;
  if (w.has_indexer) {
    index_projected = compressor_project(ctx, w.indexer.compressor, x, N);
    iq = indexer_queries(ctx, w.indexer, rope, x, qr.data(), pos);
  }
  indexer_timer.stop();
  std::vector<int32_t> selected(w.has_indexer ? size_t(N * topk) : 0);
  std::vector<int32_t> seg_selected;
  for (const Segment& sg : segments) {
    LayerState& st = (*sg.layers)[state_index];
    if (st.ring.empty()) st.ring.assign(size_t(W * dh), 0.0f);
    LayerUndo* undo = sg.undo ? &(*sg.undo)[state_index] : nullptr;
    if (undo) save_undo(st, sg, *undo);
    OpTimer seg_compressor_timer(ctx.trace, Op::compressor);
    if (w.has_compressor) {
      CompressorInput in = compressor_rows(projected, st.compressor.width, sg.row0, sg.n);
      compressor_absorb(ctx, w.compressor, st.compressor, rope, in, sg.n, sg.p0, false, st.compressed);
      if (undo) undo->compressor.input = std::move(in);
    }
    seg_compressor_timer.stop();
    OpTimer seg_indexer_timer(ctx.trace, Op::indexer);
    if (w.has_indexer) {
      CompressorInput in = compressor_rows(index_projected, st.index_compressor.width, sg.row0, sg.n);
      compressor_absorb(ctx, w.indexer.compressor, st.index_compressor, rope, in, sg.n, sg.p0, true, st.index_keys);
      if (undo) undo->index_compressor.input = std::move(in);
      indexer_select(ctx, w.indexer, st, iq, sg.row0, sg.n, sg.p0, seg_selected);
      std::copy(seg_selected.begin(), seg_selected.end(), selected.begin() + sg.row0 * topk);
      if (ctx.trace && ctx.trace->capture_indexer && sg.row0 >= ctx.trace_row0) {
        auto& rows = ctx.trace->indexer_topk[layer];
        rows.insert(rows.end(), seg_selected.begin(), seg_selected.end());
      }
    }
  }

  OpTimer core_timer(ctx.trace, Op::attn_core);
  const float scale = 1.0f / std::sqrt(float(dh));
  int64_t max_candidates = 0;
  for (const Segment& sg : segments)
    max_candidates = std::max(max_candidates, std::min(sg.p0 + sg.n, W) + (ratio ? (sg.p0 + sg.n) / ratio : 0));
  std::vector<float> o(size_t(N * H * dh));
  // Work items of HG heads of one token: they share the candidate rows (one kv per position, read
  // once for the group) and their scores of a row come from one kernels::dots call (dot()'s bits).
  const int64_t HG = H % 16 == 0 ? 16 : 1;
  ctx.parallel(N * H / HG, max_candidates * dh * 2 * HG, [&](int64_t ig) {
    const int64_t i = ig / (H / HG), h0 = ig % (H / HG) * HG, t = pos[size_t(i)];
    const Segment& sg = segments[size_t(seg_of[size_t(i)])];
    const LayerState& st = (*sg.layers)[state_index];
    auto kv_at = [&](int64_t p) -> const float* {
      return p >= sg.p0 ? kv.data() + (sg.row0 + p - sg.p0) * dh : st.ring.data() + (p % W) * dh;
    };
    // candidate rows: window positions, then compressed entries (fp32 rows, or packed ones by index)
    std::vector<const float*> rows;
    std::vector<int64_t> packed;
    for (int64_t p = std::max<int64_t>(0, t - W + 1); p <= t; ++p) rows.push_back(kv_at(p));
    if (ratio != 0) {
      const int64_t visible = std::min((t + 1) / ratio, st.compressed.size());
      const bool f32 = st.compressed.format() == RowFormat::f32;
      const auto add = [&](int64_t e) {
        if (f32)
          rows.push_back(st.compressed.f32(e));
        else
          packed.push_back(e);
      };
      if (w.has_indexer) {
        for (int64_t k = 0; k < topk; ++k) {
          const int32_t e = selected[size_t(i * topk + k)];
          if (e >= 0 && e < visible) add(e);
        }
      } else {
        for (int64_t e = 0; e < visible; ++e) add(e);
      }
    }
    attend_heads(q.data() + (i * H + h0) * dh, HG, dh, rows, st.compressed, packed, w.attn_sink.data() + h0, scale,
                 o.data() + (i * H + h0) * dh);
    for (int64_t j = 0; j < HG; ++j) {
      float* oh = o.data() + (i * H + h0 + j) * dh;
      rope.apply(oh + dh - rd, t, true);
    }
  });
  // each ring keeps its sequence's last W window kvs (after every query has read the old ones)
  for (const Segment& sg : segments) {
    LayerState& st = (*sg.layers)[state_index];
    for (int64_t i = std::max<int64_t>(0, sg.n - W); i < sg.n; ++i)
      std::copy_n(kv.data() + (sg.row0 + i) * dh, dh, st.ring.data() + ((sg.p0 + i) % W) * dh);
  }

  core_timer.stop();
  // grouped low-rank output projection
  OpTimer out_timer(ctx.trace, Op::attn_out);
  const int64_t G = c.o_groups, R = c.o_lora_rank, gin = H * dh / G;
  std::vector<float> group_in(size_t(N * gin)), u(size_t(N * G * R)), ug(size_t(N * R));
  for (int64_t g = 0; g < G; ++g) {
    for (int64_t i = 0; i < N; ++i) std::copy_n(o.data() + i * H * dh + g * gin, gin, group_in.data() + i * gin);
    // wo_a: the reference uses the dequantised weight with no activation quantisation
    ctx.matmul(weight_rows(w.wo_a, g * R, R), group_in.data(), N, ug.data(), false);
    for (int64_t i = 0; i < N; ++i) std::copy_n(ug.data() + i * R, R, u.data() + i * G * R + g * R);
  }
  ctx.matmul(w.wo_b, u.data(), N, out, true);
}

}  // namespace v4::model
