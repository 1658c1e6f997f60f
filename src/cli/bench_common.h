#pragma once
// Pieces the model benchmarks share (bench.cpp, bench_context.cpp).
#include <cstdint>
#include <string>
#include <vector>

namespace v4::cli {

// The CPU and kernel variant a figure was measured on, as JSON members (",\"isa\":...").
std::string machine_json();

// `count` token ids drawn uniformly from [2, vocab) (the special ids 0 and 1 left out), seeded.
std::vector<int32_t> random_tokens(int64_t count, int64_t vocab, uint32_t seed);

}  // namespace v4::cli
