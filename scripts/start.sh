#!/usr/bin/env bash
# Sets up, builds and starts LOTUS on its embedded defaults: an interactive
# session in this terminal. Arguments go to `lotus` (try --help).
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
"$root/scripts/setup.sh" release lotus >&2
exec "$root/build/release/bin/lotus" "$@"
