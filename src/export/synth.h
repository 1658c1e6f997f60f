#pragma once
// Random-weight DeepSeek-V4 checkpoints in the official on-disk format (config.json + safetensors
// with the official names, dtypes and layouts), deterministic for a seed. Used by tests, the demo
// server and benchmarks when no real checkpoint is at hand.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/config.h"

namespace v4::core {

struct SynthOptions {
  std::string shape = "tiny";  // "tiny" (the fixture's dimensions) or "flash" (V4-Flash dimensions)
  int64_t layers = -1;         // -1: the shape's own count (tiny 6, flash 43)
  int64_t experts = -1;        // routed experts; -1: the shape's own count (tiny 8, flash 256)
  uint64_t seed = 0;
  std::string tokenizer;  // optional HF tokenizer.json to copy beside the checkpoint (V4 tokens added)
};

// The config a synth run writes. Layer plan for N layers: flash N >= 4 has layers 0-1 SWA-only and
// then CSA (even layers) / HCA (odd layers), which for N = 43 is exactly the official list; flash
// N < 4 alternates CSA, HCA from layer 0 (N = 2: [4, 128]). tiny N = 6 is the fixture plan
// [0,4,128,4,128,0]; other N: layer 0 SWA, then CSA/HCA alternating. MTP: one ratio-0 layer.
// Hash layers: min(default, N-1) (flash 3, tiny 2), so a cut model keeps a bias-routed layer.
ModelConfig synth_config(const SynthOptions& options);

struct SynthResult {
  ModelConfig config;
  uint64_t bytes = 0;   // tensor data written
  size_t tensors = 0;
  size_t files = 0;     // safetensors files (flash: one shard per layer + one for model-level tensors)
  int64_t tokenizer_tokens_added = 0;
};

using SynthProgress = std::function<void(uint64_t bytes_done, uint64_t bytes_total)>;

// Writes config.json, model.safetensors (tiny) or model-*.safetensors + model.safetensors.index.json
// (flash), and tokenizer.json when options.tokenizer is set. Creates `out_dir` if needed.
SynthResult write_synthetic_checkpoint(const SynthOptions& options, const std::string& out_dir,
                                       const SynthProgress& progress = {});

// V4's special tokens beyond the V3 tokenizer (spec §5), with their V4 ids.
struct SpecialToken {
  const char* content;
  int64_t id;
};
const std::vector<SpecialToken>& v4_extra_special_tokens();

// Adds the V4 extra special tokens to an HF tokenizer.json text (replacing entries that hold
// their ids) and returns the new text; *max_id receives the largest token id in the result.
std::string add_v4_special_tokens(const std::string& tokenizer_json, int64_t* max_id, int64_t* added);

}  // namespace v4::core
