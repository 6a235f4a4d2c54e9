"""The presiding officer's screen's event stream (/display/<id>/events, server-sent events):
retry hint, a state on each change of its sitting (a cast within a second), heartbeats, the end
of its lifetime; and that it holds no database transaction between polls."""
from __future__ import annotations

import time

import pytest
from display_support import CHOICE_KEYS, Stream, keys_in
from helpers_live import publish, setup_sitting, vote


def test_event_stream(api, screen, app):
    # The stream's lifetime must outlast the vote, close, tally and publish below: 4 s did not
    # on a busy CI machine (the goodbye came before the result).
    app.config.update(DISPLAY_POLL_SECONDS=0.05, DISPLAY_HEARTBEAT_SECONDS=0.6, DISPLAY_STREAM_SECONDS=15)
    s = setup_sitting(api, members=4)
    resp = screen.get(f"/display/{s.sitting_id}/events", buffered=False)
    assert resp.status_code == 200 and resp.mimetype == "text/event-stream"
    assert resp.headers["Cache-Control"] == "no-store"
    stream = Stream(resp)
    try:
        assert stream.next_block() == "retry: 1000"
        name, st, block = stream.next_event()
        assert name == "state" and st["mode"] == "voting" and st["vote"]["voted"] == 0
        assert block.startswith(f"id: {st['seq']}\n")

        # A cast (its audit event moves the head) reaches the stream well within a second, and
        # the open stream held no lock that kept the cast waiting.
        t0 = time.monotonic()
        vote(api, s.creds["M0001"], {"motion": "against"})
        assert time.monotonic() - t0 < 2
        name, st, _ = stream.next_event()
        assert name == "state" and st["vote"]["voted"] == 1 and time.monotonic() - t0 < 1.0
        assert not keys_in(st) & CHOICE_KEYS

        # A change elsewhere moves the audit head but not this screen: nothing is sent; the
        # next thing is the heartbeat (a comment, plus a ping the page's watchdog sees).
        api.call("POST", "/api/admin/bodies", {"name": "另一机构", "kind": "congress"})
        name, _, block = stream.next_event()
        assert name == "ping" and block.startswith(": heartbeat")

        api.call("POST", f"/api/admin/items/{s.item_id}/close")
        name, st, _ = stream.next_event()
        assert name == "state" and st["mode"] == "counting"
        api.call("POST", f"/api/admin/items/{s.item_id}/tally")
        name, st, _ = stream.next_event()
        assert name == "state" and st["mode"] == "awaiting" and "result" not in st
        publish(api, s.item_id)
        name, st, _ = stream.next_event()
        assert name == "state" and st["mode"] == "result" and st["result"]["motion"]["against"] == 1

        # After its lifetime the stream says goodbye and ends (the browser reconnects).
        while True:
            name, _, _ = stream.next_event()
            if name == "bye":
                break
        with pytest.raises(StopIteration):
            stream.next_block()
    finally:
        stream.close()


def test_stream_does_not_hold_the_database(api, screen, app):
    """Between polls the stream holds no transaction: SQLite writers never wait for it."""
    app.config.update(DISPLAY_POLL_SECONDS=0.05, DISPLAY_STREAM_SECONDS=3)
    s = setup_sitting(api, members=3)
    stream = Stream(screen.get(f"/display/{s.sitting_id}/events", buffered=False))
    try:
        stream.next_block()
        stream.next_event()  # the stream is now suspended right after a poll and a state build
        engine = app.extensions["ballot_engine"]
        t0 = time.monotonic()
        with engine.begin() as conn:  # BEGIN IMMEDIATE: would wait if a reader held the write lock
            conn.exec_driver_sql("SELECT 1")
        assert time.monotonic() - t0 < 1
    finally:
        stream.close()
