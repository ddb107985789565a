#!/usr/bin/env bash
# The peer benchmark (issue #19; docs/BENCHMARKS.md, "Side by side with
# Janus and mediasoup"): the same `geomesh loadgen` load — publishers,
# subscribers, codecs, bitrates, duration — through geomesh's edge, through
# Janus's VideoRoom (Debian package `janus`, configured here from
# scripts/peers/janus/) and through mediasoup (npm package, its worker
# built from source by scripts/peers/mediasoup/build-worker.sh, behind the
# benchmark's signaling server scripts/peers/mediasoup/server.mjs), one
# after the other. Per server: forwarded packets per CPU-second of the
# server's processes, delivery, one-way delay p50/p99, and each ratio to
# geomesh (scripts/peers_report.py).
#
# Janus (libnice) gathers no loopback candidates, so everything runs in a
# network namespace this script creates, with a veth pair inside it
# (10.77.0.1 for the servers, 10.77.0.2 for the clients); no packet leaves
# it, and it is deleted at the end. With two or more CPUs the server under
# test is pinned to CPU 0 and the load generator to CPU 1 (taskset).
#
#   sudo scripts/bench-peers.sh                   # every shape, 30 s each
#   DURATION=10s SHAPES="A S" scripts/bench-peers.sh
#   SMOKE=1 scripts/bench-peers.sh                # one shape, 5 s: what CI runs
#   SHAPES="" CAPACITY="2 4 6 8" DURATION=20s scripts/bench-peers.sh
#                                                 # capacity: galleries of 10
#   SHAPES="" SPEAKER="6 8 10" PEERS="" scripts/bench-peers.sh
#                                                 # capacity: speaker views of 10
#   PEERS=janus scripts/bench-peers.sh            # leave mediasoup out
#
# Needs root (ip netns). Installs janus with apt-get if it is missing, and
# builds mediasoup's worker once (about 5 min on two cores) into
# $MEDIASOUP_DIR (default target/peers/mediasoup).
# SMOKE=1 checks delivery (every session connected, video and audio
# delivered), never speed.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT="${OUT:-bench-peers-out}"
DURATION="${DURATION:-30s}"
SHAPES="${SHAPES-A B S}"
# Capacity runs (issue #19, item 2): this many 10-person gallery meetings
# each (everyone publishes simulcast, one talks, 180-px tiles: the low
# layer), shape G<n>.
CAPACITY="${CAPACITY:-}"
# The same in speaker view (shape V<n>): the talker on a 720-px stage, the
# others in 180-px tiles (on Janus and mediasoup, a substream per feed).
SPEAKER="${SPEAKER:-}"
PEERS="${PEERS-janus mediasoup}"
if [ -n "${SMOKE:-}" ]; then
  DURATION=5s
  SHAPES=A
  CAPACITY=""
  SPEAKER=""
  PEERS=janus
fi
has_peer() { [[ " $PEERS " == *" $1 "* ]]; }
NS="gm-peers-$$"
SRV=10.77.0.1
CLI=10.77.0.2
JANUS_PORT=8188
MEDIASOUP_PORT=8288
# The same shapes as docs/BENCHMARKS.md, "Edge load": A and B (3
# publishers + 7 subscribers per conference, 1 and 4 conferences) and a
# 10-person meeting where everyone publishes simulcast and one talks.
shape_args() {
  case "$1" in
    A) echo "-c 1 -p 3 -s 7 --audio" ;;
    B) echo "-c 4 -p 3 -s 7 --audio" ;;
    S) echo "-c 1 -p 10 -s 0 --simulcast --audio --talkers 1" ;;
    G*) echo "-c ${1#G} -p 10 -s 0 --simulcast --audio --talkers 1 --tile-height 180" ;;
    V*) echo "-c ${1#V} -p 10 -s 0 --simulcast --audio --talkers 1 --tile-height 180 --stage-height 720" ;;
    *) echo "unknown shape $1" >&2; exit 2 ;;
  esac
}

if has_peer janus && ! command -v janus >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq janus >/dev/null
fi
if has_peer mediasoup; then
  MEDIASOUP_DIR="$(realpath -m "${MEDIASOUP_DIR:-${CARGO_TARGET_DIR:-target}/peers/mediasoup}")"
  scripts/peers/mediasoup/build-worker.sh "$MEDIASOUP_DIR"
