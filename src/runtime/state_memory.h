#pragma once
// Sequence-state memory of DeepSeek-V4 as the architecture implies it, in the CPU engine's storage:
// what admission control reserves and what /metrics can be checked against.
//  per layer:  window ring            sliding_window x head_dim fp32       (fixed)
//              compressed KV entries  floor(tokens / ratio) rows           (ratio 4 and 128 layers)
//              indexer keys           floor(tokens / 4) rows               (ratio 4 layers)
//              compressor buffers     ratio x 2*head_dim fp32, doubled for the overlapping ratio 4,
//                                     plus the indexer's compressor on ratio 4 layers (fixed)
// Rows are fp32 in exact mode; packed (the model as trained) an entry is head_dim - rope FP8 codes,
// a scale byte per 64 and rope fp32 values, a key index_head_dim FP4 codes and a scale byte per 32
// (model/state_rows.h).
#include <cstdint>

#include "core/config.h"

namespace v4::runtime {

struct StateMemory {
  int64_t fixed_bytes = 0;       // independent of the context length
  int64_t per_token_bytes = 0;   // growth per token, averaged over a whole ratio-128 block
  int64_t rows = 0, key_rows = 0;  // bytes of one compressed entry, of one indexer key
  int64_t bytes_at(const core::ModelConfig& config, int64_t tokens) const;
};

StateMemory state_memory(const core::ModelConfig& config, bool packed);

}  // namespace v4::runtime
