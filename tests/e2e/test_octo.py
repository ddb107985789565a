"""One conference across edges: media crosses QUIC octo links."""

import asyncio
import time

import pytest

from clients import WhepViewer, WhipPublisher, WsClient, wait_until
from conftest import Cluster, metric_sum, octo_and_ingress_bytes, page_stats, run_async, wait_for


def test_whip_on_first_edge_whep_on_second(mesh):
    """Under `geomesh dev`: publish on the first edge of the state file, play on the second."""
    a, b = mesh.state["edges"][0], mesh.state["edges"][1]
    assert a["region"] != b["region"]

    async def run():
        pub = await WhipPublisher(a["url"], "cascade", mesh.mint("cascade", edge=a["id"], participant="caster")).start()
        view = await WhepViewer(b["url"], "cascade", mesh.mint("cascade", edge=b["id"], participant="far-viewer")).start()
        try:
            await wait_until("the WHEP viewer on the second edge decodes video and audio",
                             lambda: view.counter.frames.get("video", 0) >= 15 and view.counter.frames.get("audio", 0) >= 20,
                             timeout=45)
        finally:
            await view.stop()
            await pub.stop()

    run_async(run)
    assert metric_sum([a["url"]], "geomesh_edge_octo_media_packets_total", "Out") > 0

    # The link's RTT reaches the selector with the edge's heartbeats.
    import json

    from conftest import http_get

    def link_rtt():
        body = json.loads(http_get(mesh.state["selectors"][0]["url"] + "/v1/bridges")[1])
        bridges = body["bridges"] if isinstance(body, dict) else body
        for br in bridges:
            if br["id"] == a["id"] and br.get("load"):
                for link in br["load"]["links"]:
                    if link["edge"] == b["id"] and link["rtt_ms"] > 0:
                        return link
        return None

    wait_for("the selector knows the octo link's RTT", link_rtt, timeout=30)


def test_chromium_on_two_edges_see_and_hear_each_other(mesh, browser):
    a, b = mesh.state["edges"][0], mesh.state["edges"][1]
    # Through the selector, pretending to be in each edge's region.
    pa = browser(mesh.page("across", "anna", a["region"]))
    pb = browser(mesh.page("across", "ben", b["region"]))
    ida = wait_for("anna joined", lambda: page_stats(pa)["me"])
    idb = wait_for("ben joined", lambda: page_stats(pb)["me"])

    def both_receive():
        sa, sb = page_stats(pa), page_stats(pb)
        ok = (sa["video"].get(idb, 0) >= 10 and sa["audio"].get(idb, 0) >= 20
              and sb["video"].get(ida, 0) >= 10 and sb["audio"].get(ida, 0) >= 20)
        return (sa, sb) if ok else None

    sa, sb = wait_for("video and audio across the octo link both ways", both_receive, timeout=60)
    # Each on an edge of its region: two edges.
    assert (sa["edge"]["region"], sb["edge"]["region"]) == (a["region"], b["region"]), (sa["edge"], sb["edge"])
    # Rosters show the participant on the other edge.
    assert idb in sa["roster"] and ida in sb["roster"], (sa, sb)
    # Later tests in this module measure link bytes: stop these media flows.
    pa.context.close()
    pb.context.close()


def receives_everyone(clients):
    """Whether client i (participant `p{i}`) decodes video and audio of every other."""
    for i, cl in enumerate(clients):
        for j in range(len(clients)):
            if j != i and (cl.counter.frames.get(f"video:p{j}", 0) < 10
                           or cl.counter.frames.get(f"audio:p{j}", 0) < 20):
                return None
    return True


async def meet_and_mute(clients, timeout):
    """Clients `p0`…: everyone decodes everyone and has the others in the
    roster; then p0 mutes its audio and every other is told."""
    await wait_until("every participant decodes every other", lambda: receives_everyone(clients), timeout=timeout)
    for i, cl in enumerate(clients):
        assert cl.roster == {f"p{j}" for j in range(len(clients)) if j != i}, (i, cl.roster)
    await clients[0].send({"type": "mute", "kind": "audio", "muted": True})
    said = {"type": "mute", "participant": "p0", "kind": "audio", "muted": True}
    await wait_until("the others are told p0 muted",
                     lambda: all(said in cl.messages for cl in clients[1:]) or None, timeout=15)


@pytest.fixture
def three():
    with Cluster(3) as c:
        yield c


def test_three_edges_one_participant_each_everyone_receives_everyone(three):
    c = three

    async def run():
        clients = [await WsClient(c.urls[i], c.mint("tri", i, participant=f"p{i}"), "tri").start() for i in range(3)]
        try:
            await meet_and_mute(clients, timeout=60)
            # A later joiner on another edge sees p0's mute in the roster.
            late = await WsClient(c.urls[2], c.mint("tri", 2, participant="p3"), "tri", video=False).start()
            clients.append(late)
            joined = next(m for m in late.messages if m["type"] == "joined")
            p0 = next(p for p in joined["participants"] if p["id"] == "p0")
            assert p0["audio_muted"] is True and p0["video_muted"] is False, joined
        finally:
            for cl in clients:
                await cl.stop()

    run_async(run)


