#!/usr/bin/env bash
# Sets up, builds (warnings are errors) and runs the whole test suite, then
# runs the unit tests again under AddressSanitizer + UndefinedBehaviorSanitizer.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
jobs="$(nproc)"

echo "==> stage 1: build and run every test (release preset)"
"$root/scripts/setup.sh" release
ctest --test-dir "$root/build/release" --output-on-failure -j "$jobs" --timeout 300 \
  | tee "$root/build/release/ctest.log"

echo "==> stage 2: unit tests under ASan + UBSan"
"$root/scripts/setup.sh" asan unit_tests
export ASAN_OPTIONS="detect_leaks=1:abort_on_error=1"
export UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1"
ctest --test-dir "$root/build/asan" --output-on-failure -j "$jobs" -L unit --timeout 300 \
  | tee "$root/build/asan/ctest.log"

echo "==> summary"
echo "stage 1 (all tests):      $(grep -E 'tests passed' "$root/build/release/ctest.log")"
echo "stage 2 (ASan+UBSan unit): $(grep -E 'tests passed' "$root/build/asan/ctest.log")"
