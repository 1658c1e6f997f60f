#pragma once
// The checkpoint's tensors as the forward pass uses them: matmul weights stay as stored
// (kernels::Weight pointing into the mapped file), small parameters (norms, biases, mHC, ape,
// sinks) are widened to fp32 once at load.
#include <cstdint>
#include <string>
#include <vector>

#include "core/checkpoint.h"
#include "kernels/linear.h"

namespace v4::model {

class WeightStore {
 public:
  explicit WeightStore(const core::Checkpoint& ckpt) : ckpt_(ckpt) {}
  // `prefix`.weight (+ `prefix`.scale for FP8/FP4), checked against [rows, cols] (logical shape).
  kernels::Weight matrix(const std::string& prefix, int64_t rows, int64_t cols) const;
  // A small tensor widened to fp32, checked to have `numel` elements.
  std::vector<float> vector(const std::string& name, int64_t numel) const;
  // An integer tensor (I64 or I32) widened to int32, checked to have `numel` elements.
  std::vector<int32_t> ints(const std::string& name, int64_t numel) const;
  const core::TensorView& tensor(const std::string& name) const { return ckpt_.get(name); }

 private:
  const core::Checkpoint& ckpt_;
};

// Rows [row0, row0 + rows) of a weight (row0 a multiple of 128 for FP8 block scales).
kernels::Weight weight_rows(const kernels::Weight& w, int64_t row0, int64_t rows);

struct HyperConnectionWeights {
  kernels::Weight fn;         // [mix, hc*D] fp32
  std::vector<float> base;    // [mix]
  std::vector<float> scale;   // [3] (or [1] for the head)
};

struct CompressorWeights {
  int64_t ratio = 0, dim = 0, coff = 1;
  kernels::Weight wkv, wgate;  // [coff*dim, D]
  std::vector<float> ape;      // [ratio, coff*dim]
  std::vector<float> norm;     // [dim]
};

struct IndexerWeights {
  kernels::Weight wq_b;          // [IH*Id, q_lora]
  kernels::Weight weights_proj;  // [IH, D]
  CompressorWeights compressor;
};

struct AttentionWeights {
  int64_t ratio = 0;
  std::vector<float> attn_sink;  // [H]
  kernels::Weight wq_a, wq_b, wkv, wo_a, wo_b;
  std::vector<float> q_norm, kv_norm;
  bool has_compressor = false, has_indexer = false;
  CompressorWeights compressor;
  IndexerWeights indexer;
};

struct ExpertWeights {
  kernels::Weight w1, w2, w3;
};

struct MoeWeights {
  kernels::Weight gate;           // [E, D]
  std::vector<float> gate_bias;   // [E] (empty on hash layers)
  std::vector<int32_t> tid2eid;   // [vocab, topk] (hash layers only)
  std::vector<ExpertWeights> experts;
  ExpertWeights shared;
};

struct BlockWeights {
  int64_t layer = 0;
  std::vector<float> attn_norm, ffn_norm;
  HyperConnectionWeights hc_attn, hc_ffn;
  AttentionWeights attn;
  MoeWeights ffn;
};

struct MtpWeights {
  BlockWeights block;
  kernels::Weight e_proj, h_proj;
  std::vector<float> enorm, hnorm, norm;
  HyperConnectionWeights hc_head;
};

struct ModelWeights {
  const core::TensorView* embed = nullptr;  // [vocab, D] BF16 or F32
  kernels::Weight head;                     // [vocab, D]
  std::vector<float> norm;
  HyperConnectionWeights hc_head;
  std::vector<BlockWeights> blocks;
  std::vector<MtpWeights> mtp;
};

// Loads (views) every tensor the config implies; throws core::CheckpointError on a mismatch.
ModelWeights load_weights(const core::Checkpoint& ckpt);

// Embedding row of `token` widened to fp32.
void embed_row(const core::TensorView& embed, int64_t dim, int32_t token, float* out);

}  // namespace v4::model
