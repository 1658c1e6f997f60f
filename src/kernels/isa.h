#pragma once
// The kernel variant in use. One binary carries every variant; the best the CPU runs is chosen at
// start-up (CPUID + XGETBV, kernels/cpu_features.h), or the one named by V4FLASH_ISA or `--isa`
// (for tests and benchmarks). Each variant has its own fixed summation order, so results are
// bitwise batch invariant within a variant, not across variants.
#include <string>
#include <vector>

namespace v4::kernels {

enum class Isa {
  scalar,      // linear_reference: portable C++
  avx2,        // AVX2 + FMA + F16C, fp32 FMAs on decoded weights
  avx512,      // AVX-512 F/BW/VL/DQ, fp32 FMAs on decoded weights
  avx512bf16,  // + AVX-512 BF16 and VBMI: FP8/FP4 weights on BF16 dot products
};

const char* isa_name(Isa isa);
// Throws std::invalid_argument naming the accepted names.
Isa parse_isa(const std::string& name);

// Whether this CPU (and OS) can run the variant.
bool isa_supported(Isa isa);
// The best supported variant.
Isa best_isa();
// Every variant, and those this CPU runs (scalar first, best last).
std::vector<Isa> all_isas();
std::vector<Isa> supported_isas();

// The variant linear() uses: V4FLASH_ISA if set (an unsupported or unknown name throws on first
// use), else best_isa().
Isa active_isa();
// Selects the variant for the whole process; throws std::invalid_argument if the CPU lacks it.
// Not meant to be changed while kernels run on other threads.
void set_isa(Isa isa);

// How the avx512bf16 variant multiplies BF16 pairs (kernels/bf16_dot.h): "dot" (vdpbf16ps) or "fma"
// (two fp32 FMAs in its order, the same bits; where the CPU issues vdpbf16ps at half the FMA
// rate); V4FLASH_BF16_PAIRS=dot|fma overrides the choice. "none" on a CPU without AVX-512 BF16.
const char* bf16_pairs();

// How the avx2 variant places FP8 codes in its decode tiles: "fp32" (where subnormal FMA operands
// run at full speed, probed at first use) or "f16c"; the same bits either way. "none" without AVX2.
const char* fp8_placement();

// One line for logs: "kernels: avx512bf16 (best avx512bf16; CPU AMD EPYC ...; avx2 fma ...)".
std::string isa_report();

// Restores the previous variant when it goes out of scope (tests, benchmarks).
class IsaScope {
 public:
  explicit IsaScope(Isa isa) : previous_(active_isa()) { set_isa(isa); }
  ~IsaScope() { set_isa(previous_); }
  IsaScope(const IsaScope&) = delete;
  IsaScope& operator=(const IsaScope&) = delete;

 private:
  Isa previous_;
};

}  // namespace v4::kernels
