#pragma once
// `v4flash bench decode --model DIR --speculative K [--force-accept] ...`: greedy decode tokens/s
// through the engine without speculative decoding and with K drafts per step (and, with
// --force-accept, with every draft accepted: what a verify step costs when it pays off fully), the
// acceptance rate and tokens per verify step, and whether the speculative output equals the plain
// one (tokens and logprob bits). bench.cpp dispatches here when --speculative is given.
#include "cli/command.h"

namespace v4::cli {
int run_bench_speculative(const Args& args);
}
