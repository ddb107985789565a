"""Failover figures (not a test; scripts/bench-failover.sh runs it):

- edge kills: four Chromium pages in three regions under `geomesh dev`; the
  edge of the page alone on its edge is SIGKILLed N times (restarted after
  each). Per kill: when the page noticed, when the selectors marked the edge
  unhealthy, when the page had media again both ways, and the longest gap in
  decoded video between the other three pages.
- leader kills: the Raft leader SIGKILLed M times (restarted after each),
  time to the next successful join through a surviving node, with
  `geomesh dev`'s timings and with the selector defaults (`--raft-timing wan`).
- migrations: `geomesh drain --migrate` of the edge of one page, K times:
  from the edge's request to the page's new edge connected, and to its
  media again.

Prints one JSON object per series and the summary (p50/p95)."""

import json
import os
import shutil
import statistics
import subprocess
import sys
import time

from conftest import BIN, DevMesh, chromium, http_get, page_stats, wait_for
from test_mesh import PEOPLE, Watch, everyone_decodes_everyone, join_api, leader


def pct(xs, p):
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, round(p / 100 * (len(xs) - 1))))]


def summary(name, xs):
    print(json.dumps({"series": name, "n": len(xs), "p50": round(statistics.median(xs), 3),
                      "p95": round(pct(xs, 95), 3), "max": round(max(xs), 3)}), flush=True)


def restart_edge(mesh, edge_id):
    e = mesh.edge_by_id(edge_id)
    log = open(e["log"], "a")
    p = subprocess.Popen([str(BIN), "edge", "--dev", "--id", edge_id, "--topology", mesh.state["topology"],
                          "--certs", mesh.state["certs_dir"], "--drain-timeout", "5s"],
                         stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
                         env={**os.environ, "GEOMESH_DEV_CHILD": "1"})
    e["pid"] = p.pid
    wait_for(f"{edge_id} healthy again", lambda: bridge_healthy(mesh, edge_id), timeout=30)
    return p


def restart_selector(mesh, sel, dev_timing):
    data = mesh.state["topology"].rsplit("/", 1)[0] + "/selectors/" + sel["id"]
    args = [str(BIN), "selector", "--id", sel["id"], "--topology", mesh.state["topology"], "--certs",
            mesh.state["certs_dir"], "--data", data, "--join-rate-per-address", "1000"]
    if dev_timing:
        args += ["--raft-heartbeat", "100ms", "--election-min", "400ms", "--election-max", "700ms"]
    p = subprocess.Popen(args, stdout=open(sel["log"], "a"), stderr=subprocess.STDOUT, start_new_session=True)
    sel["pid"] = p.pid
    wait_for("every node agrees on a leader", lambda: all_agree(mesh), timeout=30)
    return p


def all_agree(mesh):
    leaders = set()
    for s in mesh.state["selectors"]:
        try:
            leaders.add(json.loads(http_get(s["url"] + "/healthz", timeout=1)[1])["leader_id"])
        except OSError:
            return False
    return len(leaders) == 1 and None not in leaders


def bridge_healthy(mesh, edge_id, want=True):
    for s in mesh.state["selectors"]:
        try:
            b = json.loads(http_get(s["url"] + "/v1/bridges", timeout=1)[1])
        except OSError:
            continue
        x = next((x for x in b["bridges"] if x["id"] == edge_id), None)
        return x is not None and x["healthy"] == want
    return False


def edge_kills(open_page, n):
    mesh = DevMesh()
    spawned = []
    out = {"detect_page": [], "detect_selector": [], "media_back_after_detect": [], "media_back_after_kill": [],
           "gap_others": []}
    try:
        pages = {name: open_page(mesh.page("world", name, region, "&simulcast=0")) for name, region in PEOPLE}
        ids = {k: wait_for(k, lambda p=p: page_stats(p)["me"], timeout=60) for k, p in pages.items()}
        for i in range(n):
            # The stranded page alone on its edge again (after a kill it moved).
            if page_stats(pages["cai"])["edge"]["region"] != "dev-us":
                pages["cai"].context.close()
                pages["cai"] = open_page(mesh.page("world", "cai", "dev-us", "&simulcast=0"))
                ids["cai"] = wait_for("cai", lambda: page_stats(pages["cai"])["me"], timeout=60)
            wait_for("everyone decodes everyone", lambda: everyone_decodes_everyone(pages, ids), timeout=90)
            dead = page_stats(pages["cai"])["edge"]["id"]
            others = [k for k in ids if k != "cai"]
            w = Watch(pages, ids)
            time.sleep(0.5)
            before = {o: page_stats(pages["cai"])["video"].get(ids[o], 0) for o in others}
            r0 = page_stats(pages["cai"])["rejoins"]
            t_kill = time.time()
            mesh.kill(mesh.edge_by_id(dead)["pid"])
            t_sel = None

            def back():
                nonlocal t_sel
                if t_sel is None and bridge_healthy(mesh, dead, want=False):
                    t_sel = time.time()
                s = page_stats(pages["cai"])
                if s["rejoins"] <= r0 or s["edge"]["id"] == dead:
                    return None
                if any(s["video"].get(ids[o], 0) < 3 or s["video"].get(ids[o], 0) == before[o] for o in others):
                    return None
                if any(page_stats(pages[o])["video"].get(ids["cai"], 0) < 3 for o in others):
                    return None
                return s

            try:
                s = wait_for("media back", back, timeout=30, interval=0.05)
            except AssertionError:
                for k, p in pages.items():
                    st = page_stats(p)
                    print(json.dumps({"page": k, "id": ids[k], "edge": st["edge"], "rejoins": st["rejoins"],
                                      "video": st["video"], "roster": st["roster"], "errors": st["errors"][-5:],
                                      "events": st["events"][-5:], "state": st["state"]}), flush=True)
                shutil.copytree(mesh.state["logs_dir"], "/tmp/bench-failover-logs", dirs_exist_ok=True)
                raise
            t_back = time.time()
            wait_for("selector detection", lambda: t_sel or (bridge_healthy(mesh, dead, want=False) and time.time()),
                     timeout=10, interval=0.05)
            if t_sel is None:
                t_sel = time.time()
            lost = [e for e in s["events"] if e["type"] == "lost"][-1]
            time.sleep(1)
            row = {"kill": i, "detect_page": lost["t"] / 1000 - t_kill, "detect_selector": t_sel - t_kill,
                   "media_back_after_detect": t_back - lost["t"] / 1000, "media_back_after_kill": t_back - t_kill,
                   "gap_others": w.max_gap(others)}
            print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in row.items()}), flush=True)
            for k in out:
                out[k].append(row[k])
            spawned.append(restart_edge(mesh, dead))
        for k, v in out.items():
            summary("edge_kill." + k, v)
    finally:
        for p in spawned:
            p.kill()
        mesh.stop()


