#pragma once
// The DeepSeek-V4 forward pass. Contract used by the serving runtime:
//  - a Model is loaded once from a Checkpoint and is read-only afterwards (thread-safe to share);
//  - each sequence owns a SequenceState (window rings, compressed entries, compressor buffers,
//    indexer keys); states can be cloned, which is how the prefix cache snapshots them;
//  - forward() takes a batch of sequences, each with its own new tokens (1 for decode, n for a
//    prefill chunk, continuing from the state's position), and returns each item's logits.
//    A sequence's result never depends on what else is in the batch or on the thread count;
//  - speculative decoding: a speculative item's tokens can be dropped again after the step
//    (rollback), and the MTP block drafts the tokens after the next (mtp_draft).
#include <array>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <stdexcept>
#include <vector>

#include "core/checkpoint.h"

namespace v4::model {

struct ModelOptions {
  // false: the reference's activation quantisers (FP8 per 128 before FP8/FP4 matmuls, FP8 per 64 on
  // the window KV, Hadamard + FP4 in the indexer) are on, as the model was trained. true: all off.
  bool exact = false;
  int threads = 0;  // 0 = hardware concurrency
  // Keep each forward's final hidden streams in the state so mtp_logits() can run on them
  // (costs hc_mult * hidden_size floats per new token until the next forward).
  bool enable_mtp = false;
  // Where the weights live: the checkpoint's files mapped, or read into huge pages (core/safetensors.h).
  core::WeightMemory weight_memory = core::WeightMemory::mapped;
};

// Test/debug hook: what forward_traced() records, for the LAST item of the batch.
struct ForwardTrace {
  bool capture_layers = false, capture_indexer = false, capture_routes = false;
  // per layer: the hc_mult x hidden_size streams leaving the layer at the last new token
  std::vector<std::vector<float>> layer_out_last;
  // layer -> [new tokens, index_topk] selected compressed-entry ids (unordered; -1 = none)
  std::map<int64_t, std::vector<int32_t>> indexer_topk;
  // layer -> [new tokens, num_experts_per_tok] routed expert ids
  std::map<int64_t, std::vector<int32_t>> routes;
  // Wall time of this forward's stages (the whole batch), for benchmarks: when capture_times is
  // set, layer_seconds gets one entry per main layer (overwritten each call), embed_seconds the
  // embedding lookup, head_seconds hc_head + final norm + LM head. Numerics are unchanged.
  bool capture_times = false;
  std::vector<double> layer_seconds;
  double embed_seconds = 0, head_seconds = 0;
  // With capture_times, the main layers' time by operation, summed over the layers (overwritten
  // each call): where a step's time goes inside the layers (`bench decode --profile`).
  enum Op { hc, attn_q, attn_kv, compressor, indexer, attn_core, attn_out, moe_gate, moe_routed, moe_shared, kOps };
  static constexpr const char* kOpNames[kOps] = {"hc mix + norms", "attn q (wq_a, wq_b, rope)", "attn kv (wkv, rope)",
                                                 "compressor",     "indexer",                   "attn core (scores, values)",
                                                 "attn out (wo_a, wo_b)", "moe gate + routing", "moe routed experts",
                                                 "moe shared expert"};
  std::array<double, kOps> op_seconds{};
  // With capture_times, the time inside the matrix products (kernels::linear, every call of the
  // forward, layers and head) and their 2 * n * rows * cols FLOPs: how near the dense matmuls run to
  // the compute peak, apart from the rest of a prefill (`bench prefill`).
  double matmul_seconds = 0, matmul_flops = 0;
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
  // Keep what rollback() needs to drop some of these tokens again (a speculative decoding verify
  // step; at most sliding_window tokens).
  bool speculative = false;
};

// One sequence's part of an mtp_draft() call.
struct MtpItem {
  SequenceState* state = nullptr;
  // Unchained: one token per position the MTP block has not seen yet (the rows of the state's last
  // forward(), after any rollback), the token at that position + 1. Chained: one token, the one
  // drafted from this state's previous mtp_draft() row, run on the MTP block's own final streams of
  // that row instead of the main model's (drafts beyond the first). Chained positions are
  // speculative: the state's next unchained call undoes them first.
  std::span<const int32_t> next_tokens;
  bool chained = false;
  bool logits = true;  // the last row's logits (a prompt chunk needs none)
};

class Model {
 public:
  virtual ~Model() = default;
  // The model re-maps ckpt.dir() itself, so `ckpt` need not outlive it. Throws
  // core::CheckpointError when a tensor the config implies is missing or mis-shaped.
  static std::unique_ptr<Model> load(const core::Checkpoint& ckpt, const ModelOptions& opts);

