// `v4flash cpu`: what this CPU has and which kernel variant runs (kernels/isa.h).
//   v4flash cpu [--json]           the CPU, its features, the variants it runs, the one in use
//   v4flash cpu --supports NAME    exit 0 if this CPU runs variant NAME, 1 if not (scripts, tests)
#include <cstdio>
#include <string>

#include "cli/command.h"
#include "kernels/cpu_features.h"
#include "kernels/isa.h"

namespace v4::cli {
namespace {

int cpu(const Args& args) {
  ArgParser p(args);
  p.check_known({"supports"}, {"json"});
  if (auto name = p.value("supports")) return kernels::isa_supported(kernels::parse_isa(*name)) ? 0 : 1;
  const auto& f = kernels::cpu_features();
  std::string supported;
  for (kernels::Isa isa : kernels::supported_isas()) supported += std::string(supported.empty() ? "" : " ") + kernels::isa_name(isa);
  if (p.flag("json")) {
    std::string list;
    for (kernels::Isa isa : kernels::supported_isas())
      list += std::string(list.empty() ? "\"" : ",\"") + kernels::isa_name(isa) + "\"";
    std::printf("{\"cpu\":\"%s\",\"vendor\":\"%s\",\"features\":\"%s\",\"supported\":[%s],\"best\":\"%s\",\"active\":\"%s\","
                "\"bf16_pairs\":\"%s\",\"fp8_placement\":\"%s\"}\n",
                f.model.c_str(), f.vendor.c_str(), f.summary().c_str(), list.c_str(),
                kernels::isa_name(kernels::best_isa()), kernels::isa_name(kernels::active_isa()), kernels::bf16_pairs(),
                kernels::fp8_placement());
    return 0;
  }
  std::printf("cpu:       %s (%s)\nfeatures:  %s\nvariants:  %s\nbest:      %s\nactive:    %s%s\n", f.model.c_str(),
              f.vendor.c_str(), f.summary().c_str(), supported.c_str(), kernels::isa_name(kernels::best_isa()),
              kernels::isa_name(kernels::active_isa()),
              kernels::active_isa() == kernels::best_isa() ? "" : " (chosen by --isa or V4FLASH_ISA)");
  if (std::string(kernels::bf16_pairs()) != "none")
    std::printf("bf16 pairs: %s (avx512bf16: %s; V4FLASH_BF16_PAIRS=dot|fma to choose)\n", kernels::bf16_pairs(),
                std::string(kernels::bf16_pairs()) == "fma" ? "two fp32 FMAs per pair, the dot product's bits"
                                                            : "vdpbf16ps");
  if (std::string(kernels::fp8_placement()) != "none")
    std::printf("fp8 placement: %s (avx2 decode tiles: %s)\n", kernels::fp8_placement(),
                std::string(kernels::fp8_placement()) == "fp32" ? "codes as fp32 numbers, subnormal FMA operands at full speed here"
                                                                : "codes through F16C, subnormal FMA operands slow here");
  return 0;
}

V4_COMMAND("cpu", "the CPU's features and the kernel variant in use (--isa / V4FLASH_ISA to choose)", cpu);

}  // namespace
}  // namespace v4::cli
