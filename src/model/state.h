#pragma once
// Per-sequence attention state: for every layer the window ring, the compressed entries, the
// compressors' pooling buffers and the indexer's keys; plus the MTP block's window and the main
// model's last hidden streams (the MTP block's input).
#include <cstdint>
#include <memory>
#include <vector>

#include "model/model.h"

namespace v4::model {

// Pooling buffer of one compressor: the current (incomplete) block's projections and, for the
// overlapping ratio-4 compressor, the previous complete block's.
struct CompressorState {
  int64_t ratio = 0, width = 0;  // width = coff * dim channels per token
  bool overlap = false, has_prev = false;
  std::vector<float> cur_kv, cur_score;    // [ratio, width]
  std::vector<float> prev_kv, prev_score;  // [ratio, width] (overlap only)

  void init(int64_t ratio, int64_t dim);
  size_t bytes() const;
};

struct LayerState {
  int64_t head_dim = 0, window = 0;
  std::vector<float> ring;        // [window, head_dim], position q in row q % window
  std::vector<float> compressed;  // [entries, head_dim]
  int64_t n_compressed = 0;
  CompressorState compressor;
  CompressorState index_compressor;
  std::vector<float> index_keys;  // [entries, index_head_dim]
  int64_t n_index_keys = 0;

  size_t bytes() const;
};

class SequenceStateImpl final : public SequenceState {
 public:
  int64_t position() const override { return pos_; }
  std::unique_ptr<SequenceState> clone() const override { return std::make_unique<SequenceStateImpl>(*this); }
  size_t bytes() const override;

  int64_t pos_ = 0;
  std::vector<LayerState> layers;
  std::vector<LayerState> mtp_layers;
  int64_t mtp_pos = 0;                 // positions the MTP block has consumed
  std::vector<float> last_streams;     // [last_tokens, hc, D]: final streams of the last forward
  int64_t last_streams_first_pos = 0;  // position of the first row in last_streams
};

}  // namespace v4::model
