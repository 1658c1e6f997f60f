#include "cli/bench_serve_bound.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <mutex>
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

StepBytes step_bytes(const std::string& model_dir) {
  auto ckpt = core::Checkpoint::open(model_dir);
  const auto& cfg = ckpt->config();
  StepBytes b;
  b.layers = cfg.num_hidden_layers;
  b.experts = cfg.n_routed_experts;
  b.experts_per_token = cfg.num_experts_per_tok;
  double routed = 0;
  for (const auto& [name, view] : ckpt->tensors()) {
    if (name.rfind("mtp.", 0) == 0) continue;  // the MTP block does not run in decode
    const double bytes = double(view->nbytes);
    if (name == "embed.weight" || name.find(".ffn.gate.tid2eid") != std::string::npos)
      b.embed_row += bytes / double(cfg.vocab_size);  // rows looked up per token
    else if (name.find(".ffn.experts.") != std::string::npos)
      routed += bytes;
    else
      b.dense += bytes;
  }
  const double experts = double(b.experts) * double(b.layers);
  b.expert = experts > 0 ? routed / experts : 0;
  return b;
}

double StepBytes::at_batch(double batch) const {
  const double e = double(experts), k = double(experts_per_token);
  const double distinct = e > 0 ? e * (1.0 - std::pow(1.0 - k / e, std::max(1.0, batch))) : 0;
  return dense + embed_row * batch + distinct * expert * double(layers);
}

double read_bandwidth(int threads, int64_t buffer_mib) {
  std::vector<float> buffer(size_t(buffer_mib << 20) / sizeof(float), 1.0f);
  kernels::ThreadPool pool(std::max(1, threads));
  double best = 0;
  for (int r = 0; r < 4; ++r) {
    std::mutex mutex;
    double total = 0;
    const auto t0 = Clock::now();
    pool.parallel_for(int64_t(buffer.size()), [&](int64_t begin, int64_t end) {
      float acc[16] = {};
      int64_t i = begin;
      for (; i + 16 <= end; i += 16) {
        __builtin_prefetch(buffer.data() + std::min(end - 1, i + 2048));  // 8 KiB ahead: see docs/performance.md
        for (int l = 0; l < 16; ++l) acc[l] += buffer[size_t(i + l)];
      }
      for (; i < end; ++i) acc[0] += buffer[size_t(i)];
      double s = 0;
      for (float a : acc) s += a;
      std::lock_guard lock(mutex);
      total += s;
    });
    const double sec = std::chrono::duration<double>(Clock::now() - t0).count();
    volatile double sink = total;  // keeps the reads from being optimised away
    (void)sink;
    best = std::max(best, double(buffer.size() * sizeof(float)) / sec);
  }
  return best;
}

}  // namespace v4::cli
