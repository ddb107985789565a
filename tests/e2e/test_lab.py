"""The emulated-WAN lab (`geomesh dev --wan`) as a person on one laptop
meets it: meeting pages that pretend to be in far-away cities
(`?location=lat,lon`) land on the edge the selector chooses for that
place, their browser's own round-trip measurement to that edge (the ICE
candidate pair's `currentRoundTripTime`) is the lab's modelled access RTT
within 10 %, and they see each other across the emulated ocean."""

import json
import math
from pathlib import Path

import pytest

from conftest import DevMesh, page_stats, wait_for

# Pretended places: Los Angeles (nearest edge region dev-us) and Tokyo
# (dev-ap), far enough from their edges that a millisecond of timer
# granularity is well inside the 10 %.
PEOPLE = [("lee", (34.05, -118.24), "dev-us"), ("kai", (35.68, 139.69), "dev-ap")]

CANDIDATE_RTT_JS = """async () => {
  const g = window.geomesh;
  if (!g || !g.pc) return null;
  const stats = await g.pc.getStats();
  let rtt = null;
  stats.forEach((r) => {
    if (r.type === 'candidate-pair' && r.nominated && r.state === 'succeeded'
        && r.currentRoundTripTime !== undefined) rtt = r.currentRoundTripTime * 1000;
  });
  return rtt;
}"""


def haversine_km(a, b):
    """Great-circle distance on the IUGG mean radius, as the selector's."""
    r = 6371.0088
    (la1, lo1), (la2, lo2) = [(math.radians(x), math.radians(y)) for x, y in (a, b)]
    h = math.sin((la2 - la1) / 2) ** 2 + math.cos(la1) * math.cos(la2) * math.sin((lo2 - lo1) / 2) ** 2
    return 2 * r * math.asin(math.sqrt(h))


@pytest.fixture
def lab(browser):
    m = DevMesh("--wan")
    pages = {}
    try:
        for name, (lat, lon), _ in PEOPLE:
            pages[name] = browser(m.page("lab", name, extra=f"&location={lat},{lon}&simulcast=0"))
        yield m, pages
    finally:
        for p in pages.values():
            p.context.close()
        m.stop()


def test_pretending_pages_land_feel_their_distance_and_meet(lab):
    mesh, pages = lab
    access = mesh.state["wan"]["access"]
    regions = {r["id"]: (r["lat"], r["lon"]) for r in mesh.state["regions"]}

    def joined():
        s = {n: page_stats(p) for n, p in pages.items()}
        return s if all(x["joined"] and x["state"] == "connected" for x in s.values()) else None

    stats = wait_for("both pages connected", joined, timeout=60)
    report = []
    for name, at, nearest in PEOPLE:
        region = stats[name]["edge"]["region"]
        # Each lands where the selector placed it; the first joiner, alone
        # in the meeting, on its nearest region's edge.
        if name == PEOPLE[0][0]:
            assert region == nearest, (name, stats[name]["edge"])
        model = access["base_ms"] + access["ms_per_km"] * haversine_km(at, regions[region])
        # The browser refreshes the pair's RTT with each consent check
        # (every few seconds). Load only ever adds to a round trip (the
        # edge's delay line or the browser late on its turn), so the least of
        # a few checks is the path's RTT, as TCP's min-RTT is.
        samples = set()

        def sampled():
            v = pages[name].evaluate(CANDIDATE_RTT_JS)
            if v is not None:
                samples.add(v)
            return len(samples) >= 3

        try:
            wait_for(f"{name}'s candidate-pair RTT", sampled, timeout=20, interval=1.0)
        except AssertionError:
            assert samples, f"{name}: no candidate-pair RTT in 20 s"
        measured = min(samples)
        report.append(f"{name} on {region}: browser RTT {measured:.1f} ms (least of {sorted(samples)}), model {model:.1f} ms")
        assert abs(measured - model) <= 0.10 * model, report

    # They meet: each decodes the other's video across the emulated WAN.
    ids = {n: stats[n]["me"] for n in pages}

    def decoding():
        s = {n: page_stats(p) for n, p in pages.items()}
        ok = all(s[n]["video"].get(ids[o], 0) >= 60 for n in pages for o in pages if o != n)
        return s if ok else None

    wait_for("each page decodes the other's video", decoding, timeout=60)
    print("\n".join(report))
