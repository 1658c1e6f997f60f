// `v4flash bench ...`: performance measurements against the machine's own limits.
//   bench kernels   read bandwidth (streaming kernel over a buffer >> L3) and linear() GB/s per
//                   weight format, with the ratio to that bandwidth (alias: bench linear)
//   bench decode    tokens/s of batch decode on a checkpoint, bytes per token, ratio to the read
//                   bandwidth measured in the same run; with --speculative K, tokens/s through the
//                   engine with and without speculative decoding (src/cli/bench_speculative.cpp)
//   bench prefill   tokens/s of one prefill chunk, FLOPs per token, ratio to the matrix peak
//                   measured in the same run
//   bench tokenize  provided by the text layer (src/cli/bench_tokenize.cpp)
//   bench cache     TTFT uncached / memory hit / disk hit (src/cli/bench_cache.cpp)
//   bench sample    the sampler's cost per token (cli/bench_sample.cpp)
//   bench serve     load generator against a running server (cli/bench_serve.cpp)
#include <array>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <numeric>
#include <random>
#include <stdexcept>
#include <string>
#include <vector>

#include "cli/bench_bounds.h"
#include "cli/bench_cache.h"
#include "cli/bench_common.h"
#include "cli/bench_constrained.h"
#include "cli/bench_context.h"
#include "cli/bench_speculative.h"
#include "cli/bench_sample.h"
#include "cli/bench_serve.h"
#include "cli/command.h"
#include "core/checkpoint.h"
#include "core/codecs.h"
#include "core/dtype.h"
#include "kernels/isa.h"
#include "kernels/linear.h"
#include "kernels/probes.h"
#include "kernels/thread_pool.h"
#include "model/model.h"
#include "model/numerics.h"


namespace v4::cli {

// Defined by the text layer's src/cli/bench_tokenize.cpp; this weak default keeps the binary
// linking until that file lands.
__attribute__((weak)) int run_bench_tokenize(const Args&) {
  std::fprintf(stderr, "bench tokenize: not built into this binary\n");
  return 2;
}

namespace {

using Clock = std::chrono::steady_clock;
using kernels::ThreadPool;
using kernels::Weight;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

struct Stats {
  double min = 0, median = 0;
};
Stats stats_of(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return {v.front(), v[v.size() / 2]};
}

std::vector<int> parse_int_list(const std::string& s, const char* what) {
  std::vector<int> out;
  size_t pos = 0;
  while (pos <= s.size()) {
    const size_t comma = std::min(s.find(',', pos), s.size());
    const std::string item = s.substr(pos, comma - pos);
    try {
      size_t used = 0;
      const int v = std::stoi(item, &used);
      if (used != item.size() || v < 1) throw std::invalid_argument(item);
      out.push_back(v);
    } catch (const std::exception&) {
      throw std::invalid_argument(std::string("--") + what + ": expected positive integers separated by commas, got '" + s + "'");
    }
    pos = comma + 1;
  }
  return out;
}

// Weight bytes with the values of a trained checkpoint. FP8 / FP4: bytes in [0x00, 0x3F] (finite,
// small codes, some e4m3 subnormals as real checkpoints have). BF16 / F32: N(0, 0.02), all normal
// numbers: random bit patterns would make 1 in 64 a subnormal, and subnormal operands cost a
// microcode assist per FMA on Intel cores (the BF16 / F32 rows measured 5-10x slow on a Xeon),
// which says nothing about a real model.
void fill_weight_bytes(core::DType t, std::span<uint8_t> d, std::mt19937& rng) {
  if (t == core::DType::BF16 || t == core::DType::F32) {
    std::normal_distribution<float> normal(0.0f, 0.02f);
    const bool bf16 = t == core::DType::BF16;
    const size_t count = d.size() / (bf16 ? 2 : 4);
    for (size_t i = 0; i < count; ++i) {
      const float v = normal(rng);
      if (bf16) {
        const uint16_t h = core::float_to_bf16(v);
        std::memcpy(d.data() + 2 * i, &h, 2);
      } else {
        std::memcpy(d.data() + 4 * i, &v, 4);
      }
    }
    return;
  }
  uint32_t state = rng();
  for (auto& b : d) {
    state = state * 1664525u + 1013904223u;
    b = uint8_t((state >> 24) & 0x3F);
  }
}

// One weight format at one shape, replicated so the working set is far larger than L3 and every
// call streams its weight from memory; in 2 MiB pages, like the bandwidth buffer and the mapped
// weights (core/huge_pages.h).
struct WeightSet {
  core::DType dtype;
  int64_t rows, cols;
  uint64_t data_bytes = 0, scale_bytes = 0, stride = 0;  // stride: one copy, cache-line rounded
  uint64_t bytes_per_weight = 0;
  size_t n_copies = 0;
  core::HugePageBuffer arena;

