#!/usr/bin/env bash
# A throwaway local PostgreSQL for tests.
#   scripts/pg-test.sh start DIR   -> initdb in DIR, start a server listening only on a unix socket in
#                                     DIR; prints the connection URL on stdout.
#   scripts/pg-test.sh stop DIR    -> stop it (DIR is left for the caller to delete).
# Exit status 77 means "PostgreSQL binaries not installed" (callers skip). As root (CI), the server
# runs as the 'postgres' user, since PostgreSQL refuses to run as root.
set -euo pipefail
cmd=${1:-}; dir=${2:-}
if [ -z "$cmd" ] || [ -z "$dir" ]; then echo "usage: $0 start|stop DIR" >&2; exit 2; fi
bin=${PG_BIN:-}
if [ -z "$bin" ]; then
  for d in /usr/lib/postgresql/*/bin; do [ -x "$d/initdb" ] && bin=$d; done
fi
if [ -z "$bin" ] || [ ! -x "$bin/initdb" ] || [ ! -x "$bin/pg_ctl" ]; then
  echo "PostgreSQL binaries not found (set PG_BIN or install the Debian 'postgresql' package)" >&2
  exit 77
fi
port=5432  # only names the socket file inside DIR, so parallel clusters never collide

as_server_user() {
  if [ "$(id -u)" = 0 ]; then
    local user=${PG_TEST_USER:-postgres}
    runuser -u "$user" -- "$@"
  else
    "$@"
  fi
}

case "$cmd" in
  start)
    mkdir -p "$dir"
    dir=$(cd "$dir" && pwd)
    if [ "$(id -u)" = 0 ]; then chown "${PG_TEST_USER:-postgres}" "$dir"; chmod 700 "$dir"; fi
    as_server_user "$bin/initdb" -D "$dir/data" -U postgres --auth=trust --no-sync -E UTF8 >"$dir/initdb.log" 2>&1 ||
      { cat "$dir/initdb.log" >&2; exit 1; }
    # No TCP; fsync off: the tests kill processes, not the machine.
    as_server_user "$bin/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
      -o "-c listen_addresses='' -k $dir -p $port -c fsync=off -c max_connections=200" start >/dev/null ||
      { cat "$dir/server.log" >&2; exit 1; }
    echo "postgresql:///postgres?host=$dir&port=$port&user=postgres"
    ;;
  stop)
    dir=$(cd "$dir" && pwd)
    as_server_user "$bin/pg_ctl" -D "$dir/data" -m immediate -w stop >/dev/null 2>&1 || true
    ;;
  *) echo "unknown command $cmd" >&2; exit 2 ;;
esac
