"""Three headless Chromium participants meet through the meeting page."""

from conftest import page_stats, wait_for


def test_three_browsers_see_and_hear_each_other(mesh, browser):
    pages = [browser(mesh.page("trio", f"user{i}")) for i in range(3)]
    ids = [wait_for(f"page {i} joined", lambda p=p: page_stats(p)["me"]) for i, p in enumerate(pages)]

    def everyone_receives():
        stats = [page_stats(p) for p in pages]
        for i, s in enumerate(stats):
            others = [x for j, x in enumerate(ids) if j != i]
            for o in others:
                if s["video"].get(o, 0) < 10 or s["audio"].get(o, 0) < 20:
                    return None
        return stats

    stats = wait_for("video frames and audio from both others on every page", everyone_receives, timeout=45)
    for i, s in enumerate(stats):
        assert sorted(s["roster"]) == sorted(x for j, x in enumerate(ids) if j != i), s
        assert not s["errors"], s

    # The third participant leaves: the others' rosters and tiles update.
    pages[2].click("#leave")

    def roster_updated():
        stats = [page_stats(p) for p in pages[:2]]
        return stats if all(ids[2] not in s["roster"] for s in stats) else None

    wait_for("rosters without the participant who left", roster_updated)
    for p in pages[:2]:
        assert p.locator(f'.tile[data-participant="{ids[2]}"]').count() == 0

    # The remaining two keep receiving each other.
    before = page_stats(pages[0])["video"].get(ids[1], 0)
    wait_for("media continues after a departure",
             lambda: page_stats(pages[0])["video"].get(ids[1], 0) > before + 10)


def test_mute_is_shown_to_others(mesh, browser):
    a = browser(mesh.page("mute-room", "alice"))
    b = browser(mesh.page("mute-room", "bob"))
    a_id = wait_for("alice joined", lambda: page_stats(a)["me"])
    wait_for("bob sees alice", lambda: a_id in page_stats(b)["roster"])
    wait_for("alice has media", lambda: page_stats(a)["state"] == "connected")
    a.click("#mute-audio")
    tile = b.locator(f'.tile[data-participant="{a_id}"] .muted')
    wait_for("bob sees alice muted", lambda: tile.is_visible() and "mic off" in tile.inner_text())
