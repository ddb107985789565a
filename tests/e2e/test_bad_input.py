"""Bad input at every door gets a typed error or is dropped and counted,
and the participants already there keep their media."""

import asyncio
import base64
import json
import os
import re
import socket
import struct
import time

import aiohttp
from cryptography.hazmat.primitives.serialization import load_pem_private_key

from clients import WhepViewer, WhipPublisher, http_session, wait_until
from conftest import metric, metrics


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def forged_token(mesh, conference, exp_offset, edge=None):
    """A correctly signed token with a chosen expiry (the CLI only mints future ones)."""
    key = load_pem_private_key(open(mesh.state["token_key"], "rb").read(), password=None)
    now = int(time.time())
    claims = {"iss": "geomesh", "conf": conference, "sub": "mallory", "edge": edge or mesh.edge["id"],
              "iat": now - 3600, "exp": now + exp_offset}
    head = b64(json.dumps({"alg": "EdDSA", "typ": "JWT"}).encode()) + "." + b64(json.dumps(claims).encode())
    return head + "." + b64(key.sign(head.encode()))


async def ws_exchange(base, messages, read=1):
    """Sends raw text frames, returns the JSON replies (or 'closed')."""
    out = []
    async with aiohttp.ClientSession() as s:
        async with s.ws_connect(base.replace("http", "ws", 1) + "/v1/rtc", max_msg_size=0) as ws:
            for m in messages:
                await ws.send_str(m if isinstance(m, str) else json.dumps(m))
            for _ in range(read):
                msg = await asyncio.wait_for(ws.receive(), 10)
                if msg.type != aiohttp.WSMsgType.TEXT:
                    out.append("closed")
                    break
                out.append(json.loads(msg.data))
    return out


def stun_binding(ufrag: str, truncate: int = 0) -> bytes:
    user = f"{ufrag}:evil".encode()
    pad = (4 - len(user) % 4) % 4
    attrs = struct.pack("!HH", 0x0006, len(user)) + user + b"\0" * pad
    # A MESSAGE-INTEGRITY that cannot verify.
    attrs += struct.pack("!HH", 0x0008, 20) + os.urandom(20)
    msg = struct.pack("!HHI", 0x0001, len(attrs), 0x2112A442) + os.urandom(12) + attrs
    return msg[: len(msg) - truncate] if truncate else msg


