"""aiortc clients written from docs/PROTOCOL.md alone: WHIP, WHEP and the
WebSocket signaling protocol. Always RTCConfiguration(iceServers=[]): the
default asks a public STUN server."""

import asyncio
import fractions
import json
import math
import time

import aiohttp
import numpy as np
from aiortc import (MediaStreamTrack, RTCConfiguration, RTCPeerConnection, RTCRtpSender,
                    RTCSessionDescription)
from av import AudioFrame, VideoFrame

NO_ICE_SERVERS = RTCConfiguration(iceServers=[])


class MovingVideo(MediaStreamTrack):
    """Changing frames, so the encoder sends real traffic (a static frame compresses to nothing)."""

    kind = "video"

    def __init__(self, fps=15, width=320, height=240):
        super().__init__()
        self.fps, self.w, self.h, self.n = fps, width, height, 0
        self.start = None

    async def recv(self):
        if self.start is None:
            self.start = time.monotonic()
        self.n += 1
        await asyncio.sleep(max(0, self.start + self.n / self.fps - time.monotonic()))
        frame = VideoFrame.from_ndarray(self.image(), format="bgr24")
        frame.pts = self.n * int(90000 / self.fps)
        frame.time_base = fractions.Fraction(1, 90000)
        return frame

    def image(self):
        img = np.zeros((self.h, self.w, 3), np.uint8)
        x = (self.n * 7) % self.w
        img[:, max(0, x - 20):x, :] = (255, 128, 0)
        img[:, :, 2] = (self.n * 3) % 256
        return img


class NoisyVideo(MovingVideo):
    """Random noise in every frame: the encoder spends its whole bitrate, so
    aiortc fills its VP8 packets to 1,300 bytes. `n` counts frames handed
    to the encoder."""

    def __init__(self, fps=30, width=320, height=240, seed=1):
        super().__init__(fps, width, height)
        self.rng = np.random.default_rng(seed)

    def image(self):
        return self.rng.integers(0, 256, (self.h, self.w, 3), dtype=np.uint8)


class RtpTap:
    """Records the RTP packets a peer connection sends (plaintext sizes) or
    receives (SSRC, sequence number, payload size, kind), by wrapping
    aiortc's `RTCDtlsTransport._send_rtp` and `RTCRtpReceiver._handle_rtp_packet`
    on the connection's own objects. Tap after `start()` (the transports are
    bundled by then) and before media flows."""

    def __init__(self):
        self.sent = []  # plaintext RTP packet sizes (RTCP excluded)
        self.received = []  # (kind, ssrc, seq, payload bytes)

    def tap_sender(self, pc):
        for transport in {id(s.transport): s.transport for s in pc.getSenders()}.values():
            send = transport._send_rtp

            async def wrapped(data, send=send):
                if len(data) >= 2 and not 192 <= data[1] <= 223:
                    self.sent.append(len(data))
                await send(data)

            transport._send_rtp = wrapped
        return self

    def tap_receivers(self, pc):
        for receiver in pc.getReceivers():
            handle = receiver._handle_rtp_packet
            kind = receiver.track.kind

            async def wrapped(packet, arrival_time_ms, handle=handle, kind=kind):
                self.received.append((kind, packet.ssrc, packet.sequence_number, len(packet.payload)))
                await handle(packet, arrival_time_ms)

            receiver._handle_rtp_packet = wrapped
        return self

    def missing(self, kind):
        """Sequence numbers missing on the SSRC of `kind` that carried the
        most packets, between its first and last packet (wrap-aware), and
        how many packets that SSRC carried."""
        by_ssrc = {}
        for k, ssrc, seq, _ in self.received:
            if k == kind:
                by_ssrc.setdefault(ssrc, []).append(seq)
        if not by_ssrc:
            return None, 0
        seqs = max(by_ssrc.values(), key=len)
        unwrapped, cur = set(), None
        for seq in seqs:
            # Each packet's distance from the one before, in -2^15..2^15.
            cur = seq if cur is None else cur + ((seq - cur + 0x8000) % 0x10000) - 0x8000
            unwrapped.add(cur)
        return (max(unwrapped) - min(unwrapped) + 1) - len(unwrapped), len(seqs)


