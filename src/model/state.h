#pragma once
// Per-sequence attention state: for every layer the window ring, the compressed entries, the
// compressors' pooling buffers and the indexer's keys; plus the MTP block's window and the main
// model's last hidden streams (the MTP block's input), and what a speculative step needs to be undone.
#include <cstdint>
#include <memory>
#include <optional>
#include <vector>

#include "model/model.h"
#include "model/state_rows.h"

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
  // Channels per entry it produces (an overlapping one's width holds two groups).
  int64_t entry_dim() const { return overlap ? width / 2 : width; }
};

// The rows a compressed layer keeps its entries and indexer keys in. packed (the model as trained):
// an entry as FP8 codes with its RoPE dims in fp32 (the quantiser rounds only the others), a key as
// FP4 codes; otherwise fp32. runtime/state_memory.h sizes states by the same rows.
StateRows compressed_rows(const core::ModelConfig& c, bool packed);
StateRows index_key_rows(const core::ModelConfig& c, bool packed);

struct LayerState {
  int64_t head_dim = 0, window = 0;
  std::vector<float> ring;  // [window, head_dim], position q in row q % window
  StateRows compressed;     // [entries, head_dim]
  CompressorState compressor;
  CompressorState index_compressor;
  StateRows index_keys;  // [entries, index_head_dim]

  size_t bytes() const;
};

// What a speculative step changed in one layer, for rollback: the window rows it overwrote, each
// compressor as it was before the step, and the compressors' projections of the step's tokens
// (replayed for the kept ones, which gives the same bits as feeding them alone).
struct CompressorInput {
  std::vector<float> kv, score;  // [n, width]
};
struct CompressorUndo {
  // A step that completes a block (which may swap the overlapping buffers) keeps the whole
  // compressor; any other step only changed the rows it wrote, [row0, row0 + rows) of cur_kv and
  // cur_score, and keeps those (a ratio-128 buffer is 0.5 MB at V4-Flash's widths).
  bool whole = false;
  CompressorState before;
  int64_t row0 = 0, rows = 0;
  std::vector<float> kv, score;  // [rows, width]
  CompressorInput input;
};
struct LayerUndo {
  std::vector<float> ring_rows;  // [n, head_dim]: what positions p0.. held before
  CompressorUndo compressor, index_compressor;
  int64_t n_compressed = 0, n_index_keys = 0;
};
struct StepUndo {
  int64_t p0 = 0, n = 0;
  std::vector<LayerUndo> layers;
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
  std::optional<StepUndo> undo;        // set by a speculative forward, cleared by rollback or the next forward
  // Drafting beyond one token: the MTP block's final streams [hc, D] at the last row of its last
  // call (input of a chained call), and the undo of each chained call since the last unchained one
  // (chained positions are speculative: the next unchained call undoes them).
  std::vector<float> mtp_streams;
  std::vector<StepUndo> mtp_chain;
};

}  // namespace v4::model
