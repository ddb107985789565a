"""Fixtures for end-to-end tests: the real `geomesh` binary, real Chromium,
real aiortc. Everything runs on loopback; every wait is bounded."""

import asyncio
import contextlib
import itertools
import json
import os
import shutil
import signal
import subprocess
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("GEOMESH_BIN", ROOT / "target" / "debug" / "geomesh"))
# Tests check behaviour, not speed (docs/DECISIONS.md, "Time bounds in
# end-to-end tests"): a bound taken from an issue's figure is multiplied by
# this factor, because CI runs four Chromiums and a debug-built mesh on two
# cores. scripts/bench-failover.sh measures the figures themselves.
SLACK = float(os.environ.get("GEOMESH_E2E_SLACK", "2.5"))

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--use-fake-device-for-media-stream",
    "--use-fake-ui-for-media-stream",
    "--disable-dev-shm-usage",
]

# Each dev mesh gets its own port block so modules never collide.
_blocks = itertools.count()


def http_get(url, timeout=5, token=None):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def metrics(edge_url):
    """Prometheus text of an edge as {name{labels}: value}."""
    _, body = http_get(edge_url + "/metrics")
    out = {}
    for line in body.decode().splitlines():
        if line and not line.startswith("#"):
            k, v = line.rsplit(" ", 1)
            out[k] = float(v)
    return out


def metric_sum(urls, name, direction=None):
    """The sum of every series of counter `name` over the edges at `urls`,
    optionally only those with `direction="In"`/`"Out"`."""
    total = 0.0
    for url in urls:
        for k, v in metrics(url).items():
            if k.split("{", 1)[0] == name and (direction is None or f'direction="{direction}"' in k):
                total += v
    return total


def octo_and_ingress_bytes(urls):
    """Bytes the edges sent on octo links, and bytes they received on their media port."""
    return (metric_sum(urls, "geomesh_edge_octo_media_bytes_total", "Out"),
            metric_sum(urls, "geomesh_edge_udp_bytes_total", "In"))


def metric(edge_url, key):
    return metrics(edge_url).get(key, 0.0)


def mint_token(key, conference, edge, participant=None, name=None, ttl="10m", rights=()):
    """A join token from `geomesh token mint` with the cluster's token key;
    `rights` may hold "--no-publish", "--no-subscribe"."""
    args = [str(BIN), "token", "mint", "--key", str(key), "--conference", conference,
            "--edge", edge, "--ttl", ttl, *rights]
    if participant:
        args += ["--participant", participant]
    if name:
        args += ["--name", name]
    return subprocess.run(args, check=True, capture_output=True, text=True, timeout=30).stdout.strip()


