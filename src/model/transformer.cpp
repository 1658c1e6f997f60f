// The model (the reference's Transformer and Block): embedding into hc streams, the blocks (hc_pre ->
// norm -> attention -> hc_post, hc_pre -> norm -> MoE -> hc_post), hc_head, final norm and LM head.
// The MTP block (mtp.cpp) runs on the final streams a forward keeps for it.
#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

#include "core/codecs.h"
#include "model/layers.h"

namespace v4::model {

void block_forward(const ForwardContext& ctx, const BlockWeights& b, size_t state_index, std::span<const Segment> segments,
                   std::vector<float>& X, const int32_t* tokens, int64_t N) {
  const core::ModelConfig& c = *ctx.cfg;
  const int64_t D = c.hidden_size, hcD = c.hc_mult * D;
  const float eps = float(c.rms_norm_eps);
  std::vector<float> y(size_t(N * D)), h(size_t(N * D)), next(size_t(N * hcD));

  using Op = ForwardTrace::Op;
  OpTimer timer(ctx.trace, Op::hc);
  HcMix mix = hc_pre(ctx, b.hc_attn, X.data(), N, y.data());
  ctx.parallel(N, D * 4, [&](int64_t i) { rms_norm(y.data() + i * D, b.attn_norm.data(), D, eps, y.data() + i * D); });
  timer.stop();
  attention_forward(ctx, b.attn, b.layer, state_index, segments, y.data(), N, h.data());
  OpTimer between(ctx.trace, Op::hc);
  hc_post(ctx, mix, h.data(), X.data(), N, next.data());
  X.swap(next);

  mix = hc_pre(ctx, b.hc_ffn, X.data(), N, y.data());
  ctx.parallel(N, D * 4, [&](int64_t i) { rms_norm(y.data() + i * D, b.ffn_norm.data(), D, eps, y.data() + i * D); });
  between.stop();
  moe_forward(ctx, b.ffn, b.layer, y.data(), tokens, N, h.data());
  OpTimer after(ctx.trace, Op::hc);
  hc_post(ctx, mix, h.data(), X.data(), N, next.data());
  X.swap(next);
}

std::vector<float> head_forward(const ForwardContext& ctx, const HyperConnectionWeights& hcw, const std::vector<float>& norm,
                                const kernels::Weight& head, const std::vector<float>& X, std::span<const int64_t> rows) {
  const core::ModelConfig& c = *ctx.cfg;
  const int64_t D = c.hidden_size, hcD = c.hc_mult * D, V = c.vocab_size, R = int64_t(rows.size());
  std::vector<float> picked(size_t(R * hcD)), y(size_t(R * D)), logits(size_t(R * V));
  for (int64_t r = 0; r < R; ++r) std::copy_n(X.data() + rows[size_t(r)] * hcD, hcD, picked.data() + r * hcD);
  hc_head(ctx, hcw, picked.data(), R, y.data());
  for (int64_t i = 0; i < R; ++i) rms_norm(y.data() + i * D, norm.data(), D, float(c.rms_norm_eps), y.data() + i * D);
  ctx.matmul_bf16_input(head, y.data(), R, logits.data());
  return logits;
}

namespace {

class ModelImpl final : public Model {
 public:
  // The model maps the checkpoint's files itself (the page cache is shared, nothing is copied), so
  // it stays valid after the caller's Checkpoint is gone.
  ModelImpl(const core::Checkpoint& ckpt, const ModelOptions& opts)
      : checkpoint_(core::Checkpoint::open(ckpt.dir(), opts.weight_memory)),
        cfg_(checkpoint_->config()),
        opts_(opts),
        weights_(load_weights(*checkpoint_)) {
    const auto& rs = cfg_.rope_scaling;
    rope_dense_ = RopeTable(cfg_.qk_rope_head_dim, cfg_.rope_theta, 0, rs.factor, rs.beta_fast, rs.beta_slow);
    rope_compressed_ = RopeTable(cfg_.qk_rope_head_dim, cfg_.compress_rope_theta, rs.original_max_position_embeddings,
                                 rs.factor, rs.beta_fast, rs.beta_slow);
    int threads = opts.threads > 0 ? opts.threads : int(std::max(1u, std::thread::hardware_concurrency()));
    if (threads > 1) pool_ = std::make_unique<kernels::ThreadPool>(threads);
  }

