"""What the presiding officer's screen shows between votes, through the Flask test client and
its event stream: an open vote wins, then the latest result (or the one just recorded); the
secretariat's choice of 会标, check-in or an earlier result, refused while a vote is open and
taken back by the next vote, audited as screen_set events."""
from __future__ import annotations

import json

from display_support import CHOICE_KEYS, Stream, get_state, keys_in, strip_volatile
from helpers_live import create_item, publish, setup_sitting, vote
from sqlalchemy import select

from ballot_service.models import AuditEvent


def test_open_vote_wins_then_latest_result(api, screen, app):
    app.config.update(DISPLAY_POLL_SECONDS=0.02, DISPLAY_STREAM_SECONDS=10)
    s = setup_sitting(api, members=3)
    stream = Stream(screen.get(f"/display/{s.sitting_id}/events", buffered=False))
    stream.next_block()

    def both():
        """The state from /state and from the open stream (which reads only new audit events)."""
        st = get_state(screen, s.sitting_id)
        name, streamed, _ = stream.next_event()
        while name != "state":
            name, streamed, _ = stream.next_event()
        assert strip_volatile(streamed) == strip_volatile(st)
        return st

    try:
        assert both()["mode"] == "voting"
        for no in s.members:
            vote(api, s.creds[no], {"motion": "for"})
        api.call("POST", f"/api/admin/items/{s.item_id}/close")
        api.call("POST", f"/api/admin/items/{s.item_id}/tally")
        st = both()  # counted, not yet published: still no figure of any choice
        assert st["mode"] == "awaiting" and st["vote"]["item_id"] == s.item_id and not keys_in(st) & CHOICE_KEYS
        publish(api, s.item_id)
        assert both()["result"]["item_id"] == s.item_id
        item2 = create_item(api, s.sitting_id, key="item2")
        assert get_state(screen, s.sitting_id)["result"]["item_id"] == s.item_id  # a draft item changes nothing
        api.call("POST", f"/api/admin/items/{item2}/open")
        st = both()
        assert st["mode"] == "voting" and st["vote"]["item_id"] == item2
        api.call("POST", f"/api/admin/items/{item2}/close")
        api.call("POST", f"/api/admin/items/{item2}/tally")
        assert both()["mode"] == "awaiting"
        publish(api, item2)  # publishing brings its result up, with the record
        st = both()
        assert st["result"]["item_id"] == item2 and st["record"]["published"] is True
    finally:
        stream.close()


def test_secretariat_chooses_the_screen_between_votes(api, screen, app):
    """会标 / check-in / an earlier result on demand; the next vote takes the screen back; the
    choice is an audit event, and the event stream (which reads only new events) agrees."""
    app.config.update(DISPLAY_POLL_SECONDS=0.02, DISPLAY_STREAM_SECONDS=10)
    s = setup_sitting(api, members=3)
    sid = s.sitting_id
    stream = Stream(screen.get(f"/display/{sid}/events", buffered=False))
    stream.next_block()

    def both():
        st = get_state(screen, sid)
        name, streamed, _ = stream.next_event()
        while name != "state":
            name, streamed, _ = stream.next_event()
        assert strip_volatile(streamed) == strip_volatile(st)
        return st

    def choose(show, item_id=None, expect=(200,)):
        body = {"show": show} if item_id is None else {"show": show, "item_id": item_id}
        return api.call("POST", f"/api/admin/sessions/{sid}/screen", body, expect=expect)

    try:
        assert both()["mode"] == "voting"
        status, err = choose("title", expect=(409,))  # the open vote's progress stays up
        assert "进行中" in err["errors"][0]["message_zh"] and err["errors"][0]["where"] == "show"
        for no in s.members:
            vote(api, s.creds[no], {"motion": "for"})
        api.call("POST", f"/api/admin/items/{s.item_id}/close")
        api.call("POST", f"/api/admin/items/{s.item_id}/tally")
        assert both()["mode"] == "awaiting"
        status, err = choose("result", s.item_id, expect=(409,))  # not published: not on demand either
        assert "尚未公布" in err["errors"][0]["message_zh"]
        publish(api, s.item_id)
        assert both()["mode"] == "result"
        choose("title")
        st = both()
        assert st["mode"] == "title" and "result" not in st and "vote" not in st
        assert st["sitting"]["name"] == "第一次会议"
        choose("checkin")
        assert both()["mode"] == "checkin"
        choose("auto")
        st = both()
        assert st["mode"] == "result" and st["result"]["item_id"] == s.item_id
        item2 = create_item(api, sid, key="item2")
        choose("title")
        assert both()["mode"] == "title"
        api.call("POST", f"/api/admin/items/{item2}/open")  # the next vote takes the screen back
        assert both()["mode"] == "voting"
        api.call("POST", f"/api/admin/items/{item2}/close")
        api.call("POST", f"/api/admin/items/{item2}/tally")
        assert both()["mode"] == "awaiting"
        choose("result", s.item_id)  # an earlier (published) result, on demand
        assert both()["result"]["item_id"] == s.item_id
        # Refused, and nothing changes: unknown choice, a result without its item, an item with
        # no result, one not published, an item id with another choice, a wrong type.
        item3 = create_item(api, sid, key="item3")
        for body, where in (({"show": "blank"}, "show"), ({"show": "result"}, "item_id"),
                            ({"show": "result", "item_id": item3}, "item_id"),
                            ({"show": "result", "item_id": item2}, "item_id"),
                            ({"show": "title", "item_id": item2}, "item_id"),
                            ({"show": "result", "item_id": "1"}, "item_id")):
            status, err = api.call("POST", f"/api/admin/sessions/{sid}/screen", body, expect=(400, 409))
            assert err["errors"][0]["where"] == where, (body, err)
        assert get_state(screen, sid)["result"]["item_id"] == s.item_id
        # Signing a record (routine, often in the break) leaves the chosen screen up.
        choose("title")
        api.call("POST", f"/api/admin/items/{item2}/record")
        assert both()["mode"] == "title"
        api.call("POST", f"/api/admin/items/{item2}/publish")  # publishing takes the screen back
        assert both()["result"]["item_id"] == item2
        # Another session's screen follows its own sitting only.
        _, other = api.call("POST", "/api/admin/sessions", {"body_id": s.body_id, "name": "第二次会议"})
        assert get_state(screen, other["id"])["mode"] == "checkin"
    finally:
        stream.close()
    db = app.extensions["ballot_sessionmaker"]()
    kinds = [d for (d,) in db.execute(select(AuditEvent.data).where(AuditEvent.kind == "screen_set")
                                      .order_by(AuditEvent.seq))]
    db.close()
    assert [json.loads(d) for d in kinds] == [{"session_id": sid, **c} for c in (
        {"show": "title"}, {"show": "checkin"}, {"show": "auto"}, {"show": "title"},
        {"show": "result", "item_id": s.item_id}, {"show": "title"})]
