"""Edge at scale: simulcast layer choice, dominant speaker, last-N."""

import asyncio

import pytest

from clients import WhepViewer, WsClient, wait_until
from conftest import chromium, page_stats, run_async, wait_for


@pytest.fixture
def pages():
    """Chromium pages closed when the test ends: three simulcast pages left
    running would take the CPU the next tests' clients need."""
    with chromium() as open_page:
        yield open_page


def simulcast_small_tile_low_layer_then_switch_up(browser, page):
    """A Chromium simulcast publisher and two subscribers joining in that
    order: the one with a 180p tile receives a low layer, the other a higher
    one; the small tile grows and switches up without a freeze. `page(name,
    extra)` is the meeting page URL of one participant."""
    pub = browser(page("pub", ""))
    pub_id = wait_for("publisher joined", lambda: page_stats(pub)["me"])
    small = browser(page("small", "&simulcast=0&maxHeight=180"))
    big = browser(page("big", "&simulcast=0"))

    def heights():
        s, b = page_stats(small), page_stats(big)
        hs, hb = s["height"].get(pub_id, 0), b["height"].get(pub_id, 0)
        if s["video"].get(pub_id, 0) >= 30 and b["video"].get(pub_id, 0) >= 30 and hs and hb and hb > hs:
            return hs, hb, s
        return None

    hs, hb, s = wait_for("the small tile on a low layer, the big one on a higher one", heights, timeout=60)
    assert hs <= 180, (hs, hb)
    # The small tile grows: the edge switches it up at a keyframe, without a freeze.
    freeze_before = s["freeze"].get(pub_id, 0)
    # The big tile's freezes over the same time are the baseline: a
    # publisher or machine that stalls freezes both, a bad switch only one.
    big_before = page_stats(big)["freeze"].get(pub_id, 0)
    small.evaluate("() => window.geomesh.setConstraints({})")

    def switched():
        s2 = page_stats(small)
        return s2 if s2["height"].get(pub_id, 0) > hs else None

    s2 = wait_for("the small subscriber switched up", switched, timeout=30)
    frames = s2["video"][pub_id]
    wait_for("decoding continues after the switch", lambda: page_stats(small)["video"].get(pub_id, 0) > frames + 30)
    freeze = page_stats(small)["freeze"].get(pub_id, 0) - freeze_before
    baseline = page_stats(big)["freeze"].get(pub_id, 0) - big_before
    print(f"freeze across the switch-up: {freeze:.2f} s (the big tile meanwhile: {baseline:.2f} s)")
    assert freeze < 1.0 + baseline, (freeze, baseline)


# Known defect (docs/DECISIONS.md, "Known flaky media tests"): now and then the switch-up freezes the small tile 6-7 s.
# One rerun; a second failure fails CI.
@pytest.mark.flaky(reruns=1)
def test_simulcast_small_tile_gets_the_low_layer_and_switches_without_freezing(mesh, pages):
    # One edge for all three (dev-us has one): subscribers on another edge
    # share the one layer that crosses octo, so the test needs them on the
    # publisher's edge. (Placement keeps a small conference on one edge of
    # its region, but a one-edge region states the precondition outright.)
    simulcast_small_tile_low_layer_then_switch_up(pages, lambda n, x: mesh.page("simul", n, region="dev-us", extra=x))


LAYOUT_JS = "() => ({...window.geomesh.layout})"


