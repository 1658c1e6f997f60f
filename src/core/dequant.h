#pragma once
// Dequantisation of stored weights to float: the reference definitions (scalar, not fast).
//  - F8_E4M3 weight [rows, cols] with an E8M0 block scale [ceil(rows/bo), ceil(cols/bi)]:
//    w * 2^(e-127) per bo x bi block (edge blocks partial);
//  - I8 packed FP4 [rows, cols/2] with an E8M0 scale [rows, cols/32]: low nibble = even element;
//  - plain F32/BF16/F16/F8_E4M3/F8_E8M0/I8/U8/I32/I64 without a scale: value by value.
// N-d tensors are treated as [product of leading dims, last dim].
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "core/checkpoint.h"

namespace v4::core {

enum class Encoding { Plain, Fp8Block, Fp4Packed };

struct QuantizedWeight {
  const TensorView* weight = nullptr;
  const TensorView* scale = nullptr;  // nullptr for Plain
  Encoding encoding = Encoding::Plain;
  int64_t block_rows = 128, block_cols = 128;  // Fp8Block
  int64_t group = 32;                          // Fp4Packed: inputs per scale

  std::vector<int64_t> logical_shape() const;  // FP4: last dim doubled
  int64_t rows() const;                        // product of leading logical dims (1 for 1-d)
  int64_t cols() const;                        // last logical dim
  int64_t numel() const { return rows() * cols(); }
  // Writes rows [row_begin, row_end) as float, (row_end - row_begin) * cols() values.
  void dequantize_rows(int64_t row_begin, int64_t row_end, float* out) const;
  std::vector<float> dequantize() const;
};

// Describes `name` as stored in `ckpt`: an F8_E4M3 or I8 "X.weight" with a sibling "X.scale" is
// quantised (FP8 block or packed FP4; the scale's shape must match, else CheckpointError); any other
// tensor is Plain. Throws CheckpointError if `name` is absent.
QuantizedWeight describe(const Checkpoint& ckpt, const std::string& name);
// Same from explicit views (scale may be nullptr); `block` is the config's weight_block_size.
QuantizedWeight describe(const TensorView& weight, const TensorView* scale, int64_t block_rows = 128,
                         int64_t block_cols = 128);

// Convenience: the whole tensor dequantised.
std::vector<float> dequantize(const Checkpoint& ckpt, const std::string& name);

}  // namespace v4::core
