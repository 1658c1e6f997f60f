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
#include "core/huge_pages.h"

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

// Where tensor data lives. `mapped`: the file mapped read-only (shared with the page cache and other
// processes, no load time), huge pages asked for: file pages read in from then on come in 2 MiB
// folios where the kernel's page cache has them (ext4 on Linux 6.x), pages already cached stay in
// what they were read in. `hugepages`: read into private anonymous memory with transparent huge
// pages asked for, so every page is huge whatever the page cache holds, for a load that reads every
// byte first and memory no other process shares. 4 KiB pages cost decode's weight streams a TLB
// miss every 4 KiB (docs/performance.md).
enum class WeightMemory { mapped, hugepages };
// "mapped" or "hugepages"; throws std::invalid_argument naming `option` otherwise.
WeightMemory parse_weight_memory(const std::string& text, const std::string& option);

class MappedFile;  // RAII mmap

class SafetensorsFile {
 public:
  // Throws CheckpointError for any malformed header (see the hostile-file tests).
  static std::unique_ptr<SafetensorsFile> open(const std::string& path, WeightMemory memory = WeightMemory::mapped);
  // Parse a header from memory (for the fuzzer and tests): `bytes` is the whole file.
  static std::map<std::string, TensorView> parse(std::span<const uint8_t> bytes, const std::string& label);

  const std::map<std::string, TensorView>& tensors() const { return tensors_; }
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  // The file's memory: resident bytes and those in 2 MiB pages (core/huge_pages.h).
  PageResidency residency() const;
  ~SafetensorsFile();

 private:
  SafetensorsFile() = default;
  std::unique_ptr<MappedFile> map_;
  std::map<std::string, TensorView> tensors_;
  std::map<std::string, std::string> metadata_;
};

}  // namespace v4::core
