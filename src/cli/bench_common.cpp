#include "cli/bench_common.h"

#include <algorithm>
#include <random>

#include "kernels/cpu_features.h"
#include "kernels/isa.h"

namespace v4::cli {

std::string machine_json() {
  const auto& f = kernels::cpu_features();
  return std::string(",\"isa\":\"") + kernels::isa_name(kernels::active_isa()) + "\",\"cpu\":\"" + f.name() +
         "\",\"cpu_features\":\"" + f.summary() + "\"";
}

std::vector<int32_t> random_tokens(int64_t count, int64_t vocab, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<int32_t> pick(2, int32_t(std::max<int64_t>(3, vocab) - 1));
  std::vector<int32_t> t(static_cast<size_t>(count));
  for (auto& v : t) v = pick(rng);
  return t;
}

}  // namespace v4::cli
