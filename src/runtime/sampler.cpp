#include "runtime/sampler.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <stdexcept>

namespace v4::runtime {

uint64_t RequestRng::next_u64() {
  uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
  z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
  z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
  return z ^ (z >> 31);
}

double RequestRng::next_unit() { return double(next_u64() >> 11) * 0x1.0p-53; }

namespace {

// NaN counts as the lowest possible logit so a broken row can never win.
float clean(float x) { return std::isnan(x) ? -std::numeric_limits<float>::infinity() : x; }

// Orders ids by logit descending, id ascending: a strict total order, so sorting is deterministic.
struct ByLogitDesc {
  std::span<const float> logits;
  bool operator()(int32_t a, int32_t b) const {
    float la = clean(logits[size_t(a)]), lb = clean(logits[size_t(b)]);
    if (la != lb) return la > lb;
    return a < b;
  }
};

int32_t argmax(std::span<const float> logits) {
  int32_t best = 0;
  for (size_t i = 1; i < logits.size(); ++i)
    if (clean(logits[i]) > clean(logits[size_t(best)])) best = int32_t(i);
  return best;
}

}  // namespace

int32_t sample_token(std::span<const float> logits, const SamplingParams& params, RequestRng& rng) {
  if (logits.empty()) throw std::invalid_argument("sample_token: empty logits");
  if (!(params.temperature > kGreedyTemperature)) return argmax(logits);

  const size_t vocab = logits.size();
  const bool use_top_k = params.top_k > 0 && size_t(params.top_k) < vocab;
  const bool use_top_p = params.top_p > 0 && params.top_p < 1;
  const ByLogitDesc order{logits};
  float max_logit = -std::numeric_limits<float>::infinity();
  for (float x : logits) max_logit = std::max(max_logit, clean(x));
  if (std::isinf(max_logit) && max_logit < 0) return argmax(logits);  // nothing finite
  auto weight_of = [&](int32_t id) {
    return std::exp((double(clean(logits[size_t(id)])) - max_logit) / params.temperature);
  };

  // Candidates in the order they are accumulated: by probability when a top-k/top-p cut needs it,
  // else by id. Weights in double, summed in that fixed order.
  std::vector<int32_t> ids(vocab);
  std::iota(ids.begin(), ids.end(), 0);
  size_t kept = vocab;
  if (use_top_k) {
    std::partial_sort(ids.begin(), ids.begin() + params.top_k, ids.end(), order);
    kept = size_t(params.top_k);
  }
  std::vector<double> weight(kept);
  double total = 0;
  if (use_top_p && !use_top_k) {
    // The mass of the whole vocabulary, then the sorted head only as far as top_p needs: sort the
    // best 64, and widen (x8) only while they hold less than top_p of the mass. Same result as a
    // full sort, since the order is strict.
    for (size_t i = 0; i < vocab; ++i) total += weight_of(int32_t(i));
    const double target = params.top_p * total;
    for (size_t head = std::min<size_t>(64, vocab);; head = std::min(vocab, head * 8)) {
      std::partial_sort(ids.begin(), ids.begin() + long(head), ids.end(), order);
      double cumulative = 0;
      kept = 0;
      while (kept < head) {
        weight[kept] = weight_of(ids[kept]);
        cumulative += weight[kept++];
        if (cumulative >= target) break;
      }
      if (cumulative >= target || head == vocab) break;
    }
    weight.resize(kept);
    total = 0;
    for (size_t i = 0; i < kept; ++i) total += weight[i];
  } else {
    for (size_t i = 0; i < kept; ++i) total += (weight[i] = weight_of(ids[i]));
    if (use_top_p) {  // after top-k: ids are sorted, keep the smallest head reaching top_p
      double cumulative = 0, target = params.top_p * total;
      for (size_t i = 0; i < kept; ++i) {
        cumulative += weight[i];
        if (cumulative >= target) {
          kept = i + 1;
          break;
        }
      }
      total = 0;
      for (size_t i = 0; i < kept; ++i) total += weight[i];
    }
  }
  double u = rng.next_unit() * total, cumulative = 0;
  for (size_t i = 0; i < kept; ++i) {
    cumulative += weight[i];
    if (u < cumulative) return ids[i];
  }
  // Rounding left u just above the sum: take the last token that has weight.
  for (size_t i = kept; i-- > 0;)
    if (weight[i] > 0) return ids[i];
  return ids[0];
}

LogprobResult compute_logprobs(std::span<const float> logits, int32_t token, int n_top) {
  if (token < 0 || size_t(token) >= logits.size())
    throw std::invalid_argument("compute_logprobs: token outside the logits row");
  double max_logit = -std::numeric_limits<double>::infinity();
  for (float x : logits) max_logit = std::max(max_logit, double(clean(x)));
  double sum = 0;
  for (float x : logits) sum += std::exp(double(clean(x)) - max_logit);
  const double log_norm = max_logit + std::log(sum);
  auto logprob = [&](int32_t id) { return float(double(clean(logits[size_t(id)])) - log_norm); };

  LogprobResult result;
  result.chosen = {token, logprob(token)};
  n_top = std::clamp(n_top, 0, int(std::min<size_t>(logits.size(), kMaxTopLogprobs)));
  if (n_top > 0) {
    std::vector<int32_t> ids(logits.size());
    std::iota(ids.begin(), ids.end(), 0);
    std::partial_sort(ids.begin(), ids.begin() + n_top, ids.end(), ByLogitDesc{logits});
    for (int i = 0; i < n_top; ++i) result.top.push_back({ids[size_t(i)], logprob(ids[size_t(i)])});
  }
  return result;
}

}  // namespace v4::runtime
