"""A libnice client publishes to `geomesh dev --host`: GStreamer's webrtcbin
never gathers candidates on a loopback interface, so against the default
127.0.0.1 mesh its ICE has nothing to pair. The test makes a network
namespace with one non-loopback address, runs `geomesh dev --host` and
every client inside it (no packet can reach any other address), publishes
over WHIP from webrtcbin (gst_whip.py, Debian's python3-gi) and plays it
over WHEP with aiortc (whep_view.py) on an edge in another region.

What the publisher needs beyond stock webrtcbin 1.22, and why, is in
gst_whip.py: UPnP off (SSDP multicast), an ECDSA DTLS certificate (the
edge's DTLS has no RSA) and binding requests as ICE keepalives (the edge's
ICE-lite agent drops a pair after 15 s without one). The measured window
spans that 15 s mark."""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import pytest

from conftest import BIN, mint_token

HERE = Path(__file__).resolve().parent
DEBIAN_PYTHON = "/usr/bin/python3"
HOST = "10.213.0.1"
WINDOW = 8.0  # seconds of media measured
# The window starts this long after the publisher connected, so that it
# covers the edge's ICE-lite timeout (15 s without a binding request).
WINDOW_FROM = 9.0
FPS = 30


def run(*args, timeout=30, check=True):
    return subprocess.run(list(args), capture_output=True, text=True, timeout=timeout, check=check)


class Netns:
    """A network namespace of our own with `HOST` on a non-loopback
    interface: a dummy one, or a veth pair with both ends inside when the
    kernel has no dummy driver (as here). Nothing in it routes anywhere."""

    def __init__(self):
        self.name = f"geomesh-gst-{os.getpid()}"
        if self.name in run("ip", "netns", "list").stdout.split():
            self.delete()  # left over from a killed run with our pid
        r = run("ip", "netns", "add", self.name, check=False)
        if r.returncode != 0:
            pytest.fail(f"`ip netns add {self.name}` failed (this test needs root and network "
                        f"namespaces): {r.stderr.strip()}")
        try:
            ip = ["ip", "-n", self.name]
            # IPv4 only: nothing to gather or route on IPv6 link-local addresses.
            run("ip", "netns", "exec", self.name, "sysctl", "-qw", "net.ipv6.conf.all.disable_ipv6=1",
                "net.ipv6.conf.default.disable_ipv6=1", check=False)
            if run(*ip, "link", "add", "gst0", "type", "dummy", check=False).returncode != 0:
                run(*ip, "link", "add", "gst0", "type", "veth", "peer", "name", "gst1")
                run(*ip, "link", "set", "gst1", "up")
            run(*ip, "addr", "add", f"{HOST}/24", "dev", "gst0")
            run(*ip, "link", "set", "gst0", "up")
            run(*ip, "link", "set", "lo", "up")
        except subprocess.CalledProcessError as e:
            self.delete()
            pytest.fail(f"setting up {self.name} failed: {e.cmd}: {e.stderr}")

    def exec(self, *args):
        return ["ip", "netns", "exec", self.name, *args]

    def delete(self):
        """Ends what still runs inside (only our processes can be there),
        then removes the namespace."""
        pids = run("ip", "netns", "pids", self.name, check=False).stdout.split()
        for pid in pids:
            try:
                os.kill(int(pid), signal.SIGKILL)
            except (ProcessLookupError, ValueError):
                pass
        r = run("ip", "netns", "del", self.name, check=False)
        assert r.returncode == 0, f"could not remove {self.name}: {r.stderr}"


class Lines:
    """Reads a child's stdout, one JSON object a line, on a thread."""

    def __init__(self, proc):
        self.proc, self.items, self.raw = proc, [], []
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        for line in self.proc.stdout:
            with self.lock:
                self.raw.append(line.rstrip("\n"))
                try:
                    self.items.append(json.loads(line))
                except ValueError:
                    pass

    def snapshot(self):
        with self.lock:
            return list(self.items)

    def reports(self):
        return [x for x in self.snapshot() if "t" in x]

    def events(self):
        return [x for x in self.snapshot() if "event" in x]


