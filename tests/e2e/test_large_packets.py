"""Regression: aiortc packetizes VP8 into RTP packets of up to 1,300 bytes of
payload. Between edges every such packet used to be dropped (the octo
packet limit was 1,200 bytes, and QUIC datagrams hold only ~1,246 bytes
until path-MTU discovery raises them): a viewer on another edge lost ~30 %
of the sequence numbers and decoded almost nothing. Now the octo link
carries every packet the edge accepted, as fragments while it must."""

import asyncio
import time

from clients import NoisyVideo, RtpTap, WhepViewer, WhipPublisher, wait_until
from conftest import metrics

WINDOW = 8.0  # seconds of media measured after the first frames


def counter_sum(url, name, **labels):
    """The sum of the series of counter `name` at the edge `url` whose labels
    include `labels`; fails if there is no such series (a renamed metric)."""
    want = [f'{k}="{v}"' for k, v in labels.items()]
    values = [v for k, v in metrics(url).items()
              if k.split("{", 1)[0] == name and all(w in k for w in want)]
    assert values, f"no series {name}{labels} at {url}"
    return sum(values)


def test_aiortc_vp8_with_1300_byte_packets_crosses_edges_without_loss(mesh):
    a, b = mesh.state["edges"][0], mesh.state["edges"][1]
    assert a["region"] != b["region"], (a, b)
    conference = "large-packets"
    result = {}

    async def run():
        video = NoisyVideo(fps=30, width=320, height=240)
        pub = WhipPublisher(a["url"], conference, mesh.mint(conference, edge=a["id"], participant="noisy"),
                            video_track=video)
        await pub.start()
        sent = RtpTap().tap_sender(pub.pc)
        view = await WhepViewer(b["url"], conference,
                                mesh.mint(conference, edge=b["id"], participant="far-viewer")).start()
        got = RtpTap().tap_receivers(view.pc)
        try:
            frames = view.counter.frames
            try:
                await wait_until("the far viewer decodes its first frames",
                                 lambda: frames.get("video", 0) >= 10 and frames.get("audio", 0) >= 10, timeout=30)
            except AssertionError:
                missing, packets = got.missing("video")
                raise AssertionError(
                    f"the far viewer decoded {dict(frames)} of {video.n} frames; {missing} video sequence "
                    f"numbers missing among {packets} packets; the publisher sent "
                    f"{sum(1 for n in sent.sent if n > 1250)} RTP packets above 1,250 bytes") from None
            start = (video.n, frames.get("video", 0), frames.get("audio", 0), len(sent.sent), len(got.received))
            t0 = time.monotonic()
            await asyncio.sleep(WINDOW)
            elapsed = time.monotonic() - t0
            end = (video.n, frames.get("video", 0), frames.get("audio", 0), len(sent.sent), len(got.received))
            stats = await view.pc.getStats()
            result.update(
                encoded=end[0] - start[0], decoded=end[1] - start[1], audio=end[2] - start[2], elapsed=elapsed,
                sent=sent.sent[start[3]:end[3]], received=got.received[start[4]:end[4]],
                all_received=list(got.received), tap=got,
                inbound={(s.kind, s.ssrc): s.packetsLost for s in stats.values() if s.type == "inbound-rtp"},
            )
        finally:
            await view.stop()
            await pub.stop()

    asyncio.run(asyncio.wait_for(run(), timeout=120))
    r = result
    summary = {k: v for k, v in r.items() if k not in ("sent", "received", "all_received", "tap")}

    # aiortc really sent packets above the old 1,200-byte limit: its VP8
    # payloads are 1,300 bytes when the encoder has the bits (noise frames).
    big_sent = sum(1 for n in r["sent"] if n > 1250)
    assert big_sent >= 2 * WINDOW * 10, (big_sent, summary)

    # Continuity: the far viewer decodes (nearly) every frame the publisher
    # encoded, with no sequence number missing, and hears the audio.
    assert r["encoded"] >= WINDOW * 20, summary
    assert r["decoded"] >= 0.9 * r["encoded"], summary
    missing, packets = r["tap"].missing("video")
    assert packets > 0 and missing == 0, (missing, packets, summary)
    audio_missing, audio_packets = r["tap"].missing("audio")
    assert audio_packets > 0 and audio_missing == 0, (audio_missing, audio_packets, summary)
    assert all(lost <= 0 for lost in r["inbound"].values()), summary
    assert r["audio"] >= 0.8 * 50 * r["elapsed"], summary

    # The large packets crossed the octo link: the viewer on the other edge
    # received VP8 payloads above 1,200 bytes (the edges forward payloads
    # unchanged), and no edge dropped one as too big for its link.
    big_received = [n for kind, _, _, n in r["received"] if kind == "video" and n > 1200]
    assert len(big_received) >= 2 * WINDOW * 10, (len(big_received), summary)
    assert max(big_received) >= 1290, (max(big_received), summary)
    name = "geomesh_edge_octo_datagrams_dropped_total"
    for edge in (a, b):
        for reason in ("too_big", "malformed", "fragment_incomplete"):
            assert counter_sum(edge["url"], name, reason=reason) == 0, (edge["id"], reason)
    # Before path-MTU discovery raised the link's datagrams such packets go
    # as fragments; after it, whole. Either way every fragment sent was
    # reassembled on the far side.
    frag = "geomesh_edge_octo_fragmented_packets_total"
    fragmented = counter_sum(a["url"], frag, direction="Out", peer=b["id"])
    assert fragmented == counter_sum(b["url"], frag, direction="In", peer=a["id"]), fragmented
    print(f"{big_received and max(big_received)}-byte payloads crossed; {fragmented:.0f} packets as fragments;",
          summary)
