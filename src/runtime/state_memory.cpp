#include "runtime/state_memory.h"

#include <cmath>

#include "model/state.h"

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

StateMemory state_memory(const core::ModelConfig& c, bool packed) {
  StateMemory m;
  m.rows = model::compressed_rows(c, packed).row_bytes();
  m.key_rows = model::index_key_rows(c, packed).row_bytes();
  int64_t fixed = 0;
  double per_token = 0;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    fixed += c.sliding_window * c.head_dim;
    const int64_t ratio = layer_ratio(c, l);
    if (ratio <= 0) continue;
    fixed += compressor_values(ratio, c.head_dim);
    per_token += double(m.rows) / double(ratio);
    if (ratio == 4) {
      fixed += compressor_values(ratio, c.index_head_dim);
      per_token += double(m.key_rows) / 4.0;
    }
  }
  m.fixed_bytes = fixed * kValueBytes;
  m.per_token_bytes = int64_t(std::ceil(per_token));
  return m;
}

int64_t StateMemory::bytes_at(const core::ModelConfig& c, int64_t tokens) const {
  int64_t bytes = 0;
  for (int64_t l = 0; l < c.num_hidden_layers; ++l) {
    const int64_t ratio = layer_ratio(c, l);
    if (ratio <= 0) continue;
    bytes += tokens / ratio * rows;
    if (ratio == 4) bytes += tokens / 4 * key_rows;
  }
  return fixed_bytes + bytes;
}

}  // namespace v4::runtime