fi
if [ -z "${BIN:-}" ]; then
  if [ -n "${SMOKE:-}" ]; then
    cargo build --locked --bin geomesh
    BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/geomesh"
  else
    cargo build --release --locked --bin geomesh
    BIN="${CARGO_TARGET_DIR:-$PWD/target}/release/geomesh"
  fi
fi
BIN="$(realpath "$BIN")"
mkdir -p "$OUT"
OUT="$(realpath "$OUT")"
SCRATCH="$(mktemp -d)"

PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
  ip netns del "$NS" 2>/dev/null || true
  rm -rf "$SCRATCH"
}
trap cleanup EXIT

ip netns add "$NS"
in_ns() { ip netns exec "$NS" "$@"; }
in_ns ip link set lo up
in_ns ip link add gmp0 type veth peer name gmp1
in_ns ip addr add "$SRV/24" dev gmp0
in_ns ip addr add "$CLI/24" dev gmp1
in_ns ip link set gmp0 up
in_ns ip link set gmp1 up
# Both ends are in this namespace: a packet that comes in over the veth
# from the other end carries a local source address, which the kernel
# drops unless told otherwise.
for i in all default gmp0 gmp1; do in_ns sysctl -qw "net.ipv4.conf.$i.accept_local=1"; done

SERVER_CPU=""
LOAD_CPU=""
if [ "$(nproc)" -ge 2 ]; then
  SERVER_CPU=0
  LOAD_CPU=1
fi
pin() { [ -z "$SERVER_CPU" ] || taskset -a -p -c "$SERVER_CPU" "$1" >/dev/null; }
load() {
  if [ -n "$LOAD_CPU" ]; then in_ns taskset -c "$LOAD_CPU" "$BIN" loadgen "$@"; else in_ns "$BIN" loadgen "$@"; fi
}
wait_http() {
  for _ in $(seq 1 240); do
    in_ns curl -sf "$1" >/dev/null 2>&1 && return 0
    sleep 0.5
  done
  echo "$1 never answered" >&2
  return 1
}

# geomesh: the embedded dev mesh in the namespace; the load goes to one edge.
# (`ip netns exec` execs the command: $! is the server's own pid.)
# Its edges admit any number of sessions: the capacity runs find the
# limit by loss and delay, not by the dev mesh's admission cap.
ip netns exec "$NS" "$BIN" dev --http-port 18980 --media-port 19040 --octo-port 19050 \
  --edge-capacity 10000 --state-file "$SCRATCH/dev.json" >"$OUT/geomesh-dev.log" 2>&1 &
PIDS+=($!)
wait_http http://127.0.0.1:18980/healthz
for _ in $(seq 1 120); do [ -s "$SCRATCH/dev.json" ] && break; sleep 0.5; done
read -r EDGE EDGE_PID < <(python3 -c 'import json,sys; e=json.load(open(sys.argv[1]))["edges"][0]; print(e["url"], e["pid"])' "$SCRATCH/dev.json")
wait_http "$EDGE/healthz"
pin "$EDGE_PID"

