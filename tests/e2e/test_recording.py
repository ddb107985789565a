"""Recording a conference that spans two regions, as an operator does it:
`geomesh recording start|stop` against the `geomesh dev` mesh, whose
recorder (an octo peer of the edges) writes one WebM file per publisher's
track. Publishers are clients nobody on the team wrote: aiortc over WHIP on
the dev-us edge, and a Chromium meeting page on the dev-ap edge. The files
are checked with ffprobe and ffmpeg; the page shows the recording."""

import asyncio
import hashlib
import json
import subprocess
import threading
import time
from pathlib import Path

import pytest

from clients import MovingVideo, WhipPublisher, wait_until
from conftest import BIN, SLACK, DevMesh, page_stats, wait_for

CONF = "recorded"


def cli(mesh, *args, timeout=60):
    """`geomesh recording …` against this mesh, as an operator."""
    out = subprocess.run(
        [str(BIN), "recording", *args, "--selector", mesh.meeting_url,
         "--operator-token", mesh.state["operator"]["token_file"]],
        capture_output=True, text=True, timeout=timeout)
    assert out.returncode == 0, (args, out.stdout, out.stderr)
    return out.stdout


def status(mesh):
    return json.loads(cli(mesh, "status", CONF, "--json"))


def ffprobe(path, *entries):
    out = subprocess.run(["ffprobe", "-v", "error", *entries, "-of", "json", str(path)],
                         capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout)


def packet_times(path):
    """Presentation times (s) of the file's packets, in order."""
    d = ffprobe(path, "-select_streams", "0", "-show_entries", "packet=pts_time")
    return [float(p["pts_time"]) for p in d["packets"] if "pts_time" in p]


def decode_errors(path):
    out = subprocess.run(["ffmpeg", "-v", "error", "-i", str(path), "-f", "null", "-"],
                         capture_output=True, text=True, timeout=120)
    return out.stderr.strip()


def largest_gap(times):
    return max((b - a for a, b in zip(times, times[1:])), default=0.0)


def check_files(rec_dir, manifest, publishers):
    """Every publisher has a VP8 video and an Opus audio file that decode
    without error, last as long as the recording (±10 %), and match the
    manifest. Returns {participant: {kind: (path, packet times)}}."""
    recorded_s = (manifest["ended_unix_ms"] - manifest["started_unix_ms"]) / 1000
    files = {}
    for src in manifest["sources"]:
        assert src.get("file"), src
        path = rec_dir / src["file"]
        data = path.read_bytes()
        assert len(data) == src["bytes"], src
        assert hashlib.sha256(data).hexdigest() == src["sha256"], src
        files.setdefault(src["participant"], {})[src["kind"]] = (path, src)
    assert set(files) == set(publishers), (files.keys(), publishers)
    out = {}
    for who, kinds in files.items():
        assert set(kinds) == {"audio", "video"}, (who, kinds.keys())
        for kind, (path, src) in kinds.items():
            s = ffprobe(path, "-show_entries", "stream=codec_name,width,height:format=duration")
            codec = s["streams"][0]["codec_name"]
            assert codec == {"video": "vp8", "audio": "opus"}[kind], (path, codec)
            if kind == "video":
                assert s["streams"][0]["width"] >= 320 and s["streams"][0]["height"] >= 240, s
            duration = float(s["format"]["duration"])
            # The file starts at the publisher's first (key)frame after the
            # recorder subscribed: within 10 % of the recorded time.
            assert abs(duration - recorded_s) <= 0.1 * recorded_s, (path, duration, recorded_s)
            errors = decode_errors(path)
            assert errors == "", (path, errors[:2000])
            times = packet_times(path)
            out.setdefault(who, {})[kind] = (path, times)
            print(f"{path.name}: {codec} {duration:.2f} s of {recorded_s:.2f} s, {len(times)} packets, "
                  f"largest gap {largest_gap(times):.3f} s, {src['bytes']} bytes")
    return out, recorded_s


@pytest.fixture(scope="module")
def rec_mesh():
    m = DevMesh()
    yield m
    if m.proc.poll() is not None:
        print(m.logs())
    m.stop()


