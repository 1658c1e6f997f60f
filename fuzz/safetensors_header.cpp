// libFuzzer target: SafetensorsFile::parse on arbitrary bytes must either return views that lie
// inside the input or throw CheckpointError; never crash, overflow or allocate without bound.
#include <cstddef>
#include <cstdint>
#include <span>

#include "core/safetensors.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::span<const uint8_t> bytes(data, size);
  try {
    const auto tensors = v4::core::SafetensorsFile::parse(bytes, "fuzz");
    for (const auto& [name, t] : tensors) {
      // Every view must lie within the input and match its dtype x shape.
      if (t.data < data || t.data + t.nbytes > data + size) __builtin_trap();
      if (uint64_t(t.numel()) * v4::core::dtype_size(t.dtype) != t.nbytes) __builtin_trap();
      volatile uint8_t sink = 0;
      if (t.nbytes) sink = t.data[t.nbytes - 1];
      (void)sink;
    }
  } catch (const v4::core::CheckpointError&) {
  }
  return 0;
}
