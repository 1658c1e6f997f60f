#pragma once
// The machine's limits and a checkpoint's cost per token, shared by the model benchmarks (bench
// decode / prefill in bench.cpp, bench serve): a figure is a ratio to the bound that binds it.
#include <cstdint>
#include <span>
#include <vector>

#include "core/checkpoint.h"
#include "core/huge_pages.h"
#include "kernels/probes.h"
#include "kernels/thread_pool.h"

namespace v4::cli {

struct Rate {
  double best = 0, median = 0;
};

// Read bandwidth in GB/s (1e9 bytes/s) of the pool's threads streaming over `buffer`: each repeat
// takes the faster of a plain streaming sum and one with software prefetching (8 and 32 KiB
// ahead), so the bound is the best this machine's cores read, not one access pattern's.
Rate measure_read_bandwidth(std::span<const float> buffer, kernels::ThreadPool& pool, int repeats);

// The buffer the read bandwidth streams over: `mib` MiB of 1.0f in 2 MiB pages where the kernel
// gives them (over 4 KiB pages the same cores read 15-20% slower on the Xeon measured, and the
// weights are mapped in 2 MiB pages too: core/huge_pages.h). huge_share() of its residency says
// what it got; the benchmarks print it.
core::HugePageBuffer bandwidth_buffer(uint64_t mib);
double huge_share(const core::HugePageBuffer& buffer);

// Matrix-instruction peak of the pool's threads in GFLOP/s on the kernel variant in use
// (kernels/probes.h): FP32 FMAs or, where the variant has them, BF16 dot products (32 products +
// 32 additions per instruction). No AMX kernel exists yet.
double measure_peak_gflops(kernels::ThreadPool& pool, kernels::PeakKind kind);

// The best of the instructions the variant multiplies with (the compute bound of a step).
double measure_best_peak_gflops(kernels::ThreadPool& pool, int repeats);

// What one token costs, from the checkpoint's tensors: every dense weight of the main layers and
// the head is read once per step; the embedding contributes one row per token; routed experts
// contribute the experts a step touches (num_experts_per_tok for one sequence; for B sequences
// the expected number of distinct experts under uniform routing, E * (1 - (1 - k/E)^B)); the MTP
// block is not run; the head runs once per sequence and step (a prefill chunk computes only its
// last position's logits). FLOPs: 2 per weight element and token (attention over the state
// excluded).
// The same count is also split by where the tensors live: per main layer ("layers.<l>.") and the
// rest (embedding, hc_head, final norm, LM head), so the parts add up to the whole.
struct TokenCost {
  double dense_bytes = 0, routed_bytes_per_expert = 0, embed_row_bytes = 0, head_bytes = 0;
  double dense_params = 0, routed_params_per_expert = 0, head_params = 0;
  int64_t routed_layers = 0, experts = 0, experts_per_token = 0;
  std::vector<double> layer_dense_bytes, layer_dense_params;  // incl. one tid2eid row per token
  std::vector<double> layer_routed_bytes_per_expert, layer_routed_params_per_expert;
  double outside_dense_bytes = 0, outside_dense_params = 0;  // hc_head, norm (not embed/head.weight)

  // Expected distinct routed experts per layer in a step of `rows` token rows.
  double distinct_experts(double rows) const;
  // Bytes a decode step of `batch` sequences reads at least (state excluded).
  double decode_step_bytes(double batch) const;
  // FLOPs of one decoded token (its own experts, the head once).
  double decode_token_flops() const;
};
TokenCost token_cost(const core::Checkpoint& ckpt);

}  // namespace v4::cli
