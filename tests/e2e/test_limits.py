"""Limits on what one client may hold: a signaling socket that does not
join (or joins and never offers) is closed at a fixed deadline however
often it pings; one address holds a bounded number of sockets while
others still join and media goes on; a token's rights are enforced at
the edge whatever the client offers."""

import asyncio
import json
import resource
import time

import aiohttp

from clients import MovingVideo, RtpTap, WhepViewer, WhipPublisher, WsClient, http_session, wait_until
from conftest import Cluster, metrics

WINDOW = 6.0  # seconds of media measured while the flood holds its sockets
FLOOD_ADDRESS = "127.0.0.2"  # loopback, but another source address than the clients'


def ws_url(base):
    return base.replace("http", "ws", 1) + "/v1/rtc"


async def until_closed(ws, pings=False, limit=20.0):
    """Reads `ws` until the edge closes it (at most `limit` s), sending a
    ping every second when `pings`; returns (seconds, messages received)."""
    t0 = time.monotonic()
    got = []
    next_ping = t0
    while time.monotonic() - t0 < limit:
        if pings and time.monotonic() >= next_ping:
            try:
                await ws.send_json({"type": "ping"})
            except ConnectionError:
                # The edge closed it between two reads: read what it said.
                pings = False
            next_ping += 1.0
        try:
            msg = await asyncio.wait_for(ws.receive(), 0.5)
        except asyncio.TimeoutError:
            continue
        if msg.type != aiohttp.WSMsgType.TEXT:
            return time.monotonic() - t0, got
        got.append(json.loads(msg.data))
    raise AssertionError(f"the edge kept the socket open {limit} s: {got[-5:]}")


def signaling_errors(url):
    return {k: v for k, v in metrics(url).items() if k.startswith("geomesh_edge_signaling_errors_total")}


def test_sockets_that_do_not_join_or_offer_are_closed_at_a_fixed_deadline(mesh):
    base = mesh.edge["url"]
    conf = "deadlines"

    async def pinger():
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(ws_url(base)) as ws:
                return await until_closed(ws, pings=True)

    async def joiner():
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(ws_url(base)) as ws:
                await ws.send_json({"type": "join", "token": mesh.mint(conf, participant="lurker"), "conference": conf})
                return await until_closed(ws)

    async def run():
        return await asyncio.gather(pinger(), joiner())

    (t_ping, ping_msgs), (t_join, join_msgs) = asyncio.run(asyncio.wait_for(run(), 60))
    # Pings are answered but do not move the join deadline (10 s).
    assert sum(1 for m in ping_msgs if m["type"] == "pong") >= 8, ping_msgs
    last = ping_msgs[-1]
    assert last["type"] == "error" and last["code"] == "not_joined" and last["fatal"], ping_msgs
    assert 9.0 <= t_ping <= 14.0, t_ping
    # A participant that joined and never offered leaves the roster at the
    # offer deadline (10 s after joining).
    assert join_msgs[0]["type"] == "joined", join_msgs
    last = join_msgs[-1]
    assert last["type"] == "error" and last["code"] == "no_offer" and last["fatal"], join_msgs
    assert 9.0 <= t_join <= 14.0, t_join
    errors = signaling_errors(base)
    assert any('"no_offer"' in k and v >= 1 for k, v in errors.items()), errors
    assert any('"not_joined"' in k and v >= 1 for k, v in errors.items()), errors


