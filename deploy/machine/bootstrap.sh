#!/usr/bin/env bash
# Turns a fresh Debian machine into a geomesh node. Shipped in the release
# tarball; the cloud rollout's install step runs it as
# `bootstrap.sh RELEASE_DIR` with its settings in /etc/geomesh/bootstrap.env
# (deploy/terraform/modules/node). Safe to run again: it fetches the
# parameters anew and restarts the unit.
#
#   1. the Elastic IP is the machine's public address (else stop here)
#   2. a geomesh system user; a selector's (Raft) or a recorder's
#      (recordings) data volume at /var/lib/geomesh
#   3. the binary and the unit from RELEASE_DIR
#   4. the node's files from SSM Parameter Store (its own path only): the
#      topology, the unit's settings, credentials and keys
#   5. the SSM agent; role extras: GeoIP databases (selector), socket
#      buffers and the TLS terminator (edge), port 53 (selector)
#   6. enable and (re)start geomesh-<role>.service
set -euo pipefail
echo "== geomesh bootstrap $(date -u +%FT%TZ)"

RELEASE_DIR=${1:?usage: bootstrap.sh RELEASE_DIR}
# shellcheck source=/dev/null
. /etc/geomesh/bootstrap.env
: "${ROLE:?}" "${NODE_ID:?}" "${PUBLIC_IP:?}" "${SSM_PATH:?}" "${AWS_REGION:?}"
export AWS_DEFAULT_REGION="$AWS_REGION"
CONFIG=/etc/geomesh

die() {
  echo "geomesh bootstrap: $*" | tee /dev/console >&2
  exit 1
}

imds() {
  local token
  token=$(curl -fsS -X PUT -H 'X-aws-ec2-metadata-token-ttl-seconds: 60' http://169.254.169.254/latest/api/token)
  curl -fsS -H "X-aws-ec2-metadata-token: $token" "http://169.254.169.254/latest/meta-data/$1"
}

fetch() {
  case "$1" in
    s3://*) aws s3 cp --only-show-errors "$1" "$2" ;;
    *) curl -fsSL --proto '=https' --retry 5 -o "$2" "$1" ;;
  esac
}

# 1. Clients are told PUBLIC_IP (ICE candidates, URLs, certificates): the
# machine must really be reached there.
seen=""
for _ in $(seq 30); do
  seen=$(imds public-ipv4 || true)
  [ -n "$seen" ] && break
  sleep 2
done
[ "$seen" = "$PUBLIC_IP" ] || die "public address is '${seen:-none}', the topology says $PUBLIC_IP: not starting"

# 2.
id geomesh >/dev/null 2>&1 || useradd --system --home-dir /var/lib/geomesh --no-create-home --shell /usr/sbin/nologin geomesh
if [ -n "${DATA_VOLUME:-}" ]; then
  # Nitro machines name EBS volumes by serial (the volume id without '-').
  dev=/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_${DATA_VOLUME//-/}
  for _ in $(seq 300); do
    [ -e "$dev" ] && break
    [ -e /dev/xvdf ] && dev=/dev/xvdf && break
    sleep 2
  done
  [ -e "$dev" ] || die "data volume $DATA_VOLUME never appeared"
  blkid "$dev" >/dev/null || mkfs.ext4 -q -L geomesh-data "$dev"
  uuid=$(blkid -s UUID -o value "$dev")
  mkdir -p /var/lib/geomesh
  grep -q "$uuid" /etc/fstab || echo "UUID=$uuid /var/lib/geomesh ext4 defaults,nofail,x-systemd.device-timeout=5min 0 2" >>/etc/fstab
  mountpoint -q /var/lib/geomesh || mount /var/lib/geomesh
fi
install -d -o root -g geomesh -m 0750 /var/lib/geomesh

# 3. A release older than the role (a recorder pinned to a release from
# before recorders) has no unit for it.
[ -f "$RELEASE_DIR/systemd/geomesh-$ROLE.service" ] || die "this release has no geomesh-$ROLE.service: give this node a newer release"
ln -sfn "$RELEASE_DIR/geomesh" /usr/local/bin/geomesh
install -m 0644 "$RELEASE_DIR/systemd/geomesh-$ROLE.service" /etc/systemd/system/
/usr/local/bin/geomesh --version

# 4. Parameter names below SSM_PATH are paths under /etc/geomesh; a name
# ending in .gz.b64 holds its file gzipped and base64-encoded (the
# topology, past the parameter size limit otherwise).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
aws ssm get-parameters-by-path --path "$SSM_PATH" --recursive --with-decryption \
  --query 'Parameters[].[Name,Value]' --output json >"$work/parameters.json"
python3 - "$SSM_PATH" "$CONFIG" "$work/parameters.json" <<'PY'
import base64, gzip, json, os, pathlib, shutil, sys
prefix, root, source = sys.argv[1] + "/", pathlib.Path(sys.argv[2]), sys.argv[3]
group_of = {"web-tls": "caddy"}
for name, value in json.load(open(source)):
    rel = pathlib.PurePosixPath(name[len(prefix):])
    if not name.startswith(prefix) or ".." in rel.parts or rel.is_absolute():
        sys.exit(f"refusing parameter {name}")
    if rel.name.endswith(".gz.b64"):
        rel = rel.with_name(rel.name[: -len(".gz.b64")])
        data = gzip.decompress(base64.b64decode(value))
    else:
        data = value.encode() if value.endswith("\n") else (value + "\n").encode()
    path = root / rel
    path.parent.mkdir(mode=0o755, parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".new")
    with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o640), "wb") as f:
        f.write(data)
    shutil.chown(tmp, "root", group_of.get(rel.parts[0], "geomesh"))
    os.replace(tmp, path)
    print("wrote", path)
