#include "kernels/isa.h"

#include <atomic>
#include <cstdlib>
#include <stdexcept>

#include "kernels/bf16_dot.h"
#include "kernels/cpu_features.h"
#include "kernels/linear_internal.h"

namespace v4::kernels {

namespace {

constexpr Isa kAll[] = {Isa::scalar, Isa::avx2, Isa::avx512, Isa::avx512bf16};

Isa initial_isa() {
  const char* env = std::getenv("V4FLASH_ISA");
  if (!env || !*env) return best_isa();
  const Isa isa = parse_isa(env);
  if (!isa_supported(isa))
    throw std::invalid_argument(std::string("V4FLASH_ISA=") + env + ": this CPU does not support it (supported up to " +
                                isa_name(best_isa()) + ")");
  return isa;
}

std::atomic<int>& selected() {
  static std::atomic<int> isa{int(initial_isa())};
  return isa;
}

}  // namespace

const char* isa_name(Isa isa) {
  switch (isa) {
    case Isa::scalar: return "scalar";
    case Isa::avx2: return "avx2";
    case Isa::avx512: return "avx512";
    case Isa::avx512bf16: return "avx512bf16";
  }
  return "?";
}

Isa parse_isa(const std::string& name) {
  for (Isa isa : kAll)
    if (name == isa_name(isa)) return isa;
  throw std::invalid_argument("unknown ISA '" + name + "' (expected scalar, avx2, avx512 or avx512bf16)");
}

bool isa_supported(Isa isa) {
  const CpuFeatures& f = cpu_features();
  switch (isa) {
    case Isa::scalar: return true;
    case Isa::avx2: return f.has_avx2();
    case Isa::avx512: return f.has_avx512();
    case Isa::avx512bf16: return f.has_avx512bf16();
  }
  return false;
}

Isa best_isa() {
  Isa best = Isa::scalar;
  for (Isa isa : kAll)
    if (isa_supported(isa)) best = isa;
  return best;
}

std::vector<Isa> all_isas() { return {std::begin(kAll), std::end(kAll)}; }

std::vector<Isa> supported_isas() {
  std::vector<Isa> out;
  for (Isa isa : kAll)
    if (isa_supported(isa)) out.push_back(isa);
  return out;
}

Isa active_isa() { return Isa(selected().load(std::memory_order_relaxed)); }

void set_isa(Isa isa) {
  if (!isa_supported(isa))
    throw std::invalid_argument(std::string("ISA ") + isa_name(isa) + " is not supported by this CPU (best: " +
                                isa_name(best_isa()) + ")");
  selected().store(int(isa), std::memory_order_relaxed);
}

const char* bf16_pairs() {
  if (!isa_supported(Isa::avx512bf16)) return "none";
  return bf16dot::pair_mode_name(bf16dot::pair_mode());
}

const char* fp8_placement() {
  if (!isa_supported(Isa::avx2)) return "none";
  return detail::fp8_fp32_placement() ? "fp32" : "f16c";
}

std::string isa_report() {
  const CpuFeatures& f = cpu_features();
  std::string choice;  // the variant's own run-time choice, if it has one
  if (active_isa() == Isa::avx512bf16)
    choice = std::string("; BF16 pairs on ") +
             (bf16dot::pair_mode() == bf16dot::PairMode::fma ? "fp32 FMAs" : "dot products");
  if (active_isa() == Isa::avx2) choice = std::string("; FP8 decode placed as ") + fp8_placement();
  return std::string("kernels: ") + isa_name(active_isa()) + " (best " + isa_name(best_isa()) + choice + "; CPU " +
         f.name() + "; " + f.summary() + ")";
}

}  // namespace v4::kernels