def leader_kills(m, wan):
    mesh = DevMesh(*(["--raft-timing", "wan"] if wan else []))
    spawned, times = [], []
    try:
        for i in range(m):
            wait_for("agreement", lambda: all_agree(mesh), timeout=30)
            lead = leader(mesh)
            survivor = next(s for s in mesh.state["selectors"] if s["id"] != lead["id"])
            t0 = time.monotonic()
            mesh.kill(lead["pid"])
            for _ in range(500):
                try:
                    join_api(survivor["url"], {"conference": f"lk-{i}", "region": "dev-us"}, timeout=3)
                    break
                except OSError:
                    time.sleep(0.01)
            times.append(time.monotonic() - t0)
            print(json.dumps({"leader_kill": i, "wan": wan, "next_join_s": round(times[-1], 3)}), flush=True)
            spawned.append(restart_selector(mesh, lead, not wan))
        summary("leader_kill." + ("wan_defaults" if wan else "dev_timings"), times)
    finally:
        for p in spawned:
            p.kill()
        mesh.stop()


def migrations(open_page, k):
    mesh = DevMesh()
    out = {"to_connected": [], "to_media": []}
    try:
        a = open_page(mesh.page("mig", "ana", "dev-eu", "&simulcast=0"))
        b = open_page(mesh.page("mig", "ben", "dev-ap", "&simulcast=0"))
        ida = wait_for("ana", lambda: page_stats(a)["me"], timeout=60)
        idb = wait_for("ben", lambda: page_stats(b)["me"], timeout=60)
        api = ",".join(s["url"] for s in mesh.state["selectors"])
        for i in range(k):
            wait_for("media both ways", lambda: page_stats(a)["video"].get(idb, 0) > 10
                     and page_stats(b)["video"].get(ida, 0) > 10, timeout=60)
            edge = page_stats(a)["edge"]["id"]
            before = page_stats(a)["video"].get(idb, 0)
            subprocess.run([str(BIN), "drain", edge, "--migrate", "--selector", api, "--operator-token", mesh.state["operator"]["token_file"]], check=True, timeout=30,
                           capture_output=True)
            s = wait_for("moved", lambda: (lambda s: s if s["rejoins"] == i + 1 else None)(page_stats(a)),
                         timeout=30, interval=0.05)
            wait_for("media", lambda: page_stats(a)["video"].get(idb, 0) > 0
                     and page_stats(a)["edge"]["id"] != edge and page_stats(a)["video"].get(idb, 0) != before,
                     timeout=15, interval=0.05)
            t_media = time.time()
            mig = [e for e in s["events"] if e["type"] == "migrate"][-1]
            con = [e for e in s["events"] if e["type"] == "connected"][-1]
            out["to_connected"].append((con["t"] - mig["t"]) / 1000)
            out["to_media"].append(t_media - mig["t"] / 1000)
            print(json.dumps({"migration": i, "to_connected": round(out["to_connected"][-1], 3),
                              "to_media": round(out["to_media"][-1], 3)}), flush=True)
            subprocess.run([str(BIN), "drain", edge, "--cancel", "--selector", api, "--operator-token", mesh.state["operator"]["token_file"]], check=True, timeout=30,
                           capture_output=True)
        for key, v in out.items():
            summary("migration." + key, v)
    finally:
        mesh.stop()


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 20
    with chromium() as open_page:
        edge_kills(open_page, n)
        migrations(open_page, max(5, n // 2))
    leader_kills(max(5, n // 2), wan=False)
    leader_kills(max(5, n // 2), wan=True)
