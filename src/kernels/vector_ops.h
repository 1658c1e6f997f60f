#pragma once
// Vector building blocks the model's attention and indexer run per head and entry, on the kernel
// variant in use (kernels/isa.h). Every variant gives the same bits: dot keeps 16 partial sums of
// separately rounded products (no FMA) and one fixed reduction; axpy rounds each element once (FMA).
#include <cstdint>

namespace v4::kernels {

// sum over k < n of a[k] * b[k]: partial sum l collects products k = l (mod 16) in order, the
// tail goes to sums 0, 1, ..., then the 16 sums are added pairwise (l + 8, l + 4, l + 2, l + 1).
float dot(const float* a, const float* b, int64_t n);

// out[r] = dot(a + r * lda, b, n) for r < rows, to the same bits: one b against many rows (the
// indexer's heads against one key), b's chunks loaded once for 16 rows and the 16 sums reduced
// together, where one dot() at a time spent most of its time in the reduction.
void dots(const float* a, int64_t rows, int64_t lda, const float* b, int64_t n, float* out);

// y[k] = fma(a, x[k], y[k]) for k < n.
void axpy(float a, const float* x, float* y, int64_t n);

// Packed rows of a sequence's state (model/state_rows.h) back to fp32, exactly: out[k] =
// value(code k) * scale, scale a power of two. e4m3: one code per byte (0x7F/0xFF NaN). e2m1: two
// per byte, element 2i in the low nibble; n even.
void decode_e4m3(const uint8_t* codes, int64_t n, float scale, float* out);
void decode_e2m1(const uint8_t* packed, int64_t n, float scale, float* out);

namespace detail {
float dot_avx2(const float* a, const float* b, int64_t n);
float dot_avx512(const float* a, const float* b, int64_t n);
void dots_avx512(const float* a, int64_t rows, int64_t lda, const float* b, int64_t n, float* out);
void axpy_avx2(float a, const float* x, float* y, int64_t n);
void axpy_avx512(float a, const float* x, float* y, int64_t n);
void decode_e4m3_avx512(const uint8_t* codes, int64_t n, float scale, float* out);
void decode_e2m1_avx512(const uint8_t* packed, int64_t n, float scale, float* out);
// The tail and reduction every variant shares.
float dot_finish(float (&acc)[16], const float* a, const float* b, int64_t k, int64_t n);
}  // namespace detail

}  // namespace v4::kernels
