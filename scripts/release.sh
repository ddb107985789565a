#!/usr/bin/env bash
# Build the geomesh release tarball that the cloud rollout installs.
#
#   scripts/release.sh                  # cargo build --release, then package
#   scripts/release.sh --binary PATH    # package a binary built elsewhere
#
# Options:
#   --out DIR        where to write (default: dist)
#   --binary PATH    package PATH instead of building (same target)
#   -h, --help       this text
#
# Writes DIR/geomesh-VERSION-x86_64-unknown-linux-gnu.tar.gz and beside it
# the same name + .sha256 (sha256sum's format: "HASH  NAME"). The tarball
# holds one directory of that name with the binary, the machine's boot
# script (deploy/machine/bootstrap.sh), the systemd units and their settings
# files (deploy/systemd) and BUILD-INFO (target, commit, rustc, the glibc
# the binary needs). Give the URL where
# you upload it and the hash to Terraform (`release = { url, sha256 }`).
#
# Only x86_64 Linux (glibc) is built here: that is the one Rust target this
# machine has. The binary runs on the glibc its newest versioned symbol
# names or newer, at most the builder's (printed at the end and written in
# BUILD-INFO; built on Debian 12 it needs 2.34, so Debian 12 and 13 and
# Ubuntu 22.04 and 24.04 run it). For aarch64 (Graviton), install the
# target (rustup target add aarch64-unknown-linux-gnu) and a cross linker
# (gcc-aarch64-linux-gnu), build with --target, and pass --binary.
#
# The tarball is reproducible for a given binary: sorted names, fixed owner,
# the commit's time as every mtime, gzip without a timestamp.
set -euo pipefail
cd "$(dirname "$0")/.."

OUT=dist
BINARY=""
TARGET=x86_64-unknown-linux-gnu

die() {
  echo "release: $*" >&2
  exit 1
}

while [ $# -gt 0 ]; do
  case "$1" in
    --out) [ $# -ge 2 ] || die "--out needs a value"; OUT="$2"; shift 2 ;;
    --binary) [ $# -ge 2 ] || die "--binary needs a value"; BINARY="$2"; shift 2 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) die "unknown argument: $1 (see --help)" ;;
  esac
done

[ "$(uname -m)" = x86_64 ] || die "this builds $TARGET; run it on an x86_64 machine"
VERSION=$(sed -n 's/^version = "\(.*\)"/\1/p' Cargo.toml | head -n1)
[ -n "$VERSION" ] || die "no workspace version in Cargo.toml"
COMMIT=$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)
EPOCH=$(git log -1 --format=%ct 2>/dev/null || echo 0)

if [ -z "$BINARY" ]; then
  cargo build --release --locked --bin geomesh
  BINARY="${CARGO_TARGET_DIR:-target}/release/geomesh"
fi
[ -x "$BINARY" ] || die "$BINARY is not an executable"

# The newest glibc symbol version the binary links against is the oldest
# glibc it runs on.
GLIBC=$(objdump -T "$BINARY" 2>/dev/null | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -t. -k1,1n -k2,2n -u | tail -n1 || true)
[ -n "$GLIBC" ] || die "$BINARY: no glibc symbol versions (objdump from binutils, and a glibc binary, are needed)"

NAME="geomesh-$VERSION-$TARGET"
STAGE=$(mktemp -d)
trap 'rm -rf "$STAGE"' EXIT
mkdir -p "$STAGE/$NAME/systemd"
install -m 0755 "$BINARY" "$STAGE/$NAME/geomesh"
install -m 0755 deploy/machine/bootstrap.sh "$STAGE/$NAME/bootstrap.sh"
install -m 0644 deploy/systemd/geomesh-edge.service deploy/systemd/geomesh-selector.service \
  deploy/systemd/geomesh-recorder.service \
  deploy/systemd/edge.env deploy/systemd/selector.env deploy/systemd/recorder.env "$STAGE/$NAME/systemd/"
cat >"$STAGE/$NAME/BUILD-INFO" <<INFO
geomesh $VERSION ($COMMIT)
target: $TARGET
needs: glibc >= $GLIBC
rustc: $(rustc --version 2>/dev/null || echo unknown)
INFO

mkdir -p "$OUT"
TARBALL="$OUT/$NAME.tar.gz"
tar --sort=name --owner=0 --group=0 --numeric-owner --mtime="@$EPOCH" \
  -C "$STAGE" -cf - "$NAME" | gzip -9n >"$TARBALL"
(cd "$OUT" && sha256sum "$NAME.tar.gz" >"$NAME.tar.gz.sha256")

echo "$TARBALL"
echo "sha256: $(cut -d' ' -f1 "$TARBALL.sha256")"
echo "needs: glibc >= $GLIBC ($TARGET)"
