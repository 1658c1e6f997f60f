#!/usr/bin/env bash
# `v4flash keys` and `v4flash usage` end to end on SQLite and (when installed) PostgreSQL.
# usage: cli_test.sh path/to/v4flash
set -euo pipefail
V4=$1
HERE=$(cd "$(dirname "$0")" && pwd)
PY=/usr/bin/python3
work=$(mktemp -d)
pgdir=""
cleanup() {
  if [ -n "$pgdir" ]; then bash "$HERE/../../scripts/pg-test.sh" stop "$pgdir" || true; rm -rf "$pgdir"; fi
  rm -rf "$work"
}
trap cleanup EXIT
fail() { echo "FAIL: $*" >&2; exit 1; }
json() { $PY -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }

check_backend() {
  local db=$1
  out=$("$V4" keys create --db "$db" --name alice --credit 2.5 --rpm 60 --tpm 1000 --json)
  id=$(echo "$out" | json 'd["id"]')
  key=$(echo "$out" | json 'd["key"]')
  [[ "$key" == sk-v4f-$id-* ]] || fail "key '$key' does not carry id '$id'"
  plain=$("$V4" keys create --db "$db" 2>/dev/null)
  [[ "$plain" == sk-v4f-* ]] || fail "plain create printed '$plain'"
  list=$("$V4" keys list --db "$db" --json)
  [ "$(echo "$list" | json 'len(d)')" = 2 ] || fail "list: $list"
  echo "$list" | $PY -c "import json,sys; k=[k for k in json.load(sys.stdin) if k['id']=='$id'][0]; assert k['credit_usd']==2.5 and k['name']=='alice', k" \
    || fail "created key listed wrongly: $list"
  echo "$list" | grep -q "$key" && fail "list shows the secret"
  "$V4" keys set-credit "$id" --credit 0.75 --db "$db" >/dev/null
  "$V4" keys list --db "$db" --json | $PY -c "import json,sys; k=[k for k in json.load(sys.stdin) if k['id']=='$id'][0]; assert k['credit_usd']==0.75 and k['rpm']==60 and k['tpm']==1000, k"
  "$V4" keys revoke "$id" --db "$db" >/dev/null
  "$V4" keys list --db "$db" --json | $PY -c "import json,sys; k=[k for k in json.load(sys.stdin) if k['id']=='$id'][0]; assert k['revoked'] is True, k"
  if "$V4" keys revoke nosuchkey --db "$db" 2>/dev/null; then fail "revoking an unknown key succeeded"; fi
  if "$V4" keys create --db "$db" --rpm -3 2>/dev/null; then fail "negative rpm accepted"; fi
  if "$V4" keys create --db "$db" --credit abc 2>/dev/null; then fail "bad credit accepted"; fi
  u=$("$V4" usage --db "$db" --json)
  [ "$(echo "$u" | json 'd["requests"]')" = 0 ] || fail "usage of an empty ledger: $u"
  echo "$id"
}

# SQLite, with two ledger rows written by hand to check the report's sums.
db=$work/accounts.db
id=$(check_backend "$db")
$PY - "$db" "$id" <<'PYEOF'
import sqlite3, sys
con = sqlite3.connect(sys.argv[1])
key = sys.argv[2]
con.execute("INSERT INTO ledger VALUES ('r1',?,'deepseek-v4-flash','2026-05-28',500,1000,200,50,2,140,140,280,13000000,26266000,'completed',1,2,3,4,'api')", (key,))
con.execute("INSERT INTO ledger VALUES ('r2',?,'deepseek-v4-flash:variant2','2026-05-29',100,10,30,0,0,138,28,275,10000000,12430,'cancelled',1,2,3,4,'api')", (key,))
con.commit()
PYEOF
u=$("$V4" usage --db "$db" --json)
echo "$u" | $PY -c "
import json,sys
d=json.load(sys.stdin)
assert d['requests']==2, d
m=d['by_model']['deepseek-v4-flash']
assert (m['requests'],m['input_tokens'],m['cached_input_tokens'],m['output_tokens'],m['reasoning_tokens'],m['web_search_calls'])==(1,1000,500,200,50,2), m
assert m['cost_usd']==0.026266, m
assert d['by_model']['deepseek-v4-flash:variant2']['cost_usd']==0.00001243, d
"
[ "$("$V4" usage --db "$db" --json --since 2026-05-29 | json 'd["requests"]')" = 1 ] || fail "--since"
[ "$("$V4" usage --db "$db" --json --model deepseek-v4-flash | json 'd["requests"]')" = 1 ] || fail "--model"
[ "$("$V4" usage --db "$db" --json --key nobody | json 'd["requests"]')" = 0 ] || fail "--key"
"$V4" usage --db "$db" | grep -q "deepseek-v4-flash:variant2" || fail "text report"
if "$V4" usage --db "$db" --since 29.05.2026 2>/dev/null; then fail "bad --since accepted"; fi
echo "sqlite: ok"

# PostgreSQL (skipped only when the binaries are absent).
pgdir=$(mktemp -d)
set +e
url=$(bash "$HERE/../../scripts/pg-test.sh" start "$pgdir")
rc=$?
set -e
if [ $rc = 77 ]; then
  [ "${V4_REQUIRE_PG:-}" = 1 ] && fail "postgresql binaries not installed but V4_REQUIRE_PG=1"
  echo "postgresql: SKIPPED (binaries not installed)"; exit 77
fi
[ $rc = 0 ] || fail "pg-test.sh start failed ($rc)"
check_backend "$url" >/dev/null
echo "postgresql: ok"
