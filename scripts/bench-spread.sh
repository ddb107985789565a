#!/usr/bin/env bash
# Reproduces docs/BENCHMARKS.md, "One conference over two workers": one
# large conference against one edge, kept on one worker (--spread-above 0)
# and spread over two (--spread-above 25), same load. Reports go to $OUT.
# Not part of the tests (figures are measured, never asserted).
#
#   scripts/bench-spread.sh
#   DURATION=10s SUBS=40 scripts/bench-spread.sh   # a quick look
set -euo pipefail
cd "$(dirname "$0")/.."

OUT="${OUT:-bench-out}"
DURATION="${DURATION:-20s}"
PUBS="${PUBS:-3}"
SUBS="${SUBS:-100}"
PORT="${PORT:-18800}"

cargo build --release --locked
BIN=$PWD/target/release/geomesh
mkdir -p "$OUT"
DIR=$(mktemp -d)
cat >"$DIR/topology.yaml" <<EOF
version: 1
cluster: { name: bench, domain: meet.geomesh.test }
tls: { dir: certs }
regions:
  - { id: eu, name: Frankfurt, location: { lat: 50.11, lon: 8.68 }, provider: local, provider_region: loopback }
edges:
  - { id: edge-a, region: eu, public_ip: 127.0.0.1, bind_ip: 127.0.0.1, media_port: $((PORT + 60)), http: 127.0.0.1:$PORT, octo: 127.0.0.1:$((PORT + 70)), capacity: 1000 }
selectors:
  - { id: sel-1, region: eu, api: 127.0.0.1:$((PORT + 20)), raft: 127.0.0.1:$((PORT + 30)) }
EOF
"$BIN" certs init --topology "$DIR/topology.yaml" --out "$DIR/certs" >/dev/null

EDGE_PID=
stop_edge() {
  if [ -n "$EDGE_PID" ]; then
    kill "$EDGE_PID" 2>/dev/null || true
    wait "$EDGE_PID" 2>/dev/null || true
    EDGE_PID=
  fi
}
trap 'stop_edge; rm -rf "$DIR"' EXIT

run() {
  local name=$1 spread=$2
  "$BIN" edge --topology "$DIR/topology.yaml" --id edge-a --certs "$DIR/certs" --dev \
    --media-workers 2 --spread-above "$spread" >"$OUT/$name-edge.log" 2>&1 &
  EDGE_PID=$!
  for _ in $(seq 1 60); do
    curl -sf "http://127.0.0.1:$PORT/healthz" >/dev/null 2>&1 && break
    sleep 0.5
  done
  echo "==> $name (--spread-above $spread): geomesh loadgen -c 1 -p $PUBS -s $SUBS --audio --duration $DURATION"
  "$BIN" loadgen --edge "http://127.0.0.1:$PORT" -c 1 -p "$PUBS" -s "$SUBS" --audio \
    --duration "$DURATION" --json-out "$OUT/$name.json" 2>/dev/null | tee "$OUT/$name.txt"
  curl -sf "http://127.0.0.1:$PORT/metrics" | grep -E '^geomesh_edge_(sibling_packets|worker_busy|datagrams_dropped)' \
    | tee -a "$OUT/$name.txt" || true
  stop_edge
}

run whole 0
run spread 25
echo "reports in $OUT/"
