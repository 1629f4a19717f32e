#!/usr/bin/env bash
# Installs what LOTUS needs to build and test on Debian 12, then configures
# and builds one preset. Idempotent: packages already present are not
# reinstalled, and apt's index is refreshed only when something is missing.
#
#   scripts/setup.sh [preset] [target...]     preset: debug | release | asan
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
preset="${1:-release}"
shift || true

packages=(
  build-essential g++ cmake ninja-build ccache pkg-config git clang-format
  libboost1.81-dev nlohmann-json3-dev libyaml-cpp-dev libspdlog-dev libfmt-dev
  libcli11-dev libabsl-dev libsqlite3-dev libedit-dev libhnswlib-dev libcurl4-openssl-dev libvalijson-dev
  libjemalloc-dev
  libgtest-dev libgmock-dev libbenchmark-dev libhiredis-dev redis-server
  libpq-dev postgresql chromium
)

# Node.js with npm for the interop and browser tests: Debian's, unless a
# Node.js that brings its own npm is installed already (Debian's npm package
# conflicts with such a nodejs).
if ! command -v node >/dev/null || ! command -v npm >/dev/null; then
  packages+=(nodejs npm)
fi

missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  echo "==> installing: ${missing[*]}"
  sudo_cmd=()
  [[ $(id -u) -ne 0 ]] && sudo_cmd=(sudo)
  "${sudo_cmd[@]}" apt-get update -qq
  DEBIAN_FRONTEND=noninteractive "${sudo_cmd[@]}" apt-get install -y -qq --no-install-recommends \
    "${missing[@]}" >/dev/null
fi

# The MCP interop tests' peers (tests/interop/package.json, pinned, Node 22
# included): installed again only when the lock file changed.
interop="$root/tests/interop"
if ! cmp -s "$interop/package-lock.json" "$interop/node_modules/.lotus-installed" 2>/dev/null; then
  echo "==> installing the MCP interop packages (npm)"
  (cd "$interop" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$interop/package-lock.json" "$interop/node_modules/.lotus-installed"
fi

# The browser tests' playwright-core (tests/browser/package.json, pinned;
# it drives Debian's chromium): installed again only when the lock file changed.
browser="$root/tests/browser"
if ! cmp -s "$browser/package-lock.json" "$browser/node_modules/.lotus-installed" 2>/dev/null; then
  echo "==> installing the browser test packages (npm)"
  (cd "$browser" && npm ci --prefer-offline --no-audit --no-fund --loglevel=error >/dev/null)
  cp "$browser/package-lock.json" "$browser/node_modules/.lotus-installed"
fi

export CCACHE_DIR="${CCACHE_DIR:-$HOME/.cache/ccache}"
echo "==> configuring preset $preset"
cmake --preset "$preset" -S "$root" >/dev/null
ln -sf "build/$preset/compile_commands.json" "$root/compile_commands.json"
echo "==> building ${*:-everything} ($preset)"
if (($#)); then
  cmake --build "$root/build/$preset" --target "$@"
else
  cmake --build "$root/build/$preset"
fi
