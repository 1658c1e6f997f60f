#pragma once
// GGUF v3 writer (llama.cpp's model file format) and the export of a checkpoint as a llama.cpp
// `deepseek4` GGUF, for running llama.cpp on the very same weights (peer benchmark, logit diffs).
// Format: "GGUF", u32 version 3, u64 tensor count, u64 KV count, the KVs, the tensor infos
// (name, dims, ne[] with ne0 = innermost, ggml type, offset into the data section), padding to
// `alignment`, then the tensor data, each tensor starting at a multiple of `alignment`.
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "core/checkpoint.h"

namespace v4::core {

// ggml_type ids (ggml/include/ggml.h) of the types the exporter writes.
enum class GgmlType : uint32_t { F32 = 0, F16 = 1, Q8_0 = 8, I32 = 26, BF16 = 30, MXFP4 = 39 };
// Bytes for `numel` elements; throws std::invalid_argument for block types when numel % 32 != 0.
uint64_t ggml_nbytes(GgmlType type, uint64_t numel);
const char* ggml_type_name(GgmlType type);

// Sink for tensor data: producers call it with consecutive chunks.
using ByteSink = std::function<void(const void* data, size_t size)>;

class GgufWriter {
 public:
  void add_u32(const std::string& key, uint32_t v);
  void add_i32(const std::string& key, int32_t v);
  void add_f32(const std::string& key, float v);
  void add_bool(const std::string& key, bool v);
  void add_string(const std::string& key, const std::string& v);
  void add_i32_array(const std::string& key, const std::vector<int32_t>& v);
  void add_f32_array(const std::string& key, const std::vector<float>& v);
  void add_string_array(const std::string& key, const std::vector<std::string>& v);

  // `ne` innermost first (numpy shape reversed). `produce` must write exactly ggml_nbytes(type, numel).
  void add_tensor(const std::string& name, GgmlType type, std::vector<int64_t> ne,
                  std::function<void(const ByteSink&)> produce);

  // Writes the file; `progress(done_bytes, total_bytes, tensor_name)` is called after each tensor.
  // Throws std::runtime_error on I/O errors or a producer writing the wrong byte count.
  void write(const std::string& path,
             const std::function<void(uint64_t, uint64_t, const std::string&)>& progress = {}) const;

  size_t tensor_count() const { return tensors_.size(); }
  static constexpr uint32_t kAlignment = 32;

 private:
  struct Tensor {
    std::string name;
    GgmlType type;
    std::vector<int64_t> ne;
    uint64_t nbytes;
    std::function<void(const ByteSink&)> produce;
  };
  std::string kv_bytes_;  // serialised KV section
  uint64_t kv_count_ = 0;
  std::vector<Tensor> tensors_;
};

// Encoders used by the exporter (exposed for tests).
uint16_t float_to_f16(float f);  // round-to-nearest-even, overflow -> inf
// ggml's reference Q8_0: per 32 values d = max|x|/127 (stored f16), q = round(x/d).
void quantize_q8_0(const float* x, size_t n, std::vector<uint8_t>& out);  // appends n/32*34 bytes
// One checkpoint FP4 row (packed bytes: element 2k low nibble, 2k+1 high) with its E8M0 scales
// (one per 32) -> ggml MXFP4 blocks (scale byte, then byte j = element j | element j+16 << 4).
void fp4_row_to_mxfp4(const uint8_t* packed, const uint8_t* scales, int64_t cols, uint8_t* out);

enum class DenseType { BF16, Q8_0 };

struct GgufExportOptions {
  DenseType dense = DenseType::BF16;  // type for the FP8 dense matrices (attn_output_a is BF16 always)
};

// Builds the writer for `ckpt` (MTP layers are left out, like llama.cpp's converter does by default).
// Reads DIR/tokenizer.json when present; otherwise writes a placeholder gpt2 vocabulary (byte tokens,
// BOS/EOS as control tokens, the rest "[PAD<id>]") so llama.cpp can load the file.
GgufWriter make_deepseek4_gguf(const Checkpoint& ckpt, const GgufExportOptions& options = {});

}  // namespace v4::core
