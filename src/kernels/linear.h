#pragma once
// Matrix kernels behind one small interface. Every fast path has a scalar reference in the same
// layer and is tested against it.
//
// Design rule (batch invariance): the value of out[i, r] depends only on x[i, :] and row r of the
// weight, computed in one fixed order, never on n (the number of rows of x), on which other rows
// are in the batch, or on the thread count. Work is split across threads by output rows (r) only.
#include <cstdint>

#include "core/dtype.h"

namespace v4::kernels {

// A weight matrix [rows, cols] as stored in the checkpoint (no dequantised copy is ever made).
//  F8_E4M3: data rows*cols bytes, scale E8M0 [ceil(rows/128), ceil(cols/128)] (block 128x128)
//  I8 (packed FP4 e2m1, low nibble = even column): data rows*cols/2 bytes, scale E8M0 [rows, cols/32]
//  BF16 / F32: data only, scale == nullptr
struct Weight {
  core::DType dtype = core::DType::F32;
  const void* data = nullptr;
  const uint8_t* scale = nullptr;
  int64_t rows = 0, cols = 0;
};

class ThreadPool;  // kernels/thread_pool.h

// What the caller guarantees about x.
//  kFp32: any fp32 values.
//  kBf16Exact: every value is exactly a BF16 number (true after the reference's FP8 activation
//  quantiser).
// On the avx512bf16 variant (kernels/isa.h), FP8 weights run on BF16 dot products
// (kernels/bf16_dot.h; fp32 x split into three exact BF16 terms), FP4 weights when x is kBf16Exact;
// the rest on fp32 FMAs (avx512, avx2) or the scalar reference. Each path has its own fixed
// summation order, so the same call on the same variant always gives the same bits.
enum class InputKind { kFp32, kBf16Exact };

// out[n, rows] = x[n, cols] . W^T with fp32 accumulation. `pool` may be null (single thread).
void linear(const Weight& w, const float* x, int64_t n, float* out, ThreadPool* pool,
            InputKind input = InputKind::kFp32);

// The scalar reference every fast path is tested against.
void linear_reference(const Weight& w, const float* x, int64_t n, float* out);

}  // namespace v4::kernels
