#!/usr/bin/env bash
# ReAct framework overhead per think-act-observe iteration: LOTUS's react_bench beside the same
# scripted scenario in LangGraph.js (bench/langgraph), in one run, with the ratio of the two.
#
#   bench/react_overhead.sh [react_bench binary, default build/release/bench/react_bench]
#                           [--tools 50] [--tasks 200] [--steps 5]
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
js_dir="$root/bench/langgraph"

binary="$root/build/release/bench/react_bench"
if [[ $# -gt 0 && "$1" != --* ]]; then
  binary="$1"
  shift
fi
tools=50 tasks=200 steps=5
while [[ $# -gt 0 ]]; do
  case "$1" in
    --tools) tools="${2:?--tools needs a value}" ;;
    --tasks) tasks="${2:?--tasks needs a value}" ;;
    --steps) steps="${2:?--steps needs a value}" ;;
    *) echo "react_overhead.sh: unknown argument '$1'" >&2; exit 2 ;;
  esac
  shift 2
done
flags=(--tools "$tools" --tasks "$tasks" --steps "$steps")

if [[ ! -x "$binary" ]]; then
  echo "react_overhead.sh: LOTUS bench binary '$binary' is missing or not executable;" \
    "build it with: cmake --build build/release --target react_bench" >&2
  exit 1
fi
# @langchain/core needs Node.js >= 20 (Debian 12's own nodejs is 18).
for tool in node npm; do
  command -v "$tool" > /dev/null || { echo "react_overhead.sh: '$tool' not found; Node.js >= 20 with npm is needed" >&2; exit 1; }
done
node_major="$(node -p 'process.versions.node.split(".")[0]')"
if ((node_major < 20)); then
  echo "react_overhead.sh: Node.js $(node --version) is too old; @langchain/core needs >= 20" >&2
  exit 1
fi

# Install the pinned LangGraph.js packages once.
if [[ ! -d "$js_dir/node_modules" ]]; then
  echo "installing LangGraph.js packages in $js_dir ..." >&2
  if [[ -f "$js_dir/package-lock.json" ]]; then
    (cd "$js_dir" && npm ci --no-audit --no-fund --loglevel=error > /dev/null)
  else
    (cd "$js_dir" && npm install --no-audit --no-fund --loglevel=error > /dev/null)
  fi
fi

# Each bench prints one JSON line; keep the last line of each output.
lotus_json="$("$binary" "${flags[@]}" | tail -n 1)"
echo "$lotus_json"
langgraph_json="$(node "$js_dir/react_bench.mjs" "${flags[@]}" | tail -n 1)"
echo "$langgraph_json"

# Table and targets: LOTUS <= 0.1x LangGraph.js per iteration, and < 150 us per iteration.
# shellcheck disable=SC2016  # the single-quoted program is JavaScript, not shell
LOTUS_JSON="$lotus_json" LANGGRAPH_JSON="$langgraph_json" node --input-type=module -e '
const lotus = JSON.parse(process.env.LOTUS_JSON);
const lg = JSON.parse(process.env.LANGGRAPH_JSON);
for (const key of ["tools", "tasks", "steps", "iterations"]) {
  if (lotus[key] !== lg[key]) {
    console.error(`react_overhead.sh: runs differ in ${key}: lotus ${lotus[key]}, langgraph.js ${lg[key]}`);
    process.exit(1);
  }
}
const ratio = lotus.us_per_iteration / lg.us_per_iteration;
const row = (name, r) => console.log(
  `${name.padEnd(14)} ${r.us_per_iteration.toFixed(1).padStart(12)} ` +
  `${r.p50_task_us.toFixed(1).padStart(14)} ${r.p99_task_us.toFixed(1).padStart(14)}`);
const mark = (ok) => (ok ? "met" : "MISSED");
console.log(`\nReAct overhead: ${lotus.tools} tools, ${lotus.tasks} tasks x ${lotus.steps} steps ` +
  `(${lotus.iterations} iterations each)`);
console.log(`${"framework".padEnd(14)} ${"us/iteration".padStart(12)} ` +
  `${"p50 task us".padStart(14)} ${"p99 task us".padStart(14)}`);
row("lotus", lotus);
row("langgraph.js", lg);
console.log(`ratio lotus/langgraph.js: ${ratio.toFixed(4)}`);
console.log(`target lotus <= 0.1x langgraph.js: ${mark(ratio <= 0.1)}`);
console.log(`target lotus < 150 us/iteration:  ${mark(lotus.us_per_iteration < 150)}`);
'
