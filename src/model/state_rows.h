#pragma once
// Rows a sequence's attention state accumulates (compressed KV entries, the indexer's keys). With
// the model's quantisers on, the values are already what the reference rounds them to: a KV entry's
// non-RoPE dims FP8 e4m3 per 64 with a power-of-two scale, an indexer key FP4 e2m1 per 32. They are
// kept as those codes (a scale exponent per block, the RoPE dims fp32), which decode to the same
// fp32 bits: a third of fp32 and under the reference's BF16 cache. In exact mode (quantisers off)
// rows are fp32. Memory is held in blocks of kBlockRows rows: the rows' own bytes plus less than a
// block, and growing never copies what is there.
#include <cstddef>
#include <cstdint>
#include <vector>

namespace v4::model {

enum class RowFormat : uint8_t {
  f32,  // width fp32 values
  fp8,  // width - tail values as e4m3 codes, one scale exponent per 64, then tail fp32 values
  fp4,  // width values as e2m1 codes (two per byte), one scale exponent per 32
};

class StateRows {
 public:
  // A multiple of 16: the indexer reads its keys 16 rows at a time, which then never span blocks.
  static constexpr int64_t kBlockRows = 64;
  static constexpr int64_t kFp8Block = 64, kFp4Block = 32;

  StateRows() = default;
  // fp8 needs (width - tail) % 64 == 0, fp4 width % 32 == 0 (std::invalid_argument otherwise).
  StateRows(RowFormat format, int64_t width, int64_t tail = 0);

  int64_t size() const { return size_; }
  int64_t width() const { return width_; }
  RowFormat format() const { return format_; }
  // Bytes of one stored row (a multiple of 4).
  static int64_t row_bytes(RowFormat format, int64_t width, int64_t tail);
  int64_t row_bytes() const { return row_bytes_; }

  // One row of `width` values in `format`'s stored layout (row_bytes bytes at out): push_back's.
  static void pack(RowFormat format, int64_t width, int64_t tail, const float* x, std::byte* out);

  // Appends one row of width() values. Packed formats store the codes the values are: values the
  // model's quantisers made (numerics.h) decode to the same bits; other values are rounded.
  void push_back(const float* row);
  // Keeps the first n <= size() rows (a rollback), releasing blocks no longer used.
  void truncate(int64_t n);

  // Rows [i, i + n) as fp32 into out (n * width values); the rows must lie in one block.
  void decode(int64_t i, int64_t n, float* out) const;
  // Row i in place, f32 format only; rows of one block are contiguous.
  const float* f32(int64_t i) const { return reinterpret_cast<const float*>(row(i)); }

  // Rows [i, i + n) as stored, for the state codec (one block's rows).
  const std::byte* raw(int64_t i) const { return row(i); }
  void push_back_raw(const std::byte* bytes, int64_t n);

  size_t bytes() const;  // memory held: whole blocks

 private:
  const std::byte* row(int64_t i) const { return blocks_[size_t(i / kBlockRows)].data() + i % kBlockRows * row_bytes_; }
  std::byte* next_row();
  RowFormat format_ = RowFormat::f32;
  int64_t width_ = 0, tail_ = 0, row_bytes_ = 0, size_ = 0;
  std::vector<std::vector<std::byte>> blocks_;
};

}  // namespace v4::model
