#!/usr/bin/python3
"""A GStreamer `webrtcbin` WHIP publisher: what a libnice client does.

Run with Debian's /usr/bin/python3 (it sees python3-gi), not the test's
Python. Debian 12 packages no `whipsink`, and `gst-launch-1.0` cannot turn
off libnice's UPnP (SSDP multicast that would leave the machine), so this
builds the pipeline from code:

    videotestsrc ! videoconvert ! vp8enc ! rtpvp8pay ! webrtcbin
    audiotestsrc ! opusenc ! rtpopuspay ! webrtcbin

then makes the offer, waits until ICE gathering is complete, POSTs the
offer to the WHIP URL with the bearer token and applies the 201 answer.

Beyond stock webrtcbin 1.22 it needs, each explained where it is done:
UPnP off; an ECDSA DTLS certificate (`--certificate default` keeps
webrtcbin's RSA one, with which the edge's DTLS fails); ICE keepalives as
binding requests (`--keepalive indications` keeps libnice's default, with
which the edge drops the session after 15 s); the offer made only once
both streams' caps (and so their SSRCs) are known.

It prints one JSON object per line on stdout: `{"event": ...}` as things
happen, and every 100 ms a report `{"t": <CLOCK_MONOTONIC seconds>,
"video": <frames encoded>, "audio": <frames encoded>, ...}` so that a test
can compare what it sent over a window with what a viewer decoded (the
monotonic clock is the same for every process on the machine). Every wait
is bounded; it exits non-zero on any failure, saying why on stderr.
"""

import argparse
import base64
import hashlib
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstSdp", "1.0")
gi.require_version("GstWebRTC", "1.0")
from gi.repository import Gst, GstSdp, GstWebRTC  # noqa: E402


def emit(**obj):
    print(json.dumps(obj), flush=True)


def fail(msg):
    print(f"gst_whip: {msg}", file=sys.stderr, flush=True)
    sys.exit(1)


# Objects whose memory GStreamer owns and Python only borrows (a promise's
# reply, a description's SDP): kept alive until exit, or they dangle.
KEEP = []


def call(element, signal, what, *args, timeout=10):
    """Emits an action signal that answers through a GstPromise (the last
    argument) and waits, bounded, for the reply structure."""
    done = threading.Event()
    promise = Gst.Promise.new_with_change_func(lambda _p: done.set())
    element.emit(signal, *args, promise)
    if not done.wait(timeout):
        fail(f"{what}: no reply in {timeout} s")
    result = promise.wait()  # no longer pending: returns at once
    if result != Gst.PromiseResult.REPLIED:
        fail(f"{what}: promise {result.value_nick}")
    reply = promise.get_reply()
    KEEP.append((promise, reply))
    return reply


def ecdsa_certificate():
    """A fresh self-signed ECDSA P-256 certificate and key as one PEM
    (certificate first), and the certificate's SHA-256 fingerprint in SDP
    form. The edge's DTLS (str0m 0.25 with dimpl 0.9) verifies ECDSA
    signatures only; webrtcbin 1.22's own certificate is RSA-2048, with
    which the handshake fails in either role (as DTLS server the edge
    asks for an ECDSA client certificate and OpenSSL sends none)."""
    with tempfile.TemporaryDirectory(prefix="gst-whip-") as d:
        key, crt = f"{d}/key.pem", f"{d}/cert.pem"
        try:
            subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
                            "-nodes", "-keyout", key, "-out", crt, "-days", "2", "-subj", "/CN=gst-whip"],
                           check=True, capture_output=True, timeout=30)
        except (OSError, subprocess.SubprocessError) as e:
            fail(f"openssl could not make an ECDSA certificate: {e} {getattr(e, 'stderr', b'')!r}")
        cert_pem, key_pem = open(crt).read(), open(key).read()
    der = base64.b64decode("".join(line for line in cert_pem.splitlines() if not line.startswith("-----")))
    digest = hashlib.sha256(der).hexdigest().upper()
    return cert_pem + key_pem, ":".join(digest[i:i + 2] for i in range(0, len(digest), 2))


