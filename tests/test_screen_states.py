"""The presiding screens' state built ahead (web/screen_states.py): when the heads move, the
watcher's reader thread builds the state of every sitting some stream of this process has
open, so a woken stream finds it ready; a sitting nobody watches is not built."""
from __future__ import annotations

import asyncio

from helpers_live import setup_sitting

from ballot_service.web import screen_states
from ballot_service.web.head_watcher import HeadWatcher
from ballot_service.web.screen_states import ScreenStates


def _maker(record: str) -> str:
    return f"http://hall.example/verify/{record}"


def _built_ahead(screens: ScreenStates, seq: int) -> None:
    """build_ahead, then wait for its builder thread to be done."""
    screens.build_ahead(seq)
    screens._builder.submit(lambda: None).result(timeout=10)


def test_open_screens_are_built_ahead_and_closed_ones_are_not(app, api):
    s = setup_sitting(api, members=3)
    screens = ScreenStates(app)
    key = screens.opened(s.sitting_id, _maker)
    assert screens.ready(key, 7) is None
    _built_ahead(screens, 7)
    built = screens.ready(key, 7)
    assert built is not None and built["seq"] is not None
    assert screens.get(s.sitting_id, _maker, 7) is built                 # not built again
    assert screens.ready(key, 8) is None                                  # another seq: not ready

    screens.closed(key)
    _built_ahead(screens, 8)
    assert screens.ready(key, 8) is None and key not in screens._built   # nobody watches it: forgotten


def test_the_watcher_builds_ahead_when_the_heads_move(app, api):
    """A change in the service (a vote opened) reaches the callback on the reader thread at the
    seq the loop is told, and the open sitting's state is ready at that seq."""
    app.config.update(DISPLAY_POLL_SECONDS=0.02)
    s = setup_sitting(api, members=3, open_vote=False)
    watcher, screens = HeadWatcher(app), ScreenStates(app)
    watcher.on_moved(screens.build_ahead)
    key = screens.opened(s.sitting_id, _maker)

    async def run():
        seen = await watcher.wait_change(None, 2)                       # started, first reading
        api.call("POST", f"/api/admin/items/{s.item_id}/open")
        moved = await watcher.wait_change(seen, 5)
        assert moved != seen
        for _ in range(100):                                             # built just after the loop is told
            if screens.ready(key, moved) is not None:
                break
            await asyncio.sleep(0.02)
        return moved

    moved = asyncio.run(run())
    watcher.stop()
    state = screens.ready(key, moved)
    assert state is not None and state["mode"] == "voting", state["mode"]


def test_a_screen_closed_while_its_state_is_built_ahead_leaves_nothing_behind(app, api, monkeypatch):
    """The last screen of a sitting closes while the builder thread is building its state: the
    key's state and cursor do not come back (each closed key would otherwise stay in memory)."""
    s = setup_sitting(api, members=3)
    screens = ScreenStates(app)
    key = screens.opened(s.sitting_id, _maker)
    real = screen_states.display.state_for

    def closing_meanwhile(*args, **kwargs):
        screens.closed(key)                                               # the stream says bye mid-build
        return real(*args, **kwargs)

    monkeypatch.setattr(screen_states.display, "state_for", closing_meanwhile)
    _built_ahead(screens, 9)
    assert key not in screens._built and key not in screens._cursors
