#pragma once
// Speculative decoding's token rules: drafting a token from the MTP block's logits, and verifying
// it against the main model's row for the same position so that the emitted token follows the
// target distribution exactly (the sampler's, sampler.h).
//  - Greedy parameters: the draft is the MTP row's argmax; the emitted token is the target row's
//    argmax (what plain decoding picks), and the draft is accepted when the two are equal.
//  - Sampling: the draft d is drawn from q, the sampler's weights of the MTP row, normalised. It
//    is accepted with probability min(1, p(d) / q(d)) (p: the target row's weights, normalised),
//    else the emitted token is drawn from norm(max(0, p - q)); either way the emitted token is
//    distributed as p (Leviathan et al. 2023, Chen et al. 2023). Draws come from the request's
//    own stream: one for the draft, one for the test, one more on a rejection, so a seeded request
//    is reproducible (but samples other tokens than without speculation).
#include <cstdint>
#include <span>
#include <vector>

#include "runtime/engine.h"
#include "runtime/sampler.h"

namespace v4::runtime {

struct Draft {
  int32_t token = -1;
  std::vector<float> weights;  // sampling: the weights it was drawn from (empty when greedy)
  double total = 0;            // their total
};

// Drafts a token from the MTP block's row (`generated`: the request's output so far, for the
// penalties). Consumes one draw unless greedy.
Draft draw_draft(std::span<const float> logits, const SamplingParams& params, RequestRng& rng,
                 std::span<const int32_t> generated);

struct Verdict {
  int32_t token = -1;  // the token emitted at this row
  bool accepted = false;
};

// The token emitted at the target row `logits` for the position `draft` was drafted for.
Verdict verify_draft(std::span<const float> logits, const SamplingParams& params, RequestRng& rng,
                     std::span<const int32_t> generated, const Draft& draft);

}  // namespace v4::runtime
