#!/usr/bin/env bash
# Peer comparison: llama.cpp v0.5.0 (node-llama-cpp 3.22.1 prebuilt, installed on demand into
# bench/.peer) against `v4flash bench` on the same random-weight V4-Flash-shaped checkpoint.
# Not part of the build or ctest. Steps: install the peer, synthesise the checkpoint if missing,
# export it with `v4flash export-gguf`, then for each thread count run llama.cpp (own process each)
# and `v4flash bench prefill/decode`, and print one table.
# Environment (defaults): BUILD_DIR=build  LAYERS=2  EXPERTS= (256)  PROMPT=512  GEN=16
#   THREADS="1 2"  REPEATS=3  DENSE=q8_0 (type of the FP8 dense matrices in the GGUF)
#   MODEL_DIR=bench/.peer/flash-l$LAYERS[-e$EXPERTS]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD_DIR=${BUILD_DIR:-build}
LAYERS=${LAYERS:-2}
EXPERTS=${EXPERTS:-}
PROMPT=${PROMPT:-512}
GEN=${GEN:-16}
THREADS=${THREADS:-"1 2"}
REPEATS=${REPEATS:-3}
DENSE=${DENSE:-q8_0}
PEER=bench/.peer
MODEL_DIR=${MODEL_DIR:-$PEER/flash-l$LAYERS${EXPERTS:+-e$EXPERTS}}
GGUF=$MODEL_DIR.$DENSE.gguf
V4=$BUILD_DIR/v4flash
[ -x "$V4" ] || { echo "no $V4: build it first (BUILD_DIR=$BUILD_DIR bash scripts/build.sh)" >&2; exit 1; }

if [ ! -d "$PEER/node_modules/node-llama-cpp" ]; then
  echo "== installing node-llama-cpp 3.22.1 (llama.cpp v0.5.0) into $PEER" >&2
  mkdir -p "$PEER"
  [ -f "$PEER/package.json" ] || echo '{"name":"v4flash-peer","private":true,"type":"module"}' >"$PEER/package.json"
  (cd "$PEER" && npm install node-llama-cpp@3.22.1 @node-llama-cpp/linux-x64@3.22.1 --omit=optional \
    --ignore-scripts --no-audit --no-fund >&2)
fi
if [ ! -f "$MODEL_DIR/config.json" ]; then
  echo "== synthesising $MODEL_DIR" >&2
  "$V4" synth --out "$MODEL_DIR" --shape flash --layers "$LAYERS" ${EXPERTS:+--experts "$EXPERTS"} >&2
fi
if [ ! -f "$GGUF" ] || [ "$GGUF" -ot "$MODEL_DIR/config.json" ]; then
  echo "== exporting $GGUF" >&2
  "$V4" export-gguf "$MODEL_DIR" "$GGUF.tmp" --dense "$DENSE" >&2
  mv "$GGUF.tmp" "$GGUF"
fi

echo "== load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
rows=()
for t in $THREADS; do
  echo "== llama.cpp, $t thread(s)" >&2
  peer=$(node bench/peer_llamacpp.mjs --model "$GGUF" --threads "$t" --prompt "$PROMPT" --gen "$GEN" \
    --repeats "$REPEATS" | tail -1) || peer='{"error":"llama.cpp failed"}'
  echo "$peer" >&2
  echo "== v4flash, $t thread(s)" >&2
  pre=$("$V4" bench prefill --model "$MODEL_DIR" --threads "$t" --tokens "$PROMPT" --repeats "$REPEATS" --json | tail -1) ||
    pre='{"error":"v4flash prefill failed"}'
  dec=$("$V4" bench decode --model "$MODEL_DIR" --threads "$t" --tokens "$GEN" --prompt "$PROMPT" \
    --repeats "$REPEATS" --json | tail -1) || dec='{"error":"v4flash decode failed"}'
  echo "$pre" >&2
  echo "$dec" >&2
  rows+=("$t"$'\t'"$peer"$'\t'"$pre"$'\t'"$dec")
done
echo "== load average after: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

printf '%s\n' "${rows[@]}" | node -e '
const lines = require("fs").readFileSync(0, "utf8").trim().split("\n");
const f = (x) => (typeof x === "number" ? x.toFixed(2) : "n/a");
console.log(`checkpoint: ${process.argv[1]} (GGUF ${process.argv[2]}); prompt ${process.argv[3]}, decode ${process.argv[4]} tokens after it; best (median) of ${process.argv[5]}`);
console.log("| threads | llama.cpp prefill tok/s | v4flash prefill tok/s | llama.cpp decode tok/s | v4flash decode tok/s |");
console.log("| --- | --- | --- | --- | --- |");
for (const line of lines) {
  const [t, peer, pre, dec] = line.split("\t").map((s, i) => (i ? JSON.parse(s) : s));
  console.log(`| ${t} | ${f(peer.pp_tps)} (${f(peer.pp_tps_median)}) | ${f(pre.tokens_per_s)} (${f(pre.tokens_per_s_median)}) | ${f(peer.tg_tps)} (${f(peer.tg_tps_median)}) | ${f(dec.tokens_per_s)} (${f(dec.tokens_per_s_median)}) |`);
}' "$MODEL_DIR" "$GGUF" "$PROMPT" "$GEN" "$REPEATS"
