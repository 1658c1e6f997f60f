#pragma once
// A checkpoint directory: config.json + one safetensors file or shards listed in
// model.safetensors.index.json. Tensors are looked up by their official names.
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "core/config.h"
#include "core/safetensors.h"

namespace v4::core {

// One tensor the config implies: its official name, the dtypes accepted (the first is the
// official one) and its shape as stored (packed FP4: [out, in/2]).
struct TensorSpec {
  std::string name;
  std::vector<DType> dtypes;
  std::vector<int64_t> shape;
};

// "layers.N." for N < num_hidden_layers, "mtp.K." (K = N - num_hidden_layers) for the MTP layers.
std::string layer_prefix(const ModelConfig& config, int64_t layer);
// Every tensor the config implies (spec §2), model-level first, then layers 0.., then MTP.
std::vector<TensorSpec> expected_tensors(const ModelConfig& config);

class Checkpoint {
 public:
  // Opens and validates: every tensor the config implies must be present with the right dtype and
  // shape, and nothing unexpected may be there (one CheckpointError listing the problems).
  // `memory`: where the tensor data lives (core/safetensors.h).
  static std::unique_ptr<Checkpoint> open(const std::string& dir, WeightMemory memory = WeightMemory::mapped);

  const ModelConfig& config() const { return config_; }
  const std::string& dir() const { return dir_; }
  const TensorView* find(const std::string& name) const;  // nullptr if absent
  const TensorView& get(const std::string& name) const;   // throws CheckpointError if absent
  const std::map<std::string, const TensorView*>& tensors() const { return index_; }
  // The weights' memory, all files: resident bytes and those in 2 MiB pages.
  PageResidency residency() const;

 private:
  std::string dir_;
  ModelConfig config_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::map<std::string, const TensorView*> index_;
};

}  // namespace v4::core
