"""Operating a cluster: the dashboard and alerts read metrics the nodes
really export, `geomesh status` and `geomesh doctor` tell the truth about a
`geomesh dev` mesh (a healthy one, one with an edge that advertises an
address nobody listens on, one with a dead edge), and the status page shows
every edge in a browser."""

import asyncio
import json
import re
import shutil
import subprocess
import urllib.request
from pathlib import Path

import pytest

from clients import WhepViewer, WhipPublisher
from conftest import BIN, DevMesh, http_get, start_edge, wait_for

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"


def cli(mesh, *args, timeout=60):
    """`geomesh ARGS` against `mesh`, as an operator would run it."""
    sels = ",".join(s["url"] for s in mesh.state["selectors"])
    env_args = ["--selector", sels]
    return subprocess.run([str(BIN), *args, *env_args], capture_output=True, text=True, timeout=timeout)


def operator(mesh):
    return ["--operator-token", mesh.state["operator"]["token_file"]]


def exported_names(mesh):
    """Every metric name on every node's /metrics (# TYPE lines and samples)."""
    names = set()
    urls = [n["url"] for role in ("edges", "selectors", "recorders") for n in mesh.state[role]]
    for url in urls:
        text = http_get(url + "/metrics")[1].decode()
        for line in text.splitlines():
            if line.startswith("# TYPE "):
                names.add(line.split()[2])
            elif line and not line.startswith("#"):
                names.add(re.split(r"[{ ]", line, 1)[0])
    return names


def queried_names(text):
    return set(re.findall(r"\b(geomesh_[a-z0-9_]+)", text))


