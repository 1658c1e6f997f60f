#include "core/dtype.h"

namespace v4::core {

namespace {
struct Entry {
  DType type;
  std::string_view name;
  size_t size;
};
constexpr Entry kTypes[] = {
    {DType::F32, "F32", 4},         {DType::BF16, "BF16", 2}, {DType::F16, "F16", 2},
    {DType::F8_E4M3, "F8_E4M3", 1}, {DType::F8_E8M0, "F8_E8M0", 1}, {DType::I8, "I8", 1},
    {DType::U8, "U8", 1},           {DType::I32, "I32", 4},   {DType::I64, "I64", 8},
};
}  // namespace

size_t dtype_size(DType t) { return kTypes[size_t(t)].size; }
std::string_view dtype_name(DType t) { return kTypes[size_t(t)].name; }
std::optional<DType> dtype_from_name(std::string_view n) {
  for (const auto& e : kTypes)
    if (e.name == n) return e.type;
  return std::nullopt;
}

}  // namespace v4::core
