"""The head watcher's order of wake-ups (web/head_watcher.py): when a vote closes, the presiding
screens are woken at once and the waiting tablets SCREENS_FIRST_S later (3,000 tablets asking
again at once delayed the screens' 表决结束); any other change, an opening first of all, wakes
the tablets at once."""
from __future__ import annotations

import asyncio
import threading

from ballot_service.vocab import AuditKind
from ballot_service.web import asgi, head_watcher
from ballot_service.web.head_watcher import HeadWatcher


class _App:
    extensions = {"ballot_read_engine": None}
    config: dict = {}


async def _woken_after(kinds: set[str]) -> tuple[float, float]:
    """(seconds until the screens' event, seconds until the tablets' event) for one change."""
    loop = asyncio.get_running_loop()
    watcher = HeadWatcher(_App())
    watcher._changed, watcher._tablets, watcher._ready = asyncio.Event(), asyncio.Event(), asyncio.Event()
    watcher._note({1: 5}, set(), True, loop.time(), 0)  # the first reading
    screens, tablets = watcher._changed, watcher._tablets
    started = loop.time()
    watcher._note({1: 6}, kinds, False, loop.time(), 0)
    await asyncio.wait_for(screens.wait(), 2)
    screens_at = loop.time() - started
    await asyncio.wait_for(tablets.wait(), 2)
    return screens_at, loop.time() - started


def test_a_close_wakes_the_screens_first_and_the_tablets_a_moment_later():
    screens_at, tablets_at = asyncio.run(_woken_after({AuditKind.VOTE_CLOSED}))
    assert screens_at < 0.05
    assert head_watcher.SCREENS_FIRST_S - 0.05 <= tablets_at < head_watcher.SCREENS_FIRST_S + 0.5


def test_an_opening_wakes_the_tablets_at_once():
    for kinds in ({AuditKind.VOTE_OPENED}, {AuditKind.VOTE_OPENED, AuditKind.VOTE_CLOSED}):
        screens_at, tablets_at = asyncio.run(_woken_after(kinds))
        assert screens_at < 0.05 and tablets_at < 0.05, kinds


def test_the_server_shutting_down_stops_the_reader(app):
    """The ASGI lifespan's shutdown is answered and ends the reader thread (it once called a
    stop() the watcher no longer had, and the shutdown failed with AttributeError)."""
    app.config.update(DISPLAY_POLL_SECONDS=0.02)
    ag = asgi.create_asgi_app(app, threads=2)
    sent: list[dict] = []

    async def run():
        messages = asyncio.Queue()
        for kind in ("lifespan.startup", "lifespan.shutdown"):
            messages.put_nowait({"type": kind})

        async def send(message):
            sent.append(message)

        watcher = _watcher_of(ag)
        await watcher.ready()                                 # the reader is running
        assert any(t.name == "head-watcher" for t in threading.enumerate())
        await ag({"type": "lifespan"}, messages.get, send)
        for _ in range(100):
            if not watcher._running:
                break
            await asyncio.sleep(0.02)
        return watcher

    watcher = asyncio.run(run())
    assert [m["type"] for m in sent] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]
    assert not watcher._running


def _watcher_of(ag) -> HeadWatcher:
    """The watcher the ASGI app closes over."""
    cells = [c.cell_contents for c in (ag.__closure__ or ())]
    return next(c for c in cells if isinstance(c, HeadWatcher))


async def _tablets_answered_after(kinds: set[str], waiters: int = 40, then: tuple = ()) -> list[float]:
    """Seconds from one change until each of `waiters` waiting tablets is let go; `then`: a
    later change, (seconds after the first, its kinds)."""
    loop = asyncio.get_running_loop()
    watcher = HeadWatcher(_App())
    watcher._changed, watcher._tablets, watcher._ready = asyncio.Event(), asyncio.Event(), asyncio.Event()
    watcher._start = lambda: None  # no reader: the readings are handed in below
    watcher._note({1: 5}, set(), True, loop.time(), 0)

    async def one() -> float:
        await watcher.wait_tablets(5)
        return loop.time() - started

    tasks = [asyncio.create_task(one()) for _ in range(waiters)]
    await asyncio.sleep(0.01)  # all waiting
    started = loop.time()
    watcher._note({1: 6}, kinds, False, loop.time(), 0)
    if then:
        await asyncio.sleep(then[0])
        watcher._note({1: 7}, then[1], False, loop.time(), 0)
    return await asyncio.gather(*tasks)


def test_a_close_lets_the_waiting_tablets_go_spread_over_a_moment(monkeypatch):
    monkeypatch.setattr(head_watcher, "TABLETS_SPREAD_S", 0.6)
    times = asyncio.run(_tablets_answered_after({AuditKind.VOTE_CLOSED}))
    first = head_watcher.SCREENS_FIRST_S
    assert all(first - 0.05 <= t < first + 0.6 + 0.3 for t in times), times
    assert max(times) - min(times) > 0.2, times                     # not one wave


def test_an_opening_lets_every_waiting_tablet_go_at_once(monkeypatch):
    monkeypatch.setattr(head_watcher, "TABLETS_SPREAD_S", 0.6)
    times = asyncio.run(_tablets_answered_after({AuditKind.VOTE_OPENED}))
    assert max(times) < 0.1, times


def test_the_next_vote_opened_during_the_spread_lets_every_tablet_go_at_once(monkeypatch):
    """A close, and the next vote opened 0.5 s later (a ballot set's next item needs no tally
    first): no tablet sits out its random moment, the opening reaches them all at once."""
    monkeypatch.setattr(head_watcher, "TABLETS_SPREAD_S", 3.0)
    opened = {AuditKind.VOTE_OPENED}
    for after in (0.5, 0.1):                                          # during the spread; before the 0.4 s
        times = asyncio.run(_tablets_answered_after({AuditKind.VOTE_CLOSED}, then=(after, opened)))
        assert max(times) < after + 0.1, (after, times)


def test_a_spread_tablet_is_let_go_by_its_hold_s_end(monkeypatch):
    """The random moment never holds a tablet past its long-poll's own timeout."""
    monkeypatch.setattr(head_watcher, "TABLETS_SPREAD_S", 30.0)

    async def run():
        loop = asyncio.get_running_loop()
        watcher = HeadWatcher(_App())
        watcher._changed, watcher._tablets, watcher._ready = asyncio.Event(), asyncio.Event(), asyncio.Event()
        watcher._start = lambda: None
        watcher._note({1: 5}, set(), True, loop.time(), 0)
        started = loop.time()
        tasks = [asyncio.create_task(watcher.wait_tablets(1.0)) for _ in range(20)]
        await asyncio.sleep(0.01)
        watcher._note({1: 6}, {AuditKind.VOTE_CLOSED}, False, loop.time(), 0)
        await asyncio.gather(*tasks)
        return loop.time() - started

    assert asyncio.run(run()) < 1.2
