#pragma once
// Element types of the safetensors files DeepSeek-V4 checkpoints use.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string_view>

namespace v4::core {

enum class DType : uint8_t { F32, BF16, F16, F8_E4M3, F8_E8M0, I8, U8, I32, I64 };

// Bytes per stored element (I8 holding packed FP4 counts one byte per two logical elements,
// but the stored element is still one byte).
size_t dtype_size(DType t);
std::string_view dtype_name(DType t);                    // the safetensors spelling, e.g. "F8_E4M3"
std::optional<DType> dtype_from_name(std::string_view);  // nullopt for unsupported dtypes

}  // namespace v4::core
