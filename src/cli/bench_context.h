#pragma once
// `v4flash bench context --model DIR [--contexts 1024,65536] [--threads 1,2] [--tokens 8]
// [--repeats 3] [--json]`: decode tokens/s of one sequence at several context lengths, the
// indexer's and the attention's share of the step, and the state's bytes per context position,
// projected to 1M positions (bench.cpp dispatches here).
#include "cli/command.h"

namespace v4::cli {
int run_bench_context(const Args& args);
}
