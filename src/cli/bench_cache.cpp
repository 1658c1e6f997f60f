#include "cli/bench_cache.h"

#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <random>
#include <span>
#include <stdexcept>
#include <string>
#include <thread>

#include <fmt/format.h>

#include "core/checkpoint.h"
#include "kernels/cpu_features.h"
#include "kernels/isa.h"
#include "model/model.h"
#include "runtime/cache_identity.h"
#include "runtime/engine.h"

namespace v4::cli {

namespace {

namespace fs = std::filesystem;

constexpr const char* kUsage =
    "usage: v4flash bench cache --model DIR [--tokens 32768] [--threads N] [--step-tokens 2048] [--cache-dir DIR]\n"
    "                           [--exact] [--json]\n"
    "The prefill bound: one forward of the whole prompt as a single chunk (what `bench prefill --tokens N`\n"
    "times), then the time to first token (one generated token, greedy) of that prompt of --tokens random ids:\n"
    "  uncached     a fresh engine with an empty --cache-dir (default: a new folder in /tmp, removed after)\n"
    "  memory hit   the same prompt again on that engine (the memory prefix cache)\n"
    "  disk hit     the engine shut down and a new one started on the same directory (empty memory cache)\n"
    "and the snapshot files: bytes of the longest one per token it holds, bytes of all of them. The three\n"
    "first tokens and their top-20 logprobs must be identical bit for bit, or the run fails. The uncached\n"
    "TTFT over the one-chunk prefill shows what the engine's chunking (--step-tokens per step) costs.\n";

struct Run {
  double ttft = 0;
  int cached = 0;
  runtime::GeneratedToken first;
};

Run run_once(runtime::Engine& engine, const std::vector<int32_t>& prompt) {
  runtime::GenerationRequest r;
  r.id = "bench-cache";
  r.prompt = prompt;
  r.params.temperature = 0;
  r.params.max_tokens = 1;
  r.params.top_logprobs = 20;
  std::mutex m;
  std::condition_variable cv;
  bool done = false;
  Run out;
  std::string error;
  runtime::RequestCallbacks cb;
  cb.on_token = [&](const runtime::GeneratedToken& t) { out.first = t; };
  cb.on_finish = [&](const runtime::FinishInfo& f) {
    std::lock_guard lock(m);
    out.ttft = f.ttft_seconds;
    out.cached = f.cached_prompt_tokens;
    if (f.reason == runtime::FinishReason::Error) error = f.error;
    done = true;
    cv.notify_all();
  };
  engine.submit(std::move(r), cb);
  std::unique_lock lock(m);
  cv.wait(lock, [&] { return done; });
  if (!error.empty()) throw std::runtime_error("bench cache: request failed: " + error);
  return out;
}

bool same_first_token(const Run& a, const Run& b) {
  if (a.first.token != b.first.token || !a.first.logprob || !b.first.logprob) return false;
  if (std::memcmp(&a.first.logprob->logprob, &b.first.logprob->logprob, sizeof(float)) != 0) return false;
  if (a.first.top.size() != b.first.top.size()) return false;
  for (size_t i = 0; i < a.first.top.size(); ++i)
    if (a.first.top[i].token != b.first.top[i].token ||
        std::memcmp(&a.first.top[i].logprob, &b.first.top[i].logprob, sizeof(float)) != 0)
      return false;
  return true;
}

const std::string& cpu_model() { return kernels::cpu_features().name(); }

const char* isa() { return kernels::isa_name(kernels::active_isa()); }

void wait_for_writes(runtime::Engine& engine) {
  while (engine.metrics().disk_cache_writes_pending > 0) std::this_thread::sleep_for(std::chrono::milliseconds(20));
}

// Largest snapshot file (the longest prefix) and the sum of all, under the cache directory.
std::pair<int64_t, int64_t> snapshot_bytes(const fs::path& dir) {
  int64_t largest = 0, total = 0;
  for (const auto& e : fs::recursive_directory_iterator(dir))
    if (e.is_regular_file() && e.path().extension() == ".snap") {
      largest = std::max<int64_t>(largest, int64_t(e.file_size()));
      total += int64_t(e.file_size());
    }
  return {largest, total};
}

// The model's forward of the whole prompt in one chunk on a fresh state: the bound the engine's
// chunked prefill is compared with.
double one_chunk_prefill_seconds(model::Model& model, const std::vector<int32_t>& prompt) {
  auto state = model.new_state();
  const model::BatchItem item{state.get(), prompt, false};
  const auto t0 = std::chrono::steady_clock::now();
  model.forward(std::span<const model::BatchItem>(&item, 1));
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int run_bench_cache(const Args& args) {
  ArgParser p(args);
  if (p.flag("help")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  p.check_known({"model", "tokens", "threads", "step-tokens", "cache-dir"}, {"exact", "json", "help"});
  const auto dir = p.value("model");
  if (!dir) throw std::invalid_argument("--model DIR is required");
  const int64_t tokens = p.integer("tokens", 32768, 2, int64_t(1) << 24);
  const int threads = int(p.integer("threads", 0, 0, 4096));
  const bool exact = p.flag("exact"), json = p.flag("json");
  const bool own_dir = !p.value("cache-dir");
  const fs::path cache_dir = own_dir ? fs::temp_directory_path() / fmt::format("v4flash-bench-cache-{}", ::getpid())
                                     : fs::path(*p.value("cache-dir"));
  if (own_dir) fs::remove_all(cache_dir);

  const auto ckpt = core::Checkpoint::open(*dir);
  model::ModelOptions mo;
  mo.exact = exact;
  mo.threads = threads;
  std::shared_ptr<model::Model> model = model::Model::load(*ckpt, mo);
  std::mt19937 rng(1234);
  std::uniform_int_distribution<int32_t> pick(2, int32_t(model->config().vocab_size - 1));
  std::vector<int32_t> prompt(static_cast<size_t>(tokens));
  for (auto& t : prompt) t = pick(rng);

  runtime::EngineOptions eo;
  eo.step_token_budget = int(p.integer("step-tokens", eo.step_token_budget, 1, 1 << 24));
  const double one_chunk = one_chunk_prefill_seconds(*model, prompt);
  eo.cache_dir = cache_dir.string();
  eo.cache_identity = runtime::cache_identity(*dir, exact);
  eo.prefix_cache_budget = int64_t(16) << 30;
  eo.state_memory_budget = int64_t(64) << 30;
  Run uncached, memory, disk;
  {
    auto engine = runtime::create_engine(model, eo);
    uncached = run_once(*engine, prompt);
    wait_for_writes(*engine);  // the memory hit is timed without the writer competing for cores
    memory = run_once(*engine, prompt);
    engine->shutdown();
  }
  {
    auto engine = runtime::create_engine(model, eo);  // a restart: empty memory, the same directory
    disk = run_once(*engine, prompt);
    engine->shutdown();
  }
  const auto [largest, total] = snapshot_bytes(cache_dir);
  if (own_dir) fs::remove_all(cache_dir);
  const bool identical = same_first_token(uncached, memory) && same_first_token(uncached, disk);
  const double per_token = disk.cached > 0 ? double(largest) / double(disk.cached) : 0;
  const unsigned hw = std::thread::hardware_concurrency();
  if (json) {
    std::printf("{\"cpu\":\"%s\",\"isa\":\"%s\",\"threads\":%u,\"exact\":%s,\"prompt_tokens\":%lld,"
                "\"step_tokens\":%d,\"prefill_one_chunk_s\":%.4f,\"ttft_over_prefill\":%.4f,"
                "\"ttft_uncached_s\":%.4f,\"ttft_memory_hit_s\":%.4f,\"ttft_disk_hit_s\":%.4f,"
                "\"memory_cached_tokens\":%d,\"disk_cached_tokens\":%d,\"disk_over_uncached\":%.5f,"
                "\"snapshot_bytes_per_token\":%.1f,\"largest_snapshot_bytes\":%lld,\"all_snapshots_bytes\":%lld,"
                "\"identical\":%s}\n",
                cpu_model().c_str(), isa(), threads > 0 ? unsigned(threads) : hw, exact ? "true" : "false",
                (long long)tokens, eo.step_token_budget, one_chunk, uncached.ttft / one_chunk, uncached.ttft, memory.ttft,
                disk.ttft, memory.cached, disk.cached,
                disk.ttft / uncached.ttft, per_token, (long long)largest, (long long)total, identical ? "true" : "false");
  } else {
    std::printf("bench cache: %s, %s, %u threads, %s numerics, prompt of %lld tokens\n", cpu_model().c_str(), isa(),
                threads > 0 ? unsigned(threads) : hw, exact ? "exact" : "default", (long long)tokens);
    std::printf("  one chunk    %9.3f s  (the model's forward of the whole prompt at once, as bench prefill)\n", one_chunk);
    std::printf("  uncached     TTFT %9.3f s  = %.3f x the one-chunk prefill (engine steps of %d tokens)\n", uncached.ttft,
                uncached.ttft / one_chunk, eo.step_token_budget);
    std::printf("  memory hit   TTFT %9.3f s  (%d tokens cached)  %.4f of uncached\n", memory.ttft, memory.cached,
                memory.ttft / uncached.ttft);
    std::printf("  disk hit     TTFT %9.3f s  (%d tokens cached)  %.4f of uncached, after a restart\n", disk.ttft,
                disk.cached, disk.ttft / uncached.ttft);
    std::printf("  on disk: longest snapshot %.1f MiB = %.0f bytes per cached token; all snapshots of the prompt %.1f MiB\n",
                double(largest) / 1048576.0, per_token, double(total) / 1048576.0);
    std::printf("  first token and top-20 logprobs identical in the three runs: %s\n", identical ? "yes" : "NO");
  }
  return identical && disk.cached > 0 ? 0 : 1;
}

}  // namespace v4::cli
