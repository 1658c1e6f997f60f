#include "runtime/state_memory.h"

#include <cmath>

namespace v4::runtime {

namespace {
constexpr int64_t kValueBytes = sizeof(float);

int64_t layer_ratio(const core::ModelConfig& c, int64_t layer) {
  return size_t(layer) < c.compress_ratios.size() ? c.compress_ratios[size_t(layer)] : 0;
}

// Pooling buffers of one compressor: kv and score rows for `ratio` tokens, coff = 2 channels
// groups and a second (previous block) pair when it overlaps (ratio 4).
int64_t compressor_values(int64_t ratio, int64_t dim) {
  const bool overlap = ratio == 4;
  const int64_t width = (overlap ? 2 : 1) * dim;
  return ratio * width * 2 * (overlap ? 2 : 1);
}
}  // namespace

StateMemory state_memory(const core::ModelConfig& c) {
  StateMemory m;
  int64_t fixed = 0;
  double per_token = 0;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    fixed += c.sliding_window * c.head_dim;
    const int64_t ratio = layer_ratio(c, l);
    if (ratio <= 0) continue;
    fixed += compressor_values(ratio, c.head_dim);
    per_token += double(c.head_dim) / double(ratio);
    if (ratio == 4) {
      fixed += compressor_values(ratio, c.index_head_dim);
      per_token += double(c.index_head_dim) / 4.0;
    }
  }
  m.fixed_bytes = fixed * kValueBytes;
  m.per_token_bytes = int64_t(std::ceil(per_token * kValueBytes));
  return m;
}

int64_t StateMemory::bytes_at(const core::ModelConfig& c, int64_t tokens) const {
  int64_t values = 0;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const int64_t ratio = layer_ratio(c, l);
    if (ratio <= 0) continue;
    values += tokens / ratio * c.head_dim;
    if (ratio == 4) values += tokens / 4 * c.index_head_dim;
  }
  return fixed_bytes + values * kValueBytes;
}

}  // namespace v4::runtime
