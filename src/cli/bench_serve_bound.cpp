#include "cli/bench_serve_bound.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <vector>

#include "core/checkpoint.h"
#include "kernels/thread_pool.h"
#include "model/model.h"
#include "runtime/sampler.h"

namespace v4::cli {

using Clock = std::chrono::steady_clock;

double generate_tokens_per_second(const std::string& model_dir, int threads, int prompt_tokens, int output_tokens) {
  auto ckpt = core::Checkpoint::open(model_dir);
  model::ModelOptions opts;
  opts.threads = threads;
  auto model = model::Model::load(*ckpt, opts);
  const auto& cfg = model->config();
  std::mt19937_64 gen(5);
  std::vector<int32_t> prompt(size_t(std::max(1, prompt_tokens)));
  for (auto& t : prompt) t = int32_t(gen() % uint64_t(std::min<int64_t>(cfg.vocab_size, 100000)));
  const runtime::SamplingParams params;  // the product's defaults
  runtime::RequestRng rng(1);
  const auto t0 = Clock::now();
  auto state = model->new_state();
  model::BatchItem item{state.get(), prompt, false};
  std::vector<int32_t> out;
  auto logits = model->forward(std::span<const model::BatchItem>(&item, 1));
  for (int k = 0; k < output_tokens; ++k) {
    out.push_back(runtime::sample_token(logits, params, rng, out));
    if (k + 1 == output_tokens) break;
    item.tokens = std::span<const int32_t>(&out.back(), 1);
    logits = model->forward(std::span<const model::BatchItem>(&item, 1));
  }
  return double(output_tokens) / std::chrono::duration<double>(Clock::now() - t0).count();
}

double ServeBounds::read_tokens_per_s(double batch) const {
  const double bytes = cost.decode_step_bytes(std::max(1.0, batch));
  return bytes > 0 ? std::max(1.0, batch) * bandwidth_gbs * 1e9 / bytes : 0;
}

double ServeBounds::compute_tokens_per_s(double) const {
  const double flops = cost.decode_token_flops();
  return flops > 0 ? peak_gflops * 1e9 / flops : 0;
}

double ServeBounds::tokens_per_s(double batch) const {
  return std::min(read_tokens_per_s(batch), compute_tokens_per_s(batch));
}

ServeBounds measure_serve_bounds(const std::string& model_dir, int threads, int64_t buffer_mib) {
  ServeBounds b;
  b.cost = token_cost(*core::Checkpoint::open(model_dir));
  kernels::ThreadPool pool(std::max(1, threads));
  const auto buffer = bandwidth_buffer(uint64_t(buffer_mib));
  measure_read_bandwidth(buffer.as<const float>(), pool, 1);  // warm-up
  b.bandwidth_gbs = measure_read_bandwidth(buffer.as<const float>(), pool, 3).best;
  b.bandwidth_huge_share = huge_share(buffer);
  b.peak_gflops = measure_best_peak_gflops(pool, 3);
  return b;
}

}  // namespace v4::cli
