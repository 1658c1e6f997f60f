#pragma once
// Machine-limit probes for the benchmarks, on the kernel variant in use (kernels/isa.h), so a
// bound is measured with the same instructions the kernels run.
#include <cstdint>

namespace v4::kernels {

// Sum of n floats streamed from p (the read-bandwidth probe); with ahead_bytes > 0 it also
// prefetches into L2 that far ahead of the loads, as the decode kernels do.
float stream_sum(const float* p, int64_t n, int64_t ahead_bytes);

// The instruction a matrix peak is measured for: FP32 FMA, or the BF16 dot product the
// avx512bf16 variant multiplies FP8/FP4 weights with.
enum class PeakKind { fp32_fma, bf16_dot };

// Whether the variant in use has the instruction.
bool peak_available(PeakKind kind);

// The instruction the matrix paths multiply quantised (BF16-exact) activations with on the variant
// in use: BF16 dot products on avx512bf16 unless its BF16 pairs run on FMAs (kernels/bf16_dot.h's
// PairMode), FP32 FMAs otherwise.
PeakKind quantised_peak_kind();

// Runs `iters` rounds of 10 independent instructions of that kind on this thread and returns the
// FLOPs done (0 when the variant lacks it). The caller times it. Scalar: plain multiply-adds.
double peak_loop(PeakKind kind, int64_t iters);

namespace detail {
float stream_sum_avx2(const float* p, int64_t n, int64_t ahead_bytes);
float stream_sum_avx512(const float* p, int64_t n, int64_t ahead_bytes);
double peak_loop_avx2(int64_t iters);
// Seconds for `iters` rounds of 10 independent FMAs whose multiplicand is a subnormal number
// (or, with subnormal false, a normal one), the products and sums normal.
double fma_operand_loop_avx2(bool subnormal, int64_t iters);
double peak_loop_avx512(PeakKind kind, int64_t iters);
}  // namespace detail

}  // namespace v4::kernels
