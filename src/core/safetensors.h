#pragma once
// Memory-mapped safetensors files: the header is parsed and validated, tensor data is never copied.
#include <cstddef>
#include <cstdint>
#include <map>
#include <memory>
#include <span>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace v4::core {

// Any problem with a checkpoint file; the message names the file/tensor and what is wrong.
struct CheckpointError : std::runtime_error {
  using std::runtime_error::runtime_error;
};

struct TensorView {
  std::string name;
  DType dtype;
  std::vector<int64_t> shape;  // as stored (packed FP4 I8: [out, in/2])
  const uint8_t* data = nullptr;
  size_t nbytes = 0;
  std::string file;  // the shard it lives in

  int64_t numel() const;
  template <class T> const T* as() const { return reinterpret_cast<const T*>(data); }
};

class MappedFile;  // RAII mmap

class SafetensorsFile {
 public:
  // Throws CheckpointError for any malformed header (see the hostile-file tests).
  static std::unique_ptr<SafetensorsFile> open(const std::string& path);
  // Parse a header from memory (for the fuzzer and tests): `bytes` is the whole file.
  static std::map<std::string, TensorView> parse(std::span<const uint8_t> bytes, const std::string& label);

  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  ~SafetensorsFile();

 private:
  SafetensorsFile() = default;
  std::unique_ptr<MappedFile> map_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace v4::core
