#pragma once
// The pieces of one forward step (internal to the model layer). A step carries the new tokens of
// several sequences as one row-concatenated batch: row-wise work (projections, norms, mHC, MoE)
// runs over all rows at once (the kernels' outputs per row do not depend on the other rows), and
// the sequence-dependent work (attention, compressors, indexer) runs per segment with that
// sequence's state. Nothing depends on the other sequences or on the thread count.
#include <chrono>
#include <cstdint>
#include <span>
#include <vector>

#include "core/config.h"
#include "kernels/fp4_dots.h"
#include "kernels/linear.h"
#include "kernels/thread_pool.h"
#include "model/model.h"
#include "model/numerics.h"
#include "model/state.h"
#include "model/weights.h"

namespace v4::model {

// Adds the wall time of its scope to trace->op_seconds[op] when the trace captures times.
class OpTimer {
 public:
  OpTimer(ForwardTrace* trace, ForwardTrace::Op op)
      : seconds_(trace && trace->capture_times ? &trace->op_seconds[op] : nullptr) {
    if (seconds_) start_ = std::chrono::steady_clock::now();
  }
  ~OpTimer() { stop(); }
  void stop() {
    if (seconds_) *seconds_ += std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
    seconds_ = nullptr;
  }
  OpTimer(const OpTimer&) = delete;
  OpTimer& operator=(const OpTimer&) = delete;

 private:
  double* seconds_;
  std::chrono::steady_clock::time_point start_;
};

struct ForwardContext {
  const core::ModelConfig* cfg = nullptr;
  bool quantize = true;  // the reference's activation quantisers
  kernels::ThreadPool* pool = nullptr;
  ForwardTrace* trace = nullptr;
  int64_t trace_row0 = 0;  // rows from here on belong to the traced (last) sequence
  const RopeTable* rope_dense = nullptr;       // ratio-0 layers: rope_theta, no YaRN
  const RopeTable* rope_compressed = nullptr;  // compressed layers: compress_rope_theta with YaRN

