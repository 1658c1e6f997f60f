#include "cli/bench_context.h"

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdio>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/bench_common.h"
#include "core/checkpoint.h"
#include "kernels/isa.h"
#include "model/model.h"
#include "model/synthetic_state.h"

namespace v4::cli {

namespace {

using Clock = std::chrono::steady_clock;
using Ops = std::array<double, model::ForwardTrace::kOps>;

const char* kUsage =
    "usage: v4flash bench context --model DIR [--contexts 1024,65536] [--threads 1,2] [--tokens 8]\n"
    "                             [--repeats 3] [--weights mapped|hugepages] [--json]\n"
    "Decode of one sequence at each context length: --tokens steps after a state of that many\n"
    "positions (best of --repeats runs after a warm-up, median beside). The state is synthetic\n"
    "(model/synthetic_state.h: every window row, compressed entry and indexer key filled with random\n"
    "values): a step's cost depends on how many entries it reads, not on their values, and a real\n"
    "64K-token prefill would take far longer than the measurement. Contexts are multiples of 128.\n"
    "Prints tokens/s and its ratio to the first context's, the share of the layers' time in the\n"
    "indexer and in the attention core (scores and values over the window and the selected entries),\n"
    "the state's size, and its bytes per context position with the projection to 1M positions.\n";

struct Options {
  std::string model_dir;
  std::vector<int32_t> contexts{1024, 65536}, threads{1, 2};
  int tokens = 8, repeats = 3;
  bool json = false;
  core::WeightMemory weights = core::WeightMemory::mapped;
};

Options parse(const Args& args) {
  ArgParser p(args);
  p.check_known({"model", "contexts", "threads", "tokens", "repeats", "weights"}, {"json"});
  Options o;
  const auto dir = p.value("model");
  if (!dir) throw std::invalid_argument("--model DIR is required");
  o.model_dir = *dir;
  if (const auto c = p.value("contexts")) o.contexts = parse_token_ids(*c);
  if (const auto t = p.value("threads")) o.threads = parse_token_ids(*t);
  for (int32_t c : o.contexts)
    if (c < 128 || c % 128 != 0) throw std::invalid_argument("--contexts: each must be a positive multiple of 128");
  for (int32_t t : o.threads)
    if (t < 1 || t > 1024) throw std::invalid_argument("--threads: each must be in 1..1024");
  if (o.contexts.empty() || o.threads.empty()) throw std::invalid_argument("--contexts and --threads need a value");
  o.tokens = int(p.integer("tokens", 8, 1, 4096));
  o.repeats = int(p.integer("repeats", 3, 1, 100));
  o.json = p.flag("json");
  o.weights = core::parse_weight_memory(p.value_or("weights", "mapped"), "--weights");
  return o;
}

struct Result {
  int64_t context = 0;
  double tps_best = 0, tps_median = 0;
  double layers_seconds = 0, run_seconds = 0;  // best run
  Ops ops{};                                   // best run, summed over the layers
  double state_bytes = 0;                      // after the run
};

Result measure(model::Model& m, int64_t context, const Options& o) {
  const auto blank = m.new_state();
  const auto next = random_tokens(o.tokens, m.config().vocab_size, 7);
  model::ForwardTrace trace;
  trace.capture_times = true;
  std::vector<double> secs;
  Result r;
  r.context = context;
  for (int rep = 0; rep <= o.repeats; ++rep) {  // the first run warms the caches and is not counted
    // A fresh state per run (a clone would drop the entries' spare capacity, and the first block
    // completed would copy them all: a 0.5 GB copy at 1M positions).
    auto state = model::synthetic_state(*blank, context, uint32_t(context));
    double elapsed = 0;
    Ops ops{};
    for (int step = 0; step < o.tokens; ++step) {
      const model::BatchItem item{state.get(), std::span<const int32_t>(&next[size_t(step)], 1), false};
      const auto t0 = Clock::now();
      m.forward_traced(std::span<const model::BatchItem>(&item, 1), &trace);
      elapsed += std::chrono::duration<double>(Clock::now() - t0).count();
      for (size_t op = 0; op < ops.size(); ++op) ops[op] += trace.op_seconds[op];
    }
    r.state_bytes = double(state->bytes());
    if (rep == 0) continue;
    if (secs.empty() || elapsed < *std::min_element(secs.begin(), secs.end())) {
      r.ops = ops;
      r.run_seconds = elapsed;
    }
    secs.push_back(elapsed);
  }
  std::sort(secs.begin(), secs.end());
  r.tps_best = o.tokens / secs.front();
  r.tps_median = o.tokens / secs[secs.size() / 2];
  for (double v : r.ops) r.layers_seconds += v;
  return r;
}

// Bytes per context position: the growth between the shortest and the longest context.
double bytes_per_position(const std::vector<Result>& rs) {
  const Result& a = rs.front();
  const Result& b = rs.back();
  return b.context == a.context ? b.state_bytes / double(b.context)
                                : (b.state_bytes - a.state_bytes) / double(b.context - a.context);
}

// The state at 1M positions: the first context's, grown at bytes_per_position.
double bytes_at_1m(const std::vector<Result>& rs) {
  return rs.front().state_bytes + bytes_per_position(rs) * double((1 << 20) - rs.front().context);
}

void print_text(int threads, const std::vector<Result>& rs) {
  std::printf("threads %d\n", threads);
  std::printf("  %9s %12s %12s %10s %10s %10s %12s\n", "context", "tokens/s", "(median)", "vs first", "indexer",
              "attn core", "state MB");
  for (const Result& r : rs) {
    const double idx = r.ops[model::ForwardTrace::indexer], core = r.ops[model::ForwardTrace::attn_core];
    std::printf("  %9lld %12.3f %12.3f %10.3f %9.1f%% %9.1f%% %12.1f\n", (long long)r.context, r.tps_best, r.tps_median,
                r.tps_best / rs.front().tps_best, 100 * idx / r.run_seconds, 100 * core / r.run_seconds,
                r.state_bytes / 1e6);
  }
  std::printf("  state: %.1f bytes per context position; at 1M positions %.2f GiB\n", bytes_per_position(rs),
              bytes_at_1m(rs) / double(1 << 30));
}

std::string json_row(int threads, const std::vector<Result>& rs) {
  std::string out = "{\"threads\":" + std::to_string(threads) + ",\"contexts\":[";
  for (size_t i = 0; i < rs.size(); ++i) {
    const Result& r = rs[i];
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  "%s{\"context\":%lld,\"tokens_per_s\":%.4f,\"tokens_per_s_median\":%.4f,\"ratio_to_first\":%.4f,"
                  "\"indexer_share\":%.4f,\"attn_core_share\":%.4f,\"layers_share\":%.4f,\"state_bytes\":%.0f}",
                  i ? "," : "", (long long)r.context, r.tps_best, r.tps_median, r.tps_best / rs.front().tps_best,
                  r.ops[model::ForwardTrace::indexer] / r.run_seconds,
                  r.ops[model::ForwardTrace::attn_core] / r.run_seconds, r.layers_seconds / r.run_seconds,
                  r.state_bytes);
    out += buf;
  }
  char tail[256];
  std::snprintf(tail, sizeof tail, "],\"state_bytes_per_position\":%.1f,\"state_bytes_at_1m\":%.0f",
                bytes_per_position(rs), bytes_at_1m(rs));
  return out + tail + machine_json() + "}";
}

}  // namespace

int run_bench_context(const Args& args) {
  if (!args.empty() && (args[0] == "--help" || args[0] == "-h")) {
    std::fputs(kUsage, stdout);
    return 0;
  }
  const Options o = parse(args);
  const auto ckpt = core::Checkpoint::open(o.model_dir);
  if (!o.json) std::printf("%s\n", kernels::isa_report().c_str());
  std::vector<std::string> rows;
  for (int32_t threads : o.threads) {
    model::ModelOptions mo;
    mo.threads = threads;
    mo.weight_memory = o.weights;
    const auto m = model::Model::load(*ckpt, mo);
    std::vector<Result> rs;
    for (int32_t c : o.contexts) {
      if (!o.json) std::fprintf(stderr, "threads %d: context %d...\n", threads, c);
      rs.push_back(measure(*m, c, o));
    }
    if (o.json)
      rows.push_back(json_row(threads, rs));
    else
      print_text(threads, rs);
  }
  if (o.json) {
    std::printf("{\"runs\":[");
    for (size_t i = 0; i < rows.size(); ++i) std::printf("%s%s", i ? "," : "", rows[i].c_str());
    std::printf("]}\n");
  }
  return 0;
}

}  // namespace v4::cli
