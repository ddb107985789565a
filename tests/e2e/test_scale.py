"""Edge at scale: simulcast layer choice, dominant speaker, last-N."""

import asyncio

import pytest

from clients import WhepViewer, WsClient, wait_until
from conftest import page_stats, run_async, wait_for


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
def test_simulcast_small_tile_gets_the_low_layer_and_switches_without_freezing(mesh, browser):
    # One edge for all three (dev-us has one): subscribers on another edge
    # share the one layer that crosses octo, so the test needs them on the
    # publisher's edge. (Placement keeps a small conference on one edge of
    # its region, but a one-edge region states the precondition outright.)
    simulcast_small_tile_low_layer_then_switch_up(browser, lambda n, x: mesh.page("simul", n, region="dev-us", extra=x))


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
