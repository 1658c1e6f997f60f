#pragma once
// `v4flash bench serve`: a load generator against a running server, in the manner of vLLM's and
// SGLang's serving benchmarks (bench.cpp dispatches here).
#include "cli/command.h"

namespace v4::cli {
int run_bench_serve(const cli::Args& args);
}
