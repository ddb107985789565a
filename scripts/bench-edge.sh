#!/usr/bin/env bash
# Reproduces docs/BENCHMARKS.md, "Edge load": a release build, a local mesh
# on its own ports, then `geomesh loadgen` runs A and B (with the bare-relay
# floor) and the 10-person-meeting capacity runs. Reports go to $OUT as
# text and JSON. Takes ~10 minutes; not part of the tests (figures are
# measured, never asserted).
#
#   scripts/bench-edge.sh                  # everything
#   DURATION=5s CAPACITY="10" scripts/bench-edge.sh   # a quick look
#   BIN=/tmp/geomesh-before OUT=out-before scripts/bench-edge.sh
set -euo pipefail
cd "$(dirname "$0")/.."

OUT="${OUT:-bench-out}"
DURATION="${DURATION:-30s}"
CAP_DURATION="${CAP_DURATION:-20s}"
# Conferences of 10 in the capacity runs (10 → 100 participants).
CAPACITY="${CAPACITY:-10 12 15}"
PORT="${PORT:-18900}"

# BIN=path measures another build (e.g. a before/after pair, one after the other).
if [ -z "${BIN:-}" ]; then
  cargo build --release --locked
  BIN=target/release/geomesh
fi
mkdir -p "$OUT"

"$BIN" dev --http-port "$PORT" --media-port $((PORT + 60)) --octo-port $((PORT + 70)) \
  --state-file "$OUT/dev.json" >"$OUT/dev.log" 2>&1 &
DEV=$!
trap 'kill "$DEV" 2>/dev/null; wait "$DEV" 2>/dev/null || true' EXIT
# `geomesh dev` serves a selector on --http-port and starts its edges on
# the ports after it: the load goes to the first edge in the state file.
for _ in $(seq 1 120); do
  curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && [ -s "$OUT/dev.json" ] && break
  sleep 0.5
done
EDGE=$(python3 -c 'import json, sys; print(json.load(open(sys.argv[1]))["edges"][0]["url"])' "$OUT/dev.json")
for _ in $(seq 1 60); do
  curl -sf "$EDGE/healthz" >/dev/null 2>&1 && break
  sleep 0.5
done

run() {
  local name=$1
  shift
  echo "==> $name: geomesh loadgen --edge $EDGE $*"
  "$BIN" loadgen --edge "$EDGE" "$@" --json-out "$OUT/$name.json" 2>/dev/null | tee "$OUT/$name.txt"
}

run A -c 1 -p 3 -s 7 --duration "$DURATION" --audio --relay-floor
run B -c 4 -p 3 -s 7 --duration "$DURATION" --audio --relay-floor
for c in $CAPACITY; do
  run "gallery-$c" -c "$c" -p 10 -s 0 --simulcast --audio --talkers 1 --tile-height 180 \
    --duration "$CAP_DURATION"
done
echo "reports in $OUT/"