class Tone(MediaStreamTrack):
    """A sine tone (loud) or silence, 20 ms Opus-sized frames at 48 kHz."""

    kind = "audio"

    def __init__(self, freq=440.0, amplitude=0.5):
        super().__init__()
        self.freq, self.amp, self.n = freq, amplitude, 0
        self.start = None

    async def recv(self):
        if self.start is None:
            self.start = time.monotonic()
        samples = 960
        await asyncio.sleep(max(0, self.start + self.n * samples / 48000 - time.monotonic()))
        t = (np.arange(samples) + self.n * samples) / 48000
        pcm = (self.amp * 32767 * np.sin(2 * math.pi * self.freq * t)).astype(np.int16)
        frame = AudioFrame.from_ndarray(pcm.reshape(1, -1), format="s16", layout="mono")
        frame.sample_rate = 48000
        frame.pts = self.n * samples
        frame.time_base = fractions.Fraction(1, 48000)
        self.n += 1
        return frame


class Counter:
    """Counts decoded frames per kind (and per msid stream) of received tracks."""

    def __init__(self):
        self.frames = {}
        self.rms = {}  # key -> RMS of the last decoded audio frame (0..1)
        self.tasks = []

    def attach(self, track, *keys):
        async def run():
            try:
                while True:
                    frame = await track.recv()
                    for key in keys:
                        self.frames[key] = self.frames.get(key, 0) + 1
                    if track.kind == "audio":
                        pcm = frame.to_ndarray().astype(np.float64) / 32768.0
                        level = float(np.sqrt(np.mean(pcm * pcm))) if pcm.size else 0.0
                        for key in keys:
                            self.rms[key] = level
            except Exception:
                pass

        self.tasks.append(asyncio.ensure_future(run()))

    def stop(self):
        for t in self.tasks:
            t.cancel()


async def http_session(url, token, offer_sdp):
    async with aiohttp.ClientSession() as s:
        async with s.post(url, data=offer_sdp, headers={
            "Content-Type": "application/sdp", "Authorization": f"Bearer {token}"}) as r:
            return r.status, dict(r.headers), await r.text()


async def http_delete(url):
    async with aiohttp.ClientSession() as s:
        async with s.delete(url) as r:
            return r.status


class WhipPublisher:
    def __init__(self, base, conference, token, video=True, audio=True, tone=440.0, video_track=None,
                 video_codec=None):
        """`video_codec` ("H264", "VP8"): offer only that video codec."""
        self.base, self.conference, self.token = base, conference, token
        self.pc = RTCPeerConnection(NO_ICE_SERVERS)
        if audio:
            self.pc.addTransceiver(Tone(tone), direction="sendonly")
        if video:
            t = self.pc.addTransceiver(video_track or MovingVideo(), direction="sendonly")
            if video_codec:
                codecs = RTCRtpSender.getCapabilities("video").codecs
                t.setCodecPreferences([c for c in codecs if c.mimeType.lower() in
                                       (f"video/{video_codec.lower()}", "video/rtx")])
        self.location = None

    async def start(self):
        await self.pc.setLocalDescription(await self.pc.createOffer())
        status, headers, body = await http_session(
            f"{self.base}/v1/whip/{self.conference}", self.token, self.pc.localDescription.sdp)
        assert status == 201, (status, body)
        assert headers["Content-Type"].startswith("application/sdp")
        self.location = headers["Location"]
        await self.pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
        return self

    async def stop(self):
        status = await http_delete(self.base + self.location) if self.location else None
        await self.pc.close()
        return status


class WhepViewer:
    def __init__(self, base, conference, token, participant=None):
        self.base, self.conference, self.token, self.participant = base, conference, token, participant
        self.pc = RTCPeerConnection(NO_ICE_SERVERS)
        self.pc.addTransceiver("audio", direction="recvonly")
        self.pc.addTransceiver("video", direction="recvonly")
        self.counter = Counter()
        self.pc.on("track", lambda t: self.counter.attach(t, t.kind))
        self.location = None

    async def start(self):
        await self.pc.setLocalDescription(await self.pc.createOffer())
        q = f"?participant={self.participant}" if self.participant else ""
        status, headers, body = await http_session(
            f"{self.base}/v1/whep/{self.conference}{q}", self.token, self.pc.localDescription.sdp)
        assert status == 201, (status, body)
        self.location = headers["Location"]
        await self.pc.setRemoteDescription(RTCSessionDescription(body, "answer"))
        return self

    async def stop(self):
        self.counter.stop()
        status = await http_delete(self.base + self.location) if self.location else None
        await self.pc.close()
        return status