PY

# 5. Session Manager and Run Command (a shell, a refresh) need AWS's
# agent, which Debian's images lack: best effort, the node runs without.
if ! systemctl -q is-enabled amazon-ssm-agent 2>/dev/null; then
  if fetch "https://s3.$AWS_REGION.amazonaws.com/amazon-ssm-$AWS_REGION/latest/debian_amd64/amazon-ssm-agent.deb" "$work/ssm-agent.deb"; then
    dpkg -i "$work/ssm-agent.deb" && systemctl enable --now amazon-ssm-agent
  else
    echo "SSM agent not installed: no Session Manager on this machine"
  fi
fi
if [ -s "$CONFIG/geoip.list" ]; then
  while read -r sha url path; do
    [ -n "$path" ] || continue
    echo "$sha  $path" | sha256sum -c --status - 2>/dev/null && continue
    fetch "$url" "$work/db"
    echo "$sha  $work/db" | sha256sum -c - || die "GeoIP checksum mismatch: $url"
    install -D -m 0644 "$work/db" "$path.new"
    # Replace by rename: the selector memory-maps the old file.
    mv "$path.new" "$path"
  done <"$CONFIG/geoip.list"
fi
if [ "$ROLE" = edge ]; then
  # The media socket asks for 8 MiB buffers; the kernel caps them here.
  printf 'net.core.rmem_max = 16777216\nnet.core.wmem_max = 16777216\n' >/etc/sysctl.d/60-geomesh.conf
  sysctl -q --system
fi
if [ -n "${TLS_PORT:-}" ]; then
  # The operator's certificate: GeoDNS sends the meeting hostname to many
  # edges, so no single edge could pass an ACME challenge for it.
  sites=$(echo "$TLS_SITES" | sed "s/[^ ][^ ]*/&:$TLS_PORT/g; s/ /, /g")
  printf '{\n\tauto_https disable_redirects\n}\n%s {\n\ttls %s/web-tls/fullchain.pem %s/web-tls/privkey.pem\n\treverse_proxy 127.0.0.1:%s\n}\n' \
    "$sites" "$CONFIG" "$CONFIG" "$HTTP_PORT" >/etc/caddy/Caddyfile
  systemctl reload-or-restart caddy
fi
if [ "$ROLE" = selector ] && systemctl -q is-active systemd-resolved; then
  # GeoDNS binds port 53 on every interface; the local stub would hold it.
  mkdir -p /etc/systemd/resolved.conf.d
  printf '[Resolve]\nDNSStubListener=no\n' >/etc/systemd/resolved.conf.d/geomesh.conf
  systemctl restart systemd-resolved
fi

# 6.
systemctl daemon-reload
systemctl enable "geomesh-$ROLE.service"
systemctl restart "geomesh-$ROLE.service"
echo "== geomesh $ROLE $NODE_ID started"
