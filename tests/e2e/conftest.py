"""Fixtures for end-to-end tests: the real `geomesh` binary, real Chromium,
real aiortc. Everything runs on loopback; every wait is bounded."""

import itertools
import json
import os
import signal
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("GEOMESH_BIN", ROOT / "target" / "debug" / "geomesh"))

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


def http_get(url, timeout=5):
    with urllib.request.urlopen(url, timeout=timeout) as r:
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


def metric(edge_url, key):
    return metrics(edge_url).get(key, 0.0)


class DevMesh:
    """`geomesh dev --state-file`, as a newcomer would run it."""

    def __init__(self):
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

    def mint(self, conference, edge=None, participant=None, name=None, ttl="10m"):
        args = [str(BIN), "token", "mint", "--key", self.state["token_key"], "--conference", conference,
                "--edge", edge or self.edge["id"], "--ttl", ttl]
        if participant:
            args += ["--participant", participant]
        if name:
            args += ["--name", name]
        return subprocess.run(args, check=True, capture_output=True, text=True, timeout=30).stdout.strip()

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


@pytest.fixture(scope="module")
def browser():
    """A Playwright driver; pages come from `open_page`."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        contexts = []

        def open_page(url):
            ctx = p.chromium.launch_persistent_context(
                tempfile.mkdtemp(prefix="geomesh-chromium-"),
                executable_path="/usr/bin/chromium",
                headless=True,
                args=CHROMIUM_ARGS,
            )
            contexts.append(ctx)
            page = ctx.pages[0] if ctx.pages else ctx.new_page()
            page.goto(url)
            return page

        yield open_page
        for c in contexts:
            c.close()


STATS_JS = """async () => {
  const g = window.geomesh;
  const out = {joined: g.joined, me: g.me, roster: [...g.roster.keys()], errors: g.errors,
               state: g.pc ? g.pc.connectionState : 'none', video: {}, audio: {}};
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
    if (r.kind === 'video') out.video[who] = (out.video[who] || 0) + (r.framesDecoded || 0);
    if (r.kind === 'audio') out.audio[who] = (out.audio[who] || 0) + (r.packetsReceived || 0);
  });
  return out;
}"""


def page_stats(page):
    return page.evaluate(STATS_JS)


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
