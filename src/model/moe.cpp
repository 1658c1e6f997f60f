// Mixture of experts: sqrtsoftplus gate (bias only for the selection; hash routing through
// tid2eid on the first layers), normalised and scaled weights, SwiGLU experts with the clamps,
// plus the shared expert.
#include <algorithm>
#include <cmath>
#include <numeric>

#include "model/layers.h"

namespace v4::model {

namespace {

float softplus(float v) { return v > 20.0f ? v : std::log1p(std::exp(v)); }
float silu(float v) { return v / (1.0f + std::exp(-v)); }

// y[m, D] = W2 . (weight * silu(min(W1 x, L)) * clamp(W3 x, -L, L)); weights may be null (1).
void expert_forward(const ForwardContext& ctx, const ExpertWeights& e, const float* x, const float* weights, int64_t m,
                    float* y) {
  const int64_t I = e.w1.rows;
  const float limit = float(ctx.cfg->swiglu_limit);
  std::vector<float> g(size_t(m * I)), u(size_t(m * I));
  ctx.matmul_pair(e.w1, e.w3, x, m, g.data(), u.data());
  ctx.parallel(m, I * 32, [&](int64_t i) {
    for (int64_t k = 0; k < I; ++k) {
      float gv = g[size_t(i * I + k)], uv = u[size_t(i * I + k)];
      if (limit > 0) {
        uv = std::clamp(uv, -limit, limit);
        gv = std::min(gv, limit);
      }
      float a = silu(gv) * uv;
      if (weights) a = weights[i] * a;
      g[size_t(i * I + k)] = a;
    }
  });
  ctx.matmul(e.w2, g.data(), m, y, true);
}

}  // namespace

// The gate's scores of one token over the E experts, as the reference's Gate (config scoring_func).
void gate_scores(const std::string& func, float* s, int64_t E) {
  if (func == "softmax") {
    const float mx = *std::max_element(s, s + E);
    float sum = 0;
    for (int64_t e = 0; e < E; ++e) sum += (s[e] = std::exp(s[e] - mx));
    for (int64_t e = 0; e < E; ++e) s[e] /= sum;
  } else if (func == "sigmoid") {
    for (int64_t e = 0; e < E; ++e) s[e] = 1.0f / (1.0f + std::exp(-s[e]));
  } else {  // sqrtsoftplus (the config loader refuses anything else)
    for (int64_t e = 0; e < E; ++e) s[e] = std::sqrt(softplus(s[e]));
  }
}

void moe_forward(const ForwardContext& ctx, const MoeWeights& w, int64_t layer, const float* x, const int32_t* tokens,
                 int64_t n, float* out) {
  const core::ModelConfig& c = *ctx.cfg;
  const int64_t D = c.hidden_size, E = c.n_routed_experts, K = c.num_experts_per_tok;
  using Op = ForwardTrace::Op;
  OpTimer gate_timer(ctx.trace, Op::moe_gate);
  std::vector<float> scores(size_t(n * E));
  ctx.matmul(w.gate, x, n, scores.data(), false);
  for (int64_t i = 0; i < n; ++i) gate_scores(c.scoring_func, scores.data() + i * E, E);

  std::vector<int32_t> idx(size_t(n * K));
  std::vector<float> wt(size_t(n * K));
  std::vector<int32_t> order(static_cast<size_t>(E));
  std::vector<float> biased(static_cast<size_t>(E));
  for (int64_t i = 0; i < n; ++i) {
    const float* s = scores.data() + i * E;
    int32_t* ids = idx.data() + i * K;
    if (!w.tid2eid.empty()) {
      if (tokens[i] < 0 || tokens[i] >= c.vocab_size) throw std::out_of_range("token id outside the vocabulary");
      std::copy_n(w.tid2eid.data() + int64_t(tokens[i]) * K, K, ids);
    } else {
      for (int64_t e = 0; e < E; ++e) biased[size_t(e)] = s[e] + w.gate_bias[size_t(e)];
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + K, order.end(), [&](int32_t a, int32_t b) {
        return biased[size_t(a)] != biased[size_t(b)] ? biased[size_t(a)] > biased[size_t(b)] : a < b;
      });
      std::copy_n(order.begin(), K, ids);
    }
    float sum = 0;
    for (int64_t k = 0; k < K; ++k) sum += s[ids[k]];
    if (!c.norm_topk_prob) sum = 1;  // the chosen experts' raw scores, as a softmax gate leaves them
    for (int64_t k = 0; k < K; ++k) wt[size_t(i * K + k)] = s[ids[k]] / sum * float(c.routed_scaling_factor);
    if (ctx.trace && ctx.trace->capture_routes && i >= ctx.trace_row0) {
      auto& r = ctx.trace->routes[layer];
      r.insert(r.end(), ids, ids + K);
    }
  }

  // Run each expert once over the tokens that chose it. Experts go in ascending id, so every
  // token accumulates its routed outputs in ascending expert order (as the reference does), then
  // the shared expert's.
  gate_timer.stop();
  OpTimer routed_timer(ctx.trace, Op::moe_routed);
  std::fill_n(out, n * D, 0.0f);
  std::vector<float> xe, we, ye;
  std::vector<int64_t> slots;
  for (int64_t e = 0; e < E; ++e) {
    slots.clear();
    for (int64_t s = 0; s < n * K; ++s)
      if (idx[size_t(s)] == e) slots.push_back(s);
    if (slots.empty()) continue;
    const int64_t m = int64_t(slots.size());
    xe.resize(size_t(m * D));
    we.resize(size_t(m));
    ye.resize(size_t(m * D));
    for (int64_t j = 0; j < m; ++j) {
      std::copy_n(x + (slots[size_t(j)] / K) * D, D, xe.data() + j * D);
      we[size_t(j)] = wt[size_t(slots[size_t(j)])];
    }
    expert_forward(ctx, w.experts[size_t(e)], xe.data(), we.data(), m, ye.data());
    for (int64_t j = 0; j < m; ++j) {
      float* oi = out + (slots[size_t(j)] / K) * D;
      const float* y = ye.data() + j * D;
      for (int64_t d = 0; d < D; ++d) oi[d] += y[d];
    }
  }
  routed_timer.stop();
  if (c.n_shared_experts == 0) return;  // n_shared_experts 0: routed experts only
  OpTimer shared_timer(ctx.trace, Op::moe_shared);
  std::vector<float> shared(size_t(n * D));
  expert_forward(ctx, w.shared, x, nullptr, n, shared.data());
  for (int64_t i = 0; i < n * D; ++i) out[i] += shared[size_t(i)];
}

}  // namespace v4::model