if has_peer janus; then
  # Janus: VideoRoom and the WebSocket transport only, from our config.
  J="$SCRATCH/janus"
  mkdir -p "$J/plugins" "$J/transports" "$J/none"
  for f in scripts/peers/janus/*.jcfg; do
    sed -e "s|@DIR@|$J|g; s|@IFACE@|gmp0|g; s|@PORT@|$JANUS_PORT|g; s|@ADDR@|$SRV|g" "$f" >"$J/$(basename "$f")"
  done
  LIB=$(dirname "$(dpkg -L janus | grep -m1 '/plugins/libjanus_videoroom.so$')")/..
  # Janus loads the files named *.so in those folders.
  ln -s "$LIB/plugins/libjanus_videoroom.so" "$J/plugins/libjanus_videoroom.so"
  ln -s "$LIB/transports/libjanus_websockets.so" "$J/transports/libjanus_websockets.so"
  ip netns exec "$NS" janus -C "$J/janus.jcfg" -F "$J" -i "$SRV" -o -N -L "$OUT/janus.log" >/dev/null 2>&1 &
  JANUS_PID=$!
  PIDS+=("$JANUS_PID")
  for i in $(seq 1 60); do
    in_ns bash -c "exec 3<>/dev/tcp/$SRV/$JANUS_PORT" 2>/dev/null && break
    kill -0 "$JANUS_PID" 2>/dev/null || { tail -5 "$OUT/janus.log" >&2; exit 1; }
    [ "$i" -lt 60 ] || { echo "Janus never listened on $SRV:$JANUS_PORT" >&2; exit 1; }
    sleep 0.5
  done
  pin "$JANUS_PID"
  JANUS_VERSION=$(janus --help 2>/dev/null | sed -n "s/^Janus version: [0-9]* (\(.*\))/\1/p" | head -1)
fi

# mediasoup: one worker (one core) behind the benchmark's signaling
# server, both pinned to the server CPU; CPU counts both processes.
if has_peer mediasoup; then
  PIN=()
  [ -z "$SERVER_CPU" ] || PIN=(taskset -c "$SERVER_CPU")
  ip netns exec "$NS" "${PIN[@]}" env MEDIASOUP_WORKER_BIN="$MEDIASOUP_DIR/mediasoup-worker" \
    node scripts/peers/mediasoup/server.mjs --modules "$MEDIASOUP_DIR" --addr "$SRV" \
    --port "$MEDIASOUP_PORT" --pid-file "$SCRATCH/mediasoup-worker.pid" >"$OUT/mediasoup.log" 2>&1 &
  MEDIASOUP_PID=$!
  PIDS+=("$MEDIASOUP_PID")
  for i in $(seq 1 60); do
    [ -s "$SCRATCH/mediasoup-worker.pid" ] && in_ns bash -c "exec 3<>/dev/tcp/$SRV/$MEDIASOUP_PORT" 2>/dev/null && break
    kill -0 "$MEDIASOUP_PID" 2>/dev/null || { tail -5 "$OUT/mediasoup.log" >&2; exit 1; }
    [ "$i" -lt 60 ] || { echo "mediasoup never listened on $SRV:$MEDIASOUP_PORT" >&2; exit 1; }
    sleep 0.5
  done
  MEDIASOUP_PIDS="$MEDIASOUP_PID,$(cat "$SCRATCH/mediasoup-worker.pid")"
  MEDIASOUP_VERSION=$(node -p "require('$MEDIASOUP_DIR/node_modules/mediasoup/package.json').version")
fi

ALL="$SHAPES"
for c in $CAPACITY; do ALL="$ALL G$c"; done
for c in $SPEAKER; do ALL="$ALL V$c"; done
for s in $ALL; do
  args=$(shape_args "$s")
  echo "==> $s geomesh: loadgen --edge $EDGE $args --duration $DURATION"
  # shellcheck disable=SC2086
  load --edge "$EDGE" $args --duration "$DURATION" --json-out "$OUT/$s-geomesh.json" 2>/dev/null \
    | tee "$OUT/$s-geomesh.txt"
  if has_peer janus; then
    echo "==> $s janus: loadgen --janus ws://$SRV:$JANUS_PORT $args --duration $DURATION"
    # shellcheck disable=SC2086
    load --janus "ws://$SRV:$JANUS_PORT" --server-pid "$JANUS_PID" --bind "$CLI" $args \
      --duration "$DURATION" --json-out "$OUT/$s-janus.json" 2>/dev/null | tee "$OUT/$s-janus.txt"
  fi
  if has_peer mediasoup; then
    echo "==> $s mediasoup: loadgen --mediasoup ws://$SRV:$MEDIASOUP_PORT $args --duration $DURATION"
    # shellcheck disable=SC2086
    load --mediasoup "ws://$SRV:$MEDIASOUP_PORT" --server-pid "$MEDIASOUP_PIDS" --bind "$CLI" $args \
      --duration "$DURATION" --json-out "$OUT/$s-mediasoup.json" 2>/dev/null | tee "$OUT/$s-mediasoup.txt"
  fi
done

python3 scripts/peers_report.py "$OUT" --shapes "$ALL" --servers "geomesh $PEERS" \
  --load "$(cut -d' ' -f1-3 /proc/loadavg)" --janus-version "${JANUS_VERSION:-?}" \
  --mediasoup-version "${MEDIASOUP_VERSION:-?}" ${SMOKE:+--check-delivery} | tee "$OUT/report.md"
