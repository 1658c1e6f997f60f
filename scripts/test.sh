#!/usr/bin/env bash
# The test command: install what is missing, build, then run the whole ctest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
[ -d node_modules ] && [ node_modules -nt package.json ] || npm install --no-audit --no-fund --loglevel=error >/dev/null
cd "${BUILD_DIR:-build}"
ctest --output-on-failure --timeout 900 -j "${JOBS:-$(nproc)}" "$@"