  core::PageResidency weight_residency() const override { return checkpoint_->residency(); }
  const core::ModelConfig& config() const override { return cfg_; }

  bool packed_state() const override { return !opts_.exact; }
  std::unique_ptr<SequenceState> new_state() const override {
    auto s = std::make_unique<SequenceStateImpl>();
    s->layers.resize(size_t(cfg_.num_hidden_layers));
    for (int64_t l = 0; l < cfg_.num_hidden_layers; ++l) init_layer_state(cfg_, l, packed_state(), s->layers[size_t(l)]);
    s->mtp_layers.resize(weights_.mtp.size());
    for (size_t k = 0; k < weights_.mtp.size(); ++k)
      init_layer_state(cfg_, cfg_.num_hidden_layers + int64_t(k), packed_state(), s->mtp_layers[k]);
    return s;
  }

  std::vector<float> forward(std::span<const BatchItem> batch) override { return forward_traced(batch, nullptr); }

  std::vector<float> forward_traced(std::span<const BatchItem> batch, ForwardTrace* trace) override {
    // Validate everything before any state changes.
    std::vector<SequenceStateImpl*> states;
    for (const BatchItem& item : batch) {
      auto* st = dynamic_cast<SequenceStateImpl*>(item.state);
      if (!st) throw std::invalid_argument("forward: batch item without a state of this model");
      if (item.tokens.empty()) throw std::invalid_argument("forward: batch item with no new tokens");
      if (item.speculative && int64_t(item.tokens.size()) > cfg_.sliding_window)
        throw std::invalid_argument("forward: a speculative item may not exceed the attention window");
      if (std::find(states.begin(), states.end(), st) != states.end())
        throw std::invalid_argument("forward: the same state appears twice in one batch");
      for (int32_t t : item.tokens)
        if (t < 0 || t >= cfg_.vocab_size)
          throw std::out_of_range("forward: token id " + std::to_string(t) + " outside the vocabulary");
      states.push_back(st);
    }
    if (batch.empty()) return {};
    return run_batch(batch, states, trace);
  }

  void rollback(SequenceState& state, int64_t keep) override {
    auto* st = dynamic_cast<SequenceStateImpl*>(&state);
    if (!st) throw std::invalid_argument("rollback: state of another model");
    if (!st->undo) throw std::logic_error("rollback: the last forward of this state was not speculative");
    const StepUndo& u = *st->undo;
    if (keep < 0 || keep > u.n) throw std::invalid_argument("rollback: keep outside 0..n");
    if (keep < u.n) {
      const ForwardContext ctx = context(nullptr);
      for (size_t l = 0; l < weights_.blocks.size(); ++l)
        attention_rollback(ctx, weights_.blocks[l].attn, st->layers[l], u.layers[l], u.p0, u.n, keep);
      st->pos_ = u.p0 + keep;
      if (opts_.enable_mtp) st->last_streams.resize(size_t(keep * cfg_.hc_mult * cfg_.hidden_size));
    }
    st->undo.reset();
  }

  std::vector<float> mtp_logits(SequenceState& state, std::span<const int32_t> next_tokens, bool all_logits) override {
    const MtpItem item{&state, next_tokens, false, true};
    return run_mtp(std::span<const MtpItem>(&item, 1), all_logits, "mtp_logits");
  }

  std::vector<float> mtp_draft(std::span<const MtpItem> batch) override { return run_mtp(batch, false, "mtp_draft"); }

  int64_t mtp_resume_position(const SequenceState& state) const override {
    const auto* st = dynamic_cast<const SequenceStateImpl*>(&state);
    if (!st || weights_.mtp.empty() || !opts_.enable_mtp) return -1;
    if (st->mtp_pos == st->pos_) return st->pos_;
    const int64_t pending = st->pos_ - st->mtp_pos, hcD = cfg_.hc_mult * cfg_.hidden_size;
    if (st->mtp_pos == st->last_streams_first_pos && int64_t(st->last_streams.size()) == pending * hcD) return st->mtp_pos;
    return -1;
  }