  virtual const core::ModelConfig& config() const = 0;
  virtual std::unique_ptr<SequenceState> new_state() const = 0;
  // Whether its states keep compressed entries and indexer keys as the quantisers' FP8/FP4 codes
  // (the model as trained) rather than fp32 (exact mode): model/state_rows.h, runtime/state_memory.h.
  virtual bool packed_state() const { return false; }
  // Where its weights sit: resident bytes and those in 2 MiB pages (core/huge_pages.h); zeros for
  // test doubles, which have none.
  virtual core::PageResidency weight_residency() const { return {}; }
  // Returns, per item, logits rows of vocab_size floats (one row, or one per new token when
  // all_logits), concatenated in item order.
  virtual std::vector<float> forward(std::span<const BatchItem> batch) = 0;
  // forward() that also fills `trace` (may be null) for the batch's last item. The default ignores
  // the trace (for test doubles of Model).
  virtual std::vector<float> forward_traced(std::span<const BatchItem> batch, ForwardTrace* trace) {
    (void)trace;
    return forward(batch);
  }

  // After a forward() in which this state's item was speculative: keep only the first `keep` of
  // that item's new tokens (0 <= keep <= n). The state becomes bit for bit what feeding only those
  // tokens would have made: window rows, compressor buffers and entries, indexer keys, and the final
  // streams kept for the MTP block (keep = 0 leaves none: rows of the forward before that the MTP
  // block had not seen are lost). Allowed once per speculative step, before the state's next
  // forward(). Touches nothing but `state`, so different states may roll back concurrently. The
  // default (test doubles) throws std::logic_error.
  virtual void rollback(SequenceState& state, int64_t keep) {
    (void)state, (void)keep;
    throw std::logic_error("this model cannot roll back");
  }

  // The MTP block for a batch of sequences (needs ModelOptions::enable_mtp): the last row's logits
  // of every item that asks for them, concatenated (the token after next: a draft). Validates every
  // item before any state changes. The default (test doubles) throws std::logic_error.
  virtual std::vector<float> mtp_draft(std::span<const MtpItem> batch) {
    (void)batch;
    throw std::logic_error("this model has no MTP block");
  }
  // The first position of `state` the MTP block has not seen, if it can still see every one from
  // there on (they are the last forward()'s rows); -1 if it cannot (no MTP block or enable_mtp off,
  // or a state made without running it: such a sequence cannot draft).
  virtual int64_t mtp_resume_position(const SequenceState& state) const {
    (void)state;
    return -1;
  }

  // The MTP block (needs ModelOptions::enable_mtp): logits for the token after next. Row i of the
  // state's last forward() (position p) is combined with next_tokens[i], the token at p + 1; the
  // MTP block's own window state advances. The MTP block must see every position once, in order
  // (call it after every forward, with as many next tokens as that forward had new tokens).
  // Returns one vocab row (the last), or one per row when all_logits.
  // The default (test doubles) has no MTP block and throws std::logic_error.
  virtual std::vector<float> mtp_logits(SequenceState& state, std::span<const int32_t> next_tokens,
                                        bool all_logits = false) {
    (void)state, (void)next_tokens, (void)all_logits;
    throw std::logic_error("this model has no MTP block");
  }
};

}  // namespace v4::model
