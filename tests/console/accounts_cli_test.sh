#!/usr/bin/env bash
# `v4flash accounts create|credit|list` and `keys create --account` on a fresh SQLite database.
set -euo pipefail
bin=$1
tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
db="$tmp/v4.db"
fail() { echo "FAIL: $*"; exit 1; }

echo 'a-long-password' | "$bin" accounts create --db "$db" --email Ops@Example.com --password-stdin --credit 2.5 --admin \
  | grep -q 'created account acct_[0-9a-f]* (ops@example.com), credit 2.5, admin' || fail "create"
echo 'another-password' | "$bin" accounts create --db "$db" --email user@example.com --password-stdin >/dev/null
# duplicate email, short password, password on the command line: refused
if echo 'a-long-password' | "$bin" accounts create --db "$db" --email ops@example.com --password-stdin 2>"$tmp/err"; then fail "duplicate"; fi
grep -q 'already exists' "$tmp/err" || fail "duplicate message: $(cat "$tmp/err")"
if echo 'short' | "$bin" accounts create --db "$db" --email x@example.com --password-stdin 2>/dev/null; then fail "short password"; fi
if "$bin" accounts create --db "$db" --email y@example.com --password pw 2>/dev/null; then fail "--password accepted"; fi

"$bin" accounts credit --db "$db" --email user@example.com --add 1.25 | grep -q 'is now 1.25' || fail "credit"
if "$bin" accounts credit --db "$db" --email nobody@example.com --add 1 2>/dev/null; then fail "credit unknown"; fi

"$bin" keys create --db "$db" --name legacy >/dev/null
"$bin" keys create --db "$db" --name mine --account user@example.com >/dev/null
list=$("$bin" accounts list --db "$db" --json)
echo "$list" | python3 -c '
import json, sys
rows = {r["email"]: r for r in json.load(sys.stdin)}
assert rows["default"]["credit_usd"] is None and rows["default"]["keys"] == 1, rows["default"]
assert rows["ops@example.com"]["admin"] and rows["ops@example.com"]["credit_usd"] == "2.5", rows
assert rows["user@example.com"]["credit_usd"] == "1.25" and rows["user@example.com"]["keys"] == 1, rows
' || fail "list: $list"
# The password is stored only as an Argon2id hash.
if grep -a -q 'a-long-password' "$db" "$db-wal" 2>/dev/null; then fail "clear-text password in the database"; fi
echo "accounts CLI: ok"
