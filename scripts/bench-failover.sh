#!/usr/bin/env bash
# Failover figures for docs/BENCHMARKS.md ("Failover"): N edge kills
# (default 20) with four Chromium pages under `geomesh dev`, N/2
# migrations, N/2 leader kills with dev timings and N/2 with the selector
# defaults. Needs what scripts/test.sh installs (chromium, the e2e Python
# packages) and a debug build (`cargo build`). Not run by CI.
set -euo pipefail
cd "$(dirname "$0")/.."
export GEOMESH_BIN="${GEOMESH_BIN:-$PWD/target/debug/geomesh}"
cd tests/e2e
exec python3 bench_failover.py "${1:-20}"