def test_a_two_region_meeting_is_recorded_per_track_and_survives_an_edge_kill(rec_mesh, browser):
    mesh = rec_mesh
    us = mesh.edge_by_id("edge-dev-us-1")
    page = browser(mesh.page(CONF, "chrome", "dev-ap"))
    chrome = wait_for("the page joined on the dev-ap edge",
                      lambda: (lambda s: s["me"] if s["joined"] and s["edge"]["id"] == "edge-dev-ap-1" else None)(
                          page_stats(page)), timeout=60)
    stop_pub = threading.Event()
    box = {}

    async def publish():
        pub = WhipPublisher(us["url"], CONF, mesh.mint(CONF, edge=us["id"], participant="caster"),
                            video_track=MovingVideo(fps=30))
        await pub.start()
        box["up"] = True
        await wait_until("told to stop", stop_pub.is_set, timeout=240)
        await pub.stop()

    t = threading.Thread(target=lambda: asyncio.run(publish()))
    t.start()
    try:
        wait_for("the page decodes the WHIP publisher",
                 lambda: page_stats(page)["video"].get("caster", 0) >= 30, timeout=60)
        assert box.get("up")

        # 1. Ten seconds, started and stopped by the CLI.
        started = cli(mesh, "start", CONF, "--id", "first")
        assert "first" in started and "rec-dev-1" in started, started
        wait_for("the recorder writes", lambda: status(mesh)["state"] == "recording", timeout=30)
        wait_for("the page shows the recording", lambda: page.evaluate(
            "() => window.geomesh.recording && !document.getElementById('recording').hidden"), timeout=30)
        time.sleep(10)
        stopped = cli(mesh, "stop", CONF)
        assert "stopped" in stopped, stopped
        wait_for("the page no longer shows it", lambda: page.evaluate(
            "() => !window.geomesh.recording && document.getElementById('recording').hidden"), timeout=30)
        rec_dir = Path(mesh.state["recordings_dir"]) / "first"
        manifest = json.loads((rec_dir / "manifest.json").read_text())
        assert manifest["conference"] == CONF and manifest["recorder"] == "rec-dev-1"
        first, recorded_s = check_files(rec_dir, manifest, {chrome, "caster"})
        assert 9 <= recorded_s <= 10 + 3 * SLACK, recorded_s
        # Continuity: the aiortc publisher sends 30 fps; most frames are in
        # the file, none of its packets far apart.
        caster_video = first["caster"]["video"][1]
        assert len(set(caster_video)) >= 0.8 * 30 * recorded_s * 0.9, len(set(caster_video))
        for who in first:
            for kind, (path, times) in first[who].items():
                assert largest_gap(times) < 0.5 * SLACK, (path, largest_gap(times))

        # 2. The page's edge dies mid-recording: the page rejoins on another
        # edge, the recorder follows it into the same files.
        cli(mesh, "start", CONF, "--id", "second")
        wait_for("the recorder writes again", lambda: status(mesh)["state"] == "recording", timeout=30)
        time.sleep(4)
        ap = mesh.edge_by_id("edge-dev-ap-1")
        killed = time.monotonic()
        mesh.kill(ap["pid"])
        s = wait_for("the page rejoined elsewhere",
                     lambda: (lambda s: s if s["rejoins"] >= 1 and s["edge"]["id"] != ap["id"]
                              and s["state"] == "connected" else None)(page_stats(page)), timeout=60)
        rejoin_s = time.monotonic() - killed
        print(f"page rejoined on {s['edge']['id']} {rejoin_s:.2f} s after the kill")
        time.sleep(6)
        cli(mesh, "stop", CONF)
        rec_dir = Path(mesh.state["recordings_dir"]) / "second"
        manifest = json.loads((rec_dir / "manifest.json").read_text())
        second, _ = check_files(rec_dir, manifest, {chrome, "caster"})
        # One file per track across the move; the page's gap is the rejoin.
        page_gap = largest_gap(second[chrome]["video"][1])
        print(f"page video: largest gap {page_gap:.2f} s (rejoin took {rejoin_s:.2f} s)")
        assert page_gap <= rejoin_s + 1.0, (page_gap, rejoin_s)
        for kind in ("audio", "video"):
            gap = largest_gap(second["caster"][kind][1])
            assert gap < 0.5 * SLACK, ("caster", kind, gap)
    finally:
        stop_pub.set()
        t.join(timeout=60)
