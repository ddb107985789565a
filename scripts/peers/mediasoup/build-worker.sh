#!/usr/bin/env bash
# Builds mediasoup 3.12.16 (npm package + C++ mediasoup-worker, from source)
# for the peer benchmark (scripts/bench-peers.sh), with only Debian's archive,
# PyPI and npm reachable.
#
#   scripts/peers/mediasoup/build-worker.sh [--check] [OUT_DIR]
#
# OUT_DIR (default target/peers/mediasoup under the repo root) gets
# mediasoup-worker and node_modules/{mediasoup,ws,sdp-transform}. Nothing is
# done if it is already there (add --check to run the smoke test anyway).
#
# 3.12.16 is the last release before flatbuffers: newer ones need subprojects
# and prebuilt workers that only GitHub serves. Its worker/meson.build takes
# every dependency from meson wraps (GitHub/wrapdb/openssl.org), so a copy is
# patched (no C++ source is changed), then built like `make -C worker`
# Release (same meson flags; meson 1.2.1 and ninja 1.10.2.4 from PyPI):
#  - openssl, nlohmann_json, libuv, usrsctp, abseil-cpp: Debian -dev packages
#    via pkg-config, linked dynamically (so out of link_whole). abseil
#    20220623 and libuv 1.44.2 are the wraps' versions; nlohmann_json 3.11.2
#    (wrap 3.10.5) and usrsctp 0.9.5.0 (wrap: git 4e06feb) build unchanged.
#  - libsrtp2 stays a static subproject with the OpenSSL backend, as upstream
#    (Debian's is built on NSS); only its wrap's URL moves to Debian's orig
#    tarball, byte-identical to GitHub's (meson checks the sha256).
#  - catch2 and the test/fuzzer targets are dropped.
set -euo pipefail

MS_VERSION=3.12.16
WS_VERSION="${WS_VERSION:-8.23.1}"
SDP_TRANSFORM_VERSION="${SDP_TRANSFORM_VERSION:-2.15.0}"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
SRTP_URL="$DEBIAN_MIRROR/pool/main/libs/libsrtp2/libsrtp2_2.5.0.orig.tar.gz"

CHECK=0
[ "${1:-}" = --check ] && { CHECK=1; shift; }
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../../.." && pwd)"
OUT="$(realpath -m "${1:-$ROOT/target/peers/mediasoup}")"
B="$OUT/.build"
die() { echo "build-worker.sh: $*" >&2; exit 1; }
log() { echo "==> mediasoup: $*"; }