 private:
  // Every item checked before any state changes; returns the items' states.
  std::vector<SequenceStateImpl*> check_mtp(std::span<const MtpItem> batch, const std::string& who) const {
    if (weights_.mtp.empty()) throw std::logic_error(who + ": the checkpoint has no MTP block");
    if (!opts_.enable_mtp) throw std::logic_error(who + ": ModelOptions::enable_mtp is off");
    const int64_t hcD = cfg_.hc_mult * cfg_.hidden_size;
    std::vector<SequenceStateImpl*> states;
    for (const MtpItem& item : batch) {
      auto* st = dynamic_cast<SequenceStateImpl*>(item.state);
      if (!st) throw std::invalid_argument(who + ": state of another model");
      if (std::find(states.begin(), states.end(), st) != states.end())
        throw std::invalid_argument(who + ": the same state appears twice in one batch");
      const int64_t n = int64_t(item.next_tokens.size());
      if (item.chained) {
        if (n != 1) throw std::invalid_argument(who + ": a chained item has one next token");
        if (int64_t(st->mtp_streams.size()) != hcD)
          throw std::logic_error(who + ": a chained item needs an MTP call on the state since its last forward");
      } else {
        if (n == 0 || int64_t(st->last_streams.size()) != n * hcD)
          throw std::invalid_argument(who + ": need one next token per new token of the last forward");
        if (st->mtp_pos != st->last_streams_first_pos)
          throw std::logic_error(who + ": the MTP block must see every position in order");
      }
      for (int32_t t : item.next_tokens)
        if (t < 0 || t >= cfg_.vocab_size) throw std::out_of_range(who + ": token id outside the vocabulary");
      states.push_back(st);
    }
    return states;
  }

  // The chained positions of a state's MTP window, undone newest first.
  void undo_mtp_chain(const ForwardContext& ctx, SequenceStateImpl& st) const {
    for (auto u = st.mtp_chain.rbegin(); u != st.mtp_chain.rend(); ++u)
      for (size_t l = 0; l < st.mtp_layers.size(); ++l)
        attention_rollback(ctx, weights_.mtp[l].block.attn, st.mtp_layers[l], u->layers[l], u->p0, u->n, 0);
    st.mtp_chain.clear();
  }

  // The MTP block over a batch (mtp_logits: one item, maybe every row's logits; mtp_draft).
  std::vector<float> run_mtp(std::span<const MtpItem> batch, bool all_rows, const std::string& who) {
    const std::vector<SequenceStateImpl*> states = check_mtp(batch, who);
    const int64_t hcD = cfg_.hc_mult * cfg_.hidden_size;
    const ForwardContext ctx = context(nullptr);
    std::vector<Segment> segments;
    std::vector<float> h;
    std::vector<int32_t> tokens;
    std::vector<int64_t> rows;
    for (size_t b = 0; b < batch.size(); ++b) {
      SequenceStateImpl& st = *states[b];
      const MtpItem& item = batch[b];
      const int64_t row0 = int64_t(tokens.size()), n = int64_t(item.next_tokens.size());
      std::vector<LayerUndo>* undo = nullptr;
      int64_t p0 = st.mtp_pos;
      if (item.chained) {
        p0 += int64_t(st.mtp_chain.size());
        st.mtp_chain.push_back(StepUndo{p0, 1, std::vector<LayerUndo>(st.mtp_layers.size())});
        undo = &st.mtp_chain.back().layers;
      } else {
        undo_mtp_chain(ctx, st);
      }
      segments.push_back(Segment{&st.mtp_layers, row0, n, p0, undo});
      const std::vector<float>& streams = item.chained ? st.mtp_streams : st.last_streams;
      h.insert(h.end(), streams.begin(), streams.end());
      tokens.insert(tokens.end(), item.next_tokens.begin(), item.next_tokens.end());
      if (all_rows) {
        for (int64_t i = 0; i < n; ++i) rows.push_back(row0 + i);
      } else if (item.logits) {
        rows.push_back(row0 + n - 1);
      }
    }
    if (batch.empty()) return {};
    std::vector<float> X;
    std::vector<float> logits = mtp_forward(ctx, weights_.mtp[0], *weights_.embed, weights_.head, segments, h.data(),
                                            tokens.data(), int64_t(tokens.size()), rows, &X);
    for (size_t b = 0; b < batch.size(); ++b) {
      SequenceStateImpl& st = *states[b];
      const Segment& sg = segments[b];
      if (!batch[b].chained) {
        st.mtp_pos += sg.n;
        st.last_streams_first_pos = st.mtp_pos;
        // Seen: a prompt chunk's streams (hc x hidden floats per token) are not kept any longer.
        if (st.last_streams.capacity() > size_t(8 * hcD)) std::vector<float>().swap(st.last_streams);
        st.last_streams.clear();
      }
      st.mtp_streams.assign(X.begin() + (sg.row0 + sg.n - 1) * hcD, X.begin() + (sg.row0 + sg.n) * hcD);
    }
    return logits;
  }

