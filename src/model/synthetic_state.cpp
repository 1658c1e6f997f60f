#include "model/synthetic_state.h"

#include <stdexcept>
#include <string>

#include "model/state.h"

namespace v4::model {
namespace {

// Uniform in [-sqrt 3, sqrt 3] (unit variance), from a 64-bit LCG: a 1M-position state is 160M
// values, and the benchmark makes one per run.
float next(uint64_t& rng) {
  rng = rng * 6364136223846793005ull + 1442695040888963407ull;
  return (float(uint32_t(rng >> 40)) * (1.0f / 16777216.0f) * 2.0f - 1.0f) * 1.7320508f;
}

void fill(std::vector<float>& v, size_t count, uint64_t& rng) {
  v.resize(count);
  for (float& x : v) x = next(rng);
}

// `count` rows appended as the compressor appends them (packed rows keep the nearest codes).
void fill(StateRows& rows, int64_t count, uint64_t& rng) {
  std::vector<float> row(static_cast<size_t>(rows.width()));
  rows.truncate(0);
  for (int64_t i = 0; i < count; ++i) {
    for (float& x : row) x = next(rng);
    rows.push_back(row.data());
  }
}

// A compressor at a block boundary: nothing pooled in the current block; an overlapping one holds
// the previous complete block.
void fill_compressor(CompressorState& c, int64_t positions, uint64_t& rng) {
  if (c.ratio == 0 || !c.overlap) return;
  c.has_prev = positions >= c.ratio;
  if (c.has_prev) {
    fill(c.prev_kv, c.prev_kv.size(), rng);
    fill(c.prev_score, c.prev_score.size(), rng);
  }
}

void fill_layer(LayerState& l, int64_t positions, uint64_t& rng) {
  fill(l.ring, size_t(l.window * l.head_dim), rng);
  if (l.compressor.ratio > 0) fill(l.compressed, positions / l.compressor.ratio, rng);
  if (l.index_compressor.ratio > 0) fill(l.index_keys, positions / l.index_compressor.ratio, rng);
  fill_compressor(l.compressor, positions, rng);
  fill_compressor(l.index_compressor, positions, rng);
}

void check_positions(const LayerState& l, int64_t positions) {
  for (const CompressorState* c : {&l.compressor, &l.index_compressor})
    if (c->ratio > 0 && positions % c->ratio != 0)
      throw std::invalid_argument("synthetic_state: " + std::to_string(positions) +
                                  " positions is not a multiple of the compression ratio " + std::to_string(c->ratio));
}

}  // namespace

std::unique_ptr<SequenceState> synthetic_state(const SequenceState& blank, int64_t positions, uint32_t seed) {
  const auto* b = dynamic_cast<const SequenceStateImpl*>(&blank);
  if (!b) throw std::invalid_argument("synthetic_state: not a DeepSeek-V4 sequence state");
  if (b->pos_ != 0) throw std::invalid_argument("synthetic_state: the blank state has consumed tokens");
  if (positions <= 0) throw std::invalid_argument("synthetic_state: positions must be positive");
  for (const LayerState& l : b->layers) check_positions(l, positions);
  for (const LayerState& l : b->mtp_layers) check_positions(l, positions);
  auto s = std::make_unique<SequenceStateImpl>(*b);
  uint64_t rng = 0x9E3779B97F4A7C15ull ^ seed;
  for (LayerState& l : s->layers) fill_layer(l, positions, rng);
  for (LayerState& l : s->mtp_layers) fill_layer(l, positions, rng);
  s->pos_ = positions;
  s->mtp_pos = positions;  // the MTP block is level with the model: nothing pending for it
  s->last_streams_first_pos = positions;
  return s;
}

}  // namespace v4::model