  // out[n, w.rows] = x . W^T; with quantize_input (and quantisation on) x is first rounded to
  // FP8 per 128-element block, as the reference does before its FP8/FP4 GEMMs.
  void matmul(const kernels::Weight& w, const float* x, int64_t n, float* out, bool quantize_input) const;
  // matmul(a, x, n, out_a, true) and matmul(b, x, n, out_b, true) with x quantised once (the
  // SwiGLU experts' w1 and w3 read the same input).
  void matmul_pair(const kernels::Weight& a, const kernels::Weight& b, const float* x, int64_t n, float* out_a,
                   float* out_b) const;
  // out = x . W^T for a weight the reference multiplies with a bf16 activation (the LM head: its
  // bf16 norm output, upcast): with quantisation on, x is rounded to BF16 first, so BF16 weights
  // run on BF16 dot products (exact products, fp32 sums); off, fp32 x as matmul().
  void matmul_bf16_input(const kernels::Weight& w, const float* x, int64_t n, float* out) const;
  // kernels::linear, timed into the trace when it captures times.
  void linear(const kernels::Weight& w, const float* x, int64_t n, float* out, kernels::ThreadPool* pool,
              kernels::InputKind input) const;
  // Runs fn(i) for i in [0, n) on the pool (each i computed entirely by one thread).
  // `cost` is a rough per-item work estimate; cheap loops stay on the calling thread.
  template <class Fn>
  void parallel(int64_t n, int64_t cost, const Fn& fn) const {
    if (!pool || n <= 1 || n * cost < (int64_t(1) << 20)) {
      for (int64_t i = 0; i < n; ++i) fn(i);
      return;
    }
    pool->parallel_for(n, [&](int64_t b, int64_t e) {
      for (int64_t i = b; i < e; ++i) fn(i);
    });
  }
};

// ---- mHC (hyper-connections) ----
struct HcMix {
  std::vector<float> pre, post, comb;  // [n, hc], [n, hc], [n, hc, hc] (comb[j*hc + k] = C[j, k])
};
// y[n, D] = sum_j pre_j X_j with the Sinkhorn-normalised mixing for hc_post.
HcMix hc_pre(const ForwardContext& ctx, const HyperConnectionWeights& w, const float* X, int64_t n, float* y);
// X'[k] = post_k * h + sum_j C[j, k] * R[j]   (X' may not alias R)
void hc_post(const ForwardContext& ctx, const HcMix& mix, const float* h, const float* R, int64_t n, float* out);
// The final collapse of the streams: y[n, D].
void hc_head(const ForwardContext& ctx, const HyperConnectionWeights& w, const float* X, int64_t n, float* y);

// ---- attention with compressor and indexer ----
const RopeTable& rope_for_layer(const ForwardContext& ctx, int64_t ratio);
// packed: the compressed entries and indexer keys kept as the FP8/FP4 codes the quantisers made
// them (the model as trained); fp32 in exact mode (model/state_rows.h).
void init_layer_state(const core::ModelConfig& cfg, int64_t layer, bool packed, LayerState& st);

// A compressor's projections (kv, gate scores) of n rows of x: row-wise, so a step projects all
// its sequences' rows at once (each weight read once per step) and hands each sequence its rows.
CompressorInput compressor_project(const ForwardContext& ctx, const CompressorWeights& w, const float* x, int64_t n);
// Rows [row0, row0 + n) of `all` (rows of `width` values: the compressor state's width).
CompressorInput compressor_rows(const CompressorInput& all, int64_t width, int64_t row0, int64_t n);
// Feeds n tokens (their projections `in`, at positions p0...) to a compressor; appends each
// completed entry ([dim] floats) to `entries`.
void compressor_absorb(const ForwardContext& ctx, const CompressorWeights& w, CompressorState& st, const RopeTable& rope,
                       const CompressorInput& in, int64_t n, int64_t p0, bool for_indexer, StateRows& entries);

// Before n tokens at p0 reach a compressor in a speculative step: what restore_compressor() needs.
void save_compressor(const CompressorState& st, int64_t p0, int64_t n, CompressorUndo& undo);
// The compressor as save_compressor() found it.
void restore_compressor(CompressorState& st, const CompressorUndo& undo);

// The indexer's per-row inputs for a step's rows (row-wise, all sequences at once): its queries
// (wq_b of the q low-rank rows, RoPE at each row's position, Hadamard, FP4 rounding) and head
// weights (weights_proj of x, scaled).
struct IndexerQueries {
  std::vector<float> q;        // [rows, index_n_heads, index_head_dim]
  std::vector<float> weights;  // [rows, index_n_heads]
  // With the quantisers on, each head's q as FP4 codes, for the integer scores of
  // kernels/fp4_dots.h against the packed keys: [rows, index_n_heads].
  std::vector<kernels::Fp4Vector> fp4;
};
IndexerQueries indexer_queries(const ForwardContext& ctx, const IndexerWeights& w, const RopeTable& rope, const float* x,
                               const float* qr, std::span<const int64_t> pos);
// Indexer selection for one sequence's n new tokens at p0.. (rows row0.. of `iq`), after its
// compressor has absorbed them: sel[n, topk] compressed-entry ids, -1 padded (unordered set).
void indexer_select(const ForwardContext& ctx, const IndexerWeights& w, const LayerState& st, const IndexerQueries& iq,
                    int64_t row0, int64_t n, int64_t p0, std::vector<int32_t>& sel);

// One sequence's new rows within a step: rows [row0, row0 + n) at positions p0.., with its layer
// states (the main layers or the MTP block's).
struct Segment {
  std::vector<LayerState>* layers = nullptr;
  int64_t row0 = 0, n = 0, p0 = 0;
  std::vector<LayerUndo>* undo = nullptr;  // per layer, when the step is speculative
};

void attention_forward(const ForwardContext& ctx, const AttentionWeights& w, int64_t layer, size_t state_index,
                       std::span<const Segment> segments, const float* x, int64_t rows, float* out);
// Undoes a speculative step's tokens from `keep` on in one layer's state (see Model::rollback).
void attention_rollback(const ForwardContext& ctx, const AttentionWeights& w, LayerState& st, const LayerUndo& undo,
                        int64_t p0, int64_t n, int64_t keep);

// ---- MoE ----
void moe_forward(const ForwardContext& ctx, const MoeWeights& w, int64_t layer, const float* x,
                 const int32_t* tokens, int64_t n, float* out);

// ---- blocks and head (transformer.cpp) ----
// Block.forward on the streams X [N, hc, D]: hc_pre -> norm -> attention -> hc_post, then the same
// with the MoE (`tokens` are the rows' input ids, for hash routing).
void block_forward(const ForwardContext& ctx, const BlockWeights& b, size_t state_index, std::span<const Segment> segments,
                   std::vector<float>& X, const int32_t* tokens, int64_t N);
// ParallelHead.forward for the given rows of X: hc_head -> RMSNorm -> LM head; [rows, vocab].
std::vector<float> head_forward(const ForwardContext& ctx, const HyperConnectionWeights& hcw, const std::vector<float>& norm,
                                const kernels::Weight& head, const std::vector<float>& X, std::span<const int64_t> rows);

// ---- MTP (mtp.cpp) ----
// MTPBlock.forward: row i of h [N, hc, D] (the main model's final streams at some position p) with
// next_tokens[i] (the token at p + 1) through the MTP block's own layer state (segments give each
// sequence's rows and positions); returns the logits of the requested rows (the token at p + 2).
// `streams` (when not null) gets the block's final streams [N, hc, D] (a chained draft's input).
std::vector<float> mtp_forward(const ForwardContext& ctx, const MtpWeights& m, const core::TensorView& embed,
                               const kernels::Weight& head, std::span<const Segment> segments, const float* h,
                               const int32_t* next_tokens, int64_t N, std::span<const int64_t> logit_rows,
                               std::vector<float>* streams = nullptr);

}  // namespace v4::model
