// The model (the reference's Transformer and Block): embedding into hc streams, the blocks (hc_pre ->
// norm -> attention -> hc_post, hc_pre -> norm -> MoE -> hc_post), hc_head, final norm and LM head.
// The MTP block (mtp.cpp) runs on the final streams a forward keeps for it.
#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>
#include <thread>

#include "model/layers.h"

namespace v4::model {

void block_forward(const ForwardContext& ctx, const BlockWeights& b, size_t state_index, std::span<const Segment> segments,
                   std::vector<float>& X, const int32_t* tokens, int64_t N) {
  const core::ModelConfig& c = *ctx.cfg;
  const int64_t D = c.hidden_size, hcD = c.hc_mult * D;
  const float eps = float(c.rms_norm_eps);
  std::vector<float> y(size_t(N * D)), h(size_t(N * D)), next(size_t(N * hcD));

  HcMix mix = hc_pre(ctx, b.hc_attn, X.data(), N, y.data());
  for (int64_t i = 0; i < N; ++i) rms_norm(y.data() + i * D, b.attn_norm.data(), D, eps, y.data() + i * D);
  attention_forward(ctx, b.attn, b.layer, state_index, segments, y.data(), N, h.data());
  hc_post(c, mix, h.data(), X.data(), N, next.data());
  X.swap(next);

  mix = hc_pre(ctx, b.hc_ffn, X.data(), N, y.data());
  for (int64_t i = 0; i < N; ++i) rms_norm(y.data() + i * D, b.ffn_norm.data(), D, eps, y.data() + i * D);
  moe_forward(ctx, b.ffn, b.layer, y.data(), tokens, N, h.data());
  hc_post(c, mix, h.data(), X.data(), N, next.data());
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
  ctx.matmul(head, y.data(), R, logits.data(), false);
  return logits;
}

namespace {

class ModelImpl final : public Model {
 public:
  // The model maps the checkpoint's files itself (the page cache is shared, nothing is copied), so
  // it stays valid after the caller's Checkpoint is gone.
  ModelImpl(const core::Checkpoint& ckpt, const ModelOptions& opts)
      : checkpoint_(core::Checkpoint::open(ckpt.dir())),
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

  const core::ModelConfig& config() const override { return cfg_; }

  std::unique_ptr<SequenceState> new_state() const override {
    auto s = std::make_unique<SequenceStateImpl>();
    s->layers.resize(size_t(cfg_.num_hidden_layers));
    for (int64_t l = 0; l < cfg_.num_hidden_layers; ++l) init_layer_state(cfg_, l, s->layers[size_t(l)]);
    s->mtp_layers.resize(weights_.mtp.size());
    for (size_t k = 0; k < weights_.mtp.size(); ++k)
      init_layer_state(cfg_, cfg_.num_hidden_layers + int64_t(k), s->mtp_layers[k]);
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

  std::vector<float> mtp_logits(SequenceState& state, std::span<const int32_t> next_tokens, bool all_logits) override {
    auto* st = dynamic_cast<SequenceStateImpl*>(&state);
    if (!st) throw std::invalid_argument("mtp_logits: state of another model");
    if (weights_.mtp.empty()) throw std::logic_error("mtp_logits: the checkpoint has no MTP block");
    if (!opts_.enable_mtp) throw std::logic_error("mtp_logits: ModelOptions::enable_mtp is off");
    const int64_t hc = cfg_.hc_mult, D = cfg_.hidden_size, hcD = hc * D;
    const int64_t n = int64_t(next_tokens.size());
    if (n == 0 || int64_t(st->last_streams.size()) != n * hcD)
      throw std::invalid_argument("mtp_logits: need one next token per new token of the last forward");
    if (st->mtp_pos != st->last_streams_first_pos)
      throw std::logic_error("mtp_logits: the MTP block must see every position in order");
    for (int32_t t : next_tokens)
      if (t < 0 || t >= cfg_.vocab_size) throw std::out_of_range("mtp_logits: token id outside the vocabulary");
    const ForwardContext ctx = context(nullptr);
    const Segment seg{&st->mtp_layers, 0, n, st->mtp_pos};
    std::vector<int64_t> rows;
    for (int64_t i = all_logits ? 0 : n - 1; i < n; ++i) rows.push_back(i);
    std::vector<float> logits = mtp_forward(ctx, weights_.mtp[0], *weights_.embed, weights_.head,
                                            std::span<const Segment>(&seg, 1), st->last_streams.data(),
                                            next_tokens.data(), n, rows);
    st->mtp_pos += n;
    return logits;
  }

 private:
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
      segments.push_back(Segment{&states[b]->layers, row0, n, states[b]->pos_});
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

void ForwardContext::matmul(const kernels::Weight& w, const float* x, int64_t n, float* out, bool quantize_input) const {
  if (n == 0) return;
  // Small products are not worth waking the pool (results are identical either way).
  kernels::ThreadPool* pool = n * w.rows * w.cols >= (int64_t(1) << 21) ? this->pool : nullptr;
  if (quantize && quantize_input) {
    std::vector<float> q(x, x + n * w.cols);
    for (int64_t i = 0; i < n; ++i) fp8_quant_dequant(q.data() + i * w.cols, w.cols, 128);
    kernels::linear(w, q.data(), n, out, pool, kernels::InputKind::kBf16Exact);
  } else {
    kernels::linear(w, x, n, out, pool);
  }
}

std::unique_ptr<Model> Model::load(const core::Checkpoint& ckpt, const ModelOptions& opts) {
  return std::make_unique<ModelImpl>(ckpt, opts);
}

}  // namespace v4::model
