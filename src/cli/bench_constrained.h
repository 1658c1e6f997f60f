#pragma once
// `v4flash bench constrained --model DIR [--tokens 256] [--threads N] [--repeats 2] [--json]`: decode
// tokens/s of the same prepared request with and without its constrained-decoding mask (JSON
// strings, JSON structure, a forced tool call), in one run, and the ratio (bench.cpp dispatches here).
#include "cli/command.h"

namespace v4::cli {
int run_bench_constrained(const Args& args);
}