  ForwardContext context(ForwardTrace* trace) const {
    ForwardContext ctx;
    ctx.cfg = &cfg_;
    ctx.quantize = !opts_.exact;
    ctx.pool = pool_.get();
    ctx.trace = trace;
    ctx.rope_dense = &rope_dense_;
    ctx.rope_compressed = &rope_compressed_;
    return ctx;
  }

  std::vector<float> run_batch(std::span<const BatchItem> batch, const std::vector<SequenceStateImpl*>& states,
                               ForwardTrace* trace) {
    const int64_t hc = cfg_.hc_mult, D = cfg_.hidden_size, hcD = hc * D;
    std::vector<Segment> segments;
    std::vector<int32_t> tokens;
    std::vector<int64_t> logit_rows;
    for (size_t b = 0; b < batch.size(); ++b) {
      const int64_t row0 = int64_t(tokens.size()), n = int64_t(batch[b].tokens.size());
      SequenceStateImpl& st = *states[b];
      st.undo.reset();
      st.mtp_streams.clear();  // a chained draft continues only the MTP call it follows
      if (batch[b].speculative) st.undo.emplace(StepUndo{st.pos_, n, std::vector<LayerUndo>(weights_.blocks.size())});
      segments.push_back(Segment{&st.layers, row0, n, st.pos_, batch[b].speculative ? &st.undo->layers : nullptr});
      tokens.insert(tokens.end(), batch[b].tokens.begin(), batch[b].tokens.end());
      for (int64_t i = batch[b].all_logits ? 0 : n - 1; i < n; ++i) logit_rows.push_back(row0 + i);
    }
    const int64_t N = int64_t(tokens.size());
    ForwardContext ctx = context(trace);
    ctx.trace_row0 = segments.back().row0;
    // Stage timing only when asked for; otherwise the cost is this null check.
    const bool timed = trace && trace->capture_times;
    using Clock = std::chrono::steady_clock;
    auto since = [](Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); };
    Clock::time_point t0{};
    if (timed) {
      trace->layer_seconds.assign(weights_.blocks.size(), 0.0);
      trace->op_seconds.fill(0.0);
      trace->matmul_seconds = trace->matmul_flops = 0;
      t0 = Clock::now();
    }
    std::vector<float> X(size_t(N * hcD));
    for (int64_t i = 0; i < N; ++i) {
      embed_row(*weights_.embed, D, tokens[size_t(i)], X.data() + i * hcD);
      for (int64_t j = 1; j < hc; ++j) std::copy_n(X.data() + i * hcD, D, X.data() + i * hcD + j * D);
    }
    if (timed) trace->embed_seconds = since(t0);
    if (trace && trace->capture_layers) trace->layer_out_last.clear();
    for (size_t l = 0; l < weights_.blocks.size(); ++l) {
      if (timed) t0 = Clock::now();
      block_forward(ctx, weights_.blocks[l], l, segments, X, tokens.data(), N);
      if (timed) trace->layer_seconds[l] = since(t0);
      if (trace && trace->capture_layers) trace->layer_out_last.emplace_back(X.end() - hcD, X.end());
    }
    for (size_t b = 0; b < batch.size(); ++b) {
      SequenceStateImpl& st = *states[b];
      st.pos_ += segments[b].n;
      if (opts_.enable_mtp) {
        st.last_streams.assign(X.begin() + segments[b].row0 * hcD, X.begin() + (segments[b].row0 + segments[b].n) * hcD);
        st.last_streams_first_pos = segments[b].p0;
      }
    }
    if (timed) t0 = Clock::now();
    std::vector<float> logits = head_forward(ctx, weights_.hc_head, weights_.norm, weights_.head, X, logit_rows);
    if (timed) trace->head_seconds = since(t0);
    return logits;
  }

