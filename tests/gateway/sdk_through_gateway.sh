#!/usr/bin/env bash
# The SDK conformance suite (tests/api/sdk/conformance.mjs: the official openai and @anthropic-ai/sdk
# packages, every dialect) against a gateway: `v4flash serve --deployment` with no engine of its own,
# routing the three ids to a v4flash-testserver upstream (the scripted engine) over Chat Completions.
#   sdk_through_gateway.sh V4FLASH TESTSERVER TOKENIZER
set -euo pipefail
v4flash=$1 testserver=$2 tokenizer=$3
here=$(cd "$(dirname "$0")" && pwd)
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_up() {
  for _ in $(seq 1 300); do
    curl -sf "http://127.0.0.1:$1/health" >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "server on port $1 did not come up:"; cat "$work"/*.log; return 1
}
up=$(free_port)
"$testserver" --scripted-engine --tokenizer "$tokenizer" --port "$up" --api-key sk-engine >"$work/upstream.log" 2>&1 &
pids+=($!)
wait_up "$up"
backend="{\"url\": \"http://127.0.0.1:$up/v1\", \"api_key_env\": \"ENGINE_KEY\"}"
cat >"$work/deployment.json" <<JSON
{"models": {"deepseek-v4-flash": {"backends": [$backend]},
            "deepseek-v4-flash:variant1": {"backends": [$backend]},
            "deepseek-v4-flash:variant2": {"backends": [$backend]}},
 "routing": {"health_interval_ms": 1000}}
JSON
gw=$(free_port)
ENGINE_KEY=sk-engine "$v4flash" serve --deployment "$work/deployment.json" --tokenizer "$tokenizer" --port "$gw" \
  --api-key sk-gateway >"$work/gateway.log" 2>&1 &
pids+=($!)
wait_up "$gw"
if ! V4_API_KEY=sk-gateway node "$here/../api/sdk/conformance.mjs" --url "http://127.0.0.1:$gw" --upstream; then
  echo "--- gateway log"; tail -50 "$work/gateway.log"
  exit 1
fi
