#!/usr/bin/env bash
# Refreshes geoip/data/land-110m.json (the land outline of the /status map
# and the simulator's placement plots) from the npm `world-atlas` package:
# Natural Earth's 1:110m land polygons (public domain) as TopoJSON (ISC).
# The file is committed; run this only to move to another version.
set -euo pipefail
cd "$(dirname "$0")/.."
version="${1:-2.0.2}"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent "world-atlas@$version" >/dev/null && tar xzf world-atlas-*.tgz)
cp "$tmp/package/land-110m.json" geoip/data/land-110m.json
cp "$tmp/package/LICENSE" geoip/data/world-atlas.LICENSE
echo "geoip/data/land-110m.json: world-atlas $version ($(wc -c < geoip/data/land-110m.json) bytes)"
