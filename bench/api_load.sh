#!/usr/bin/env bash
# The daemon's HTTP throughput with wrk, beside the same wrk against a plain
# Beast hello-world (bench/http_hello.cc) in the same run:
#   GET /health (no token, the nucleus's health JSON),
#   POST /api/tools/file_watcher.list_watched/call (token, schema check, the
#   permission policy, a round trip over the bus to the module and back),
#   GET / on http_hello (a fixed JSON body).
#
#   bench/api_load.sh [--seconds 10] [--connections 64] [--threads 2]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build/release"
seconds=10 connections=64 threads=2
while [[ $# -gt 0 ]]; do
  case "$1" in
    --seconds) seconds="${2:?--seconds needs a value}" ;;
    --connections) connections="${2:?--connections needs a value}" ;;
    --threads) threads="${2:?--threads needs a value}" ;;
    *) echo "api_load.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift 2
done
for binary in "$build/bin/lotus" "$build/bench/http_hello"; do
  [[ -x "$binary" ]] || { echo "api_load.sh: $binary is missing; build it: cmake --build build/release --target lotus http_hello" >&2; exit 1; }
done
command -v wrk > /dev/null || { echo "api_load.sh: wrk is missing (apt-get install wrk)" >&2; exit 1; }

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2> /dev/null || true; done
  wait 2> /dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

HOME="$work/home" XDG_CONFIG_HOME="$work/config" XDG_DATA_HOME="$work/data" \
  "$build/bin/lotus" serve --port 0 > "$work/serve.log" 2>&1 &
pids+=($!)
"$build/bench/http_hello" 0 2 > "$work/hello.log" 2>&1 &
pids+=($!)
for _ in $(seq 100); do
  grep -q "Ctrl-C stops" "$work/serve.log" 2> /dev/null && grep -q listening "$work/hello.log" && break
  sleep 0.1
done
grep -q "Ctrl-C stops" "$work/serve.log" || { cat "$work/serve.log" >&2; exit 1; }
lotus_port="$(sed -n 's|.*serving on http://127.0.0.1:\([0-9]*\).*|\1|p' "$work/serve.log")"
hello_port="$(awk '/listening on/ {print $3}' "$work/hello.log")"
token="$(head -c 64 "$work/config/lotus/api-token")"

cat > "$work/call.lua" <<LUA
wrk.method = "POST"
wrk.body = '{"arguments": {}}'
wrk.headers["Content-Type"] = "application/json"
wrk.headers["Authorization"] = "Bearer $token"
LUA

rate() {  # wrk's Requests/sec, and its latency p99 when asked
  wrk -t"$threads" -c"$connections" -d"${seconds}s" --latency "$@" > "$work/wrk.txt" 2>&1
  if grep -q "Non-2xx" "$work/wrk.txt"; then
    echo "api_load.sh: non-2xx answers for $*:" >&2
    cat "$work/wrk.txt" >&2
  fi
  echo "$(awk '/Requests\/sec/ {print $2}' "$work/wrk.txt") $(awk '$1 == "99%" {print $2}' "$work/wrk.txt")"
}

read -r hello hello_p99 < <(rate "http://127.0.0.1:$hello_port/")
read -r health health_p99 < <(rate "http://127.0.0.1:$lotus_port/health")
read -r call call_p99 < <(rate -s "$work/call.lua" "http://127.0.0.1:$lotus_port/api/tools/file_watcher.list_watched/call")

echo "wrk -t$threads -c$connections -d${seconds}s, $(nproc) cores"
printf "%-44s %12s %10s %8s\n" "endpoint" "requests/s" "p99" "vs Beast"
printf "%-44s %12.0f %10s %8s\n" "Beast hello-world GET /" "$hello" "$hello_p99" "1.00"
printf "%-44s %12.0f %10s %8.2f\n" "lotus serve GET /health" "$health" "$health_p99" "$(awk -v a="$health" -v b="$hello" 'BEGIN {print a / b}')"
printf "%-44s %12.0f %10s %8.2f\n" "lotus serve POST tool call (bus round trip)" "$call" "$call_p99" "$(awk -v a="$call" -v b="$hello" 'BEGIN {print a / b}')"