# Smoke test: worker, router (opus + VP8), WebRtcTransport on 127.0.0.1, and
# an AES-GCM SRTP session (PlainTransport), which proves the bundled libsrtp.
check() {
  (cd "$OUT" && MEDIASOUP_WORKER_BIN="$OUT/mediasoup-worker" node -e '
const ms = require("mediasoup");
(async () => {
  const worker = await ms.createWorker({ logLevel: "warn" });
  const router = await worker.createRouter({ mediaCodecs: [
    { kind: "audio", mimeType: "audio/opus", clockRate: 48000, channels: 2 },
    { kind: "video", mimeType: "video/VP8", clockRate: 90000 } ] });
  const t = await router.createWebRtcTransport({ listenIps: [{ ip: "127.0.0.1" }] });
  const plain = await router.createPlainTransport({ listenIp: "127.0.0.1",
    enableSrtp: true, srtpCryptoSuite: "AEAD_AES_256_GCM" });
  await plain.connect({ ip: "127.0.0.1", port: 9, srtpParameters: {
    cryptoSuite: "AEAD_AES_256_GCM", keyBase64: Buffer.alloc(44, 7).toString("base64") } });
  console.log(`mediasoup ${ms.version}, worker pid ${worker.pid}`);
  console.log("ICE parameters:", JSON.stringify(t.iceParameters));
  console.log("ICE candidate:", JSON.stringify(t.iceCandidates[0]));
  console.log("DTLS fingerprint:", JSON.stringify(t.dtlsParameters.fingerprints.find((f) => f.algorithm === "sha-256")));
  console.log("SRTP AEAD_AES_256_GCM session: ok");
  worker.close();
})().catch((e) => { console.error(e); process.exit(1); });') || die "smoke test failed"
}

installed_version() {
  node -p "require('$OUT/node_modules/mediasoup/package.json').version" 2>/dev/null || true
}
if [ -x "$OUT/mediasoup-worker" ] && [ "$(installed_version)" = "$MS_VERSION" ]; then
  [ "$CHECK" = 1 ] && check
  exit 0
fi

# Debian packages (only the missing ones). libsrtp2-dev is deliberately absent.
PKGS=(g++ make pkg-config python3 python3-venv ca-certificates libssl-dev
  nlohmann-json3-dev libuv1-dev libusrsctp-dev libabsl-dev)
command -v node >/dev/null && command -v npm >/dev/null || PKGS+=(nodejs npm)
MISSING=()
for p in "${PKGS[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'ok installed' || MISSING+=("$p")
done
if [ "${#MISSING[@]}" -gt 0 ]; then
  [ "$(id -u)" = 0 ] || die "missing Debian packages (run as root): ${MISSING[*]}"
  log "apt-get install ${MISSING[*]}"
  export DEBIAN_FRONTEND=noninteractive
  APTLOG="$(mktemp)"
  { apt-get update -qq && apt-get install -y -qq --no-install-recommends "${MISSING[@]}"; } \
    >"$APTLOG" 2>&1 || { tail -20 "$APTLOG" >&2; die "apt-get install ${MISSING[*]} failed"; }
  rm -f "$APTLOG"
fi

# Node package first: its tarball also carries the worker sources. Scripts are
# skipped because postinstall would try GitHub for a prebuilt worker.
log "npm install mediasoup@$MS_VERSION ws@$WS_VERSION sdp-transform@$SDP_TRANSFORM_VERSION"
mkdir -p "$B"
cat >"$OUT/package.json" <<EOF
{ "name": "mediasoup-peer", "private": true,
  "dependencies": { "mediasoup": "$MS_VERSION", "ws": "$WS_VERSION",
    "sdp-transform": "$SDP_TRANSFORM_VERSION" } }
EOF
(cd "$OUT" && npm install --ignore-scripts --omit=dev --no-audit --no-fund \
  --loglevel=error >/dev/null) || die "npm install failed (is registry.npmjs.org reachable?)"
[ "$(installed_version)" = "$MS_VERSION" ] || die "npm did not install mediasoup $MS_VERSION"

# meson/ninja as pinned by worker/Makefile (Debian's meson 1.0.1 is < 1.1.0).
if [ ! -x "$B/venv/bin/meson" ]; then
  log "pip install meson 1.2.1, ninja 1.10.2.4"
  python3 -m venv "$B/venv" && "$B/venv/bin/pip" install -q --disable-pip-version-check \
    meson==1.2.1 ninja==1.10.2.4 || die "pip install meson/ninja failed"
fi
export PATH="$B/venv/bin:$PATH"

if [ ! -f "$B/src/.patched" ]; then
  rm -rf "$B/src" "$B/build"
  cp -a "$OUT/node_modules/mediasoup/worker" "$B/src"
  python3 - "$B/src" "$SRTP_URL" <<'EOF' || die "patching worker/meson.build failed"
import re, sys, pathlib
w, srtp_url = pathlib.Path(sys.argv[1]), sys.argv[2]
block = re.compile(r"^\w+_proj = subproject\(\n  '(?:openssl|nlohmann_json|libuv|usrsctp|abseil-cpp|catch2)',\n.*?^\)\n", re.M | re.S)
system = """openssl_dep = dependency('openssl', version: '>= 3.0')
nlohmann_json_dep = dependency('nlohmann_json')
libuv_dep = dependency('libuv')
usrsctp_dep = dependency('usrsctp')
absl_deps = []
foreach n : ['flat_hash_map', 'flat_hash_set', 'btree', 'inlined_vector', 'memory']
  absl_deps += dependency('absl_' + n)
endforeach
absl_container_dep = declare_dependency(dependencies: absl_deps)
absl_strings_dep = dependency('absl_strings')
absl_types_dep = dependency('absl_optional')
"""
for f in [w / "meson.build", w / "deps/libwebrtc/meson.build"]:
    s, n = block.subn("", f.read_text())
    s = re.sub(r"^  \w+_proj\.get_variable\('(absl_container_lib|libcrypto_lib|libssl_lib|libuv|usrsctp)'\),\n", "", s, flags=re.M)
    s = re.sub(r"(?:abseil_cpp|openssl|nlohmann_json|libuv|usrsctp)_proj\.get_variable\('(\w+)'\)", r"\1", s)
    if f.parent == w:
        assert n == 6, "unexpected worker/meson.build layout"
        s = s.replace("libwebrtc_include_directories =", system + "libwebrtc_include_directories =", 1)
        s = s[: s.index("\ntest_sources = [")] + "\n"
    assert not re.search(r"(abseil_cpp|openssl|nlohmann_json|libuv|usrsctp|catch2)_proj", s), f
    f.write_text(s)
for wrap in (w / "subprojects").glob("*.wrap"):
    if wrap.name != "libsrtp2.wrap":
        wrap.unlink()
wrap = w / "subprojects/libsrtp2.wrap"
s, n = re.subn(r"^source_url = (.*)$", r"source_url = %s\nsource_fallback_url = \1" % srtp_url, wrap.read_text(), flags=re.M)
assert n == 1 and "8a43ef8e9ae2b665292591af62aa1a4ae41e468b6d98d8258f91478735da4e09" in s
wrap.write_text(s)
EOF
  touch "$B/src/.patched"
fi

# Same options as worker/Makefile's Release preset.
if [ ! -f "$B/build/build.ninja" ]; then
  log "meson setup (release)"
  meson setup --buildtype release -Db_ndebug=true -Db_pie=true -Db_staticpic=true \
    "$B/build" "$B/src" >"$B/setup.log" 2>&1 || { tail -20 "$B/setup.log" >&2; die "meson setup failed ($B/setup.log)"; }
fi
log "compiling mediasoup-worker (ninja -j2, a few minutes)"
nice ninja -C "$B/build" -j2 mediasoup-worker >"$B/build.log" 2>&1 \
  || { grep -m20 -A5 -E 'error|FAILED' "$B/build.log" >&2; die "compile failed ($B/build.log)"; }
install -m 755 "$B/build/mediasoup-worker" "$OUT/mediasoup-worker"
# mediasoup's default worker path, so MEDIASOUP_WORKER_BIN is optional.
mkdir -p "$OUT/node_modules/mediasoup/worker/out/Release"
ln -sfn ../../../../../mediasoup-worker "$OUT/node_modules/mediasoup/worker/out/Release/mediasoup-worker"
check
[ -n "${KEEP_BUILD:-}" ] || rm -rf "$B"
log "ready in $OUT"