# Same known defect as the switch-up above (docs/DECISIONS.md, "Known flaky media tests"): one rerun.
@pytest.mark.flaky(reruns=1)
def test_speaker_view_stage_takes_a_high_layer_the_filmstrip_the_lowest_and_they_swap(mesh, pages):
    """Two Chromium simulcast publishers and a viewer on one edge. In
    gallery view the viewer's page asks for each tile's height; a click on
    a tile puts it on the stage (speaker view): the stage is received on a
    higher layer than the filmstrip. A click on the other tile swaps them,
    with no freeze beyond a second on either."""
    page = lambda n, x="": mesh.page("stage", n, region="dev-us", extra=x)  # noqa: E731
    ana = pages(page("ana"))
    ana_id = wait_for("ana joined", lambda: page_stats(ana)["me"])
    ben = pages(page("ben"))
    ben_id = wait_for("ben joined", lambda: page_stats(ben)["me"])
    # The viewer's own camera is not what is measured: no simulcast, less CPU.
    viewer = pages(page("viewer", "&simulcast=0"))
    wait_for("the viewer decodes both", lambda: all(page_stats(viewer)["video"].get(p, 0) >= 30 for p in (ana_id, ben_id)), timeout=60)
    def both_measured():
        layout = viewer.evaluate(LAYOUT_JS)
        return layout if len(layout["heights"]) == 2 else None

    gallery = wait_for("gallery tile heights sent", both_measured)
    assert gallery["view"] == "gallery" and abs(gallery["heights"][ana_id] - gallery["heights"][ben_id]) <= 1, gallery
    print(f"gallery tile heights {gallery['heights']}, received {page_stats(viewer)['height']}")

    def on_stage(stage, strip):
        viewer.click(f'[data-participant="{stage}"]')

        def swapped():
            s, l = page_stats(viewer), viewer.evaluate(LAYOUT_JS)
            h = s["height"]
            if l["stage"] == stage and h.get(stage, 0) > h.get(strip, 0) > 0:
                return s, l
            return None

        s, l = wait_for(f"{stage} on the stage, on a higher layer than {strip}", swapped, timeout=45)
        assert l["view"] == "speaker" and l["pinned"] == stage, l
        # The stage spans the page; a filmstrip tile is a fraction of it.
        assert l["heights"][stage] >= 3 * l["heights"][strip], l
        print(f"stage {stage}: tile heights {l['heights']}, received {s['height']}")
        return s

    s1 = on_stage(ana_id, ben_id)
    s2 = on_stage(ben_id, ana_id)
    frames = s2["video"]
    wait_for("both keep decoding", lambda: all(page_stats(viewer)["video"][p] >= frames[p] + 30 for p in (ana_id, ben_id)), timeout=30)
    end = page_stats(viewer)
    for p in (ana_id, ben_id):
        frozen = end["freeze"].get(p, 0) - s1["freeze"].get(p, 0)
        print(f"{p}: {frozen:.2f} s frozen across the swap; heights {s1['height']} then {s2['height']}")
        assert frozen < 1.0, (p, frozen)
    assert not end["errors"], end["errors"]


def test_dominant_speaker_is_announced_and_whep_follows_it(mesh):
    base = mesh.edge["url"]

    async def run():
        loud = await WsClient(base, mesh.mint("talk", participant="loud"), "talk", amplitude=0.5).start()
        quiet = await WsClient(base, mesh.mint("talk", participant="quiet"), "talk", amplitude=0.0).start()
        view = await WhepViewer(base, "talk", mesh.mint("talk", participant="watcher")).start()
        try:
            await wait_until("both clients told that 'loud' is speaking",
                             lambda: loud.dominant() == "loud" and quiet.dominant() == "loud", timeout=30)
            await wait_until("the WHEP viewer hears the loud publisher",
                             lambda: view.counter.rms.get("audio", 0) > 0.05, timeout=30)
        finally:
            for c in (view, quiet, loud):
                await c.stop()

    run_async(run)


# Known defect (docs/DECISIONS.md, "Known flaky media tests"): now and then a newly forwarded aiortc publisher's keyframe never comes.
# One rerun; a second failure fails CI.
@pytest.mark.flaky(reruns=1)
def test_last_n_two_of_four_and_they_follow_the_speaker(mesh):
    base = mesh.edge["url"]

    async def run():
        pubs = []
        for i in range(4):
            c = await WsClient(base, mesh.mint("lastn", participant=f"p{i}"), "lastn", amplitude=0.0).start()
            await c.send({"type": "video_constraints", "last_n": 0})  # publishers watch nothing: less CPU
            pubs.append(c)
        sub = await WsClient(base, mesh.mint("lastn", participant="sub"), "lastn", amplitude=0.0).start()
        await sub.send({"type": "video_constraints", "last_n": 2})

        def flowing(window):
            # Which publishers' video frames increased over the window.
            return {k.split(":", 1)[1] for k, v in sub.counter.frames.items()
                    if k.startswith("video:") and v > window.get(k, 0) + 5}

        async def receiving(seconds=3):
            before = dict(sub.counter.frames)
            await asyncio.sleep(seconds)
            return flowing(before)

        try:
            await wait_until("video from two publishers", lambda: len(flowing({})) >= 2, timeout=45)
            first = await receiving()
            assert len(first) == 2, first
            # Someone not forwarded speaks up: the set changes to include them.
            speaker = next(f"p{i}" for i in range(4) if f"p{i}" not in first)
            pubs[int(speaker[1])].tone.amp = 0.5
            await wait_until("the speaker is announced", lambda: sub.dominant() == speaker, timeout=30)
            # A loaded machine decodes late: look until the set has changed.
            second = set()
            for _ in range(8):
                second = await receiving()
                if speaker in second and len(second) == 2:
                    break
            assert len(second) == 2 and speaker in second, (first, second)
        finally:
            for c in pubs + [sub]:
                await c.stop()

    run_async(run)