def test_bad_input_is_refused_and_media_goes_on(mesh):
    base = mesh.edge["url"]
    conf = "steady"

    async def run():
        pub = await WhipPublisher(base, conf, mesh.mint(conf, participant="steady-pub")).start()
        view = await WhepViewer(base, conf, mesh.mint(conf, participant="steady-view")).start()
        await wait_until("baseline media", lambda: view.counter.frames.get("video", 0) >= 10, timeout=40)
        answer_sdp = pub.pc.remoteDescription.sdp
        ufrag = re.search(r"a=ice-ufrag:(\S+)", answer_sdp).group(1)
        cand = re.search(r"a=candidate:\S+ \d+ udp \d+ (\S+) (\d+) typ host", answer_sdp, re.I)
        media_addr = (cand.group(1), int(cand.group(2)))

        # --- WebSocket signaling ---
        good = mesh.mint(conf, participant="ws-user")
        r = await ws_exchange(base, ["{not json", {"type": "dance"}, {"type": "ping"}], read=3)
        assert [m["code"] for m in r[:2]] == ["bad_message", "bad_message"], r
        assert r[2] == {"type": "pong"}, "the session survives bad messages"
        assert all(m["fatal"] is False for m in r[:2])

        r = await ws_exchange(base, [{"type": "join", "token": mesh.mint("elsewhere"), "conference": conf}])
        assert r[0]["code"] == "unauthorized" and "conference" in r[0]["message"] and r[0]["fatal"], r
        r = await ws_exchange(base, [{"type": "join", "token": mesh.mint(conf, edge="edge-other")}])
        assert r[0]["code"] == "unauthorized" and "edge" in r[0]["message"], r
        r = await ws_exchange(base, [{"type": "join", "token": forged_token(mesh, conf, -600)}])
        assert r[0]["code"] == "unauthorized" and "expired" in r[0]["message"], r
        r = await ws_exchange(base, [{"type": "join", "token": "not.a.token"}])
        assert r[0]["code"] == "unauthorized" and "malformed" in r[0]["message"], r
        r = await ws_exchange(base, [{"type": "offer", "sdp": "v=0"}])
        assert r[0]["code"] == "not_joined", r

        r = await ws_exchange(base, [{"type": "join", "token": good, "conference": conf},
                                     {"type": "offer", "sdp": "this is not SDP"}], read=2)
        assert r[0]["type"] == "joined" and r[1]["code"] == "bad_sdp" and not r[1]["fatal"], r

        r = await ws_exchange(base, [{"type": "join", "token": mesh.mint(conf)}, "x" * (1100 * 1024)], read=2)
        assert r[0]["type"] == "joined" and r[-1] == "closed", "oversized message closes the socket"

        # --- WHIP / WHEP ---
        whip = f"{base}/v1/whip/{conf}"
        status, _, body = await http_session(whip, mesh.mint(conf), "v=0\r\nnonsense\r\n")
        assert status == 400 and "SDP" in body, (status, body)
        status, _, _ = await http_session(whip, forged_token(mesh, conf, -600), pub.pc.localDescription.sdp)
        assert status == 401
        status, _, body = await http_session(whip, mesh.mint("elsewhere"), pub.pc.localDescription.sdp)
        assert status == 401 and "conference" in body
        async with aiohttp.ClientSession() as s:
            async with s.post(whip, data="v=0", headers={"Content-Type": "text/plain",
                                                        "Authorization": "Bearer " + mesh.mint(conf)}) as resp:
                assert resp.status == 415
            async with s.post(whip, data="v=0", headers={"Content-Type": "application/sdp"}) as resp:
                assert resp.status == 401 and resp.headers["WWW-Authenticate"] == "Bearer"
            async with s.post(f"{base}/v1/whip/bad%20name", data="v=0",
                              headers={"Content-Type": "application/sdp"}) as resp:
                assert resp.status == 400
            async with s.delete(f"{base}/v1/whip/{conf}/nonexistent") as resp:
                assert resp.status == 404
            async with s.patch(base + pub.location, data="a=candidate") as resp:
                assert resp.status == 405

        # --- the media port ---
        dropped_before = metric(base, 'geomesh_edge_datagrams_dropped_total{reason="unknown_source"}')
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        junk = [os.urandom(n) for n in (1, 12, 100, 1400)]
        junk += [b"\x16\xfe\xfd" + os.urandom(10), b"\x80\x60" + os.urandom(10), stun_binding("nobody")[:30]]
        for j in junk:
            sock.sendto(j, media_addr)
        # STUN naming the publisher's ufrag but failing integrity, whole and truncated.
        for cut in (0, 4, 25):
            sock.sendto(stun_binding(ufrag, cut), media_addr)
        sock.close()
        await wait_until("junk counted", lambda: metric(
            base, 'geomesh_edge_datagrams_dropped_total{reason="unknown_source"}') >= dropped_before + len(junk) + 1)

        # The participants already there still have media.
        before = view.counter.frames.get("video", 0)
        await wait_until("media continues", lambda: view.counter.frames.get("video", 0) >= before + 15, timeout=20)
        m = metrics(base)
        assert m.get('geomesh_edge_joins_total{reason="unauthorized"}', 0) >= 6, m
        assert m.get('geomesh_edge_signaling_errors_total{reason="bad_message"}', 0) >= 2
        assert m.get("geomesh_edge_participants") == 2
        await view.stop()
        await pub.stop()

    asyncio.run(run())