def count_at(reports, t, key):
    """The publisher's counter `key` at CLOCK_MONOTONIC time `t`: its last
    report (they come every 100 ms) at or before `t`."""
    before = [r for r in reports if r["t"] <= t]
    assert before, f"no publisher report before {t}"
    return before[-1][key]


def stop(proc, sig=signal.SIGTERM, group=False):
    if proc is None or proc.poll() is not None:
        return
    (os.killpg if group else os.kill)(proc.pid, sig)
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        (os.killpg if group else os.kill)(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)


def tail(path, n=6000):
    try:
        return Path(path).read_text(errors="replace")[-n:]
    except OSError as e:
        return f"({e})"


def test_gstreamer_webrtcbin_publishes_to_a_non_loopback_dev_mesh():
    r = run(DEBIAN_PYTHON, "-c", "import gi; gi.require_version('GstWebRTC', '1.0'); "
            "from gi.repository import Gst, GstWebRTC; Gst.init(None); "
            "assert Gst.ElementFactory.find('webrtcbin') and Gst.ElementFactory.find('nicesrc')", check=False)
    assert r.returncode == 0, ("GStreamer webrtcbin with libnice is not installed for Debian's python3 "
                               f"(scripts/test.sh installs it): {r.stderr}")

    ns = Netns()
    tmp = Path(tempfile.mkdtemp(prefix="geomesh-gst-"))
    dev = publisher = pub = None
    seen = {}

    def report():
        """Everything the test saw, for a failure message."""
        out = [f"seen: {json.dumps(seen, default=str)[:4000]}"]
        if publisher is not None:
            out.append("publisher events: " + json.dumps(pub.events())[:4000])
            out.append("publisher last report: " + json.dumps(pub.reports()[-1:]))
            out.append("publisher stderr:\n" + tail(tmp / "publisher.err", 4000))
        out.append("geomesh dev:\n" + tail(tmp / "dev.log", 3000))
        logs = Path(seen["logs_dir"]) if "logs_dir" in seen else tmp / "dev" / "logs"
        for log in sorted(logs.glob("edge-*.log")):
            out.append(f"==== {log.name}\n" + tail(log, 4000))
        return "\n".join(out)

    try:
        state_file = tmp / "state.json"
        with open(tmp / "dev.log", "w") as log:
            dev = subprocess.Popen(
                ns.exec(str(BIN), "dev", "--host", HOST, "--state-file", str(state_file), "--dir", str(tmp / "dev"),
                        "--http-port", "20000", "--media-port", "23000", "--octo-port", "26000"),
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        deadline = time.monotonic() + 90
        while not state_file.exists():
            assert dev.poll() is None and time.monotonic() < deadline, "geomesh dev did not start\n" + report()
            time.sleep(0.2)
        state = json.loads(state_file.read_text())  # written whole, then renamed
        seen["logs_dir"] = state["logs_dir"]
        a, b = state["edges"][0], state["edges"][1]
        assert a["region"] != b["region"], state["edges"]
        assert a["url"].startswith(f"http://{HOST}:"), a

        conference = "gstreamer"
        with open(tmp / "publisher.err", "w") as err:
            publisher = subprocess.Popen(
                ns.exec(DEBIAN_PYTHON, str(HERE / "gst_whip.py"), "--url", f"{a['url']}/v1/whip/{conference}",
                        "--token", mint_token(state["token_key"], conference, a["id"], participant="gst-pub"),
                        "--width", "320", "--height", "240", "--fps", str(FPS), "--seconds", "60"),
                stdout=subprocess.PIPE, stderr=err, text=True)
        pub = Lines(publisher)

        # Connected: ICE (libnice's candidate on HOST) and DTLS with the edge.
        deadline = time.monotonic() + 30
        while not any(e.get("event") == "connection-state" and e["state"] == "connected" for e in pub.events()):
            assert publisher.poll() is None, f"the publisher exited ({publisher.returncode})\n" + report()
            assert time.monotonic() < deadline, "the publisher did not connect in 30 s\n" + report()
            time.sleep(0.1)
        connected_at = time.monotonic()
        candidates = next(e["candidates"] for e in pub.events() if e["event"] == "candidates")
        seen["candidates"] = candidates
        assert candidates and all(f" {HOST} " in c for c in candidates), candidates

        viewer = subprocess.run(
            ns.exec(sys.executable, str(HERE / "whep_view.py"), "--base", b["url"], "--conference", conference,
                    "--token", mint_token(state["token_key"], conference, b["id"], participant="gst-viewer"),
                    "--not-before", str(connected_at + WINDOW_FROM), "--window", str(WINDOW)),
            capture_output=True, text=True, timeout=WINDOW_FROM + WINDOW + 90)
        seen["viewer_stderr"] = viewer.stderr[-3000:]
        lines = viewer.stdout.strip().splitlines()
        assert viewer.returncode == 0 and lines, f"the viewer failed: {viewer.stdout}\n" + report()
        v = seen["viewer"] = json.loads(lines[-1])

        reports = pub.reports()
        sent = {k: count_at(reports, v["t1"], k) - count_at(reports, v["t0"], k) for k in ("video", "audio")}
        seen["sent"] = sent
        elapsed = v["t1"] - v["t0"]
        # The publisher really sent (about) 30 fps, whatever else runs on
        # the machine, and its session outlived the edge's ICE-lite
        # timeout: the window ends past 15 s after connecting.
        assert sent["video"] >= 0.85 * FPS * elapsed, "the publisher sent too few frames\n" + report()
        assert v["t1"] - connected_at > 15.5, "the window ended too early\n" + report()
        # Continuity on the far edge: (nearly) every frame decoded, no
        # sequence number missing, no loss reported, audio too.
        assert v["video"] >= 0.9 * sent["video"], "the viewer decoded too few video frames\n" + report()
        assert v["video_packets"] > 0 and v["video_missing"] == 0, "video sequence numbers missing\n" + report()
        assert v["audio_packets"] > 0 and v["audio_missing"] == 0, "audio sequence numbers missing\n" + report()
        assert all(lost <= 0 for lost in v["packets_lost"].values()), "packetsLost\n" + report()
        assert sent["audio"] > 0 and v["audio"] >= 0.9 * sent["audio"], "too few audio frames\n" + report()
        # Still publishing, and the edge never dropped the session.
        assert publisher.poll() is None, f"the publisher exited ({publisher.returncode})\n" + report()
        edge_log = re.sub(r"\x1b\[[0-9;]*m", "", tail(Path(state["logs_dir"]) / f"{a['id']}.log", 10**7))
        assert "participant=gst-pub conference" in edge_log, "the edge log names no session of gst-pub\n" + report()
        ended = [line for line in edge_log.splitlines() if "session ended" in line and "participant=gst-pub " in line]
        assert not ended, f"the edge ended the publisher's session: {ended}\n" + report()
        seen["rtp_per_frame"] = round((count_at(reports, v["t1"], "video_rtp")
                                       - count_at(reports, v["t0"], "video_rtp")) / max(1, sent["video"]), 2)
        print(f"webrtcbin over {candidates}: sent {sent} ({seen['rtp_per_frame']} RTP packets a video frame), "
              "the far viewer decoded "
              f"{ {k: v[k] for k in ('video', 'audio', 'video_packets', 'audio_packets')} } in {elapsed:.1f} s")
    finally:
        stop(publisher)
        stop(dev, group=True)
        ns.delete()
        shutil.rmtree(tmp, ignore_errors=True)
