#include "kernels/probes.h"

#include <numeric>

#include "kernels/bf16_dot.h"
#include "kernels/isa.h"

namespace v4::kernels {

float stream_sum(const float* p, int64_t n, int64_t ahead_bytes) {
  switch (active_isa()) {
    case Isa::avx512bf16:
    case Isa::avx512:
      return detail::stream_sum_avx512(p, n, ahead_bytes);
    case Isa::avx2:
      return detail::stream_sum_avx2(p, n, ahead_bytes);
    case Isa::scalar:
      break;
  }
  float s[8] = {};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (int j = 0; j < 8; ++j) s[j] += p[i + j];
  for (; i < n; ++i) s[0] += p[i];
  return std::accumulate(s, s + 8, 0.0f);
}

bool peak_available(PeakKind kind) {
  switch (active_isa()) {
    case Isa::avx512bf16: return true;
    case Isa::avx512:
    case Isa::avx2:
    case Isa::scalar: return kind == PeakKind::fp32_fma;
  }
  return false;
}

PeakKind quantised_peak_kind() {
  return active_isa() == Isa::avx512bf16 && bf16dot::pair_mode() == bf16dot::PairMode::dot ? PeakKind::bf16_dot
                                                                                         : PeakKind::fp32_fma;
}

double peak_loop(PeakKind kind, int64_t iters) {
  if (!peak_available(kind)) return 0.0;
  switch (active_isa()) {
    case Isa::avx512bf16:
    case Isa::avx512:
      return detail::peak_loop_avx512(kind, iters);
    case Isa::avx2:
      return detail::peak_loop_avx2(iters);
    case Isa::scalar:
      break;
  }
  // Scalar multiply-adds, as linear_reference does them.
  float a[10];
  for (int k = 0; k < 10; ++k) a[k] = 1.0f + 0.1f * float(k);
  for (int64_t i = 0; i < iters; ++i)
    for (int k = 0; k < 10; ++k) a[k] = a[k] * 0.9999999f + 1e-7f;
  volatile float keep = std::accumulate(a, a + 10, 0.0f);
  (void)keep;
  return double(iters) * 10 * 2;
}

}  // namespace v4::kernels