def test_a_connection_flood_from_one_address_is_capped_and_media_goes_on():
    cap = 200  # the edge's default --max-connections-per-address
    flood = 1000
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < 4 * flood:
        # The client holds the flood's sockets, and so does the edge (it inherits this).
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, 8 * flood), hard))
    conf = "flood"
    with Cluster(1) as c:
        url = c.urls[0]
        r = {}

        async def run():
            video = MovingVideo(fps=30, width=320, height=240)
            pub = await WhipPublisher(url, conf, c.mint(conf, 0, participant="pub"), video_track=video).start()
            view = await WhepViewer(url, conf, c.mint(conf, 0, participant="view")).start()
            tap = RtpTap().tap_receivers(view.pc)
            frames = view.counter.frames
            member = None
            flooder = aiohttp.ClientSession(connector=aiohttp.TCPConnector(local_addr=(FLOOD_ADDRESS, 0), limit=0))
            held, refused = [], []
            try:
                await wait_until("the viewer decodes its first frames",
                                 lambda: frames.get("video", 0) >= 10 and frames.get("audio", 0) >= 10)
                start = (video.n, frames.get("video", 0), frames.get("audio", 0), len(tap.received))
                t0 = time.monotonic()
                # A thousand sockets from one address, held open, never joining.
                for _ in range(flood):
                    try:
                        held.append(await flooder.ws_connect(ws_url(url)))
                    except aiohttp.WSServerHandshakeError as e:
                        refused.append(e.status)
                # A participant from another address still joins, and gets the publisher's media.
                member = await WsClient(url, c.mint(conf, 0, participant="member"), conf).start()
                await wait_until("the new member decodes the publisher's video",
                                 lambda: member.counter.frames.get("video:pub", 0) >= 30, timeout=20)
                await asyncio.sleep(max(0.0, WINDOW - (time.monotonic() - t0)))
                elapsed = time.monotonic() - t0
                end = (video.n, frames.get("video", 0), frames.get("audio", 0), len(tap.received))
                r.update(encoded=end[0] - start[0], decoded=end[1] - start[1], audio=end[2] - start[2],
                         elapsed=elapsed, held=len(held), refused=refused, tap=tap, window=(start[3], end[3]))
                r["errors_during"] = signaling_errors(url)
                # The edge closes the idle sockets at their join deadline; then
                # that address may connect again.
                closed = await asyncio.gather(*(until_closed(ws) for ws in held))
                r["closed_after"] = max(t for t, _ in closed)
                again = await flooder.ws_connect(ws_url(url))
                await again.send_json({"type": "ping"})
                r["again"] = json.loads((await asyncio.wait_for(again.receive(), 5)).data)
                await again.close()
            finally:
                for ws in held:
                    await ws.close()
                await flooder.close()
                if member:
                    await member.stop()
                await view.stop()
                await pub.stop()

        asyncio.run(asyncio.wait_for(run(), 120))
        summary = {k: v for k, v in r.items() if k != "tap"}
        print("flood:", {k: v for k, v in summary.items() if k not in ("refused", "errors_during")})
        # Exactly the cap was admitted from the flooding address; the rest got 429.
        assert r["held"] == cap, summary
        assert r["refused"] == [429] * (flood - cap), summary
        assert any('"address_connections"' in k and v == flood - cap for k, v in r["errors_during"].items()), summary
        # Continuity for the publisher's viewer throughout the flood.
        assert r["encoded"] >= WINDOW * 25, summary
        assert r["decoded"] >= 0.9 * r["encoded"], summary
        assert r["audio"] >= 0.8 * 50 * r["elapsed"], summary
        for kind in ("video", "audio"):
            missing, packets = r["tap"].missing(kind)
            assert packets > 0 and missing == 0, (kind, missing, packets, summary)
        assert r["closed_after"] <= 15.0, summary
        assert r["again"] == {"type": "pong"}, summary


def test_rights_in_the_token_are_enforced_by_the_edge(mesh):
    base = mesh.edge["url"]
    conf = "rights"

    async def run():
        out = {}
        # WHIP with a token that may not publish; WHEP with one that may not subscribe.
        pub = WhipPublisher(base, conf, "")
        await pub.pc.setLocalDescription(await pub.pc.createOffer())
        token = mesh.mint(conf, participant="viewer-only", rights=["--no-publish"])
        out["whip"] = (await http_session(f"{base}/v1/whip/{conf}", token, pub.pc.localDescription.sdp))[::2]
        await pub.pc.close()
        view = WhepViewer(base, conf, "")
        await view.pc.setLocalDescription(await view.pc.createOffer())
        token = mesh.mint(conf, participant="speaker-only", rights=["--no-subscribe"])
        out["whep"] = (await http_session(f"{base}/v1/whep/{conf}", token, view.pc.localDescription.sdp))[::2]
        await view.pc.close()

        # Over WebSocket a viewer-only participant joins but its sending offer is refused.
        sender = WsClient(base, mesh.mint(conf, participant="viewer-only", rights=["--no-publish"]), conf)
        async with aiohttp.ClientSession() as s:
            async with s.ws_connect(ws_url(base)) as ws:
                await ws.send_json({"type": "join", "token": sender.token, "conference": conf})
                out["joined"] = json.loads((await ws.receive()).data)
                await sender.pc.setLocalDescription(await sender.pc.createOffer())
                await ws.send_json({"type": "offer", "sdp": sender.pc.localDescription.sdp})
                for _ in range(20):
                    m = json.loads((await asyncio.wait_for(ws.receive(), 10)).data)
                    if m["type"] in ("error", "answer"):
                        out["offer"] = m
                        break
        await sender.pc.close()

        # A speaker-only participant is heard by the others and is sent nothing.
        speaker = await WsClient(base, mesh.mint(conf, participant="speaker", rights=["--no-subscribe"]), conf).start()
        other = await WsClient(base, mesh.mint(conf, participant="other"), conf).start()
        try:
            await wait_until("the other participant decodes the speaker",
                             lambda: other.counter.frames.get("video:speaker", 0) >= 30
                             and other.counter.frames.get("audio:speaker", 0) >= 30)
            await asyncio.sleep(2)
            out["speaker_got"] = dict(speaker.counter.frames)
            out["speaker_joined"] = next(m for m in speaker.messages if m["type"] == "joined")
        finally:
            await other.stop()
            await speaker.stop()
        return out

    out = asyncio.run(asyncio.wait_for(run(), 90))
    assert out["whip"][0] == 403 and "publish" in out["whip"][1], out
    assert out["whep"][0] == 403 and "subscribe" in out["whep"][1], out
    assert out["joined"]["type"] == "joined" and out["joined"]["can_publish"] is False, out
    assert out["offer"]["type"] == "error" and out["offer"]["code"] == "forbidden", out
    assert out["speaker_joined"]["can_subscribe"] is False, out
    assert out["speaker_got"] == {}, out