@pytest.fixture
def relayed():
    # edge-b's octo address in the topology is a relay we can black-hole.
    with Cluster(2, relay_edges=(1,)) as c:
        yield c


def test_media_resumes_after_the_link_is_black_holed(relayed):
    c = relayed

    async def run():
        pub = await WhipPublisher(c.urls[0], "resume", c.mint("resume", 0, participant="caster")).start()
        view = await WhepViewer(c.urls[1], "resume", c.mint("resume", 1, participant="viewer")).start()
        try:
            await wait_until("frames across the link", lambda: view.counter.frames.get("video", 0) >= 15, timeout=45)
            c.relays[1].blackholed = True
            # Longer than the QUIC idle timeout (5 s): the connection dies.
            await asyncio.sleep(8)
            c.relays[1].blackholed = False
            before = view.counter.frames.get("video", 0)
            await wait_until("video resumes on the same sessions without rejoining",
                             lambda: view.counter.frames.get("video", 0) >= before + 30, timeout=45)
        finally:
            await view.stop()
            await pub.stop()

    run_async(run)
    reconnects = metric_sum(c.urls[:2], "geomesh_edge_octo_reconnects_total")
    assert reconnects >= 1


def _octo_scenario(edge_args):
    """3 edges, 12 participants (4 per edge), last-N 4: octo bytes sent per
    byte received from publishers over a 10 s window. Video only: twelve
    aiortc clients decoding 11 Opus streams each would saturate this
    machine's two cores (audio is forwarded to everyone below 20
    participants, so it would only dilute the comparison)."""
    with Cluster(3, edge_args=("--last-n", "4", *edge_args)) as c:
        out = {}

        async def run():
            clients = []
            for i in range(12):
                e = i % 3
                clients.append(await WsClient(c.urls[e], c.mint("bw", e, participant=f"p{i:02d}"), "bw",
                                              audio=False, video_size=(160, 120), fps=10).start())
            try:
                def videos(cl):
                    return sum(1 for k, v in cl.counter.frames.items() if k.startswith("video:") and v >= 5)

                try:
                    await wait_until("every participant receives 4 videos",
                                     lambda: all(videos(cl) >= 4 for cl in clients), timeout=90)
                except AssertionError:
                    raise AssertionError(f"videos per participant: {[videos(cl) for cl in clients]}")

                o0, i0 = octo_and_ingress_bytes(c.urls)
                await asyncio.sleep(10)
                o1, i1 = octo_and_ingress_bytes(c.urls)
                out["octo_bytes"], out["ingress_bytes"] = o1 - o0, i1 - i0
            finally:
                for cl in clients:
                    await cl.stop()

        run_async(run)
        return out


def test_selective_forwarding_sends_fewer_octo_bytes_than_forward_everything():
    selective = _octo_scenario(())
    everything = _octo_scenario(("--octo-forward-all",))
    per_in = {name: r["octo_bytes"] / r["ingress_bytes"] for name, r in
              (("selective", selective), ("everything", everything))}
    ratio = per_in["selective"] / per_in["everything"]
    print(f"OCTO-BANDWIDTH selective={selective} everything={everything} "
          f"octo/ingress selective={per_in['selective']:.3f} everything={per_in['everything']:.3f} ratio={ratio:.3f}")
    assert selective["octo_bytes"] > 0
    assert ratio < 0.9, (selective, everything, ratio)


def test_only_the_layer_remote_tiles_need_crosses_the_link(mesh, browser):
    """A simulcast publisher on edge A, a small-tile subscriber on edge B:
    only the low layer crosses the octo link."""
    a, b = mesh.state["edges"][0], mesh.state["edges"][1]
    pub = browser(mesh.page("prune", "pub", a["region"]))
    pub_id = wait_for("publisher joined", lambda: page_stats(pub)["me"])
    sub = browser(mesh.page("prune", "far", b["region"], "&simulcast=0&maxHeight=180"))

    def low_layer():
        s = page_stats(sub)
        h = s["height"].get(pub_id, 0)
        return s if s["video"].get(pub_id, 0) >= 30 and 0 < h <= 180 else None

    wait_for("the far subscriber decodes the low layer", low_layer, timeout=60)
    # The selector chose the publisher's edge among its region's.
    home = mesh.edge_by_id(page_stats(pub)["edge"]["id"])
    assert page_stats(sub)["edge"]["region"] != home["region"]

    o0, i0 = octo_and_ingress_bytes([home["url"]])
    time.sleep(5)
    o1, i1 = octo_and_ingress_bytes([home["url"]])
    share = (o1 - o0) / (i1 - i0)
    print(f"OCTO-PRUNE octo/ingress on the publisher's edge = {share:.3f}")
    assert share < 0.5, share
