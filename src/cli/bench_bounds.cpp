#include "cli/bench_bounds.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <numeric>
#include <stdexcept>
#include <string>

namespace v4::cli {

namespace {

using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// "layers.<l>...." -> l, anything else -> -1.
int64_t layer_of(const std::string& name) {
  if (name.rfind("layers.", 0) != 0) return -1;
  try {
    return std::stoll(name.substr(7));
  } catch (const std::exception&) {
    return -1;
  }
}

}  // namespace

core::HugePageBuffer bandwidth_buffer(uint64_t mib) {
  core::HugePageBuffer buffer(size_t(mib) << 20);
  for (float& v : buffer.as<float>()) v = 1.0f;  // touched: pages are resident
  return buffer;
}

double huge_share(const core::HugePageBuffer& buffer) {
  return core::page_residency(buffer.data(), buffer.size()).huge_share();
}

Rate measure_read_bandwidth(std::span<const float> buffer, kernels::ThreadPool& pool, int repeats) {
  const int64_t n = int64_t(buffer.size());
  const int64_t pieces = 64 * pool.size();  // contiguous slices per thread, static split
  std::vector<double> gbs;
  volatile float sink = 0;
  for (int rep = 0; rep < std::max(1, repeats); ++rep) {
    double best = 0;
    for (int64_t ahead : {int64_t(0), int64_t(8192), int64_t(32768)}) {
      std::vector<float> partial(size_t(pieces), 0.0f);
      const auto t0 = Clock::now();
      pool.parallel_for(pieces, [&](int64_t b, int64_t e) {
        for (int64_t k = b; k < e; ++k) {
          const int64_t lo = n * k / pieces, hi = n * (k + 1) / pieces;
          partial[size_t(k)] = kernels::stream_sum(buffer.data() + lo, hi - lo, ahead);
        }
      });
      const double s = seconds_since(t0);
      sink = sink + partial[0];
      best = std::max(best, double(n) * 4 / s / 1e9);
    }
    gbs.push_back(best);
  }
  (void)sink;
  std::sort(gbs.begin(), gbs.end());
  return {gbs.back(), gbs[gbs.size() / 2]};  // best (highest) and median
}

double measure_peak_gflops(kernels::ThreadPool& pool, kernels::PeakKind kind) {
  constexpr int64_t kIters = 20'000'000;
  if (!kernels::peak_available(kind)) kind = kernels::PeakKind::fp32_fma;
  std::vector<double> flops(size_t(pool.size()), 0.0);
  const auto t0 = Clock::now();
  pool.parallel_for(pool.size(), [&](int64_t b, int64_t e) {
    for (int64_t t = b; t < e; ++t) flops[size_t(t)] = kernels::peak_loop(kind, kIters);
  });
  const double secs = seconds_since(t0);
  return std::accumulate(flops.begin(), flops.end(), 0.0) / secs / 1e9;
}

double measure_best_peak_gflops(kernels::ThreadPool& pool, int repeats) {
  double best = 0;
  for (int r = 0; r < std::max(1, repeats); ++r)
    for (auto kind : {kernels::PeakKind::fp32_fma, kernels::PeakKind::bf16_dot})
      if (kind == kernels::PeakKind::fp32_fma || kernels::peak_available(kind))
        best = std::max(best, measure_peak_gflops(pool, kind));
  return best;
}

double TokenCost::distinct_experts(double rows) const {
  const double e = double(experts), k = double(experts_per_token);
  if (e <= 0) return 0;
  if (rows <= 1) return k;
  return e * (1.0 - std::pow(1.0 - k / e, rows));
}

double TokenCost::decode_step_bytes(double batch) const {
  return dense_bytes + head_bytes + double(routed_layers) * distinct_experts(batch) * routed_bytes_per_expert +
         batch * embed_row_bytes;
}

double TokenCost::decode_token_flops() const {
  return 2.0 * (dense_params + double(routed_layers) * double(experts_per_token) * routed_params_per_expert + head_params);
}

TokenCost token_cost(const core::Checkpoint& ckpt) {
  const auto& cfg = ckpt.config();
  TokenCost c;
  const size_t L = size_t(cfg.num_hidden_layers);
  c.layer_dense_bytes.assign(L, 0);
  c.layer_dense_params.assign(L, 0);
  c.layer_routed_bytes_per_expert.assign(L, 0);
  c.layer_routed_params_per_expert.assign(L, 0);
  const double experts_per_layer = std::max<double>(1, double(cfg.n_routed_experts));
  double routed_bytes = 0, routed_params = 0;
  for (const auto& [name, view] : ckpt.tensors()) {
    if (name.rfind("mtp.", 0) == 0) continue;
    const double bytes = double(view->nbytes);
    double params = double(view->numel());
    if (view->dtype == core::DType::I8) params *= 2;  // packed FP4: two weights per byte
    if (view->dtype == core::DType::F8_E8M0) params = 0;  // scales
    const int64_t layer = layer_of(name);
    const bool in_layer = layer >= 0 && layer < int64_t(L);
    if (name == "embed.weight") {
      c.embed_row_bytes = bytes / double(cfg.vocab_size);
    } else if (name == "head.weight") {  // applied to the last position of each sequence only
      c.head_bytes = bytes;
      c.head_params = params;
    } else if (name.find(".ffn.gate.tid2eid") != std::string::npos) {
      c.dense_bytes += bytes / double(cfg.vocab_size);  // one row looked up per token
      if (in_layer) c.layer_dense_bytes[size_t(layer)] += bytes / double(cfg.vocab_size);
    } else if (name.find(".ffn.experts.") != std::string::npos) {
      routed_bytes += bytes;
      routed_params += params;
      if (in_layer) {
        c.layer_routed_bytes_per_expert[size_t(layer)] += bytes / experts_per_layer;
        c.layer_routed_params_per_expert[size_t(layer)] += params / experts_per_layer;
      }
    } else {
      c.dense_bytes += bytes;
      c.dense_params += params;
      if (in_layer) {
        c.layer_dense_bytes[size_t(layer)] += bytes;
        c.layer_dense_params[size_t(layer)] += params;
      } else {
        c.outside_dense_bytes += bytes;
        c.outside_dense_params += params;
      }
    }
  }
  const double experts = double(cfg.n_routed_experts) * double(cfg.num_hidden_layers);
  c.routed_bytes_per_expert = experts > 0 ? routed_bytes / experts : 0;
  c.routed_params_per_expert = experts > 0 ? routed_params / experts : 0;
  c.routed_layers = cfg.num_hidden_layers;
  c.experts = cfg.n_routed_experts;
  c.experts_per_token = cfg.num_experts_per_tok;
  return c;
}

}  // namespace v4::cli
