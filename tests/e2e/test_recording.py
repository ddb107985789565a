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
import urllib.request
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


def check_files(rec_dir, manifest, publishers, sizes=None, min_height=240, video_codec="vp8"):
    """Every publisher has a video file (`video_codec`) and an Opus audio
    file that decode without error, last as long as the recording (±10 %),
    and match the manifest. Returns {participant: {kind: (path, packet
    times)}}."""
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
            assert codec == {"video": video_codec, "audio": "opus"}[kind], (path, codec)
            assert src["codec"] == codec, src
            if kind == "video":
                assert s["streams"][0]["width"] >= 320 and s["streams"][0]["height"] >= min_height, s
                if sizes is not None:
                    sizes[who] = (s["streams"][0]["width"], s["streams"][0]["height"])
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


class Publisher:
    """An aiortc WHIP publisher (30 fps video, audio) on `edge` in its own
    thread, until `stop()`."""

    def __init__(self, mesh, edge, conf, participant, video_codec=None):
        self.stopping = threading.Event()
        self.up = threading.Event()

        async def publish():
            pub = WhipPublisher(edge["url"], conf, mesh.mint(conf, edge=edge["id"], participant=participant),
                                video_track=MovingVideo(fps=30), video_codec=video_codec)
            await pub.start()
            self.up.set()
            await wait_until("told to stop", self.stopping.is_set, timeout=240)
            await pub.stop()

        self.thread = threading.Thread(target=lambda: asyncio.run(publish()))
        self.thread.start()

    def stop(self):
        self.stopping.set()
        self.thread.join(timeout=60)


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
    pub = Publisher(mesh, us, CONF, "caster")
    try:
        wait_for("the page decodes the WHIP publisher",
                 lambda: page_stats(page)["video"].get("caster", 0) >= 30, timeout=60)
        assert pub.up.is_set()

        # 1. Ten seconds, started and stopped by the CLI.
        started = cli(mesh, "start", CONF, "--id", "first")
        assert "first" in started, started
        # The meeting is in dev-us and dev-ap: the nearest recorder is rec-dev-2 (dev-us).
        recorder = status(mesh)["recorder"]
        assert recorder == "rec-dev-2", started
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
        assert manifest["conference"] == CONF and manifest["recorder"] == recorder
        first_sizes = {}
        first, recorded_s = check_files(rec_dir, manifest, {chrome, "caster"}, first_sizes)
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

        # 3. The policy: of the page's three simulcast layers (its camera's
        # full size, half and a quarter), the tallest at most 200 px; the
        # aiortc publisher's one layer whatever its height.
        top = first_sizes[chrome]
        want = next((top[0] // d, top[1] // d) for d in (1, 2, 4) if top[1] // d <= 200 or d == 4)
        cli(mesh, "start", CONF, "--id", "third", "--max-height", "200")
        wait_for("the recorder writes the third", lambda: status(mesh)["state"] == "recording", timeout=30)
        assert status(mesh)["max_height"] == 200
        time.sleep(6)
        cli(mesh, "stop", CONF)
        rec_dir = Path(mesh.state["recordings_dir"]) / "third"
        manifest = json.loads((rec_dir / "manifest.json").read_text())
        assert manifest["max_height"] == 200, manifest
        sizes = {}
        check_files(rec_dir, manifest, {chrome, "caster"}, sizes, min_height=0)
        assert sizes == {chrome: want, "caster": (320, 240)}, (sizes, top)
    finally:
        pub.stop()


def test_an_h264_publisher_is_recorded_into_matroska(rec_mesh):
    """An aiortc publisher that offers only H.264 (libx264 through PyAV):
    its video is recorded, not transcoded, into a Matroska file (WebM does
    not allow H.264) that ffprobe calls h264 and ffmpeg decodes cleanly,
    next to a VP8 publisher's WebM in the same recording."""
    mesh = rec_mesh
    conf = "codecs"
    eu = mesh.edge_by_id("edge-dev-eu-1")
    us = mesh.edge_by_id("edge-dev-us-1")
    h264 = Publisher(mesh, eu, conf, "avc", video_codec="H264")
    vp8 = Publisher(mesh, us, conf, "vpx")
    try:
        wait_for("both publishers are up", lambda: h264.up.is_set() and vp8.up.is_set(), timeout=60)
        cli(mesh, "start", conf, "--id", "codecs")
        wait_for("the recorder writes", lambda: json.loads(cli(mesh, "status", conf, "--json"))["state"]
                 == "recording", timeout=30)
        time.sleep(10)
        cli(mesh, "stop", conf)
        rec_dir = Path(mesh.state["recordings_dir"]) / "codecs"
        manifest = json.loads((rec_dir / "manifest.json").read_text())
        video = {s["participant"]: s for s in manifest["sources"] if s["kind"] == "video"}
        assert video["avc"]["codec"] == "h264" and video["avc"]["file"].endswith(".mkv"), video
        assert video["vpx"]["codec"] == "vp8" and video["vpx"]["file"].endswith(".webm"), video
        only = lambda who: {**manifest, "sources": [s for s in manifest["sources"] if s["participant"] == who]}
        files, recorded_s = check_files(rec_dir, only("avc"), {"avc"}, video_codec="h264")
        check_files(rec_dir, only("vpx"), {"vpx"})
        times = files["avc"]["video"][1]
        assert len(set(times)) >= 0.8 * 30 * recorded_s * 0.9, len(set(times))
        assert largest_gap(times) < 0.5 * SLACK, largest_gap(times)
        # The recorder that wrote it says so on /metrics (Prometheus text).
        rec = next(r for r in mesh.state["recorders"] if r["id"] == manifest["recorder"])
        text = urllib.request.urlopen(rec["url"] + "/metrics", timeout=10).read().decode()
        values = {line.split(" ")[0]: float(line.split(" ")[1]) for line in text.splitlines()
                  if line and not line.startswith("#")}
        assert values["geomesh_recorder_recordings_started_total"] >= 1, text
        assert values["geomesh_recorder_packets_total"] > 30 * recorded_s * 2, text
        assert values["geomesh_recorder_recordings"] == 0, text
    finally:
        h264.stop()
        vp8.stop()


def test_a_recording_outlives_its_recorder(rec_mesh):
    """SIGKILL the recorder writing a conference: the leader moves the
    recording to the other recorder, which writes part 2 (continuing part
    1, gap about the health timeout); the dead recorder's files play to
    their last cluster. Runs last: it kills this module's rec-dev-1."""
    mesh = rec_mesh
    conf = "outlived"
    eu = mesh.edge_by_id("edge-dev-eu-1")
    recs = {r["id"]: r for r in mesh.state["recorders"]}
    pub = Publisher(mesh, eu, conf, "anchor")

    def view():
        out = subprocess.run(
            [str(BIN), "recording", "status", conf, "--json", "--selector", mesh.meeting_url,
             "--operator-token", mesh.state["operator"]["token_file"]],
            capture_output=True, text=True, timeout=60)
        return json.loads(out.stdout) if out.returncode == 0 else None

    try:
        wait_for("the publisher is up", pub.up.is_set, timeout=60)
        # Its edge is in dev-eu: the nearest recorder is rec-dev-1.
        started = cli(mesh, "start", conf, "--id", "outlived")
        assert "rec-dev-1" in started, started
        wait_for("rec-dev-1 writes", lambda: (view() or {}).get("state") == "recording", timeout=30)
        time.sleep(4)
        killed = time.monotonic()
        mesh.kill(recs["rec-dev-1"]["pid"])
        v = wait_for("the recording moved to rec-dev-2",
                     lambda: (lambda v: v if v and v["recorder"] == "rec-dev-2" and v["state"] == "recording"
                              else None)(view()), timeout=60)
        moved_s = time.monotonic() - killed
        assert v["parts"] == 2, v
        print(f"recorder killed → part 2 writing on rec-dev-2 after {moved_s:.2f} s")
        time.sleep(5)
        cli(mesh, "stop", conf)
        out = Path(mesh.state["recordings_dir"])
        part2 = json.loads((out / "outlived-p2" / "manifest.json").read_text())
        assert part2["recorder"] == "rec-dev-2" and part2["continues"] == "outlived", part2
        files2, recorded2 = check_files(out / "outlived-p2", part2, {"anchor"})
        # Part 1 has no manifest (its recorder died) but every file it
        # wrote plays without an error to its last cluster.
        part1 = out / "outlived"
        assert not (part1 / "manifest.json").exists()
        written = sorted(part1.glob("*.webm"))
        assert {p.name for p in written} == {"anchor-audio-0.webm", "anchor-video-0.webm"}, written
        for path in written:
            errors = decode_errors(path)
            assert errors == "", (path, errors[:2000])
            times = packet_times(path)
            assert times and times[-1] >= 2.0, (path, times[-1:] if times else None)
            print(f"{path.name} (killed recorder): {len(times)} packets to {times[-1]:.2f} s")
    finally:
        pub.stop()
