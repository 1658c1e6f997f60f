#pragma once
// `v4flash bench cache --model DIR [--tokens 32768] [--threads N] [--cache-dir DIR] [--exact] [--json]`:
// time to first token of one long prompt uncached, from the memory prefix cache, and from the
// disk cache after a restart of the engine; bytes on disk per cached token (bench.cpp dispatches
// here).
#include "cli/command.h"

namespace v4::cli {
int run_bench_cache(const Args& args);
}
