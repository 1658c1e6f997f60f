#include "model/state.h"

namespace v4::model {

void CompressorState::init(int64_t r, int64_t dim) {
  ratio = r;
  overlap = r == 4;
  width = (overlap ? 2 : 1) * dim;
  has_prev = false;
  cur_kv.assign(size_t(r * width), 0.0f);
  cur_score.assign(size_t(r * width), 0.0f);
  if (overlap) {
    prev_kv.assign(size_t(r * width), 0.0f);
    prev_score.assign(size_t(r * width), 0.0f);
  }
}

StateRows compressed_rows(const core::ModelConfig& c, bool packed) {
  return packed ? StateRows(RowFormat::fp8, c.head_dim, c.qk_rope_head_dim) : StateRows(RowFormat::f32, c.head_dim);
}

StateRows index_key_rows(const core::ModelConfig& c, bool packed) {
  return StateRows(packed ? RowFormat::fp4 : RowFormat::f32, c.index_head_dim);
}

size_t CompressorState::bytes() const {
  return (cur_kv.capacity() + cur_score.capacity() + prev_kv.capacity() + prev_score.capacity()) * sizeof(float);
}

size_t LayerState::bytes() const {
  return sizeof(LayerState) + ring.capacity() * sizeof(float) + compressed.bytes() + index_keys.bytes() +
         compressor.bytes() + index_compressor.bytes();
}

size_t SequenceStateImpl::bytes() const {
  size_t b = sizeof(*this) + (last_streams.capacity() + mtp_streams.capacity()) * sizeof(float);
  for (const LayerState& l : layers) b += l.bytes();
  for (const LayerState& l : mtp_layers) b += l.bytes();
  return b;
}

}  // namespace v4::model
