"""The peer benchmark's report (scripts/bench-peers.sh): per shape and
server, forwarded packets per CPU-second of the server process, video and
audio delivery, video one-way delay p50/p99, and the ratio to geomesh,
as a Markdown table. --check-delivery (the CI smoke run) exits non-zero
unless every server connected every session and delivered at least 95 %
of the video and audio frames sent: it never judges speed."""

import argparse
import json
import sys
from pathlib import Path



def load(out, shape, server):
    p = Path(out) / f"{shape}-{server}.json"
    if not p.exists():
        return None
    o = json.loads(p.read_text())
    return o.get("edge") or o.get("peer")


def delivered(report, kind):
    """Frames received ÷ expected, per source the layer its receivers got
    most of: a server that touches a lower simulcast layer for a frame or
    two while it ramps up to the top one (Janus does) is judged on the
    layer it settled on, as a viewer would."""
    best = {}
    for s in report.get("streams", []):
        if s["kind"] != kind or not s["expected"]:
            continue
        if s["received"] > best.get(s["source"], {"received": -1})["received"]:
            best[s["source"]] = s
    expected = sum(s["expected"] for s in best.values())
    return sum(s["received"] for s in best.values()) / expected if expected else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("out")
    ap.add_argument("--shapes", default="A B S")
    ap.add_argument("--load", default="?")
    ap.add_argument("--servers", default="geomesh janus mediasoup")
    ap.add_argument("--janus-version", default="?")
    ap.add_argument("--mediasoup-version", default="?")
    ap.add_argument("--check-delivery", action="store_true")
    a = ap.parse_args()
    servers = a.servers.split()
    print(f"load average (1, 5, 15 min) at the end: {a.load}; Janus {a.janus_version}; "
          f"mediasoup {a.mediasoup_version}\n")
    print("| shape | server | sessions | packets / CPU-s | ratio to geomesh | video delivered | audio delivered | video p50 / p99 ms |")
    print("|---|---|---|---|---|---|---|---|")
    bad = []
    for shape in a.shapes.split():
        base = load(a.out, shape, "geomesh")
        base_pps = base and base["server"]["packets_per_cpu_second"]
        for server in servers:
            r = load(a.out, shape, server)
            if r is None:
                bad.append(f"{shape}/{server}: no report")
                continue
            s = r["sessions"]
            pps = r["server"]["packets_per_cpu_second"]
            ratio = f"{base_pps / pps:.2f}" if pps and base_pps else "n/a"
            v, au = delivered(r, "video"), delivered(r, "audio")
            d = r["video"]["delay_ms"]
            fmt = lambda x: "n/a" if x is None else f"{100 * x:.1f} %"
            print(f"| {shape} | {server} | {s['connected']}/{s['planned']} | "
                  f"{'n/a' if pps is None else f'{pps:,.0f}'} | {ratio} | {fmt(v)} | {fmt(au)} | "
                  f"{d['p50']:.1f} / {d['p99']:.1f} |")
            if s["connected"] < s["planned"]:
                bad.append(f"{shape}/{server}: {s['connected']} of {s['planned']} sessions connected ({s['failures']})")
            for what, x in (("video", v), ("audio", au)):
                if x is None or x < 0.95:
                    bad.append(f"{shape}/{server}: {what} delivered {x}")
    print("\nratio to geomesh = geomesh's packets per CPU-second ÷ the server's: "
          "how many times the CPU per forwarded packet the server spends.")
    # Capacity (shapes G<n>: n galleries of 10; V<n>: n speaker views of 10;
    # on a server pinned to one CPU): the most participants with < 0.1 %
    # video loss and p99 < 50 ms.
    for prefix, view in (("G", "gallery"), ("V", "speaker view")):
        capacity(a, servers, view, sorted(
            (int(x[1:]), x) for x in a.shapes.split() if x.startswith(prefix) and x[1:].isdigit()))
    if a.check_delivery and bad:
        print("\n".join(bad), file=sys.stderr)
        sys.exit(1)


def capacity(a, servers, view, gs):
    """The capacity table of one view's runs `gs` ([(n, shape)])."""
    if gs:
        print(f"\n| server | participants per core, {view} (< 0.1 % loss, p99 < 50 ms) | runs (participants: video delivered, p99 ms, server CPU-s per s, loadgen CPU-s per s) |")
        print("|---|---|---|")
        for server in servers:
            if all(load(a.out, shape, server) is None for _, shape in gs):
                continue
            best, runs = 0, []
            for n, shape in gs:
                r = load(a.out, shape, server)
                if r is None:
                    continue
                v = delivered(r, "video") or 0.0
                p99 = r["video"]["delay_ms"]["p99"]
                window = max(r["run"]["window_s"], 1e-9)
                cpu = (r["server"]["cpu_seconds"] or 0.0) / window
                lg = r["loadgen_cpu_seconds"] / window
                ok = r["sessions"]["connected"] == r["sessions"]["planned"] and v > 0.999 and p99 < 50
                runs.append(f"{10 * n}: {100 * v:.2f} %, {p99:.1f}, {cpu:.2f}, {lg:.2f}{'' if ok else ' ✗'}")
                if ok:
                    best = max(best, 10 * n)
            print(f"| {server} | {best if best else 'none'}{'+' if best == 10 * gs[-1][0] else ''} | {'; '.join(runs)} |")


if __name__ == "__main__":
    main()
