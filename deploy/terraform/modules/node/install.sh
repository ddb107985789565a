#!/usr/bin/env bash
# The first thing a geomesh machine runs (cloud-init), and what refreshes it
# later (`sudo /usr/local/lib/geomesh/bootstrap`): installs the release that
# /etc/geomesh/bootstrap.env names — download, SHA-256 check, unpack under
# /opt/geomesh — and runs that release's bootstrap.sh, which does the rest.
# Kept small: the rest ships with the release, so a new version of it
# reaches a machine only when a rolling upgrade replaces that machine.
set -euo pipefail
exec >>/var/log/geomesh-bootstrap.log 2>&1
echo "== geomesh install $(date -u +%FT%TZ)"
# shellcheck source=/dev/null
. /etc/geomesh/bootstrap.env
export AWS_DEFAULT_REGION="$AWS_REGION"
dir="/opt/geomesh/$RELEASE_SHA256"
if [ ! -x "$dir/bootstrap.sh" ]; then
  tmp=$(mktemp -d)
  case "$RELEASE_URL" in
    s3://*) aws s3 cp --only-show-errors "$RELEASE_URL" "$tmp/release.tar.gz" ;;
    *) curl -fsSL --proto '=https' --retry 5 -o "$tmp/release.tar.gz" "$RELEASE_URL" ;;
  esac
  echo "$RELEASE_SHA256  $tmp/release.tar.gz" | sha256sum -c -
  mkdir "$tmp/release"
  tar -xzf "$tmp/release.tar.gz" -C "$tmp/release" --strip-components=1
  mkdir -p /opt/geomesh
  mv "$tmp/release" "$dir"
  rm -rf "$tmp"
fi
exec "$dir/bootstrap.sh" "$dir"
