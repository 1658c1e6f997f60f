// KV compressor: gated pooling of `ratio` consecutive tokens into one entry (ratio 4 overlaps
// with the previous block), then RMSNorm, RoPE at the block's first position and the QAT rounding
// (FP8 per 64 on the non-rope dims) or, for the indexer's keys, Hadamard + FP4 per 32.
#include <algorithm>
#include <cmath>
#include <limits>

#include "model/layers.h"

namespace v4::model {

namespace {

// Softmax over the candidates, then the weighted sum of their values; one channel.
struct PoolAccumulator {
  float logits[512];
  float values[512];
  int count = 0;
  void add(float logit, float value) {
    logits[count] = logit;
    values[count] = value;
    ++count;
  }
  float result() const {
    float mx = -std::numeric_limits<float>::infinity();
    for (int k = 0; k < count; ++k) mx = std::max(mx, logits[k]);
    float sum = 0;
    float e[512];
    for (int k = 0; k < count; ++k) {
      e[k] = std::exp(logits[k] - mx);
      sum += e[k];
    }
    float acc = 0;
    for (int k = 0; k < count; ++k) acc += values[k] * (e[k] / sum);
    return acc;
  }
};

void pool_entry(const CompressorWeights& w, const CompressorState& st, float* entry) {
  const int64_t r = w.ratio, d = w.dim, width = st.width;
  PoolAccumulator acc;
  for (int64_t c = 0; c < d; ++c) {
    acc.count = 0;
    if (st.overlap) {
      if (st.has_prev)
        for (int64_t j = 0; j < r; ++j) acc.add(st.prev_score[size_t(j * width + c)], st.prev_kv[size_t(j * width + c)]);
      for (int64_t j = 0; j < r; ++j)
        acc.add(st.cur_score[size_t(j * width + d + c)], st.cur_kv[size_t(j * width + d + c)]);
    } else {
      for (int64_t j = 0; j < r; ++j) acc.add(st.cur_score[size_t(j * width + c)], st.cur_kv[size_t(j * width + c)]);
    }
    entry[c] = acc.result();
  }
}

}  // namespace

CompressorInput compressor_project(const ForwardContext& ctx, const CompressorWeights& w, const float* x, int64_t n) {
  // The reference computes these projections in fp32 with fp32-held weights (no activation quant).
  CompressorInput in;
  in.kv.resize(size_t(n * w.wkv.rows));
  in.score.resize(size_t(n * w.wgate.rows));
  ctx.matmul(w.wkv, x, n, in.kv.data(), false);
  ctx.matmul(w.wgate, x, n, in.score.data(), false);
  return in;
}

CompressorInput compressor_rows(const CompressorInput& all, int64_t width, int64_t row0, int64_t n) {
  CompressorInput in;
  in.kv.assign(all.kv.begin() + row0 * width, all.kv.begin() + (row0 + n) * width);
  in.score.assign(all.score.begin() + row0 * width, all.score.begin() + (row0 + n) * width);
  return in;
}

void compressor_absorb(const ForwardContext& ctx, const CompressorWeights& w, CompressorState& st, const RopeTable& rope,
                       const CompressorInput& in, int64_t n, int64_t p0, bool for_indexer, StateRows& entries) {
  if (w.ratio > 256) throw std::runtime_error("compressor: ratio above 256 is not supported");
  const int64_t r = w.ratio, d = w.dim, width = st.width, rd = rope.dim();
  const std::vector<float>& kv = in.kv;
  const std::vector<float>& score = in.score;
  std::vector<float> entry(static_cast<size_t>(d));
  for (int64_t i = 0; i < n; ++i) {
    const int64_t t = p0 + i, j = t % r;
    std::copy_n(kv.data() + i * width, width, st.cur_kv.data() + j * width);
    for (int64_t c = 0; c < width; ++c)
      st.cur_score[size_t(j * width + c)] = score[size_t(i * width + c)] + w.ape[size_t(j * width + c)];
    if (j != r - 1) continue;
    const int64_t block = t / r;
    pool_entry(w, st, entry.data());
    if (st.overlap) {
      st.prev_kv.swap(st.cur_kv);
      st.prev_score.swap(st.cur_score);
      st.has_prev = true;
    }
    rms_norm(entry.data(), w.norm.data(), d, float(ctx.cfg->rms_norm_eps), entry.data());
    rope.apply(entry.data() + d - rd, block * r);
    if (for_indexer) {
      hadamard_rotate(entry.data(), d);
      if (ctx.quantize) fp4_quant_dequant(entry.data(), d, 32);
    } else if (ctx.quantize) {
      fp8_quant_dequant(entry.data(), d - rd, 64);
    }
    if (block != entries.size()) throw std::logic_error("compressor: entries out of order");
    entries.push_back(entry.data());
  }
}

void save_compressor(const CompressorState& st, int64_t p0, int64_t n, CompressorUndo& undo) {
  const int64_t r = st.ratio, row0 = p0 % r;
  undo.whole = row0 + n >= r;  // the step reaches the block's last row
  undo.input = {};
  if (undo.whole) {
    undo.before = st;
    undo.rows = 0;
    undo.kv.clear();
    undo.score.clear();
    return;
  }
  undo.row0 = row0;
  undo.rows = n;
  const int64_t begin = row0 * st.width, end = (row0 + n) * st.width;
  undo.kv.assign(st.cur_kv.begin() + begin, st.cur_kv.begin() + end);
  undo.score.assign(st.cur_score.begin() + begin, st.cur_score.begin() + end);
}

void restore_compressor(CompressorState& st, const CompressorUndo& undo) {
  if (undo.whole) {
    st = undo.before;
    return;
  }
  std::copy(undo.kv.begin(), undo.kv.end(), st.cur_kv.begin() + undo.row0 * st.width);
  std::copy(undo.score.begin(), undo.score.end(), st.cur_score.begin() + undo.row0 * st.width);
}

}  // namespace v4::model
