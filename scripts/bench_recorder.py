#!/usr/bin/env python3
"""The recorder's cost, measured in one run (docs/BENCHMARKS.md, "The
recorder"): a `geomesh dev` mesh, `geomesh loadgen` publishers (VP8 at
--video-kbps and Opus) in conferences spread over the four edges, then

1. a baseline window with nothing recorded (the recorder's idle CPU: octo
   links, announcements, heartbeats),
2. the same window with every conference recorded,

reporting the recorders' CPU (/proc/PID/stat, summed over the mesh's
recorders: each conference goes to the nearest) per recorded stream above
the baseline, the bytes the edges sent it over octo against the bytes the
publishers sent the edges (each source must reach the recorder once), and
what it wrote. Figures are measured, never asserted.

    scripts/bench-recorder.sh                 # builds release, then runs this
    BIN=target/release/geomesh CONFS=8 PUBS=3 WINDOW=20 python3 scripts/bench_recorder.py
"""

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BIN = os.environ.get("BIN", "target/release/geomesh")
CONFS = int(os.environ.get("CONFS", "8"))
PUBS = int(os.environ.get("PUBS", "3"))
KBPS = int(os.environ.get("KBPS", "1500"))
WINDOW = float(os.environ.get("WINDOW", "20"))
PORT = int(os.environ.get("PORT", "33000"))
RUN = "recbench"
TICK = os.sysconf("SC_CLK_TCK")


def get(url, token=None):
    req = urllib.request.Request(url, headers={"Authorization": f"Bearer {token}"} if token else {})
    with urllib.request.urlopen(req, timeout=5) as r:
        return r.read().decode()


def cpu_s(pid):
    f = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(f[11]) + int(f[12])) / TICK  # utime + stime


def counter(edges, name, **labels):
    """Sum of counter `name` over the edges' series matching `labels`."""
    total = 0.0
    for e in edges:
        for line in get(e["url"] + "/metrics").splitlines():
            if not line.startswith(name + "{") and not line.startswith(name + " "):
                continue
            key, value = line.rsplit(" ", 1)
            if all(f'{k}="{v}"' in key for k, v in labels.items()):
                total += float(value)
    return total


def traffic(edges, recs):
    """Octo media to every recorder, and the publishers' bytes in."""
    return {
        "to_recorder_bytes": sum(counter(edges, "geomesh_edge_octo_media_bytes_total", peer=r["id"],
                                         direction="Out") for r in recs),
        "to_recorder_packets": sum(counter(edges, "geomesh_edge_octo_media_packets_total", peer=r["id"],
                                           direction="Out") for r in recs),
        "ingress_bytes": counter(edges, "geomesh_edge_udp_bytes_total", direction="In"),
    }


def recorders_cpu_s(recs):
    return sum(cpu_s(r["pid"]) for r in recs)


def recording(state, token, *args):
    out = subprocess.run([BIN, "recording", *args, "--selector", state["meeting_url"].rstrip("/"),
                          "--operator-token", state["operator"]["token_file"]],
                         capture_output=True, text=True, timeout=120)
    if out.returncode != 0:
        sys.exit(f"geomesh recording {' '.join(args)}: {out.stderr}")
    return out.stdout.strip()


def main():
    tmp = Path(tempfile.mkdtemp(prefix="geomesh-recbench-"))
    state_file = tmp / "state.json"
    dev = subprocess.Popen([BIN, "dev", "--dir", str(tmp / "dev"), "--state-file", str(state_file),
                            "--http-port", str(PORT), "--media-port", str(PORT + 3000),
                            "--octo-port", str(PORT + 6000)],
                           stdout=open(tmp / "dev.log", "w"), stderr=subprocess.STDOUT, start_new_session=True)
    try:
        for _ in range(600):
            if state_file.exists():
                break
            time.sleep(0.1)
        state = json.loads(state_file.read_text())
        token = Path(state["operator"]["token_file"]).read_text().strip()
        # Recordings go to the recorder nearest each conference: all of
        # them together are measured.
        edges, recs = state["edges"], state["recorders"]
        load_s = 2 * WINDOW + 40
        cmd = [BIN, "loadgen", *sum((["--edge", e["url"]] for e in edges), []), "-c", str(CONFS), "-p", str(PUBS),
               "-s", "0", "--audio", "--video-kbps", str(KBPS), "--duration", f"{load_s:.0f}s",
               "--run-id", RUN, "--json-out", str(tmp / "loadgen.json")]
        print("$", " ".join(cmd[1:]))
        load = subprocess.Popen(cmd, stdout=open(tmp / "loadgen.txt", "w"), stderr=subprocess.STDOUT)
        # Sessions connect, then publish.
        time.sleep(15)

        def window(label):
            t0, c0, m0 = time.monotonic(), recorders_cpu_s(recs), traffic(edges, recs)
            time.sleep(WINDOW)
            t1, c1, m1 = time.monotonic(), recorders_cpu_s(recs), traffic(edges, recs)
            w = {"seconds": t1 - t0, "cpu_s": c1 - c0, **{k: m1[k] - m0[k] for k in m0}}
            print(f"{label}: recorders' CPU {w['cpu_s'] / w['seconds'] * 100:.1f} % of a core, "
                  f"to recorder {w['to_recorder_bytes'] * 8 / w['seconds'] / 1e6:.2f} Mbit/s, "
                  f"publishers' ingress {w['ingress_bytes'] * 8 / w['seconds'] / 1e6:.2f} Mbit/s")
            return w

        idle = window("baseline (nothing recorded)")
        confs = [f"lg-{RUN}-{c}" for c in range(CONFS)]
        for c in confs:
            recording(state, token, "start", c, "--id", f"bench-{c}")
        time.sleep(3)  # every recorder heartbeat answered, keyframes in
        busy = window(f"recording {CONFS} conferences")
        for c in confs:
            recording(state, token, "stop", c)
        written = 0
        for c in confs:
            m = json.loads((Path(state["recordings_dir"]) / f"bench-{c}" / "manifest.json").read_text())
            written += sum(s["bytes"] for s in m["sources"])
        load.wait(timeout=load_s + 120)
        streams = CONFS * PUBS * 2
        load_avg = os.getloadavg()
        extra = busy["cpu_s"] / busy["seconds"] - idle["cpu_s"] / idle["seconds"]
        report = {
            "conferences": CONFS, "publishers": PUBS, "streams": streams, "video_kbps": KBPS,
            "baseline": idle, "recording": busy, "written_bytes": written,
            "cpu_per_stream_pct": extra / streams * 100,
            "recording_over_baseline_cpu": (busy["cpu_s"] / busy["seconds"]) / max(idle["cpu_s"] / idle["seconds"], 1e-9),
            "to_recorder_over_ingress": busy["to_recorder_bytes"] / max(busy["ingress_bytes"], 1),
            "load_average": load_avg,
        }
        print(json.dumps(report, indent=2))
        print(f"\n{streams} streams ({CONFS} × {PUBS} publishers, VP8 {KBPS} kbit/s + Opus): "
              f"recorder {busy['cpu_s'] / busy['seconds'] * 100:.1f} % of a core against "
              f"{idle['cpu_s'] / idle['seconds'] * 100:.1f} % idle, "
              f"{report['cpu_per_stream_pct']:.2f} % per stream; octo bytes to the recorder / publishers' "
              f"ingress = {report['to_recorder_over_ingress']:.3f}; wrote {written / 1e6:.1f} MB; "
              f"load average {load_avg[0]:.2f}")
    finally:
        os.killpg(dev.pid, signal.SIGTERM)
        dev.wait(timeout=30)


if __name__ == "__main__":
    main()
