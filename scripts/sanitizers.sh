#!/usr/bin/env bash
# The unit tests under AddressSanitizer + UndefinedBehaviorSanitizer (V4_SANITIZE=ON, in
# build-asan/ or $SAN_BUILD_DIR). Builds only the gtest executables below, runs each once; any
# failure or sanitizer report fails. Prints "sanitizers: N tests passed".
set -euo pipefail
cd "$(dirname "$0")/.."
B=${SAN_BUILD_DIR:-build-asan}
# test_kernels and test_model: the kernels and the forward pass are checked numerically by the main
# suite and are too slow under ASan for CI's budget; everything that parses, allocates or threads is here.
TARGETS=(${SAN_TARGETS:-test_core test_export test_text test_grammar test_api test_product test_runtime})
if [ ! -f "$B/build.ninja" ]; then
  cmake -S . -B "$B" -G Ninja -DV4_SANITIZE=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo >/dev/null 2>"${TMPDIR:-/tmp}/v4-configure.log" ||
    { cat "${TMPDIR:-/tmp}/v4-configure.log"; exit 1; }
fi
if ! cmake --build "$B" --parallel "${JOBS:-$(nproc)}" --target "${TARGETS[@]}" >"$B/ci-build.log" 2>&1; then
  grep -B2 -A12 -m5 'error' "$B/ci-build.log" || tail -40 "$B/ci-build.log"
  echo "sanitizers: build FAILED"
  exit 1
fi
export ASAN_OPTIONS=${ASAN_OPTIONS:-abort_on_error=1:detect_leaks=1}
export UBSAN_OPTIONS=${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}
passed=0 skipped=0
for t in "${TARGETS[@]}"; do
  start=$(date +%s)
  if ! out=$("$B/$t" --gtest_brief=1 2>&1); then
    echo "$out" | tail -60
    echo "sanitizers: $t FAILED"
    exit 1
  fi
  n=$(echo "$out" | sed -n 's/^\[  PASSED  \] \([0-9]*\) test.*/\1/p')
  s=$(echo "$out" | sed -n 's/^\[  SKIPPED \] \([0-9]*\) test.*/\1/p')
  passed=$((passed + ${n:-0})); skipped=$((skipped + ${s:-0}))
  echo "sanitizers: $t: ${n:-0} passed, ${s:-0} skipped ($(( $(date +%s) - start )) s)"
done
echo "sanitizers: $passed tests passed, $skipped skipped (ASan+UBSan: ${TARGETS[*]})"
