#pragma once
// What `bench serve --model DIR` measures beside the load: the single-sequence generation baseline
// (the `v4flash generate` loop in this process) and the read bound of a decode step.
#include <cstdint>
#include <string>

#include "cli/bench_bounds.h"

namespace v4::cli {

// Tokens/s of one sequence: prefill `prompt_tokens` random tokens, then `output_tokens` steps of
// forward + runtime::sample_token with the product's default parameters.
double generate_tokens_per_second(const std::string& model_dir, int threads, int prompt_tokens, int output_tokens);

// The bounds a level's decode tokens/s is compared with: a step of `batch` sequences takes at
// least the time to read its bytes (every dense weight once, one embedding row per sequence, each
// routed expert the step uses once: the expected number of distinct experts under uniform
// routing) at the read bandwidth, and at least the time to multiply its FLOPs at the peak of the
// best multiply instruction the kernels have, both measured in this run.
struct ServeBounds {
  TokenCost cost;
  double bandwidth_gbs = 0, peak_gflops = 0;
  double bandwidth_huge_share = 0;  // of the buffer it streamed over, in 2 MiB pages
  double read_tokens_per_s(double batch) const;
  double compute_tokens_per_s(double batch) const;
  double tokens_per_s(double batch) const;  // the lower of the two
};
ServeBounds measure_serve_bounds(const std::string& model_dir, int threads, int64_t buffer_mib);

}  // namespace v4::cli