def test_dashboard_and_alerts_read_metrics_the_mesh_exports(mesh):
    # Some traffic first: a publisher on one edge, a viewer on another.
    async def publish():
        a, b = mesh.state["edges"][0], mesh.state["edges"][1]
        pub = await WhipPublisher(a["url"], "ops", mesh.mint("ops", edge=a["id"], participant="pub")).start()
        view = await WhepViewer(b["url"], "ops", mesh.mint("ops", edge=b["id"], participant="view")).start()
        await asyncio.sleep(4)
        await view.stop()
        await pub.stop()

    asyncio.run(publish())
    # And a placement through the selectors (open mode: no grant needed).
    req = urllib.request.Request(mesh.state["selectors"][0]["url"] + "/v1/join", method="POST",
                                 data=json.dumps({"conference": "ops", "region": "dev-us"}).encode(),
                                 headers={"content-type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        assert r.status == 200
    names = exported_names(mesh)
    dashboard = json.loads((DEPLOY / "grafana/geomesh.json").read_text())
    exprs = [t["expr"] for p in dashboard["panels"] for t in p.get("targets", [])]
    assert len(exprs) >= 25, "a panel per thing operators watch"
    wanted = queried_names("\n".join(exprs)) | queried_names((DEPLOY / "prometheus/alerts.yml").read_text())
    missing = sorted(n for n in wanted if n not in names)
    assert not missing, f"queried but not exported by the dev mesh: {missing}"
    # Prometheus conventions: counters end in _total, units are in names.
    for n in names:
        assert not n.endswith("_seconds_total_total"), n
    assert "geomesh_edge_process_cpu_seconds_total" in names
    assert "geomesh_selector_join_duration_seconds_bucket" in names

    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool not installed (Debian package prometheus)")
    for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts_test.yml"],
                 ["check", "config", "prometheus.yml"]):
        r = subprocess.run([promtool, *args], cwd=DEPLOY / "prometheus", capture_output=True, text=True,
                           timeout=60)
        assert r.returncode == 0, (args, r.stdout, r.stderr)


def test_status_json_lists_every_node_with_its_role(mesh):
    r = cli(mesh, "status", "--json")
    assert r.returncode == 0, r.stderr
    st = json.loads(r.stdout)
    edges = {e["id"]: e for e in st["edges"]}
    assert set(edges) == {e["id"] for e in mesh.state["edges"]}
    for e in mesh.state["edges"]:
        v = edges[e["id"]]
        assert v["registered"] and v["healthy"] and v["region"] == e["region"], v
        assert v["about"]["version"] and v["media"], v
    roles = sorted(s["health"]["raft_role"] for s in st["selectors"])
    assert roles == ["follower", "follower", "leader"], st["selectors"]
    assert {s["id"] for s in st["selectors"]} == {s["id"] for s in mesh.state["selectors"]}
    assert st["leader"] in {s["id"] for s in st["selectors"]}
    # The text form shows the same nodes.
    text = cli(mesh, "status").stdout
    for e in mesh.state["edges"]:
        assert e["id"] in text, text
    assert "OCTO LINKS" in text


def test_status_page_shows_every_edge(mesh, browser):
    page = browser(mesh.state["selectors"][1]["url"] + "/status")
    wait_for("the status page's first update", lambda: page.evaluate("window.geomeshStatus.updates") >= 1,
             timeout=30)
    on_map = set(page.evaluate("[...document.querySelectorAll('#edges g.edge')].map(g => g.dataset.edge)"))
    in_table = set(page.evaluate("[...document.querySelectorAll('#edge-table tr[data-edge]')]"
                                 ".map(r => r.dataset.edge)"))
    want = {e["id"] for e in mesh.state["edges"]}
    assert on_map == want and in_table == want, (on_map, in_table)
    healths = page.evaluate("[...document.querySelectorAll('#edges g.edge')].map(g => g.dataset.health)")
    assert set(healths) <= {"up", "busy"}, healths
    assert len(page.evaluate("document.getElementById('land').getAttribute('d') || ''")) > 10_000, "coastlines"
    links = page.evaluate("document.querySelectorAll('#links line.link').length")
    assert links >= len(want) * (len(want) - 1) // 2, "every pair of edges has a live octo link"
    selectors = page.evaluate("[...document.querySelectorAll('#selector-table tr[data-selector]')]"
                              ".map(r => r.className)")
    assert sorted(selectors) == ["follower", "follower", "leader"], selectors
    page.context.close()


def test_doctor_passes_a_healthy_mesh_and_names_a_wrong_address_and_a_dead_edge():
    mesh = DevMesh()
    extra = None
    try:
        wait_for("every edge healthy",
                 lambda: json.loads(cli(mesh, "status", "--json").stdout or "{}").get("edges")
                 and all(e["healthy"] for e in json.loads(cli(mesh, "status", "--json").stdout)["edges"]),
                 timeout=30)
        ok = wait_for("doctor passes", lambda: (lambda r: r if r.returncode == 0 else None)(
            cli(mesh, "doctor", *operator(mesh))), timeout=30)
        assert "FAIL" not in ok.stdout, ok.stdout
        report = json.loads(cli(mesh, "doctor", "--json", *operator(mesh)).stdout)
        kinds = {c["check"] for c in report["checks"]}
        assert {"edge", "media", "octo", "certificate", "token-key", "clock", "topology", "raft"} <= kinds, kinds
        assert report["ok"] is True

        # An edge whose topology advertises 127.0.0.2: its HTTP side works
        # and it registers, but nothing listens where clients send media.
        extra, _, log = start_edge(mesh, "edge-dev-sa-1", "dev-sa", 5, public_ip="127.0.0.2")
        wait_for("the misconfigured edge registered",
                 lambda: any(e["id"] == "edge-dev-sa-1" and e["healthy"]
                             for e in json.loads(cli(mesh, "status", "--json").stdout)["edges"]),
                 timeout=30)
        media = next(e["media"] for e in json.loads(cli(mesh, "status", "--json").stdout)["edges"]
                     if e["id"] == "edge-dev-sa-1")
        assert media.startswith("127.0.0.2:"), media
        r = cli(mesh, "doctor", *operator(mesh))
        assert r.returncode == 1, r.stdout + r.stderr
        bad = [line for line in r.stdout.splitlines() if line.startswith("FAIL")]
        assert any("media" in line and "edge-dev-sa-1" in line and media in line for line in bad), r.stdout
        assert all("edge-dev-sa-1" in line for line in bad), f"only the misconfigured edge fails:\n{r.stdout}"
        extra.kill()
        extra.wait(timeout=10)
        extra = None

        # A dead edge: named, as not heartbeating.
        dead = mesh.state["edges"][1]
        mesh.kill(dead["pid"])
        def names_dead():
            r = cli(mesh, "doctor", *operator(mesh))
            lines = [line for line in r.stdout.splitlines() if line.startswith("FAIL")]
            hit = any(line.startswith("FAIL edge") and dead["id"] in line for line in lines)
            return r if r.returncode == 1 and hit else None
        r = wait_for("doctor names the dead edge", names_dead, timeout=30)
        print(r.stdout)
    finally:
        if extra is not None:
            extra.kill()
            extra.wait(timeout=10)
        mesh.stop()
