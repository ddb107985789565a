"""An aiortc WHEP viewer as its own process, for tests that must run their
clients somewhere else than the test (inside a network namespace, with
`ip netns exec NS python3 whep_view.py …`).

Waits (bounded) for the first decoded video and audio frames, lets
`--warmup` seconds pass (and waits until `--not-before`, a CLOCK_MONOTONIC
time, if given), then measures `--window` seconds and prints one
JSON object on stdout: the CLOCK_MONOTONIC times the window started and
ended (the same clock as every other process's), the frames decoded in it,
the RTP sequence numbers missing on the received video and audio streams
(from their first packet on) and `inbound-rtp` packetsLost. Exits non-zero
when no media came, printing what it saw.
"""

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from clients import RtpTap, WhepViewer  # noqa: E402


async def run(args):
    view = await WhepViewer(args.base, args.conference, args.token).start()
    tap = RtpTap().tap_receivers(view.pc)
    frames = view.counter.frames
    out = {"connection": None}
    try:
        deadline = time.monotonic() + args.first_frame_timeout
        while not (frames.get("video", 0) >= 1 and frames.get("audio", 0) >= 1):
            if time.monotonic() > deadline:
                out.update(error=f"no video and audio decoded in {args.first_frame_timeout} s",
                           frames=dict(frames), packets=len(tap.received), connection=view.pc.connectionState)
                return out, 1
            await asyncio.sleep(0.05)
        out["first_frame"] = time.monotonic()
        await asyncio.sleep(max(args.warmup, (args.not_before or 0) - time.monotonic()))
        t0, start = time.monotonic(), dict(frames)
        await asyncio.sleep(args.window)
        t1, end = time.monotonic(), dict(frames)
        stats = await view.pc.getStats()
        video_missing, video_packets = tap.missing("video")
        audio_missing, audio_packets = tap.missing("audio")
        out.update(
            t0=t0, t1=t1,
            video=end.get("video", 0) - start.get("video", 0),
            audio=end.get("audio", 0) - start.get("audio", 0),
            video_missing=video_missing, video_packets=video_packets,
            audio_missing=audio_missing, audio_packets=audio_packets,
            packets_lost={s.kind: s.packetsLost for s in stats.values() if s.type == "inbound-rtp"},
            connection=view.pc.connectionState,
        )
        return out, 0
    finally:
        await view.stop()


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    p.add_argument("--base", required=True, help="the edge's URL, http://HOST:PORT")
    p.add_argument("--conference", required=True)
    p.add_argument("--token", required=True)
    p.add_argument("--warmup", type=float, default=1.0)
    p.add_argument("--not-before", type=float, help="CLOCK_MONOTONIC time the window starts at the earliest")
    p.add_argument("--window", type=float, default=8.0)
    p.add_argument("--first-frame-timeout", type=float, default=20.0)
    args = p.parse_args()
    wait = max(args.warmup, (args.not_before or 0) - time.monotonic())
    out, code = asyncio.run(asyncio.wait_for(run(args), timeout=args.first_frame_timeout + wait + args.window + 30))
    print(json.dumps(out), flush=True)
    sys.exit(code)


if __name__ == "__main__":
    main()