class DevMesh:
    """`geomesh dev --state-file`, as a newcomer would run it."""

    def __init__(self, *extra_args):
        block = next(_blocks)
        self.tmp = tempfile.TemporaryDirectory(prefix="geomesh-e2e-")
        self.state_file = Path(self.tmp.name) / "state.json"
        self.log = open(Path(self.tmp.name) / "dev.log", "w+")
        base = 20000 + (os.getpid() % 40) * 250 + block * 50
        self.proc = subprocess.Popen(
            [
                str(BIN),
                "dev",
                "--state-file",
                str(self.state_file),
                "--http-port",
                str(base),
                "--media-port",
                str(base + 3000),
                "--octo-port",
                str(base + 6000),
                *extra_args,
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        deadline = time.monotonic() + 60
        while not self.state_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("geomesh dev did not start:\n" + self.logs())
            time.sleep(0.1)
        self.state = json.loads(self.state_file.read_text())

    @property
    def edge(self):
        return self.state["edges"][0]

    @property
    def meeting_url(self):
        """The meeting page: the first selector's `/`."""
        return self.state["meeting_url"].rstrip("/")

    def page(self, conference, name, region=None, extra=""):
        """The meeting page URL that joins `conference` as `name` at once
        through the selector, pretending to be in `region` (then placed on
        that region's edge)."""
        url = f"{self.meeting_url}/?conference={conference}&name={name}&autojoin=1"
        if region:
            url += f"&region={region}"
        return url + extra

    def edge_by_id(self, edge_id):
        return next(e for e in self.state["edges"] if e["id"] == edge_id)

    def kill(self, pid, sig=signal.SIGKILL):
        os.kill(pid, sig)

    @property
    def operator_token(self):
        """The operator's bearer token (listings, drain)."""
        return Path(self.state["operator"]["token_file"]).read_text().strip()

    def operator_get(self, url):
        """GET as the operator; the parsed JSON body."""
        return json.loads(http_get(url, token=self.operator_token)[1])

    def mint(self, conference, edge=None, participant=None, name=None, ttl="10m", rights=()):
        return mint_token(self.state["token_key"], conference, edge or self.edge["id"], participant, name, ttl,
                          rights)

    def logs(self):
        self.log.flush()
        self.log.seek(0)
        return self.log.read()[-20000:]

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(timeout=10)
        self.log.close()
        self.tmp.cleanup()


@pytest.fixture(scope="module")
def mesh():
    m = DevMesh()
    yield m
    if m.proc.poll() is not None:
        print(m.logs())
    m.stop()


@contextlib.contextmanager
def chromium():
    """Headless Chromium with a fresh profile per page; yields `open_page(url)`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        contexts, dirs = [], []

        def open_page(url):
            dirs.append(tempfile.mkdtemp(prefix="geomesh-chromium-"))
            ctx = p.chromium.launch_persistent_context(
                dirs[-1],
                executable_path="/usr/bin/chromium",
                headless=True,
                args=CHROMIUM_ARGS,
            )
            contexts.append(ctx)
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            page.goto(url)
            return page

        try:
            yield open_page
        finally:
            for c in contexts:
                try:
                    c.close()
                except Exception:
                    pass  # a test closed it already
            for d in dirs:
                shutil.rmtree(d, ignore_errors=True)


@pytest.fixture(scope="module")
def browser():
    """A Playwright driver; pages come from `open_page`."""
    with chromium() as open_page:
        yield open_page


STATS_JS = """async () => {
  const g = window.geomesh;
  const out = {joined: g.joined, me: g.me, roster: [...g.roster.keys()], errors: g.errors,
               dominant: g.dominant, edge: g.edge, rejoins: g.rejoins, events: g.events,
               state: g.pc ? g.pc.connectionState : 'none', video: {}, audio: {}, height: {}, freeze: {}};
  if (!g.pc) return out;
  const stats = await g.pc.getStats();
  const tracks = {};
  g.pc.getTransceivers().forEach(t => {
    if (t.receiver && t.receiver.track && t.mid) tracks[t.receiver.track.id] = t.mid;
  });
  // Map each inbound stream to its publisher through the msid stream id.
  const owner = {};
  g.pc.getReceivers().forEach(r => {
    for (const [id, tile] of g.tiles) {
      if (tile.stream.getTracks().some(t => t.id === r.track.id)) owner[r.track.id] = id;
    }
  });
  stats.forEach(r => {
    if (r.type !== 'inbound-rtp') return;
    const who = owner[r.trackIdentifier] || r.trackIdentifier;
    if (r.kind === 'video') {
      out.video[who] = (out.video[who] || 0) + (r.framesDecoded || 0);
      if (r.frameHeight) out.height[who] = r.frameHeight;
      out.freeze[who] = r.totalFreezesDuration || 0;
    }
    if (r.kind === 'audio') out.audio[who] = (out.audio[who] || 0) + (r.packetsReceived || 0);
  });
  return out;
}"""


def page_stats(page):
    return page.evaluate(STATS_JS)


def run_async(make):
    """asyncio.run in its own thread: the module's Playwright (sync API)
    keeps an event loop running on the main thread."""
    box = {}

    def target():
        try:
            asyncio.run(make())
        except BaseException as e:  # re-raised on the test's thread
            box["error"] = e

    t = threading.Thread(target=target)
    t.start()
    t.join(timeout=300)
    assert not t.is_alive(), "async part did not finish"
    if "error" in box:
        raise box["error"]


def wait_for(what, check, timeout=30, interval=0.5):
    """Polls `check()` until it returns a truthy value; fails with the last value seen."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}; last seen: {last!r}")


class UdpRelay:
    """A user-space UDP relay on loopback that can black-hole traffic: what
    an octo link sees when the network between two edges fails."""

    def __init__(self, listen_port, target_port):
        import socket
        import threading

        self.target = ("127.0.0.1", target_port)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", listen_port))
        self.sock.settimeout(0.2)
        self.upstreams = {}  # client address -> socket towards the target
        self.blackholed = False
        self.running = True
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _upstream(self, client):
        import socket
        import threading

        up = self.upstreams.get(client)
        if up is None:
            up = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            up.bind(("127.0.0.1", 0))
            up.settimeout(0.2)
            self.upstreams[client] = up

            def back():
                while self.running:
                    try:
                        data, _ = up.recvfrom(65535)
                    except OSError:
                        continue
                    if not self.blackholed:
                        self.sock.sendto(data, client)

            threading.Thread(target=back, daemon=True).start()
        return up

    def _run(self):
        while self.running:
            try:
                data, client = self.sock.recvfrom(65535)
            except OSError:
                continue
            if not self.blackholed:
                self._upstream(client).sendto(data, self.target)

    def close(self):
        self.running = False
        self.thread.join(timeout=2)
        self.sock.close()
        for s in self.upstreams.values():
            s.close()


class Cluster:
    """N `geomesh edge --dev` processes from a topology of our own: for octo
    tests that need more edges than `geomesh dev` starts, or a relay between
    two of them. Edge i's octo address in the topology is a relay when
    `relay_edges` names it (the edge itself binds another port)."""

    def __init__(self, n, relay_edges=(), edge_args=()):
        block = next(_blocks)
        self.tmp = tempfile.TemporaryDirectory(prefix="geomesh-cluster-")
        d = Path(self.tmp.name)
        base = 20000 + (os.getpid() % 40) * 250 + block * 50
        self.ids = [f"edge-{chr(ord('a') + i)}" for i in range(n)]
        octo = [base + 6000 + i for i in range(n)]
        advertised = [base + 6010 + i if i in relay_edges else octo[i] for i in range(n)]
        y = ("version: 1\ncluster:\n  name: test\n  domain: meet.geomesh.test\ntls:\n  dir: certs\nregions:\n"
             "  - { id: eu, name: Frankfurt, location: { lat: 50.11, lon: 8.68 }, provider: local, provider_region: loopback }\n"
             "  - { id: us, name: Virginia, location: { lat: 39.04, lon: -77.49 }, provider: local, provider_region: loopback }\n"
             "edges:\n")
        for i, e in enumerate(self.ids):
            y += (f"  - {{ id: {e}, region: {'eu' if i % 2 == 0 else 'us'}, public_ip: 127.0.0.1, bind_ip: 127.0.0.1, "
                  f"media_port: {base + 3000 + i}, http: 127.0.0.1:{base + i}, octo: 127.0.0.1:{advertised[i]}, capacity: 100 }}\n")
        y += "selectors:\n"
        for i in range(3):
            y += f"  - {{ id: sel-{i + 1}, region: eu, api: 127.0.0.1:{base + 20 + i}, raft: 127.0.0.1:{base + 30 + i} }}\n"
        (d / "topology.yaml").write_text(y)
        subprocess.run([str(BIN), "certs", "init", "--topology", str(d / "topology.yaml"), "--out", str(d / "certs")],
                       check=True, capture_output=True, timeout=60)
        self.relays = {i: UdpRelay(advertised[i], octo[i]) for i in relay_edges}
        self.urls = [f"http://127.0.0.1:{base + i}" for i in range(n)]
        self.token_key = d / "certs" / "token.key"
        self.logs_ = []
        self.procs = []
        for i, e in enumerate(self.ids):
            log = open(d / f"{e}.log", "w+")
            self.logs_.append(log)
            self.procs.append(subprocess.Popen(
                [str(BIN), "edge", "--topology", str(d / "topology.yaml"), "--id", e, "--certs", str(d / "certs"),
                 "--dev", "--octo-bind", f"127.0.0.1:{octo[i]}", *edge_args],
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                # These edges mint tokens at /dev/token as `geomesh dev`'s do.
                env={**os.environ, "GEOMESH_DEV_CHILD": "1"}))
        for u in self.urls:
            wait_for(f"{u} healthy", lambda u=u: self._healthy(u), timeout=60)

    @staticmethod
    def _healthy(url):
        try:
            return http_get(url + "/healthz", timeout=1)[0] == 200
        except OSError:
            return False

    def mint(self, conference, edge_index, participant=None, name=None, rights=()):
        return mint_token(self.token_key, conference, self.ids[edge_index], participant, name, rights=rights)

    def page(self, conference, edge_index, name, extra=""):
        """The meeting page of edge `edge_index` joining with a token minted
        for it (these edges have no selector to place them)."""
        token = self.mint(conference, edge_index, participant=name, name=name)
        return f"{self.urls[edge_index]}/?conference={conference}&name={name}&autojoin=1&token={token}{extra}"

    def logs(self):
        out = []
        for e, log in zip(self.ids, self.logs_):
            log.flush()
            log.seek(0)
            out.append(f"==== {e}\n" + log.read()[-8000:])
        return "\n".join(out)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        print(self.logs())
        self.stop()

    def stop(self):
        for p in self.procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait(timeout=10)
        for r in self.relays.values():
            r.close()
        for log in self.logs_:
            log.close()
        self.tmp.cleanup()


def start_edge(mesh, edge_id, region, slot, public_ip="127.0.0.1"):
    """Adds an edge to a running `geomesh dev` the way an operator would:
    a grown topology, `geomesh certs add`, `geomesh edge`. It binds
    127.0.0.1 and advertises `public_ip`. Returns (process, its base URL,
    log path)."""
    topo = open(mesh.state["topology"]).read()
    base = int(mesh.state["selectors"][0]["url"].rsplit(":", 1)[1])
    http_port, media_port, octo_port = base + 10 + slot, base + 3000 + slot, base + 6000 + slot
    line = (f"  - {{ id: {edge_id}, region: {region}, public_ip: {public_ip}, bind_ip: 127.0.0.1, "
            f"media_port: {media_port}, http: 127.0.0.1:{http_port}, octo: 127.0.0.1:{octo_port}, capacity: 100 }}\n")
    grown = topo.replace("selectors:\n", line + "selectors:\n", 1)
    path = mesh.tmp.name + f"/topology-{edge_id}.yaml"
    open(path, "w").write(grown)
    certs = mesh.state["certs_dir"]
    subprocess.run([str(BIN), "certs", "add", "--topology", path, "--out", certs], check=True, timeout=30,
                   capture_output=True)
    log = mesh.tmp.name + f"/{edge_id}.log"
    proc = subprocess.Popen([str(BIN), "edge", "--topology", path, "--id", edge_id, "--certs", certs,
                             "--drain-timeout", "5s"],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True)
    return proc, f"http://127.0.0.1:{http_port}", log
