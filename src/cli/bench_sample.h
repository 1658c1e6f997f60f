#pragma once
// `v4flash bench sample`: the sampler's cost per token, worst cases included (bench.cpp dispatches).
#include "cli/command.h"

namespace v4::cli {
int run_bench_sample(const cli::Args& args);
}
