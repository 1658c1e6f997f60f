#pragma once
// A per-request rule on which tokens may come next (structured output, forced tool calls). The
// engine asks it before each answer token, never during reasoning, and masks the logits row with its
// answer before sampling, so a constrained request samples the same way whatever shares its batch.
#include <cstdint>
#include <vector>

namespace v4::runtime {

class TokenConstraint {
 public:
  virtual ~TokenConstraint() = default;
  // Fills `bits` (bit t of word t / 64) with the tokens allowed next, for a row of `vocab` logits;
  // ids it does not set are masked.
  virtual void allowed(std::vector<uint64_t>& bits, size_t vocab) = 0;
  // The token the engine chose (one that was allowed), before the next allowed() call.
  virtual void accept(int32_t token) = 0;
};

}  // namespace v4::runtime
