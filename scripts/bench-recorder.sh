#!/usr/bin/env bash
# Reproduces docs/BENCHMARKS.md, "The recorder": the recorder's CPU per
# recorded stream against its idle baseline, and its octo bytes in against
# the publishers' bytes, in one run (scripts/bench_recorder.py says how).
# Not part of the tests (figures are measured, never asserted).
#
#   scripts/bench-recorder.sh
#   CONFS=4 WINDOW=10 scripts/bench-recorder.sh    # a quick look
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --locked -p geomesh
BIN=$PWD/target/release/geomesh exec python3 scripts/bench_recorder.py
