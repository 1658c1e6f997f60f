// The choice of PairMode (kernels/bf16_dot.h): how the avx512bf16 variant multiplies BF16 pairs.
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <stdexcept>
#include <string>

#include "kernels/bf16_dot.h"
#include "kernels/cpu_features.h"
#include "kernels/probes.h"

namespace v4::kernels::bf16dot {

namespace {

// FLOPs per second of one of the probe loops on this thread, the best of three short runs.
double flop_rate(PeakKind kind) {
  constexpr int64_t kIters = 20000;  // 200,000 instructions: well under a millisecond each
  double best = 0.0;
  for (int run = 0; run < 3; ++run) {
    const auto t0 = std::chrono::steady_clock::now();
    const double flops = detail::peak_loop_avx512(kind, kIters);
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    if (s > 0) best = std::max(best, flops / s);
  }
  return best;
}

PairMode initial_mode() {
  if (const char* env = std::getenv("V4FLASH_BF16_PAIRS"); env && *env) {
    const std::string v = env;
    if (v == "dot") return PairMode::dot;
    if (v == "fma") {
      if (!cpu_features().has_avx512bf16() || !pairs_match_dot())
        throw std::invalid_argument("V4FLASH_BF16_PAIRS=fma: this CPU's FMAs do not reproduce its BF16 dot products");
      return PairMode::fma;
    }
    throw std::invalid_argument("V4FLASH_BF16_PAIRS=" + v + ": expected dot or fma");
  }
  // Only the speed depends on this choice, never the bits: the FMAs are taken only where they
  // reproduce the dot products exactly.
  if (!cpu_features().has_avx512bf16() || !pairs_match_dot()) return PairMode::dot;
  return flop_rate(PeakKind::fp32_fma) >= 1.5 * flop_rate(PeakKind::bf16_dot) ? PairMode::fma : PairMode::dot;
}

std::atomic<int>& selected() {
  static std::atomic<int> mode{int(initial_mode())};
  return mode;
}

}  // namespace

PairMode pair_mode() { return PairMode(selected().load(std::memory_order_relaxed)); }

void set_pair_mode(PairMode mode) {
  if (mode == PairMode::fma && (!cpu_features().has_avx512bf16() || !pairs_match_dot()))
    throw std::invalid_argument("BF16 pairs on FMAs: this CPU's FMAs do not reproduce its BF16 dot products");
  selected().store(int(mode), std::memory_order_relaxed);
}

const char* pair_mode_name(PairMode mode) { return mode == PairMode::fma ? "fma" : "dot"; }

}  // namespace v4::kernels::bf16dot