class Publisher:
    def __init__(self, args):
        self.args = args
        self.counts = {"video": 0, "audio": 0, "video_rtp": 0, "audio_rtp": 0}
        self.lock = threading.Lock()
        self.gathered = threading.Event()
        self.candidates = []  # (mline index, "candidate:…") from on-ice-candidate
        self.location = None

        self.pipe = Gst.parse_launch(
            "webrtcbin name=pc bundle-policy=max-bundle "
            # Scrolling bars: about three RTP packets a frame (320x240 and up).
            "videotestsrc is-live=true pattern=smpte horizontal-speed=8 ! "
            f"video/x-raw,width={args.width},height={args.height},framerate={args.fps}/1 ! videoconvert ! queue ! "
            f"vp8enc name=venc deadline=1 keyframe-max-dist={2 * args.fps} target-bitrate={args.bitrate} ! "
            "rtpvp8pay name=vpay pt=96 mtu=1200 ! "
            "application/x-rtp,media=video,encoding-name=VP8,payload=96,clock-rate=90000 ! pc. "
            "audiotestsrc is-live=true wave=sine freq=440 ! audioconvert ! audioresample ! queue ! "
            "opusenc name=aenc ! rtpopuspay name=apay pt=111 ! "
            "application/x-rtp,media=audio,encoding-name=OPUS,payload=111,clock-rate=48000 ! pc. "
        )
        self.pc = self.pipe.get_by_name("pc")

        # libnice's agent has UPnP on by default: it would send SSDP
        # multicast off the machine while gathering. Off before gathering
        # starts (the agent reads it when it gathers); TCP candidates are
        # of no use against a UDP-only edge.
        self.ice = self.pc.get_property("ice-agent")
        self.ice.set_property("ice-tcp", False)
        self.nice = self.ice.get_property("agent")
        self.nice.set_property("upnp", False)
        if self.nice.get_property("upnp"):
            fail("could not turn UPnP off on the libnice agent")
        # Debian 12's libnice (0.1.21) has no consent freshness (webrtcbin
        # enables it only with libnice > 0.1.21.1): its keepalives are STUN
        # binding indications every 25 s, and the edge's ICE-lite agent
        # (str0m) drops a pair that has had no binding *request* for 15 s.
        # Keepalives as binding requests keep the session up.
        self.nice.set_property("keepalive-conncheck", args.keepalive == "requests")

        self.pem = self.fingerprint = None
        self.dtls_decoders = set()
        if args.certificate == "ecdsa":
            self.pem, self.fingerprint = ecdsa_certificate()
            self.pipe.connect("deep-element-added", self.on_element_added)

        self.pc.connect("on-ice-candidate", self.on_ice_candidate)
        self.pc.connect("notify::ice-gathering-state", self.on_gathering)
        for prop in ("connection-state", "ice-connection-state"):
            self.pc.connect(f"notify::{prop}", self.on_state)

        self.probe("venc", "src", "video")
        self.probe("aenc", "src", "audio")
        self.probe("vpay", "src", "video_rtp")
        self.probe("apay", "src", "audio_rtp")

    def probe(self, element, pad, key):
        def count(_pad, info):
            n = info.get_buffer_list().length() if info.type & Gst.PadProbeType.BUFFER_LIST else 1
            with self.lock:
                self.counts[key] += n
            return Gst.PadProbeReturn.OK

        self.pipe.get_by_name(element).get_static_pad(pad).add_probe(
            Gst.PadProbeType.BUFFER | Gst.PadProbeType.BUFFER_LIST, count)

    def on_element_added(self, _bin, _sub_bin, element):
        """Gives each DTLS decoder our certificate when webrtcbin adds its
        transport (during create-offer), while it is still in NULL: setting
        "pem" makes a new DTLS connection, and dtlsdec connects its handlers
        (peer certificate check, SRTP keys) to its connection on NULL ->
        READY. A transport that got it later fails every handshake."""
        found = [element]
        if isinstance(element, Gst.Bin):
            it = element.iterate_recurse()
            while True:
                res, child = it.next()
                if res != Gst.IteratorResult.OK:
                    break
                found.append(child)
        for e in found:
            factory = e.get_factory()
            if factory is not None and factory.get_name() == "dtlssrtpdec" and e.get_name() not in self.dtls_decoders:
                e.set_property("pem", self.pem)
                self.dtls_decoders.add(e.get_name())
                emit(event="certificate", element=e.get_name(), state=e.get_state(0)[1].value_nick)

    def on_ice_candidate(self, _pc, mline, candidate):
        self.candidates.append((mline, candidate))

    def on_gathering(self, pc, _pspec):
        state = pc.get_property("ice-gathering-state")
        emit(event="ice-gathering-state", state=state.value_nick)
        if state == GstWebRTC.WebRTCICEGatheringState.COMPLETE:
            self.gathered.set()

    def on_state(self, pc, pspec):
        emit(event=pspec.name, state=pc.get_property(pspec.name).value_nick)

    def offer(self):
        """Creates and applies the offer; returns its SDP text once ICE
        gathering is complete, with every gathered candidate in it."""
        # One transceiver per linked sink pad; WHIP offers are sendonly.
        # ("get-transceivers" returns a GArray PyGObject cannot iterate.)
        i = 0
        while (t := self.pc.emit("get-transceiver", i)) is not None:
            t.set_property("direction", GstWebRTC.WebRTCRTPTransceiverDirection.SENDONLY)
            i += 1
        if i != 2:
            fail(f"expected 2 transceivers (audio, video), webrtcbin has {i}")
        self.set_state(Gst.State.PLAYING)
        # webrtcbin writes a=ssrc lines only for sink pads whose caps have
        # arrived; the edge maps the publisher's SSRCs to m-lines with them
        # (webrtcbin sends no MID header extension), so a stream missing
        # from the offer never reaches a viewer.
        deadline = time.monotonic() + 10
        while True:
            caps = [pad.get_current_caps() for pad in self.pc.sinkpads]
            if caps and all(c is not None and c.get_structure(0).has_field("ssrc") for c in caps):
                break
            if time.monotonic() > deadline:
                fail("webrtcbin's sink pads have no caps with an SSRC after 10 s: "
                     f"{[c and c.to_string() for c in caps]}")
            time.sleep(0.02)
        offer = self.create_offer()
        if self.pem is not None:
            for j in range(i):
                transport = self.pc.emit("get-transceiver", j).get_property("sender").get_property("transport")
                if transport is None or transport.get_property("certificate") != self.pem:
                    fail(f"transceiver {j}'s DTLS transport did not take our certificate")
        call(self.pc, "set-local-description", "set-local-description", offer)
        if not self.gathered.wait(self.args.gather_timeout):
            fail(f"ICE gathering not complete after {self.args.gather_timeout} s; "
                 f"candidates so far: {self.candidates}")
        description = self.pc.get_property("local-description")
        KEEP.append(description)
        sdp = description.sdp
        # webrtcbin 1.22 may or may not have put the trickled candidates
        # into its local description; make sure they are there.
        emit(event="candidates", candidates=[c for _, c in self.candidates])
        for m in range(sdp.medias_len()):
            media = sdp.get_media(m)
            have = {media.get_attribute(j).value for j in range(media.attributes_len())
                    if media.get_attribute(j).key == "candidate"}
            for mline, cand in self.candidates:
                value = cand.split(":", 1)[1] if cand.startswith("candidate:") else cand
                if mline == m and value not in have:
                    media.add_attribute("candidate", value)
            if media.get_attribute_val("end-of-candidates") is None:
                media.add_attribute("end-of-candidates", None)
        text = sdp.as_text()
        if self.pem is not None:
            # webrtcbin 1.22 computes the offer's fingerprint over every
            # base64 line of the PEM, the key's too: send the real one.
            text, n = re.subn(r"a=fingerprint:sha-256 [0-9A-Fa-f:]+", f"a=fingerprint:sha-256 {self.fingerprint}",
                              text)
            if n == 0:
                fail(f"no sha-256 fingerprint in the offer: {text!r}")
        emit(event="offer", sdp=text)
        return text

    def set_state(self, state):
        if self.pipe.set_state(state) == Gst.StateChangeReturn.FAILURE:
            fail(f"pipeline did not go to {state.value_nick}")

    def create_offer(self):
        reply = call(self.pc, "create-offer", "create-offer", None)
        offer = reply.get_value("offer")
        if offer is None:
            fail(f"create-offer gave no offer: {reply.to_string()}")
        KEEP.append(offer)
        return offer

    def post(self, offer_sdp):
        req = urllib.request.Request(self.args.url, data=offer_sdp.encode(), method="POST", headers={
            "Content-Type": "application/sdp", "Authorization": f"Bearer {self.args.token}"})
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                status, headers, body = r.status, r.headers, r.read().decode()
        except urllib.error.HTTPError as e:
            fail(f"WHIP POST {self.args.url}: {e.code} {e.read().decode(errors='replace')}")
        except OSError as e:
            fail(f"WHIP POST {self.args.url}: {e}")
        if status != 201:
            fail(f"WHIP POST {self.args.url}: {status} {body}")
        self.location = urllib.parse.urljoin(self.args.url, headers.get("Location", ""))
        emit(event="answer", status=status, location=self.location, sdp=body)
        return body

    def answer(self, sdp_text):
        res, sdp = GstSdp.SDPMessage.new_from_text(sdp_text)
        if res != GstSdp.SDPResult.OK:
            fail(f"bad answer SDP ({res}): {sdp_text!r}")
        answer = GstWebRTC.WebRTCSessionDescription.new(GstWebRTC.WebRTCSDPType.ANSWER, sdp)
        call(self.pc, "set-remote-description", "set-remote-description", answer)

    def check_bus(self):
        bus = self.pipe.get_bus()
        while True:
            msg = bus.pop_filtered(Gst.MessageType.ERROR | Gst.MessageType.EOS)
            if msg is None:
                return
            if msg.type == Gst.MessageType.ERROR:
                err, debug = msg.parse_error()
                fail(f"pipeline error from {msg.src.get_name()}: {err.message} ({debug})")
            fail("unexpected end of stream")

    def report(self):
        with self.lock:
            counts = dict(self.counts)
        emit(t=time.monotonic(), **counts,
             connection=self.pc.get_property("connection-state").value_nick,
             ice=self.pc.get_property("ice-connection-state").value_nick)

    def delete(self):
        if not self.location:
            return
        try:
            with urllib.request.urlopen(urllib.request.Request(self.location, method="DELETE"), timeout=5) as r:
                emit(event="deleted", status=r.status)
        except (urllib.error.HTTPError, OSError) as e:
            emit(event="deleted", error=str(e))

    def run(self):
        try:
            self.answer(self.post(self.offer()))
            end = time.monotonic() + self.args.seconds
            connected_by = time.monotonic() + self.args.connect_timeout
            while time.monotonic() < end:
                self.check_bus()
                self.report()
                state = self.pc.get_property("connection-state")
                if state in (GstWebRTC.WebRTCPeerConnectionState.FAILED,
                             GstWebRTC.WebRTCPeerConnectionState.CLOSED):
                    fail(f"peer connection {state.value_nick}")
                if (state != GstWebRTC.WebRTCPeerConnectionState.CONNECTED
                        and time.monotonic() > connected_by):
                    fail(f"not connected after {self.args.connect_timeout} s: {state.value_nick}, ICE "
                         f"{self.pc.get_property('ice-connection-state').value_nick}")
                time.sleep(0.1)
            self.delete()
        finally:
            self.pipe.set_state(Gst.State.NULL)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--url", required=True, help="the edge's WHIP URL: http://HOST:PORT/v1/whip/CONFERENCE")
    p.add_argument("--token", required=True, help="a join token for that edge and conference")
    p.add_argument("--seconds", type=float, default=60, help="how long to publish before ending the session")
    p.add_argument("--width", type=int, default=320)
    p.add_argument("--height", type=int, default=240)
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--bitrate", type=int, default=600_000, help="VP8 target bitrate, bit/s")
    p.add_argument("--certificate", choices=("ecdsa", "default"), default="ecdsa",
                   help="DTLS certificate: a fresh ECDSA P-256 one (what the edge can verify), or "
                        "webrtcbin's own RSA-2048 one")
    p.add_argument("--keepalive", choices=("requests", "indications"), default="requests",
                   help="libnice's ICE keepalives: binding requests (what keeps an ICE-lite edge's pair alive) "
                        "or its default, binding indications")
    p.add_argument("--gather-timeout", type=float, default=10)
    p.add_argument("--connect-timeout", type=float, default=15)
    args = p.parse_args()
    Gst.init(None)
    Publisher(args).run()


if __name__ == "__main__":
    main()
