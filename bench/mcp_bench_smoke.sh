#!/usr/bin/env bash
# Smoke test of the MCP benchmark client (ctest mcp_bench_smoke): every mode
# of `mcp_bench` (sleeping, polling, calls in flight) over stdio and HTTP
# against its bare echo servers, each run checked for its figures line; and
# the polling client refused with calls in flight.
#
#   bench/mcp_bench_smoke.sh PATH/TO/mcp_bench
set -euo pipefail
bench="${1:?usage: mcp_bench_smoke.sh PATH/TO/mcp_bench}"
work="$(mktemp -d)"
server=""
cleanup() {
  [[ -n "$server" ]] && kill "$server" 2>/dev/null || true
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# check LABEL COMMAND...: the command exits 0 and prints "<N> calls ... calls/s".
check() {
  local label="$1" out
  shift
  out="$("$@")" || { echo "FAIL $label: exit $?" >&2; exit 1; }
  if ! grep -Eq ' 300 calls +[0-9]+ calls/s  mean +[0-9.]+ us  p99 +[0-9.]+ us' <<<"$out"; then
    echo "FAIL $label: no figures in: $out" >&2
    exit 1
  fi
  echo "ok   $label: $out"
}

for mode in "--in-flight 1" "--busy-poll" "--in-flight 4"; do
  # shellcheck disable=SC2086
  check "stdio $mode" "$bench" stdio $mode --calls 300 --warmup 20 -- "$bench" bare-stdio
done

"$bench" bare-http --port-file "$work/port" &
server=$!
for _ in $(seq 1 100); do [[ -s "$work/port" ]] && break; sleep 0.05; done
[[ -s "$work/port" ]] || { echo "FAIL the bare HTTP echo did not start" >&2; exit 1; }
url="http://127.0.0.1:$(cat "$work/port")/mcp"
for mode in "--in-flight 1" "--busy-poll" "--in-flight 4"; do
  # shellcheck disable=SC2086
  check "http $mode" "$bench" http $mode --calls 300 --warmup 20 --url "$url"
done

if "$bench" http --busy-poll --in-flight 2 --url "$url" 2>"$work/refusal"; then
  echo "FAIL --busy-poll with --in-flight 2 was accepted" >&2
  exit 1
fi
grep -q -- "--busy-poll is for sequential calls" "$work/refusal" ||
  { echo "FAIL unexpected refusal: $(cat "$work/refusal")" >&2; exit 1; }
echo "ok   --busy-poll with calls in flight refused: $(cat "$work/refusal")"
