#pragma once
// Writes safetensors files tensor by tensor, so multi-gigabyte checkpoints never sit in memory
// whole: the header is computed from the declared dtypes and shapes, then each tensor's bytes are
// produced by its fill callback and streamed to disk.
#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace v4::core {

class SafetensorsWriter {
 public:
  using Fill = std::function<void(std::span<uint8_t> bytes)>;
  using Progress = std::function<void(uint64_t bytes_done, uint64_t bytes_total)>;

  // Declares a tensor; `fill` receives a zeroed buffer of numel * dtype_size bytes.
  void add(std::string name, DType dtype, std::vector<int64_t> shape, Fill fill);
  void add_bytes(std::string name, DType dtype, std::vector<int64_t> shape, std::vector<uint8_t> bytes);
  void set_metadata(std::string key, std::string value);

  size_t size() const { return entries_.size(); }
  uint64_t data_bytes() const;
  const std::vector<std::string> names() const;
  // The header JSON (data offsets in declaration order), padded with spaces to a multiple of 8.
  std::string header() const;
  // Writes the whole file (to path + ".part", renamed at the end). Throws std::runtime_error on
  // I/O failure.
  void write(const std::string& path, const Progress& progress = {}) const;

 private:
  struct Entry {
    std::string name;
    DType dtype;
    std::vector<int64_t> shape;
    uint64_t nbytes;
    Fill fill;
  };
  std::vector<Entry> entries_;
  std::vector<std::pair<std::string, std::string>> metadata_;
};

}  // namespace v4::core
