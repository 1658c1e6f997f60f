#!/usr/bin/env bash
# Installs the Debian packages v4flash needs to build and test. Idempotent and quiet when
# everything is already there.
set -euo pipefail
PACKAGES=(
  build-essential cmake ninja-build pkg-config git ccache
  libgtest-dev libgmock-dev libbenchmark-dev
  libboost1.81-dev libboost-json1.81-dev
  libpcre2-dev libsqlite3-dev libssl-dev libfmt-dev libspdlog-dev libpq-dev libsodium-dev
  curl python3-numpy
  postgresql clang-14 libclang-rt-14-dev
  chromium
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
# Node.js + npm (for the SDK conformance tests): the machine image ships them; Debian's own
# nodejs only when none is there.
command -v npm >/dev/null 2>&1 || missing+=(nodejs npm)
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get update -qq
  $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
