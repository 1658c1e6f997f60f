#pragma once
// The DeepSeek-V4 forward pass. Contract used by the serving runtime:
//  - a Model is loaded once from a Checkpoint and is read-only afterwards (thread-safe to share);
//  - each sequence owns a SequenceState (window rings, compressed entries, compressor buffers,
//    indexer keys); states can be cloned, which is how the prefix cache snapshots them;
//  - forward() takes a batch of sequences, each with its own new tokens (1 for decode, n for a
//    prefill chunk, continuing from the state's position), and returns each item's logits.
//    A sequence's result never depends on what else is in the batch or on the thread count.
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "core/checkpoint.h"

namespace v4::model {

struct ModelOptions {
  // false: the reference's activation quantisers (FP8 per 128 before FP8/FP4 matmuls, FP8 per 64 on
  // the window KV, Hadamard + FP4 in the indexer) are on, as the model was trained. true: all off.
  bool exact = false;
  int threads = 0;  // 0 = hardware concurrency
};

class SequenceState {
 public:
  virtual ~SequenceState() = default;
  virtual int64_t position() const = 0;  // tokens consumed so far
  virtual std::unique_ptr<SequenceState> clone() const = 0;
  virtual size_t bytes() const = 0;      // memory held by this state
};

struct BatchItem {
  SequenceState* state = nullptr;
  std::span<const int32_t> tokens;  // new tokens, appended at state->position()
  bool all_logits = false;          // logits for every new token instead of only the last
};

class Model {
 public:
  virtual ~Model() = default;
  static std::unique_ptr<Model> load(const core::Checkpoint& ckpt, const ModelOptions& opts);

  virtual const core::ModelConfig& config() const = 0;
  virtual std::unique_ptr<SequenceState> new_state() const = 0;
  // Returns, per item, logits rows of vocab_size floats (one row, or one per new token when
  // all_logits), concatenated in item order.
  virtual std::vector<float> forward(std::span<const BatchItem> batch) = 0;
};

}  // namespace v4::model
