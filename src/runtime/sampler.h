#pragma once
// Token selection from one logits row. Everything here is a pure function of the row, the request's
// parameters and the request's own random stream, so a request samples the same tokens whatever
// else is in the batch.
#include <cstdint>
#include <span>
#include <vector>

#include "runtime/engine.h"

namespace v4::runtime {

// Per-request random stream (splitmix64: tiny, portable, fully specified, unlike std:: distributions).
class RequestRng {
 public:
  explicit RequestRng(uint64_t seed) : state_(seed) {}
  uint64_t next_u64();
  double next_unit();  // uniform in [0, 1) with 53 random bits

 private:
  uint64_t state_;
};

// Temperatures at or below this are greedy (argmax, lowest id on ties).
inline constexpr double kGreedyTemperature = 1e-5;
inline constexpr int kMaxTopLogprobs = 20;

// Picks the next token. Consumes exactly one draw from `rng` unless greedy.
int32_t sample_token(std::span<const float> logits, const SamplingParams& params, RequestRng& rng);

// log-softmax of the raw (temperature 1) logits at `token`, plus the `n_top` most likely tokens
// (highest logprob first, lowest id first on ties).
struct LogprobResult {
  TokenLogprob chosen;
  std::vector<TokenLogprob> top;
};
LogprobResult compute_logprobs(std::span<const float> logits, int32_t token, int n_top);

}  // namespace v4::runtime
