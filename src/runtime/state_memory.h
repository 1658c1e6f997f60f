#pragma once
// Sequence-state memory of DeepSeek-V4 as the architecture implies it, in fp32 values (the CPU
// engine's storage): what admission control reserves and what /metrics can be checked against.
//  per layer:  window ring            sliding_window x head_dim            (fixed)
//              compressed KV entries  floor(tokens / ratio) x head_dim     (ratio 4 and 128 layers)
//              indexer keys           floor(tokens / 4) x index_head_dim   (ratio 4 layers)
//              compressor buffers     ratio x 2*head_dim, doubled for the overlapping ratio 4,
//                                     plus the indexer's compressor on ratio 4 layers (fixed)
#include <cstdint>

#include "core/config.h"

namespace v4::runtime {

struct StateMemory {
  int64_t fixed_bytes = 0;       // independent of the context length
  int64_t per_token_bytes = 0;   // growth per token, averaged over a whole ratio-128 block
  int64_t bytes_at(const core::ModelConfig& config, int64_t tokens) const;
};

StateMemory state_memory(const core::ModelConfig& config);

}  // namespace v4::runtime