class WsClient:
    """A participant speaking the WebSocket signaling protocol."""

    def __init__(self, base, token, conference, amplitude=0.5, video=True, video_size=(320, 240), fps=15,
                 audio=True):
        self.base, self.token, self.conference = base, token, conference
        self.pc = RTCPeerConnection(NO_ICE_SERVERS)
        # Set tone.amp to speak up or fall silent.
        self.tone = Tone(amplitude=amplitude)
        if audio:
            self.pc.addTransceiver(self.tone, direction="sendonly")
        if video:
            self.pc.addTransceiver(MovingVideo(fps=fps, width=video_size[0], height=video_size[1]), direction="sendonly")
        self.counter = Counter()
        self.stream_of = {}
        self.pc.on("track", self._on_track)
        self.messages = []
        self.roster = set()
        self.me = None
        self._session = None
        self.ws = None
        self._reader = None

    def _on_track(self, track):
        # The msid track id is "<publisher>-<source>": count per publisher too.
        owner = track.id.rsplit("-", 1)[0] if track.id else "?"
        self.counter.attach(track, track.kind, f"{track.kind}:{owner}")

    async def start(self):
        self._session = aiohttp.ClientSession()
        self.ws = await self._session.ws_connect(self.base.replace("http", "ws", 1) + "/v1/rtc")
        await self.ws.send_json({"type": "join", "token": self.token, "conference": self.conference})
        joined = await self._next()
        assert joined["type"] == "joined", joined
        self.me = joined["participant"]
        self.roster = {p["id"] for p in joined["participants"]}
        await self.pc.setLocalDescription(await self.pc.createOffer())
        await self.ws.send_json({"type": "offer", "sdp": self.pc.localDescription.sdp})
        # Roster changes may come before the answer.
        for _ in range(100):
            answer = await self._next()
            if answer["type"] == "answer":
                break
            self._roster_update(answer)
        assert answer["type"] == "answer", answer
        await self.pc.setRemoteDescription(RTCSessionDescription(answer["sdp"], "answer"))
        self._reader = asyncio.ensure_future(self._read())
        return self

    async def _next(self):
        msg = await asyncio.wait_for(self.ws.receive(), 10)
        if msg.type != aiohttp.WSMsgType.TEXT:
            raise ConnectionError(f"signaling closed: {msg.type}")
        data = json.loads(msg.data)
        self.messages.append(data)
        return data

    async def _read(self):
        while True:
            try:
                m = await self._next()
            except (ConnectionError, asyncio.TimeoutError):
                if self.ws.closed:
                    return
                continue
            if m["type"] == "offer":
                await self.pc.setRemoteDescription(RTCSessionDescription(m["sdp"], "offer"))
                await self.pc.setLocalDescription(await self.pc.createAnswer())
                await self.ws.send_json({"type": "answer", "sdp": self.pc.localDescription.sdp})
            else:
                self._roster_update(m)

    def _roster_update(self, m):
        if m["type"] == "participant_joined":
            self.roster.add(m["participant"]["id"])
        elif m["type"] == "participant_left":
            self.roster.discard(m["participant"])

    async def send(self, msg):
        await self.ws.send_json(msg)

    def dominant(self):
        """The last dominant speaker the edge announced."""
        said = [m["participant"] for m in self.messages if m["type"] == "dominant_speaker"]
        return said[-1] if said else None

    async def stop(self):
        self.counter.stop()
        if self._reader:
            self._reader.cancel()
        if self.ws is not None and not self.ws.closed:
            await self.ws.send_json({"type": "leave"})
            await self.ws.close()
        if self._session:
            await self._session.close()
        await self.pc.close()


async def wait_until(what, check, timeout=30):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        await asyncio.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}; last seen: {last!r}")
