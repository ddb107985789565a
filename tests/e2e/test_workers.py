"""One conference spread over an edge's media workers (and over edges)."""

import pytest

from clients import WhepViewer, WsClient, wait_until
from conftest import Cluster, metric_sum, metrics, run_async, wait_for
from test_octo import meet_and_mute
from test_scale import simulcast_small_tile_low_layer_then_switch_up


def test_a_conference_spread_over_workers_and_edges_everyone_receives_everyone():
    # Every conference spreads after one session on its home worker: two
    # participants per edge sit on different workers of that edge.
    with Cluster(2, edge_args=("--media-workers", "2", "--spread-above", "1")) as c:

        async def run():
            clients = []
            for i in range(4):
                e = i // 2
                clients.append(await WsClient(c.urls[e], c.mint("wide", e, participant=f"p{i}"), "wide",
                                              video_size=(160, 120), fps=10).start())
            view = None
            try:
                # Media, rosters and mute cross workers and edges.
                await meet_and_mute(clients, timeout=90)

                # A WHEP viewer on p0's worker (ties go to the home worker)
                # follows p1, who sits on the other one.
                view = await WhepViewer(c.urls[0], "wide", c.mint("wide", 0, participant="watcher"),
                                        participant="p1").start()
                await wait_until("the WHEP viewer receives p1's video",
                                 lambda: view.counter.frames.get("video", 0) >= 10, timeout=45)
            finally:
                if view is not None:
                    await view.stop()
                for cl in clients:
                    await cl.stop()

        run_async(run)
        # Packets crossed between the workers of each edge.
        for url in c.urls:
            assert metric_sum([url], "geomesh_edge_sibling_packets_total") > 0, url


# Known defect (docs/DECISIONS.md, "Known flaky media tests"): now and then the switch-up freezes the small tile 6-7 s.
# One rerun; a second failure fails CI.
@pytest.mark.flaky(reruns=1)
def test_simulcast_layers_are_chosen_per_subscriber_on_other_workers(browser):
    # Three workers, spreading after one session: the publisher sits on the
    # conference's home worker, the two subscribers on the two others, so
    # every layer choice and keyframe request crosses a sibling link.
    with Cluster(1, edge_args=("--media-workers", "3", "--spread-above", "1")) as c:
        simulcast_small_tile_low_layer_then_switch_up(browser, lambda n, x: c.page("wide-simul", 0, n, x))
        assert metric_sum(c.urls, "geomesh_edge_sibling_packets_total") > 0


def test_joining_again_replaces_the_session_on_its_worker():
    # p1 lands on the worker p0 is not on; joining again must go there too,
    # so the old session is replaced instead of left to time out.
    with Cluster(1, edge_args=("--media-workers", "2", "--spread-above", "1")) as c:
        url = c.urls[0]

        async def run():
            p0 = await WsClient(url, c.mint("again", 0, participant="p0"), "again", video=False).start()
            p1 = await WsClient(url, c.mint("again", 0, participant="p1"), "again", video=False).start()
            again = None
            try:
                await wait_until("p0 hears p1", lambda: p0.counter.frames.get("audio:p1", 0) >= 10 or None)
                again = await WsClient(url, c.mint("again", 0, participant="p1"), "again", video=False).start()
                await wait_until("the first p1 session is told it was replaced",
                                 lambda: any(m.get("type") == "error" and m.get("code") == "replaced"
                                             for m in p1.messages) or None, timeout=15)
                assert again.roster == {"p0"}, again.roster
                before = p0.counter.frames.get("audio:p1", 0)
                await wait_until("p0 hears the new p1 session",
                                 lambda: p0.counter.frames.get("audio:p1", 0) >= before + 10 or None)
            finally:
                for cl in (again, p1, p0):
                    if cl is not None:
                        await cl.stop()

        run_async(run)
        assert metric_sum(c.urls, "geomesh_edge_sibling_packets_total") > 0


def test_guests_come_and_go_across_workers_and_nothing_is_left_behind():
    # Pairs of guests join a spread conference and leave again, eight
    # times, on alternating edges; two participants stay throughout.
    with Cluster(2, edge_args=("--media-workers", "2", "--spread-above", "1")) as c:

        async def run():
            stay = [await WsClient(c.urls[e], c.mint("churn", e, participant=f"s{e}"), "churn",
                                   video_size=(160, 120), fps=10).start() for e in range(2)]
            try:
                for r in range(8):
                    e = r % 2
                    guests = [await WsClient(c.urls[e], c.mint("churn", e, participant=f"g{r}-{k}"), "churn",
                                             video_size=(160, 120), fps=10).start() for k in range(2)]
                    await wait_until(f"round {r}: both stayers hear both guests",
                                     lambda: all(s.counter.frames.get(f"audio:g{r}-{k}", 0) >= 5
                                                 for s in stay for k in range(2)) or None, timeout=30)
                    for g in guests:
                        await g.stop()
                await wait_until("the guests are gone from the stayers' rosters",
                                 lambda: (stay[0].roster == {"s1"} and stay[1].roster == {"s0"}) or None,
                                 timeout=15)
                before = stay[1].counter.frames.get("video:s0", 0)
                await wait_until("the stayers still see each other",
                                 lambda: stay[1].counter.frames.get("video:s0", 0) >= before + 10 or None)
            finally:
                for s in stay:
                    await s.stop()

        run_async(run)
        # Every session counted out again on every worker.
        for url in c.urls:
            wait_for(f"{url}: no participants or conferences left",
                     lambda url=url: all(metrics(url).get(f"geomesh_edge_{g}") == 0
                                         for g in ("participants", "conferences")))
