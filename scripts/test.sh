#!/usr/bin/env bash
# The test command: install what is missing, build, then run the whole ctest suite.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/build.sh
[ -d node_modules ] && [ node_modules -nt package.json ] || npm install --no-audit --no-fund --loglevel=error >/dev/null
# The agent clients the api_agent_client_* tests drive (about 1 GB); without them those tests are
# reported SKIPPED, so a failed install warns rather than stops the run.
c=tests/api/clients
[ -d $c/node_modules ] && [ $c/node_modules -nt $c/package.json ] ||
  npm install --prefix $c --no-audit --no-fund --loglevel=error >/dev/null ||
  echo "test.sh: could not install the agent clients in $c: their tests will be skipped" >&2
# The agent frameworks the api_frameworks_* tests drive (the AI SDK, LangChain.js; about 120 MB).
f=tests/api/frameworks
[ -d $f/node_modules ] && [ $f/node_modules -nt $f/package.json ] ||
  npm install --prefix $f --no-audit --no-fund --loglevel=error >/dev/null ||
  echo "test.sh: could not install the agent frameworks in $f: their tests will be skipped" >&2
cd "${BUILD_DIR:-build}"
ctest --output-on-failure --timeout 900 -j "${JOBS:-$(nproc)}" "$@"
