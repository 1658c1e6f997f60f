// `v4flash bench sample [--vocab 128846] [--threads 1] [--batch 64] [--repeats 200] [--json]`
// Times runtime::sample_token on synthetic logits rows of the product's vocabulary size, per
// distribution and parameter set, one row at a time on one thread (min and median microseconds per
// token), then a batch of rows sampled over --threads threads as the engine does in a step.
#include "cli/bench_sample.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kernels/thread_pool.h"
#include "runtime/sampler.h"

namespace v4::cli {

namespace {

using Clock = std::chrono::steady_clock;

struct Case {
  std::string name;
  std::vector<float> logits;
  runtime::SamplingParams params;
};

runtime::SamplingParams sampling(double t, double top_p, int top_k = 0, double min_p = 0) {
  runtime::SamplingParams p;
  p.temperature = t;
  p.top_p = top_p;
  p.top_k = top_k;
  p.min_p = min_p;
  return p;
}

std::vector<Case> cases(size_t vocab) {
  std::mt19937_64 gen(1);
  std::normal_distribution<float> normal(0, 1);
  auto normal_row = [&](float scale) {
    std::vector<float> r(vocab);
    for (auto& x : r) x = normal(gen) * scale;
    return r;
  };
  std::vector<float> flat(vocab, 0.0f), peaked = normal_row(1.0f);
  peaked[vocab / 2] = 30.0f;
  std::vector<Case> out;
  out.push_back({"flat t=2 top_p=0.99 (worst case)", flat, sampling(2.0, 0.99)});
  out.push_back({"flat t=0.7 top_p=0.99", flat, sampling(0.7, 0.99)});
  out.push_back({"flat defaults t=0.7 top_p=0.9", flat, sampling(0.7, 0.9)});
  out.push_back({"normal(0,0.05) defaults (near flat)", normal_row(0.05f), sampling(0.7, 0.9)});
  out.push_back({"normal(0,0.3) defaults", normal_row(0.3f), sampling(0.7, 0.9)});
  out.push_back({"normal(0,1) defaults", normal_row(1.0f), sampling(0.7, 0.9)});
  out.push_back({"normal(0,4) defaults", normal_row(4.0f), sampling(0.7, 0.9)});
  out.push_back({"peaked defaults", peaked, sampling(0.7, 0.9)});
  out.push_back({"normal(0,1) top_k=50 top_p=0.9", normal_row(1.0f), sampling(1.0, 0.9, 50)});
  out.push_back({"normal(0,1) min_p=0.05 top_p=1", normal_row(1.0f), sampling(1.0, 1.0, 0, 0.05)});
  auto pen = sampling(0.7, 0.9);
  pen.frequency_penalty = 0.5;
  pen.presence_penalty = 0.5;
  pen.logit_bias = {{1, 5.0f}, {2, -100.0f}};
  out.push_back({"normal(0,1) penalties+bias", normal_row(1.0f), pen});
  out.push_back({"greedy", normal_row(1.0f), sampling(0, 1)});
  return out;
}

struct Timing {
  double min_us = 0, median_us = 0;
};

Timing time_one(const Case& c, int repeats, const std::vector<int32_t>& history) {
  runtime::RequestRng rng(7);
  std::vector<double> us;
  for (int r = 0; r < repeats + 2; ++r) {
    const auto t0 = Clock::now();
    volatile int32_t token = runtime::sample_token(c.logits, c.params, rng, history);
    (void)token;
    if (r >= 2) us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  std::sort(us.begin(), us.end());
  return {us.front(), us[us.size() / 2]};
}

}  // namespace

int run_bench_sample(const cli::Args& args) {
  cli::ArgParser p(args);
  if (p.flag("help") || p.flag("h")) {
    std::puts(
        "usage: v4flash bench sample [--vocab 128846] [--threads N] [--batch 64] [--repeats 200] [--json]\n"
        "Microseconds per sampled token (min and median of --repeats) for each distribution and\n"
        "parameter set on one thread, then --batch rows of the worst case sampled over --threads\n"
        "threads (the engine's per-step sampling). Target: worst case <= 1000 us on one thread.");
    return 0;
  }
  p.check_known({"vocab", "threads", "batch", "repeats"}, {"json", "help", "h"});
  const size_t vocab = size_t(p.integer("vocab", 128846, 2, 1 << 24));
  const int threads = int(p.integer("threads", std::max(1u, std::thread::hardware_concurrency()), 1, 1024));
  const int batch = int(p.integer("batch", 64, 1, 4096));
  const int repeats = int(p.integer("repeats", 200, 1, 100000));
  const bool json = p.flag("json");
  std::vector<int32_t> history(64);
  for (size_t i = 0; i < history.size(); ++i) history[i] = int32_t(i * 97 % vocab);

  const auto all = cases(vocab);
  std::string rows;
  if (!json) std::printf("sampler, vocabulary %zu, one thread\n%-36s %10s %10s\n", vocab, "case", "min us", "median us");
  for (const auto& c : all) {
    const Timing t = time_one(c, repeats, history);
    if (json) {
      rows += (rows.empty() ? "" : ",") + std::string("{\"case\":\"") + c.name + "\",\"min_us\":" +
              std::to_string(t.min_us) + ",\"median_us\":" + std::to_string(t.median_us) + "}";
    } else {
      std::printf("%-36s %10.1f %10.1f\n", c.name.c_str(), t.min_us, t.median_us);
    }
  }

  // A step's sampling: `batch` worst-case rows over the pool, each row its own random stream.
  kernels::ThreadPool pool(threads);
  std::vector<double> step_us;
  for (int r = 0; r < std::max(3, repeats / 20); ++r) {
    const auto t0 = Clock::now();
    pool.parallel_for(batch, [&](int64_t begin, int64_t end) {
      for (int64_t i = begin; i < end; ++i) {
        runtime::RequestRng rng{uint64_t(i)};
        (void)runtime::sample_token(all[0].logits, all[0].params, rng);
      }
    });
    step_us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  std::sort(step_us.begin(), step_us.end());
  if (json) {
    std::printf("{\"vocab\":%zu,\"cases\":[%s],\"batch\":%d,\"threads\":%d,\"batch_min_us\":%.1f,\"batch_median_us\":%.1f}\n",
                vocab, rows.c_str(), batch, threads, step_us.front(), step_us[step_us.size() / 2]);
  } else {
    std::printf("batch of %d worst-case rows over %d threads: min %.1f us, median %.1f us (%.1f us per token)\n",
                batch, threads, step_us.front(), step_us[step_us.size() / 2], step_us[step_us.size() / 2] / batch);
  }
  return 0;
}

}  // namespace v4::cli