  std::unique_ptr<core::Checkpoint> checkpoint_;
  core::ModelConfig cfg_;
  ModelOptions opts_;
  ModelWeights weights_;
  RopeTable rope_dense_, rope_compressed_;
  std::unique_ptr<kernels::ThreadPool> pool_;
};

}  // namespace

namespace {

// x rounded to FP8 per 128-element block, row by row on the pool (a prefill chunk quantises
// thousands of rows per layer: serial, it was a tenth of a 2-thread prefill).
std::vector<float> quantized_rows(const ForwardContext& ctx, const float* x, int64_t n, int64_t cols) {
  std::vector<float> q(x, x + n * cols);
  ctx.parallel(n, cols * 8, [&](int64_t i) { fp8_quant_dequant(q.data() + i * cols, cols, 128); });
  return q;
}

// Small products are not worth waking the pool (results are identical either way).
kernels::ThreadPool* pool_for(const ForwardContext& ctx, const kernels::Weight& w, int64_t n) {
  return n * w.rows * w.cols >= (int64_t(1) << 21) ? ctx.pool : nullptr;
}

}  // namespace

void ForwardContext::matmul(const kernels::Weight& w, const float* x, int64_t n, float* out, bool quantize_input) const {
  if (n == 0) return;
  if (quantize && quantize_input) {
    const std::vector<float> q = quantized_rows(*this, x, n, w.cols);
    linear(w, q.data(), n, out, pool_for(*this, w, n), kernels::InputKind::kBf16Exact);
  } else {
    linear(w, x, n, out, pool_for(*this, w, n), kernels::InputKind::kFp32);
  }
}

void ForwardContext::matmul_pair(const kernels::Weight& a, const kernels::Weight& b, const float* x, int64_t n,
                                 float* out_a, float* out_b) const {
  if (n == 0) return;
  if (!quantize || a.cols != b.cols) {
    matmul(a, x, n, out_a, true);
    matmul(b, x, n, out_b, true);
    return;
  }
  const std::vector<float> q = quantized_rows(*this, x, n, a.cols);
  linear(a, q.data(), n, out_a, pool_for(*this, a, n), kernels::InputKind::kBf16Exact);
  linear(b, q.data(), n, out_b, pool_for(*this, b, n), kernels::InputKind::kBf16Exact);
}

void ForwardContext::linear(const kernels::Weight& w, const float* x, int64_t n, float* out, kernels::ThreadPool* pool,
                            kernels::InputKind input) const {
  if (!trace || !trace->capture_times) return kernels::linear(w, x, n, out, pool, input);
  const auto t0 = std::chrono::steady_clock::now();
  kernels::linear(w, x, n, out, pool, input);
  trace->matmul_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  trace->matmul_flops += 2.0 * double(n) * double(w.rows) * double(w.cols);
}

void ForwardContext::matmul_bf16_input(const kernels::Weight& w, const float* x, int64_t n, float* out) const {
  if (!quantize) return matmul(w, x, n, out, false);
  if (n == 0) return;
  std::vector<float> b(x, x + n * w.cols);
  for (float& v : b) v = core::round_bf16(v);
  linear(w, b.data(), n, out, pool_for(*this, w, n), kernels::InputKind::kBf16Exact);
}

std::unique_ptr<Model> Model::load(const core::Checkpoint& ckpt, const ModelOptions& opts) {
  return std::make_unique<ModelImpl>(ckpt, opts);
}

}  // namespace v4::model
