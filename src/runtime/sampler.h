#pragma once
// Token selection from one logits row. Everything here is a pure function of the row, the request's
// parameters, its generated tokens and its own random stream, so a request samples the same tokens
// whatever else is in the batch and whichever thread samples it.
//
// The definition (float32 weights, double masses, one fixed order):
//  1. x = logits + logit_bias - frequency_penalty * count - presence_penalty * (count > 0), where
//     count is how often the token was generated so far. NaN or +inf in the row is refused
//     (std::invalid_argument); -inf is a masked token. A row with nothing finite is refused too.
//  2. Greedy (temperature <= kGreedyTemperature): the largest x, lowest id on ties; no draw.
//  3. w = exp((x - max x) * float(1 / temperature)) in float32 (sampling_exp: |rel. error| < 1e-6;
//     arguments below -87 give 0). The most likely token has w = 1.
//  4. min_p: tokens with w < min_p get w = 0.
//  5. Order the tokens by w descending, id ascending. top_k keeps the first k; top_p then keeps the
//     shortest head of that order whose mass reaches top_p times the mass still kept. The rest get
//     w = 0. (Found by a radix selection over the float bits, O(vocabulary); no sort.)
//  6. Draw: u = next_unit() * total. Masses are summed in double: a block of kSampleBlock ids in 8
//     lanes (lane l takes the ids = l mod 8), lanes added in order, blocks added in order. The token
//     is found by skipping whole blocks while u is past their running sum, then adding the block's
//     weights in id order: the first id whose running mass exceeds u (rounding: the block's last
//     id with weight).
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
inline constexpr int kSampleBlock = 256;

// Picks the next token (steps 1-6 above). `generated` are the request's output tokens so far (for
// the penalties). Consumes exactly one draw from `rng` unless greedy.
int32_t sample_token(std::span<const float> logits, const SamplingParams& params, RequestRng& rng,
                     std::span<const int32_t> generated = {});

// Steps 1 and 3-4 alone, for tests and benchmarks: the float32 weights before the top_k/top_p cut.
// Not for greedy parameters.
std::vector<float> sampling_weights(std::span<const float> logits, const SamplingParams& params,
                                    std::span<const int32_t> generated = {});
// Steps 1 and 3-5 into `w`: the weights step 6 draws from (zero outside the top_k/top_p cut);
// returns their total, summed in step 6's order. Not for greedy parameters.
double draw_weights(std::span<const float> logits, const SamplingParams& params, std::span<const int32_t> generated,
                    std::vector<float>& w);
// Step 6 alone: the token drawn from weights `w` (some positive) for a unit draw `unit` in [0, 1).
int32_t draw_token(std::span<const float> w, double unit);
// exp(x) for x <= 0 in float32, as step 3 computes it.
float sampling_exp(float x);

// log-softmax of the raw (temperature 1) logits at `token`, plus the `n_top` most likely tokens
// (highest logprob first, lowest id first on ties).
struct LogprobResult {
  TokenLogprob chosen;
  std::vector<TokenLogprob> top;
};
LogprobResult compute_logprobs(std::span<const float> logits, int32_t token, int n_top);

}  // namespace v4::runtime
