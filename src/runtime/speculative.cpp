#include "runtime/speculative.h"

#include <stdexcept>

namespace v4::runtime {

namespace {

bool greedy(const SamplingParams& p) { return !(p.temperature > kGreedyTemperature); }

}  // namespace

Draft draw_draft(std::span<const float> logits, const SamplingParams& params, RequestRng& rng,
                 std::span<const int32_t> generated) {
  Draft d;
  if (greedy(params)) {
    d.token = sample_token(logits, params, rng, generated);  // no draw
    return d;
  }
  d.total = draw_weights(logits, params, generated, d.weights);
  d.token = draw_token(d.weights, rng.next_unit());
  return d;
}

Verdict verify_draft(std::span<const float> logits, const SamplingParams& params, RequestRng& rng,
                     std::span<const int32_t> generated, const Draft& draft) {
  if (greedy(params)) {
    const int32_t token = sample_token(logits, params, rng, generated);
    return {token, token == draft.token};
  }
  if (draft.token < 0 || size_t(draft.token) >= logits.size() || draft.weights.size() != logits.size() ||
      !(draft.total > 0))
    throw std::invalid_argument("verify_draft: the draft was not drawn for this row's vocabulary and parameters");
  std::vector<float> w;
  const double total = draw_weights(logits, params, generated, w);
  const double p = double(w[size_t(draft.token)]) / total;
  const double q = double(draft.weights[size_t(draft.token)]) / draft.total;
  if (rng.next_unit() * q < p) return {draft.token, true};
  // Rejected: the part of p that q does not cover.
  std::vector<float> residual(w.size());
  bool any = false;
  for (size_t t = 0; t < w.size(); ++t) {
    const double r = double(w[t]) / total - double(draft.weights[t]) / draft.total;
    residual[t] = r > 0 ? float(r) : 0.0f;
    any |= residual[t] > 0;
  }
  // p == q up to rounding leaves nothing (and accepts almost surely): then p itself.
  const double unit = rng.next_unit();
  return {any ? draw_token(residual, unit) : draw_token(w, unit), false};
}

}  // namespace v4::runtime
