#pragma once
// Internal to the kernels layer: what linear.cpp shares with the per-ISA variants in x86/.
#include <algorithm>
#include <cstdint>

#include "kernels/formats.h"
#include "kernels/linear.h"
#include "kernels/thread_pool.h"

namespace v4::kernels::detail {

// The dequantised weight w[r, k], straight from the format definitions.
float reference_weight(const Weight& w, int64_t r, int64_t k);

// out[i, r] for r in [row_begin, row_end) and every row i of x, by the scalar definition.
void reference_rows(const Weight& w, const float* x, int64_t n, float* out, int64_t row_begin, int64_t row_end);

// Output rows are handed to threads in groups of 16 so two threads never write one cache line of
// an output row (with 64-byte aligned outputs).
constexpr int64_t kRowGroup = 16;

template <class Fn>
void for_row_ranges(int64_t rows, ThreadPool* pool, const Fn& fn) {
  const int64_t groups = ceil_div(rows, kRowGroup);
  auto body = [&](int64_t gb, int64_t ge) { fn(gb * kRowGroup, std::min(rows, ge * kRowGroup)); };
  if (pool)
    pool->parallel_for(groups, body);
  else
    body(0, groups);
}

// The variants' entry points (x86/linear_avx2.cpp, x86/linear_avx512.cpp): every weight dtype with
// fp32 FMAs on decoded weights, split over `pool` by output rows.
void linear_avx2(const Weight& w, const float* x, int64_t n, float* out, ThreadPool* pool);
void linear_avx512(const Weight& w, const float* x, int64_t n, float* out, ThreadPool* pool);

// How the avx2 variant's FP8 decode tiles place the codes (x86/linear_avx2.cpp): as fp32 numbers
// (subnormal ones among them) or through F16C. The same bits either way; fp32 is chosen where an
// FMA on subnormal operands runs at full speed (probed once: Intel cores take a microcode assist).
bool fp8_fp32_placement();
void set_fp8_fp32_placement(bool on);

}  // namespace v4::kernels::detail
