"""aiortc as WHIP publisher, WHEP viewer and WebSocket participant."""

import asyncio
import threading

from clients import WhepViewer, WhipPublisher, WsClient, wait_until
from conftest import metric, page_stats, wait_for


def test_whip_publisher_reaches_whep_viewer_and_delete_ends_both(mesh):
    base = mesh.edge["url"]

    async def run():
        pub = await WhipPublisher(base, "broadcast", mesh.mint("broadcast", participant="caster")).start()
        view = await WhepViewer(base, "broadcast", mesh.mint("broadcast", participant="watcher")).start()
        await wait_until("WHEP viewer decodes video and audio",
                         lambda: view.counter.frames.get("video", 0) >= 15 and view.counter.frames.get("audio", 0) >= 20,
                         timeout=40)
        assert metric(base, "geomesh_edge_participants") == 2
        assert await view.stop() == 200
        assert await pub.stop() == 200
        await wait_until("both sessions gone", lambda: metric(base, "geomesh_edge_participants") == 0)
        # A second DELETE finds nothing.
        assert await WhipPublisher.stop(pub) == 404

    asyncio.run(run())


def test_whep_named_participant(mesh):
    base = mesh.edge["url"]

    async def run():
        a = await WhipPublisher(base, "two-pubs", mesh.mint("two-pubs", participant="alice"), audio=False).start()
        b = await WhipPublisher(base, "two-pubs", mesh.mint("two-pubs", participant="bob"), video=False).start()
        # bob is the most recent publisher but has no video; alice is named.
        view = await WhepViewer(base, "two-pubs", mesh.mint("two-pubs"), participant="alice").start()
        await wait_until("video from alice", lambda: view.counter.frames.get("video", 0) >= 10, timeout=40)
        for c in (view, a, b):
            await c.stop()

    asyncio.run(run())


def test_chromium_and_aiortc_receive_each_other(mesh, browser):
    base = mesh.edge["url"]
    page = browser(f"{base}/?conference=mixed&name=chrome&autojoin=1")
    chrome_id = wait_for("chromium joined", lambda: page_stats(page)["me"])
    done = threading.Event()
    result = {}

    async def client_side():
        client = await WsClient(base, mesh.mint("mixed", participant="py", name="aiortc"), "mixed").start()
        result["roster"] = set(client.roster)
        try:
            await wait_until("aiortc decodes chromium's video and audio",
                             lambda: client.counter.frames.get("video", 0) >= 15
                             and client.counter.frames.get("audio", 0) >= 20, timeout=40)
            result["frames"] = dict(client.counter.frames)
            # Stay in the meeting until the browser side has checked too.
            for _ in range(120):
                if done.is_set():
                    break
                await asyncio.sleep(0.5)
        finally:
            await client.stop()

    # Playwright's sync API owns this thread's event loop: aiortc gets its own thread.
    t = threading.Thread(target=lambda: result.setdefault("error", run_catching(client_side)))
    t.start()
    try:
        wait_for("chromium decodes aiortc's video and audio",
                 lambda: page_stats(page)["video"].get("py", 0) >= 15 and page_stats(page)["audio"].get("py", 0) >= 20,
                 timeout=45)
    finally:
        done.set()
        t.join(timeout=60)
    assert result.get("error") is None, result["error"]
    assert chrome_id in result["roster"]
    assert result["frames"]["video"] >= 15


def run_catching(coro_fn):
    try:
        asyncio.run(coro_fn())
        return None
    except BaseException as e:  # reported by the test thread
        return repr(e)
