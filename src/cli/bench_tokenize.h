#pragma once
// `v4flash bench tokenize --tokenizer FILE [--input FILE] [--mb N]`: single-core encode
// throughput in MB/s (bench.cpp dispatches here).
#include "cli/command.h"

namespace v4::cli {
int run_bench_tokenize(const Args& args);
}
