#pragma once
// What `bench serve --model DIR` measures beside the load: the single-sequence generation baseline
// (the `v4flash generate` loop in this process) and the read bound of a decode step.
#include <cstdint>
#include <string>

namespace v4::cli {

// Tokens/s of one sequence: prefill `prompt_tokens` random tokens, then `output_tokens` steps of
// forward + runtime::sample_token with the product's default parameters.
double generate_tokens_per_second(const std::string& model_dir, int threads, int prompt_tokens, int output_tokens);

// The bytes a decode step of `batch` sequences reads at least: every dense weight once, one
// embedding row per sequence, and each routed expert the step uses once (the expected number of
// distinct experts under uniform routing, E * (1 - (1 - k/E)^B) per layer).
struct StepBytes {
  double dense = 0, embed_row = 0, expert = 0;  // expert: bytes of one routed expert of one layer
  int64_t layers = 0, experts = 0, experts_per_token = 0;
  double at_batch(double batch) const;
};
StepBytes step_bytes(const std::string& model_dir);

// Read bandwidth in bytes/s: the best of a few sums over a buffer much larger than the caches.
double read_bandwidth(int threads, int64_t buffer_mib);

}  // namespace v4::cli
