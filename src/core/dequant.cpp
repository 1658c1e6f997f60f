#include "core/dequant.h"

#include <array>
#include <cstring>

#include "core/codecs.h"
#include "fmt/format.h"

namespace v4::core {

namespace {

struct Tables {
  std::array<float, 256> e4m3, e8m0, e2m1;
  Tables() {
    for (int i = 0; i < 256; ++i) {
      e4m3[size_t(i)] = e4m3_to_float(uint8_t(i));
      e8m0[size_t(i)] = e8m0_to_float(uint8_t(i));
      e2m1[size_t(i)] = e2m1_to_float(uint8_t(i & 15));
    }
  }
};
const Tables& tables() {
  static const Tables t;
  return t;
}

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) s += (i ? ", " : "") + std::to_string(shape[i]);
  return s + "]";
}

template <class T>
T load(const uint8_t* p) {
  T v;
  std::memcpy(&v, p, sizeof(T));  // tensor data need not be aligned for T
  return v;
}

}  // namespace

std::vector<int64_t> QuantizedWeight::logical_shape() const {
  std::vector<int64_t> s = weight->shape;
  if (encoding == Encoding::Fp4Packed) s.back() *= 2;
  return s;
}

int64_t QuantizedWeight::rows() const {
  const auto& s = weight->shape;
  int64_t r = 1;
  for (size_t i = 0; i + 1 < s.size(); ++i) r *= s[i];
  return s.empty() ? 1 : r;
}

int64_t QuantizedWeight::cols() const {
  const auto& s = weight->shape;
  if (s.empty()) return 1;
  return encoding == Encoding::Fp4Packed ? s.back() * 2 : s.back();
}

void QuantizedWeight::dequantize_rows(int64_t row_begin, int64_t row_end, float* out) const {
  const Tables& t = tables();
  const int64_t ncols = cols();
  const uint8_t* w = weight->data;
  switch (encoding) {
    case Encoding::Fp8Block: {
      const int64_t scale_cols = scale->shape[1];
      for (int64_t r = row_begin; r < row_end; ++r) {
        const uint8_t* srow = scale->data + (r / block_rows) * scale_cols;
        const uint8_t* wrow = w + r * ncols;
        for (int64_t c = 0; c < ncols; ++c) *out++ = t.e4m3[wrow[c]] * t.e8m0[srow[c / block_cols]];
      }
      return;
    }
    case Encoding::Fp4Packed: {
      const int64_t scale_cols = ncols / group;
      for (int64_t r = row_begin; r < row_end; ++r) {
        const uint8_t* srow = scale->data + r * scale_cols;
        const uint8_t* wrow = w + r * (ncols / 2);
        for (int64_t c = 0; c < ncols; c += 2) {
          const uint8_t byte = wrow[c / 2];
          const float s = t.e8m0[srow[c / group]];
          *out++ = t.e2m1[byte & 15] * s;  // low nibble: even element
          *out++ = t.e2m1[byte >> 4] * s;
        }
      }
      return;
    }
    case Encoding::Plain: break;
  }
  const int64_t begin = row_begin * ncols, end = row_end * ncols;
  for (int64_t i = begin; i < end; ++i) {
    switch (weight->dtype) {
      case DType::F32: *out++ = load<float>(w + 4 * i); break;
      case DType::BF16: *out++ = bf16_to_float(load<uint16_t>(w + 2 * i)); break;
      case DType::F16: *out++ = f16_to_float(load<uint16_t>(w + 2 * i)); break;
      case DType::F8_E4M3: *out++ = t.e4m3[w[i]]; break;
      case DType::F8_E8M0: *out++ = t.e8m0[w[i]]; break;
      case DType::I8: *out++ = float(int8_t(w[i])); break;
      case DType::U8: *out++ = float(w[i]); break;
      case DType::I32: *out++ = float(load<int32_t>(w + 4 * i)); break;
      case DType::I64: *out++ = float(load<int64_t>(w + 8 * i)); break;
    }
  }
}

std::vector<float> QuantizedWeight::dequantize() const {
  std::vector<float> out(static_cast<size_t>(numel()));
  dequantize_rows(0, rows(), out.data());
  return out;
}

QuantizedWeight describe(const TensorView& weight, const TensorView* scale, int64_t block_rows, int64_t block_cols) {
  QuantizedWeight q;
  q.weight = &weight;
  q.block_rows = block_rows;
  q.block_cols = block_cols;
  if (!scale) return q;
  auto fail = [&](const std::string& expected) {
    return CheckpointError(fmt::format("{}: scale {} is {} {}, expected {}", weight.name, scale->name,
                                       dtype_name(scale->dtype), shape_text(scale->shape), expected));
  };
  if (weight.shape.size() != 2)
    throw CheckpointError(fmt::format("{}: a quantised weight must be 2-d, shape is {}", weight.name,
                                      shape_text(weight.shape)));
  const int64_t rows = weight.shape[0], cols = weight.shape[1];
  if (weight.dtype == DType::F8_E4M3) {
    const std::vector<int64_t> expected = {(rows + block_rows - 1) / block_rows, (cols + block_cols - 1) / block_cols};
    if (scale->dtype != DType::F8_E8M0 || scale->shape != expected) throw fail("F8_E8M0 " + shape_text(expected));
    q.scale = scale;
    q.encoding = Encoding::Fp8Block;
    return q;
  }
  if (weight.dtype == DType::I8) {
    const int64_t logical_cols = cols * 2;
    if (logical_cols % q.group != 0)
      throw CheckpointError(fmt::format("{}: packed FP4 row of {} elements is not a multiple of {}", weight.name,
                                        logical_cols, q.group));
    const std::vector<int64_t> expected = {rows, logical_cols / q.group};
    if (scale->dtype != DType::F8_E8M0 || scale->shape != expected) throw fail("F8_E8M0 " + shape_text(expected));
    q.scale = scale;
    q.encoding = Encoding::Fp4Packed;
    return q;
  }
  throw CheckpointError(fmt::format("{}: dtype {} has no scaled encoding", weight.name, dtype_name(weight.dtype)));
}

QuantizedWeight describe(const Checkpoint& ckpt, const std::string& name) {
  const TensorView& weight = ckpt.get(name);
  const TensorView* scale = nullptr;
  const std::string suffix = ".weight";
  if ((weight.dtype == DType::F8_E4M3 || weight.dtype == DType::I8) && name.ends_with(suffix))
    scale = ckpt.find(name.substr(0, name.size() - suffix.size()) + ".scale");
  const auto& c = ckpt.config();
  return describe(weight, scale, c.weight_block_size[0], c.weight_block_size[1]);
}

std::vector<float> dequantize(const Checkpoint& ckpt, const std::string& name) {
  return describe(ckpt, name).dequantize();
}

}  // namespace v4::core
