#!/usr/bin/env bash
# Resident memory of an idle interactive `lotus`: once with the built-in
# modules only, once with 20 plugin modules loaded.
#
#   bench/idle_rss.sh [build dir, default build/release]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${1:-$root/build/release}"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT

measure() {  # label, then extra environment
  local label="$1"; shift
  mkfifo "$work/in"
  env HOME="$work/home" XDG_CONFIG_HOME="$work/config" XDG_DATA_HOME="$work/data" "$@" \
    "$build/bin/lotus" < "$work/in" > "$work/out" 2>&1 &
  local pid=$!
  exec 3> "$work/in"
  sleep 2
  local rss
  rss=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
  echo "/quit" >&3
  exec 3>&-
  wait "$pid"
  rm -f "$work/in"
  printf "idle lotus RSS, %s: %.1f MB\n" "$label" "$(echo "$rss / 1024" | bc -l)"
}

measure "built-in modules"
mkdir -p "$work/modules"
for i in $(seq 0 19); do
  d="$work/modules/counter_$i"
  mkdir -p "$d"
  cp "$build/test-modules/counter/libcounter.so" "$d/"
  sed "s/^name: counter/name: counter_$i/" "$build/test-modules/counter/manifest.yaml" > "$d/manifest.yaml"
done
measure "20 plugin modules" LOTUS_MODULE_PATH="$work/modules"
