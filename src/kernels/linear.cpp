// linear(): validation, the scalar reference, and the dispatch to the variant kernels/isa.h selects.
#include "kernels/linear.h"

#include <algorithm>
#include <atomic>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#include "kernels/bf16_dot.h"
#include "kernels/cpu_features.h"
#include "kernels/fp4_vnni.h"
#include "kernels/formats.h"
#include "kernels/isa.h"
#include "kernels/linear_internal.h"
#include "kernels/probes.h"
#include "kernels/thread_pool.h"

namespace v4::kernels {

using core::DType;

namespace {

void validate(const Weight& w, const float* x, int64_t n, const float* out) {
  if (w.rows <= 0 || w.cols <= 0) throw std::invalid_argument("linear: weight shape must be positive");
  if (!w.data) throw std::invalid_argument("linear: weight data is null");
  if (n < 0) throw std::invalid_argument("linear: negative row count");
  if (n > 0 && (!x || !out)) throw std::invalid_argument("linear: null input or output");
  switch (w.dtype) {
    case DType::F32:
    case DType::BF16:
      return;
    case DType::F8_E4M3:
      if (!w.scale) throw std::invalid_argument("linear: F8_E4M3 weight needs its block scales");
      return;
    case DType::I8:
      if (!w.scale) throw std::invalid_argument("linear: packed FP4 weight needs its scales");
      if (w.cols % kFp4Group != 0)
        throw std::invalid_argument("linear: packed FP4 weight needs cols % 32 == 0, got " + std::to_string(w.cols));
      return;
    default:
      throw std::invalid_argument("linear: unsupported weight dtype " + std::string(core::dtype_name(w.dtype)));
  }
}

float bf16_value(uint16_t b) {
  const uint32_t u = uint32_t(b) << 16;
  float f;
  std::memcpy(&f, &u, 4);
  return f;
}

}  // namespace

namespace detail {

namespace {

// Whether an FMA whose multiplicand is subnormal runs at least at 0.8 of the normal rate here:
// the best of three short runs of each (well under a millisecond together).
bool subnormal_fma_operands_are_fast() {
  if (!isa_supported(Isa::avx2)) return false;
  constexpr int64_t kIters = 20000;
  double normal = 1e9, subnormal = 1e9;
  for (int run = 0; run < 3; ++run) {
    normal = std::min(normal, fma_operand_loop_avx2(false, kIters));
    subnormal = std::min(subnormal, fma_operand_loop_avx2(true, kIters));
  }
  return subnormal * 0.8 <= normal;
}

std::atomic<bool>& fp32_placement() {
  static std::atomic<bool> on{subnormal_fma_operands_are_fast()};
  return on;
}

}  // namespace

bool fp8_fp32_placement() { return fp32_placement().load(std::memory_order_relaxed); }
void set_fp8_fp32_placement(bool on) { fp32_placement().store(on, std::memory_order_relaxed); }

float reference_weight(const Weight& w, int64_t r, int64_t k) {
  switch (w.dtype) {
    case DType::F32:
      return static_cast<const float*>(w.data)[r * w.cols + k];
    case DType::BF16:
      return bf16_value(static_cast<const uint16_t*>(w.data)[r * w.cols + k]);
    case DType::F8_E4M3: {
      const uint8_t b = static_cast<const uint8_t*>(w.data)[r * w.cols + k];
      const int64_t scale_cols = ceil_div(w.cols, kFp8Block);
      return e4m3_value(b) * e8m0_value(w.scale[(r / kFp8Block) * scale_cols + k / kFp8Block]);
    }
    case DType::I8: {
      const uint8_t byte = static_cast<const uint8_t*>(w.data)[(r * w.cols + k) / 2];
      const uint8_t nibble = (k & 1) ? uint8_t(byte >> 4) : uint8_t(byte & 0xF);
      return e2m1_value(nibble) * e8m0_value(w.scale[r * (w.cols / kFp4Group) + k / kFp4Group]);
    }
    default:
      throw std::invalid_argument("linear: unsupported weight dtype");
  }
}

void reference_rows(const Weight& w, const float* x, int64_t n, float* out, int64_t row_begin, int64_t row_end) {
  for (int64_t r = row_begin; r < row_end; ++r)
    for (int64_t i = 0; i < n; ++i) {
      const float* xi = x + i * w.cols;
      float acc = 0.0f;
      for (int64_t k = 0; k < w.cols; ++k) acc += xi[k] * reference_weight(w, r, k);
      out[i * w.rows + r] = acc;
    }
}

}  // namespace detail

namespace {

// FP4 weights with quantised x on the avx512bf16 variant: VNNI integer dot products for the rows of
// x the integer path takes (kernels/fp4_vnni.h), BF16 dot products for any other; a row's path
// and bits depend only on the row, so the result stays batch invariant.
void bf16_dot_linear(const Weight& w, const float* x, int64_t n, float* out, ThreadPool* pool) {
  const bf16dot::Input in(w, x, n);
  const bf16dot::RowFallback fallback = [&](int64_t b, int64_t e) { detail::reference_rows(w, x, n, out, b, e); };
  detail::for_row_ranges(w.rows, pool, [&](int64_t b, int64_t e) { bf16dot::rows(in, out, b, e, fallback); });
}

void vnni_rows(const fp4vnni::Input& in, const float* x, float* out, ThreadPool* pool) {
  const Weight& w = in.weight();
  const fp4vnni::RowFallback fallback = [&](int64_t b, int64_t e) { detail::reference_rows(w, x, in.n(), out, b, e); };
  detail::for_row_ranges(w.rows, pool, [&](int64_t b, int64_t e) { fp4vnni::rows(in, out, b, e, fallback); });
}

void fp4_vnni_linear(const Weight& w, const float* x, int64_t n, float* out, ThreadPool* pool) {
  const fp4vnni::Input in(w, x, n);
  if (in.all_ok()) return vnni_rows(in, x, out, pool);
  std::vector<int64_t> picked[2];  // [0]: the integer path, [1]: the BF16 path
  for (int64_t i = 0; i < n; ++i) picked[in.ok(i) ? 0 : 1].push_back(i);
  for (int part = 0; part < 2; ++part) {
    const auto& idx = picked[part];
    if (idx.empty()) continue;
    const int64_t m = int64_t(idx.size());
    std::vector<float> xs(size_t(m * w.cols)), os(size_t(m * w.rows));
    for (int64_t j = 0; j < m; ++j) std::copy_n(x + idx[size_t(j)] * w.cols, w.cols, xs.data() + j * w.cols);
    if (part == 0)
      vnni_rows(fp4vnni::Input(w, xs.data(), m), xs.data(), os.data(), pool);
    else
      bf16_dot_linear(w, xs.data(), m, os.data(), pool);
    for (int64_t j = 0; j < m; ++j) std::copy_n(os.data() + j * w.rows, w.rows, out + idx[size_t(j)] * w.rows);
  }
}

}  // namespace

void linear_reference(const Weight& w, const float* x, int64_t n, float* out) {
  validate(w, x, n, out);
  if (n == 0) return;
  detail::reference_rows(w, x, n, out, 0, w.rows);
}

void linear(const Weight& w, const float* x, int64_t n, float* out, ThreadPool* pool, InputKind input) {
  validate(w, x, n, out);
  if (n == 0) return;
  const bool bf16_exact = input == InputKind::kBf16Exact;
  switch (active_isa()) {
    case Isa::avx512bf16:
      // FP4 weights with BF16-exact x: VNNI integer dot products where the CPU has them
      // (kernels/fp4_vnni.h). BF16 dot products: FP8, FP4 and BF16 weights with BF16-exact x. fp32 x goes to the fp32
      // FMAs of the avx512 variant: for FP8 weights, splitting x into three BF16 terms took three
      // dot products per pair, 2.5x slower than the FMAs on 64 rows on an Intel Xeon (docs/performance.md).
      if (bf16_exact && w.dtype == DType::I8 && cpu_features().avx512vnni) {
        fp4_vnni_linear(w, x, n, out, pool);
        return;
      }
      if (bf16_exact && (w.dtype == DType::F8_E4M3 || w.dtype == DType::I8 || w.dtype == DType::BF16)) {
        bf16_dot_linear(w, x, n, out, pool);
        return;
      }
      detail::linear_avx512(w, x, n, out, pool);
      return;
    case Isa::avx512:
      detail::linear_avx512(w, x, n, out, pool);
      return;
    case Isa::avx2:
      detail::linear_avx2(w, x, n, out, pool);
      return;
    case Isa::scalar:
      break;
  }
  detail::for_row_ranges(w.rows, pool, [&](int64_t b, int64_t e) { detail::reference_rows(w, x, n, out, b, e); });
}

}  // namespace v4::kernels