  WeightSet(core::DType t, int64_t r, int64_t c, uint64_t working_set_bytes, uint32_t seed)
      : dtype(t), rows(r), cols(c) {
    switch (t) {
      case core::DType::F8_E4M3:
        data_bytes = uint64_t(r * c);
        scale_bytes = uint64_t(((r + 127) / 128) * ((c + 127) / 128));
        break;
      case core::DType::I8:
        data_bytes = uint64_t(r * c / 2);
        scale_bytes = uint64_t(r * (c / 32));
        break;
      case core::DType::BF16:
        data_bytes = uint64_t(r * c * 2);
        break;
      default:
        data_bytes = uint64_t(r * c * 4);
        break;
    }
    bytes_per_weight = data_bytes + scale_bytes;
    n_copies = size_t(std::max<uint64_t>(2, (working_set_bytes + bytes_per_weight - 1) / bytes_per_weight));
    stride = (data_bytes + 63) / 64 * 64 + (scale_bytes + 63) / 64 * 64;
    arena = core::HugePageBuffer(size_t(stride * n_copies));
    std::mt19937 rng(seed);
    for (size_t k = 0; k < n_copies; ++k) {
      fill_weight_bytes(t, std::span<uint8_t>(data(k), data_bytes), rng);
      for (uint64_t i = 0; i < scale_bytes; ++i) scale(k)[i] = uint8_t(120 + (rng() % 8));
    }
  }
  uint8_t* data(size_t k) const { return arena.data() + k * stride; }
  uint8_t* scale(size_t k) const { return data(k) + (data_bytes + 63) / 64 * 64; }
  size_t copies() const { return n_copies; }
  Weight weight(size_t k) const { return Weight{dtype, data(k), scale_bytes ? scale(k) : nullptr, rows, cols}; }
};

struct LinearResult {
  std::string dtype;
  std::string input;  // "fp32" or "bf16" (x as the FP8 activation quantiser leaves it: e4m3 x 2^k)
  int64_t rows, cols, n;
  int threads;
  uint64_t bytes;
  Stats ms;  // per call
  double gbs_best, gbs_median, bw_ratio_best, bw_ratio_median;
};

LinearResult measure_linear(const WeightSet& ws, int64_t n, kernels::InputKind input, ThreadPool& pool, int repeats,
                            double read_bw_best) {
  std::vector<float> x(size_t(n * ws.cols)), out(size_t(n * ws.rows));
  std::mt19937 rng(7);
  std::normal_distribution<float> normal(0.0f, 1.0f);
  for (auto& v : x) v = normal(rng);
  // Quantised: what the model's FP8 activation quantiser leaves (e4m3 per 128 columns times a
  // power-of-two scale), the input the BF16 and VNNI paths are for.
  if (input == kernels::InputKind::kBf16Exact)
    for (int64_t i = 0; i < n; ++i) model::fp8_quant_dequant(x.data() + i * ws.cols, ws.cols, 128);
  kernels::linear(ws.weight(0), x.data(), n, out.data(), &pool, input);  // warm-up (pool, page tables)
  std::vector<double> per_call;
  for (int rep = 0; rep < repeats; ++rep) {
    const auto t0 = Clock::now();
    for (size_t k = 0; k < ws.copies(); ++k) kernels::linear(ws.weight(k), x.data(), n, out.data(), &pool, input);
    per_call.push_back(seconds_since(t0) / double(ws.copies()));
  }
  const Stats s = stats_of(per_call);
  LinearResult r;
  r.dtype = std::string(core::dtype_name(ws.dtype));
  r.input = input == kernels::InputKind::kBf16Exact ? "bf16" : "fp32";
  r.rows = ws.rows;
  r.cols = ws.cols;
  r.n = n;
  r.threads = pool.size();
  r.bytes = ws.bytes_per_weight;
  r.ms = {s.min * 1e3, s.median * 1e3};
  r.gbs_best = double(ws.bytes_per_weight) / s.min / 1e9;
  r.gbs_median = double(ws.bytes_per_weight) / s.median / 1e9;
  r.bw_ratio_best = r.gbs_best / read_bw_best;
  r.bw_ratio_median = r.gbs_median / read_bw_best;
  return r;
}

const char* kKernelsUsage =
    "usage: v4flash bench kernels [--threads 1,2] [--repeats 3] [--batch 1,16] [--buffer-mib 1024]\n"
    "                             [--working-set-mib 512] [--json]\n"
    "Measures the read bandwidth of this machine (streaming sums over --buffer-mib, with and without\n"
    "software prefetch, the faster counts) and linear() throughput for FP8 e4m3 [4096x4096] (128x128\n"
    "block scales), packed FP4 [2048x4096] (one MoE expert matrix), both with quantised (BF16-exact)\n"
    "and fp32 activations, BF16 and F32 [4096x4096]. Each weight is replicated to --working-set-mib\n"
    "so it streams from memory. The buffer and the weights are in 2 MiB pages where the kernel gives\n"
    "them (the share is printed; JSON read_bw_huge_share): 4 KiB pages read 15-20% slower.\n"
    "GB/s = weight bytes (data + scales) / time per call; ratio = that over the read bandwidth\n"
    "measured with the same thread count before and after the kernels (the higher; best of\n"
    "--repeats runs; median also shown).\n";

int bench_kernels(const Args& args) {
  ArgParser p(args);
  p.check_known({"threads", "repeats", "batch", "buffer-mib", "working-set-mib"}, {"json", "help"});
  if (p.flag("help")) {
    std::fputs(kKernelsUsage, stdout);
    return 0;
  }
  const auto threads_list = parse_int_list(p.value_or("threads", "1,2"), "threads");
  const auto batch_list = parse_int_list(p.value_or("batch", "1,16"), "batch");
  const int repeats = parse_int_list(p.value_or("repeats", "3"), "repeats").at(0);
  const uint64_t buffer_mib = uint64_t(parse_int_list(p.value_or("buffer-mib", "1024"), "buffer-mib").at(0));
  const uint64_t ws_mib = uint64_t(parse_int_list(p.value_or("working-set-mib", "512"), "working-set-mib").at(0));
  const bool json = p.flag("json");

  struct Case {
    core::DType dtype;
    int64_t rows, cols;
    kernels::InputKind input;
  };
  // FP8 / FP4 with quantised activations (BF16 dot products, the model's default) and with fp32 x
  // (the exact mode's path).
  const auto bf16 = kernels::InputKind::kBf16Exact, fp32 = kernels::InputKind::kFp32;
  const std::vector<Case> cases = {{core::DType::F8_E4M3, 4096, 4096, bf16}, {core::DType::F8_E4M3, 4096, 4096, fp32},
                                   {core::DType::I8, 2048, 4096, bf16},      {core::DType::I8, 2048, 4096, fp32},
                                   {core::DType::BF16, 4096, 4096, fp32},    {core::DType::F32, 4096, 4096, fp32}};

  struct BwRow {
    int threads;
    Rate gbs;
  };
  std::vector<BwRow> bw_rows;
  std::vector<LinearResult> results;
  // The bandwidth is measured before and after the kernels and the higher figure is the bound:
  // on a shared host it drifts by tens of percent within minutes.
  const auto buffer = bandwidth_buffer(buffer_mib);
  auto measure_bandwidth_rows = [&] {
    for (size_t ti = 0; ti < threads_list.size(); ++ti) {
      ThreadPool pool(threads_list[ti]);
      measure_read_bandwidth(buffer.as<const float>(), pool, 1);  // warm-up
      const Rate st = measure_read_bandwidth(buffer.as<const float>(), pool, repeats);
      if (ti >= bw_rows.size())
        bw_rows.push_back({threads_list[ti], st});
      else if (st.best > bw_rows[ti].gbs.best)
        bw_rows[ti].gbs = st;
    }
  };
  measure_bandwidth_rows();
  for (const Case& c : cases) {
    const WeightSet ws(c.dtype, c.rows, c.cols, ws_mib << 20, 42);
    for (size_t ti = 0; ti < threads_list.size(); ++ti) {
      ThreadPool pool(threads_list[ti]);
      for (int n : batch_list) results.push_back(measure_linear(ws, n, c.input, pool, repeats, bw_rows[ti].gbs.best));
    }
  }
  measure_bandwidth_rows();
  for (LinearResult& r : results) {
    for (const BwRow& b : bw_rows)
      if (b.threads == r.threads) {
        r.bw_ratio_best = r.gbs_best / b.gbs.best;
        r.bw_ratio_median = r.gbs_median / b.gbs.best;
      }
  }

  if (json) {
    std::printf("{\"read_bw\":[");
    for (size_t i = 0; i < bw_rows.size(); ++i)
      std::printf("%s{\"threads\":%d,\"gbs_best\":%.3f,\"gbs_median\":%.3f}", i ? "," : "", bw_rows[i].threads,
                  bw_rows[i].gbs.best, bw_rows[i].gbs.median);
    std::printf("],\"read_bw_huge_share\":%.3f,\"repeats\":%d,\"linear\":[", huge_share(buffer), repeats);
    for (size_t i = 0; i < results.size(); ++i) {
      const auto& r = results[i];
      std::printf("%s{\"dtype\":\"%s\",\"input\":\"%s\",\"rows\":%lld,\"cols\":%lld,\"n\":%lld,\"threads\":%d,\"bytes\":%llu,"
                  "\"ms_min\":%.4f,\"ms_median\":%.4f,\"gbs_best\":%.3f,\"gbs_median\":%.3f,"
                  "\"bw_ratio\":%.3f,\"bw_ratio_median\":%.3f}",
                  i ? "," : "", r.dtype.c_str(), r.input.c_str(), (long long)r.rows, (long long)r.cols, (long long)r.n, r.threads,
                  (unsigned long long)r.bytes, r.ms.min, r.ms.median, r.gbs_best, r.gbs_median, r.bw_ratio_best,
                  r.bw_ratio_median);
    }
    std::printf("]%s}\n", machine_json().c_str());
    return 0;
  }
  std::printf("%s\n", kernels::isa_report().c_str());
  std::printf("read bandwidth (streaming sums over %llu MiB, %.0f%% of it in 2 MiB pages, best of plain and prefetched, %d repeats):\n",
              (unsigned long long)buffer_mib, 100 * huge_share(buffer), repeats);
  for (const auto& b : bw_rows)
    std::printf("  %d thread%s: best %.2f GB/s, median %.2f GB/s\n", b.threads, b.threads > 1 ? "s" : "", b.gbs.best,
                b.gbs.median);
  std::printf("\nlinear() (weights streamed from a %llu MiB working set in 2 MiB pages; ratio = GB/s / read bandwidth):\n",
              (unsigned long long)ws_mib);
  std::printf("  %-8s %-5s %-11s %4s %3s %9s %9s %9s %8s %8s\n", "dtype", "x", "shape", "n", "thr", "ms min", "ms med",
              "GB/s", "ratio", "ratio md");
  for (const auto& r : results) {
    char shape[32];
    std::snprintf(shape, sizeof shape, "%lldx%lld", (long long)r.rows, (long long)r.cols);
    std::printf("  %-8s %-5s %-11s %4lld %3d %9.3f %9.3f %9.2f %8.3f %8.3f\n", r.dtype.c_str(), r.input.c_str(), shape,
                (long long)r.n,
                r.threads, r.ms.min, r.ms.median, r.gbs_best, r.bw_ratio_best, r.bw_ratio_median);
  }
  return 0;
}


// --- model benchmarks -------------------------------------------------------------------------

struct ModelBenchOptions {
  std::string model_dir;
  std::vector<int> threads;
  int64_t batch = 1, tokens = 0, prompt = 0;
  int repeats = 3;
  bool exact = false, json = false, profile = false;
  uint64_t buffer_mib = 1024;
  core::WeightMemory weights = core::WeightMemory::mapped;  // --weights: the model's copy (the bench's own stays mapped)
};

ModelBenchOptions parse_model_bench(const Args& args, bool decode) {
  ArgParser p(args);
  p.check_known({"model", "threads", "batch", "tokens", "prompt", "repeats", "buffer-mib", "weights"},
                {"json", "exact", "profile"});
  ModelBenchOptions o;
  const auto dir = p.value("model");
  if (!dir) throw std::invalid_argument("--model DIR is required");
  o.model_dir = *dir;
  o.threads = parse_int_list(p.value_or("threads", "1"), "threads");
  o.batch = parse_int_list(p.value_or("batch", "1"), "batch").at(0);
  o.tokens = parse_int_list(p.value_or("tokens", decode ? "16" : "512"), "tokens").at(0);
  o.prompt = parse_int_list(p.value_or("prompt", "32"), "prompt").at(0);
  o.repeats = parse_int_list(p.value_or("repeats", "3"), "repeats").at(0);
  o.buffer_mib = uint64_t(parse_int_list(p.value_or("buffer-mib", "1024"), "buffer-mib").at(0));
  o.exact = p.flag("exact");
  o.json = p.flag("json");
  o.profile = p.flag("profile");
  o.weights = core::parse_weight_memory(p.value_or("weights", "mapped"), "--weights");
  return o;
}

// --profile: the main layers' time by operation (model::ForwardTrace::Op, summed over the layers)
// of the best run, per token and as a share of the run's wall time.
void print_ops(const std::array<double, model::ForwardTrace::kOps>& ops, double tokens, double run_seconds) {
  double layers = 0;
  for (double v : ops) layers += v;
  std::printf("  profile (all layers, best run)     ms/token  share of run\n");
  for (size_t op = 0; op < ops.size(); ++op)
    std::printf("    %-30s %10.4f %10.1f%%\n", model::ForwardTrace::kOpNames[op], ops[op] / tokens * 1e3,
                100.0 * ops[op] / run_seconds);
  std::printf("    %-30s %10.4f %10.1f%%\n", "layers in all", layers / tokens * 1e3, 100.0 * layers / run_seconds);
}

std::string ops_json(const std::array<double, model::ForwardTrace::kOps>& ops, double tokens, double run_seconds) {
  std::string out = ",\"ops\":[";
  for (size_t op = 0; op < ops.size(); ++op) {
    char buf[192];
    std::snprintf(buf, sizeof buf, "%s{\"op\":\"%s\",\"seconds_per_token\":%.9f,\"share\":%.4f}", op ? "," : "",
                  model::ForwardTrace::kOpNames[op], ops[op] / tokens, ops[op] / run_seconds);
    out += buf;
  }
  return out + "]";
}

int bench_model(const Args& args, bool decode) {
  const ModelBenchOptions o = parse_model_bench(args, decode);
  const auto ckpt = core::Checkpoint::open(o.model_dir);
  const auto& cfg = ckpt->config();
  const TokenCost cost = token_cost(*ckpt);
  std::vector<std::string> json_rows;
  // The quantised path multiplies FP8/FP4 weights with BF16 dot products, or with FP32 FMAs where
  // the variant runs its BF16 pairs on them (the isa line says which), the exact path with FP32
  // FMAs: prefill is measured against the peak of the one it uses.
  using kernels::PeakKind;
  const PeakKind peak_kind = o.exact ? PeakKind::fp32_fma : kernels::quantised_peak_kind();
  const char* peak_name = peak_kind == PeakKind::bf16_dot ? "bf16_dot" : "fp32_fma";
  if (!o.json) std::printf("%s\n", kernels::isa_report().c_str());
  for (int threads : o.threads) {
    ThreadPool probe(threads);
    double bound = 0;  // GB/s (decode) or GFLOP/s (prefill), best of repeats
    // Decode: read bandwidth before and after the runs, the higher one (it drifts on shared hosts).
    const auto buffer = bandwidth_buffer(decode ? o.buffer_mib : 0);
    // Decode also measures the compute peak (the best multiply instruction the variant has): a
    // batch's step is bound by whichever of reading and multiplying takes longer.
    double peak = 0;
    if (decode) {
      measure_read_bandwidth(buffer.as<const float>(), probe, 1);
      bound = measure_read_bandwidth(buffer.as<const float>(), probe, o.repeats).best;
      peak = measure_best_peak_gflops(probe, o.repeats);
    } else {
      for (int r = 0; r < o.repeats; ++r) bound = std::max(bound, measure_peak_gflops(probe, peak_kind));
    }
    model::ModelOptions mo;
    mo.exact = o.exact;
    mo.threads = threads;
    mo.weight_memory = o.weights;
    const auto m = model::Model::load(*ckpt, mo);

    std::vector<double> secs;
    // Per-stage seconds of each counted run (summed over its steps), from forward_traced's timing.
    const size_t L = size_t(cfg.num_hidden_layers);
    std::vector<std::vector<double>> run_layer_secs;
    std::vector<double> run_head_secs;
    std::vector<std::array<double, model::ForwardTrace::kOps>> run_op_secs;
    std::vector<std::array<double, 2>> run_matmul;  // seconds and FLOPs inside the matrix products
    model::ForwardTrace timing;
    timing.capture_times = true;
    double state_bytes = 0;
    const int64_t batch = decode ? o.batch : 1;
    // Prompts: decode starts after a prefilled prompt of --prompt tokens per sequence.
    std::vector<std::unique_ptr<model::SequenceState>> base;
    std::vector<std::vector<int32_t>> prompts;
    for (int64_t b = 0; b < batch; ++b) {
      base.push_back(m->new_state());
      prompts.push_back(random_tokens(decode ? o.prompt : o.tokens, cfg.vocab_size, uint32_t(100 + b)));
    }
    if (decode) {
      std::vector<model::BatchItem> items;
      for (int64_t b = 0; b < batch; ++b) items.push_back({base[size_t(b)].get(), prompts[size_t(b)], false});
      m->forward(items);
    }
    for (int rep = 0; rep < o.repeats + 1; ++rep) {  // the first run warms caches and is not counted
      std::vector<std::unique_ptr<model::SequenceState>> states;
      for (auto& s : base) states.push_back(s->clone());
      double elapsed = 0;
      std::vector<double> layer_secs(L, 0.0);
      double head_secs = 0;
      std::array<double, model::ForwardTrace::kOps> op_secs{};
      std::array<double, 2> matmul{};
      auto add_stage_times = [&] {
        matmul[0] += timing.matmul_seconds;
        matmul[1] += timing.matmul_flops;
        for (size_t l = 0; l < L && l < timing.layer_seconds.size(); ++l) layer_secs[l] += timing.layer_seconds[l];
        head_secs += timing.embed_seconds + timing.head_seconds;
        for (size_t op = 0; op < op_secs.size(); ++op) op_secs[op] += timing.op_seconds[op];
      };
      if (decode) {
        const auto next = random_tokens(o.tokens * batch, cfg.vocab_size, 7);
        for (int64_t step = 0; step < o.tokens; ++step) {
          std::vector<model::BatchItem> items;
          for (int64_t b = 0; b < batch; ++b)
            items.push_back({states[size_t(b)].get(), std::span<const int32_t>(&next[size_t(step * batch + b)], 1), false});
          const auto t0 = Clock::now();
          m->forward_traced(items, &timing);
          elapsed += seconds_since(t0);
          add_stage_times();
        }
        state_bytes = 0;
        for (auto& s : states) state_bytes += double(s->bytes());
      } else {
        const model::BatchItem item{states[0].get(), prompts[0], false};
        const auto t0 = Clock::now();
        m->forward_traced(std::span<const model::BatchItem>(&item, 1), &timing);
        elapsed = seconds_since(t0);
        add_stage_times();
        state_bytes = double(states[0]->bytes());
      }
      if (rep > 0) {
        secs.push_back(elapsed);
        run_layer_secs.push_back(layer_secs);
        run_head_secs.push_back(head_secs);
        run_op_secs.push_back(op_secs);
        run_matmul.push_back(matmul);
      }
    }
    const Stats t = stats_of(secs);
    // The stage times reported are those of the best (fastest) run, like tokens_per_s.
    if (decode) bound = std::max(bound, measure_read_bandwidth(buffer.as<const float>(), probe, o.repeats).best);
    if (decode) peak = std::max(peak, measure_best_peak_gflops(probe, o.repeats));
    const size_t best_run = size_t(std::min_element(secs.begin(), secs.end()) - secs.begin());
    const int64_t tokens_per_run = decode ? o.tokens * batch : o.tokens;
    const double experts_per_step = cost.distinct_experts(double(decode ? batch : o.tokens));
    const double bytes_per_step = cost.dense_bytes + cost.head_bytes +
                                  double(cost.routed_layers) * experts_per_step * cost.routed_bytes_per_expert +
                                  double(decode ? batch : o.tokens) * cost.embed_row_bytes + state_bytes;
    const double bytes_per_token = bytes_per_step / double(batch);
    const double flops_per_token =
        2.0 * (cost.dense_params + double(cost.routed_layers) * double(cfg.num_experts_per_tok) * cost.routed_params_per_expert +
               cost.head_params / double(decode ? 1 : o.tokens));
    const double tps_best = double(tokens_per_run) / t.min, tps_median = double(tokens_per_run) / t.median;

    // Per layer and head: the same byte and FLOP count split by tensor location; the sequence
    // state (not split by layer) is reported on its own, so layers + head + state = the whole.
    const double seqs = double(decode ? batch : o.tokens);  // head runs / embedding rows per step
    struct Part {
      std::string name, type;
      double seconds_per_token, bytes_per_token, flops_per_token;
    };
    std::vector<Part> parts;
    for (size_t l = 0; l < L; ++l) {
      const int64_t ratio = cfg.compress_ratio(int64_t(l));
      const double bytes = cost.layer_dense_bytes[l] + experts_per_step * cost.layer_routed_bytes_per_expert[l];
      const double flops = 2.0 * (cost.layer_dense_params[l] +
                                  double(cfg.num_experts_per_tok) * cost.layer_routed_params_per_expert[l]);
      parts.push_back({std::to_string(l), ratio == 0 ? "SWA" : ratio == 4 ? "CSA" : "HCA",
                       run_layer_secs[best_run][l] / double(tokens_per_run), bytes / seqs, flops});
    }
    const double head_bytes_step = cost.outside_dense_bytes + cost.head_bytes + seqs * cost.embed_row_bytes;
    const double head_flops = 2.0 * (cost.outside_dense_params + cost.head_params / double(decode ? 1 : o.tokens));
    parts.push_back({"head", "embed+hc_head+norm+lm_head", run_head_secs[best_run] / double(tokens_per_run),
                     head_bytes_step / seqs, head_flops});
    std::string parts_json = ",\"layers\":[";
    for (size_t i = 0; i < parts.size(); ++i) {
      const Part& pt = parts[i];
      const double bpt = pt.bytes_per_token;
      const double gbs = pt.seconds_per_token > 0 ? bpt / pt.seconds_per_token / 1e9 : 0;
      const double gflops = pt.seconds_per_token > 0 ? pt.flops_per_token / pt.seconds_per_token / 1e9 : 0;
      char buf[512];
      std::snprintf(buf, sizeof buf,
                    "{%s\"type\":\"%s\",\"seconds_per_token\":%.9f,\"bytes_per_token\":%.0f,\"gbs\":%.3f,"
                    "\"flops_per_token\":%.0f,\"gflops\":%.3f,%s\"flops_ratio\":%.4f}",
                    pt.name == "head" ? "" : ("\"layer\":" + pt.name + ",").c_str(), pt.type.c_str(),
                    pt.seconds_per_token, bpt, gbs, pt.flops_per_token, gflops,
                    decode ? ("\"bw_ratio\":" + std::to_string(gbs / bound) + ",").c_str() : "",
                    gflops / (decode ? peak : bound));
      if (pt.name == "head") {
        parts_json += "],\"head\":";
        parts_json += buf;
      } else {
        parts_json += (i ? "," : "");
        parts_json += buf;
      }
    }
    char state_buf[96];
    std::snprintf(state_buf, sizeof state_buf, ",\"state_bytes_per_token\":%.0f", state_bytes / seqs);
    parts_json += state_buf;
    // The matrix products alone (prefill): seconds and FLOPs inside kernels::linear in the best run.
    const auto& mm = run_matmul[best_run];
    const double mm_gf = mm[0] > 0 ? mm[1] / mm[0] / 1e9 : 0;
    char row[1024];
    // Decode: tokens/s if the step only read its bytes at the bandwidth, or only multiplied at the peak.
    const double read_tps = decode ? bound * 1e9 / bytes_per_token : 0;
    const double compute_tps = decode ? peak * 1e9 / flops_per_token : 0;
    if (decode) {
      const double gbs = bytes_per_token * tps_best / 1e9, gbs_med = bytes_per_token * tps_median / 1e9;
      std::snprintf(row, sizeof row,
                    "{\"mode\":\"decode\",\"threads\":%d,\"batch\":%lld,\"tokens\":%lld,\"prompt\":%lld,\"repeats\":%d,"
                    "\"tokens_per_s\":%.3f,\"tokens_per_s_median\":%.3f,\"bytes_per_token\":%.0f,"
                    "\"achieved_gbs\":%.3f,\"read_bw_gbs\":%.3f,\"bw_ratio\":%.3f,\"bw_ratio_median\":%.3f,"
                    "\"flops_per_token\":%.0f,\"achieved_gflops\":%.3f,\"peak_gflops\":%.3f,\"flops_ratio\":%.4f,"
                    "\"read_bound_tokens_per_s\":%.3f,\"compute_bound_tokens_per_s\":%.3f,\"bound\":\"%s\","
                    "\"bound_ratio\":%.4f}",
                    threads, (long long)batch, (long long)o.tokens, (long long)o.prompt, o.repeats, tps_best, tps_median,
                    bytes_per_token, gbs, bound, gbs / bound, gbs_med / bound, flops_per_token,
                    flops_per_token * tps_best / 1e9, peak, flops_per_token * tps_best / 1e9 / peak, read_tps,
                    compute_tps, read_tps <= compute_tps ? "read" : "compute", tps_best / std::min(read_tps, compute_tps));
    } else {
      const double gf = flops_per_token * tps_best / 1e9, gf_med = flops_per_token * tps_median / 1e9;
      std::snprintf(row, sizeof row,
                    "{\"mode\":\"prefill\",\"threads\":%d,\"tokens\":%lld,\"repeats\":%d,\"tokens_per_s\":%.3f,"
                    "\"tokens_per_s_median\":%.3f,\"bytes_per_token\":%.0f,\"flops_per_token\":%.0f,"
                    "\"achieved_gflops\":%.3f,\"peak_gflops\":%.3f,\"peak_kind\":\"%s\",\"flops_ratio\":%.4f,"
                    "\"flops_ratio_median\":%.4f,\"matmul_seconds\":%.6f,\"matmul_gflops\":%.3f,"
                    "\"matmul_flops_per_token\":%.0f,\"matmul_flops_ratio\":%.4f,\"matmul_share\":%.4f}",
                    threads, (long long)o.tokens, o.repeats, tps_best, tps_median, bytes_per_step / double(o.tokens),
                    flops_per_token, gf, bound, peak_name, gf / bound, gf_med / bound, mm[0], mm_gf,
                    mm[1] / double(o.tokens), mm_gf / bound, mm[0] / t.min);
    }
    std::string row_json(row);
    // Where the weights and the bandwidth buffer sit: 4 KiB pages read 15-20% slower, and mapped
    // weights come in 2 MiB pages only where the page cache read them so (core/safetensors.cpp).
    const core::PageResidency weights = m->weight_residency();
    const char* weights_kind = o.weights == core::WeightMemory::hugepages ? "hugepages" : "mapped";
    const double buffer_huge = decode ? huge_share(buffer) : 0.0;
    char pages_json[192];
    std::snprintf(pages_json, sizeof pages_json,
                  ",\"weights\":\"%s\",\"weights_resident_bytes\":%llu,\"weights_huge_share\":%.3f", weights_kind,
                  (unsigned long long)weights.resident_bytes, weights.huge_share());
    parts_json += pages_json;
    if (decode) {
      std::snprintf(pages_json, sizeof pages_json, ",\"read_bw_huge_share\":%.3f", buffer_huge);
      parts_json += pages_json;
    }
    const auto& ops = run_op_secs[best_run];
    if (o.profile) parts_json += ops_json(ops, double(tokens_per_run), t.min);
    row_json.insert(row_json.size() - 1, parts_json + machine_json());  // before the closing brace
    json_rows.push_back(row_json);
    if (!o.json) {
      if (decode)
        std::printf("decode  threads %d batch %lld: %.2f tokens/s (median %.2f), %.1f MB/token, %.2f GB/s of %.2f GB/s "
                    "read bandwidth = %.3f (median %.3f)\n",
                    threads, (long long)batch, tps_best, tps_median, bytes_per_token / 1e6, bytes_per_token * tps_best / 1e9,
                    bound, bytes_per_token * tps_best / 1e9 / bound, bytes_per_token * tps_median / 1e9 / bound);
      if (decode)
        std::printf("  bounds: read %.2f tokens/s (bytes/token at the read bandwidth), compute %.2f tokens/s "
                    "(%.1f MFLOP/token at the %.1f GFLOP/s peak, %.4f of it used); the %s bound binds: %.3f of it\n",
                    read_tps, compute_tps, flops_per_token / 1e6, peak, flops_per_token * tps_best / 1e9 / peak,
                    read_tps <= compute_tps ? "read" : "compute", tps_best / std::min(read_tps, compute_tps));
      else
        std::printf("prefill threads %d chunk %lld: %.2f tokens/s (median %.2f), %.2f GFLOP/token, %.1f GFLOP/s of %.1f "
                    "GFLOP/s %s peak = %.4f (median %.4f)\n",
                    threads, (long long)o.tokens, tps_best, tps_median, flops_per_token / 1e9,
                    flops_per_token * tps_best / 1e9, bound, peak_kind == PeakKind::bf16_dot ? "BF16 dot-product" : "FP32 FMA",
                    flops_per_token * tps_best / 1e9 / bound,
                    flops_per_token * tps_median / 1e9 / bound);
      if (!decode) {
        std::printf("  matrix products: %.1f%% of the run, %.1f GFLOP/s = %.4f of the peak\n", 100.0 * mm[0] / t.min, mm_gf,
                    mm_gf / bound);
      }
      std::printf("  pages: weights (%s) %.2f GB resident, %.0f%% in 2 MiB pages", weights_kind,
                  double(weights.resident_bytes) / 1e9, 100 * weights.huge_share());
      if (decode) std::printf("; bandwidth buffer %.0f%% in 2 MiB pages", 100 * buffer_huge);
      std::printf("\n");
      std::printf("  %-6s %-4s %12s %12s %10s %8s %12s %10s %8s\n", "part", "type", "ms/token", "MB/token", "GB/s",
                  "bw ratio", "MFLOP/token", "GFLOP/s", "fl ratio");
      for (const Part& pt : parts) {
        const double gbs = pt.seconds_per_token > 0 ? pt.bytes_per_token / pt.seconds_per_token / 1e9 : 0;
        const double gf = pt.seconds_per_token > 0 ? pt.flops_per_token / pt.seconds_per_token / 1e9 : 0;
        std::printf("  %-6s %-4s %12.4f %12.3f %10.2f %8.3f %12.2f %10.2f %8.4f\n", pt.name.c_str(),
                    pt.name == "head" ? "-" : pt.type.c_str(), pt.seconds_per_token * 1e3, pt.bytes_per_token / 1e6, gbs,
                    decode ? gbs / bound : 0.0, pt.flops_per_token / 1e6, gf, gf / (decode ? peak : bound));
      }
      std::printf("  state  %.3f MB/token (not split by layer)\n", state_bytes / seqs / 1e6);
      if (o.profile) print_ops(ops, double(tokens_per_run), t.min);
    }
  }
  if (o.json) {
    if (json_rows.size() == 1) {
      std::printf("%s\n", json_rows[0].c_str());
    } else {
      std::printf("{\"runs\":[");
      for (size_t i = 0; i < json_rows.size(); ++i) std::printf("%s%s", i ? "," : "", json_rows[i].c_str());
      std::printf("]}\n");
    }
  }
  return 0;
}

const char* kModelUsage =
    "usage: v4flash bench decode  --model DIR [--threads 1,2] [--batch B] [--tokens N] [--prompt P]\n"
    "                             [--repeats 3] [--exact] [--profile] [--weights mapped|hugepages] [--json]\n"
    "       v4flash bench prefill --model DIR [--threads 1,2] [--tokens N] [--repeats 3] [--exact] [--json]\n"
    "decode: N steps of B sequences after a P-token prompt; bytes/token counts the weights a step\n"
    "reads (dense + the routed experts touched + one embedding row per token) plus the sequence\n"
    "state, and bw_ratio compares bytes/token x tokens/s with the read bandwidth measured in the same\n"
    "run (before and after the runs, the higher). Decode also measures the peak of the best multiply\n"
    "instruction the variant has (BF16 dot product or FP32 FMA) and prints both bounds, read (bytes\n"
    "at the bandwidth) and compute (FLOPs at the peak), and the ratio to the one that binds: at a\n"
    "large --batch a step multiplies more than it reads (JSON: read_bound_tokens_per_s,\n"
    "compute_bound_tokens_per_s, bound, bound_ratio, flops_ratio). prefill: one N-token chunk (default 512);\n"
    "flops_ratio compares 2 x weights/token x tokens/s with the peak of the instruction the kernels\n"
    "multiply with, measured in the same run: AVX-512 BF16 dot products (default, quantised\n"
    "activations; FP32 FMAs where the avx512bf16 variant runs its BF16 pairs on them, as the kernels\n"
    "line says) or FP32 FMAs (--exact); no AMX on this machine. matmul_flops_ratio: the same for\n"
    "the time inside the matrix products alone (every kernels::linear call, their 2 x n x rows x cols\n"
    "FLOPs; matmul_share: their part of the run). Best of --repeats runs (after one\n"
    "warm-up), medians also shown. --json prints one object per thread count (or\n"
    "{\"runs\":[...]} for several).\n"
    "Per layer (SWA/CSA/HCA) and for the head (embedding + hc_head + norm + LM head): wall time per\n"
    "token of the best run, the bytes/FLOPs of that part's tensors, GB/s and FLOP/s with their ratios\n"
    "(JSON: \"layers\":[...], \"head\":{...}, \"state_bytes_per_token\"; layers + head + state =\n"
    "bytes_per_token).\n"
    "--weights hugepages reads the model's weights into transparent huge pages (see `serve --help`).\n"
    "The pages line says how much of the weights (resident in this process) and of the bandwidth buffer\n"
    "sit in 2 MiB pages (JSON weights, weights_resident_bytes, weights_huge_share, read_bw_huge_share).\n"
    "--profile adds the layers' time by operation (hc mixes, attention q/kv/compressor/indexer/core/\n"
    "output, MoE gate/routed/shared; JSON \"ops\"), summed over the layers, per token and as a share\n"
    "of the run: where a step's time goes inside the layers.\n"
    "bench decode --speculative K [--force-accept]: decode tokens/s through the engine with and without\n"
    "speculative decoding (`v4flash bench decode --speculative 1 --help`).\n";

const char* kUsage =
    "usage: v4flash bench <what> [options]\n"
    "  kernels   read bandwidth and linear() GB/s per weight format (alias: linear)\n"
    "  decode    model decode tokens/s and ratio to read bandwidth (--model DIR)\n"
    "  prefill   model prefill tokens/s and ratio to the matrix peak (--model DIR)\n"
    "  tokenize  tokenizer throughput\n"
    "  context   decode tokens/s at long contexts (64K vs 1K), indexer share, state bytes per position\n"
    "  cache     time to first token uncached / memory prefix-cache hit / disk-cache hit after a restart\n"
    "  sample    sampler microseconds per token, worst case included\n"
    "  constrained  decode tokens/s under structured output / forced tool calls vs free (--model DIR)\n"
    "  serve     load generator for a running server: req/s, tok/s, TTFT, ITL per concurrency\n"
    "Run `v4flash bench <what> --help` for the options.\n";

int bench_main(const Args& args) {
  if (args.empty() || args[0] == "--help" || args[0] == "-h") {
    std::fputs(kUsage, args.empty() ? stderr : stdout);
    return args.empty() ? 2 : 0;
  }
  const std::string what = args[0];
  const Args rest(args.begin() + 1, args.end());
  if (what == "kernels" || what == "linear") return bench_kernels(rest);
  if (what == "tokenize") return run_bench_tokenize(rest);
  if (what == "cache") return run_bench_cache(rest);
  if (what == "context") return run_bench_context(rest);
  if (what == "constrained") return run_bench_constrained(rest);
  if (what == "sample") return run_bench_sample(rest);
  if (what == "serve") return run_bench_serve(rest);
  if (what == "decode" || what == "prefill") {
    const bool speculative = std::any_of(rest.begin(), rest.end(),
                                         [](const std::string& a) { return a.rfind("--speculative", 0) == 0; });
    if (what == "decode" && speculative) return run_bench_speculative(rest);
    if (!rest.empty() && (rest[0] == "--help" || rest[0] == "-h")) {
      std::fputs(kModelUsage, stdout);
      return 0;
    }
    return bench_model(rest, what == "decode");
  }
  std::fprintf(stderr, "bench: unknown benchmark '%s'\n%s", what.c_str(), kUsage);
  return 2;
}

}  // namespace

V4_COMMAND("bench", "performance benchmarks (kernels, tokenize, ...)", bench_main);

}  // namespace v4::cli
