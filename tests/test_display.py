"""The presiding officer's screen (display.py): the state it shows in each phase of a sitting,
that a vote in progress shows how many voted and never how, its event stream, who may see it;
and a real-browser run (headless Chromium against `ballot-service serve`) that drives a sitting
through the API and checks the screen follows within a second, including after the server was
killed and restarted under it."""
from __future__ import annotations

import dataclasses
import json
import re
import shutil
import subprocess
import time

import pytest
from helpers_live import OPERATOR, Api, create_item, setup_session
from sqlalchemy import select

from ballot_service.models import AuditEvent
from ballot_service.render import qr

DISPLAY_OPERATOR = ("screen", "screen-password-1")
AUDITOR = ("auditor", "auditor-password-1")

# Keys that would carry how members voted. None of them may appear while a vote is open.
CHOICE_KEYS = {"for", "against", "abstain", "void", "marks", "candidates", "motion", "nominees", "projects",
               "passed", "result", "selected", "tied", "runoff_for"}


# --- fixtures and helpers -----------------------------------------------------------------------

def _login(app, who):
    c = app.test_client()
    r = c.post("/api/admin/login", json={"username": who[0], "password": who[1]})
    assert r.status_code == 200, r.get_json()
    return c


@pytest.fixture
def operators(app):
    from ballot_service.domain.operators import create_operator

    db = app.extensions["ballot_sessionmaker"]()
    create_operator(db, OPERATOR[0], OPERATOR[1], "secretariat")
    create_operator(db, DISPLAY_OPERATOR[0], DISPLAY_OPERATOR[1], "display")
    create_operator(db, AUDITOR[0], AUDITOR[1], "auditor")
    db.commit()
    db.close()


@pytest.fixture
def api(operators, client):
    return Api.flask(client)


@pytest.fixture
def screen(operators, app):
    """A test client logged in as the display operator."""
    return _login(app, DISPLAY_OPERATOR)


def get_state(screen, sid: int) -> dict:
    r = screen.get(f"/display/{sid}/state")
    assert r.status_code == 200, r.get_data(as_text=True)
    assert r.mimetype == "application/json"
    return r.get_json()


def vote(api: Api, cred: str, marks: dict) -> None:
    _, data = api.call("GET", "/api/terminal/ballot", credential=cred)
    api.call("POST", "/api/terminal/cast", {"ballot": data["ballot"], "marks": marks}, credential=cred)


def keys_in(obj) -> set[str]:
    if isinstance(obj, dict):
        return set(obj) | set().union(*(keys_in(v) for v in obj.values())) if obj else set()
    if isinstance(obj, list):
        return set().union(*(keys_in(v) for v in obj)) if obj else set()
    return set()


def embedded_state(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="display-initial">(.*?)</script>', html, re.S)
    assert m, "the page embeds its state"
    return json.loads(m.group(1))


def strip_volatile(state: dict) -> dict:
    return {k: v for k, v in state.items() if k not in ("now", "seq")}


# --- (a) check-in ---------------------------------------------------------------------------------

def test_checkin_state_and_quorum(api, screen):
    s = setup_session(api, members=6, present=3, open_vote=False)
    st = get_state(screen, s.sitting_id)
    assert st["mode"] == "checkin"
    assert st["attendance"] == {"members": 6, "present": 3, "leave": 0, "absent": 3, "quorum_met": False,
                                "quorum_rule": "3*P >= 2*N"}
    assert st["sitting"]["name"] == "第一次会议" and st["sitting"]["body"] == "测试市人民代表大会"
    assert "vote" not in st and "result" not in st

    api.call("POST", "/api/terminal/checkin", {"member": "M0004"}, credential=s.creds["M0004"])
    api.call("POST", f"/api/admin/sessions/{s.sitting_id}/attendance", {"members": ["M0005"], "status": "leave"})
    st = get_state(screen, s.sitting_id)
    assert (st["attendance"]["present"], st["attendance"]["leave"], st["attendance"]["absent"]) == (4, 1, 1)
    assert st["attendance"]["quorum_met"] is True  # 3*4 >= 2*6

    html = screen.get(f"/display/{s.sitting_id}").get_data(as_text=True)
    assert strip_volatile(embedded_state(html)) == strip_volatile(st)
    for label in ("应到", "实到", "请假", "符合法定人数", "不足法定人数"):
        assert label in html
    assert 'class="bar"' not in html.split("<body", 1)[1].split('id="display"', 1)[0]  # no console bar


def test_english_labels(api, screen):
    s = setup_session(api, members=3, open_vote=False)
    html = screen.get(f"/display/{s.sitting_id}?lang=en").get_data(as_text=True)
    assert "Present" in html and "Quorum met" in html and "Connection lost" in html
    assert "实到" not in html
    html = screen.get(f"/display/{s.sitting_id}?lang=zh").get_data(as_text=True)
    assert "实到" in html and "连接中断，正在重连…" in html


# --- (b) a vote in progress: how many, never how ---------------------------------------------------

@pytest.mark.parametrize("secret", [True, False], ids=["secret", "named"])
def test_voting_shows_how_many_never_how(api, screen, secret):
    s = setup_session(api, members=5, secret=secret)
    st = get_state(screen, s.sitting_id)
    assert st["mode"] == "voting"
    v = st["vote"]
    assert (v["voted"], v["issued"], v["round"], v["members"], v["present"]) == (0, 5, 1, 5, 5)
    assert v["title"] == "表决事项 item1" and v["secret"] is secret and v["closes_at"] is None

    marks = [{"motion": "for"}, {"motion": "against"}, {"motion": "for"}]
    for i, m in enumerate(marks):
        vote(api, s.creds[s.members[i]], m)
        st = get_state(screen, s.sitting_id)
        assert st["vote"]["voted"] == i + 1 and st["vote"]["issued"] == 5
        leaked = keys_in(st) & CHOICE_KEYS
        assert not leaked, f"per-choice data on the screen during the vote: {leaked}"

    html = screen.get(f"/display/{s.sitting_id}").get_data(as_text=True)
    page_state = embedded_state(html)
    assert not keys_in(page_state) & CHOICE_KEYS
    assert page_state["vote"]["voted"] == 3
    # The page itself carries labels for the result view, but no figure of any choice: the
    # only numbers it holds are in the embedded state (3 voted of 5), which has none.
    body = html.split('id="display-labels"', 1)[0]
    assert not re.search(r'data-f="[^"]*"[^>]*>\s*\d', body), "figures rendered into the page outside the state"

    # And the event stream carries the same (no choices) while the vote is open.
    screen.application.config.update(DISPLAY_POLL_SECONDS=0.02, DISPLAY_STREAM_SECONDS=0.5)
    raw = screen.get(f"/display/{s.sitting_id}/events").get_data(as_text=True)
    states = [json.loads(d) for d in re.findall(r"^event: state\ndata: (.*)$", raw, re.M)]
    assert states and all(not keys_in(x) & CHOICE_KEYS for x in states)


def test_voting_time_left_and_runoff_round(api, screen):
    s = setup_session(api, members=5, open_vote=False)
    _, item = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items",
                       {"key": "timed", "kind": "resolution", "title": "限时表决", "time_limit_s": 120})
    api.call("POST", f"/api/admin/items/{item['id']}/open")
    v = get_state(screen, s.sitting_id)["vote"]
    assert v["title"] == "限时表决" and v["closes_at"]
    import datetime as dt

    left = dt.datetime.fromisoformat(v["closes_at"]) - dt.datetime.now(dt.timezone.utc)
    assert 100 < left.total_seconds() <= 120


# --- (c) results, (d) the record ---------------------------------------------------------------------

def test_resolution_result_and_record(api, screen, app):
    s = setup_session(api, members=6, present=5)
    for no, m in zip(s.present, ["for", "for", "against", "abstain"]):  # the 5th does not vote
        vote(api, s.creds[no], {"motion": m})
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    st = get_state(screen, s.sitting_id)
    assert st["mode"] == "counting"  # closed, not yet tallied: no figures yet
    assert st["vote"]["voted"] == 4 and st["vote"]["issued"] == 5 and not keys_in(st) & CHOICE_KEYS

    _, tallied = api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    st = get_state(screen, s.sitting_id)
    assert st["mode"] == "result" and st["record"] is None
    r = st["result"]
    motion = tallied["candidates"][0]
    assert r["kind"] == "resolution" and r["status"] == "decided"
    assert (r["motion"]["for"], r["motion"]["against"], r["motion"]["abstain"]) == \
        (motion["for"], motion["against"], motion["abstain"]) == (2, 1, 1)
    # Every figure on the screen is the tally's own.
    for k in ("members", "present", "issued", "returned", "valid", "invalid", "refused", "not_voted"):
        assert r[k] == tallied[k], k
    assert r["not_voted"] == 1 and r["members"] == 6 and r["present"] == 5
    assert r["passed"] is tallied["passed"] is False  # 2*2 > 6 fails
    assert r["threshold_votes"] == tallied["threshold_votes"] == 4

    _, rec = api.call("POST", f"/api/admin/items/{s.item_id}/record")
    st = get_state(screen, s.sitting_id)
    record = st["record"]
    assert record["id"] == rec["id"]
    assert record["key_fingerprint"] == rec["fingerprint"] and record["audit_head"] == rec["audit_head"]
    assert isinstance(record["audit_seq"], int)
    assert record["verify_url"] == f"http://localhost/verify/{rec['id']}"
    assert screen.get(record["verify_url"].replace("http://localhost", "")).status_code == 200
    assert record["qr_svg"].startswith("<svg") and 'viewBox="' in record["qr_svg"]
    assert qr_modules(record["qr_svg"]) == expected_modules(record["verify_url"])

    html = screen.get(f"/display/{s.sitting_id}").get_data(as_text=True)
    assert rec["fingerprint"] in html and rec["id"] in html

    # Behind a proxy, or reached at 127.0.0.1 by the operator: the QR names the public address.
    app.config["SETTINGS"] = dataclasses.replace(app.config["SETTINGS"], public_url="https://vote.example.gov.cn")
    record = get_state(screen, s.sitting_id)["record"]
    assert record["verify_url"] == f"https://vote.example.gov.cn/verify/{rec['id']}"
    assert qr_modules(record["qr_svg"]) == expected_modules(record["verify_url"])


def qr_modules(svg: str) -> set[tuple[int, int]]:
    """The dark modules of qrcode's SvgPathImage (one 'Mx,yH…' square each)."""
    return {(int(x), int(y)) for x, y in re.findall(r"M(\d+),(\d+)H", svg)}


def expected_modules(data: str) -> set[tuple[int, int]]:
    import qrcode

    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=2)
    qr.add_data(data)
    qr.make(fit=True)
    return {(x, y) for y, row in enumerate(qr.get_matrix()) for x, dark in enumerate(row) if dark}


PROJECTS = [{"key": k, "title": f"项目{k}"} for k in ("A", "B", "C", "D")]


def test_projects_ranked_with_runoff(api, screen):
    # 5 deputies, 2 places: A 4, B 3, C 3, D 0 -> A selected, B and C tied at the cut-off.
    s = setup_session(api, members=5, kind="livelihood_projects", candidates=PROJECTS, places=2)
    ballots = [{"A": "for", "B": "for"}, {"A": "for", "B": "for"}, {"A": "for", "C": "for"},
               {"A": "for", "C": "for"}, {"B": "for", "C": "for"}]
    for no, m in zip(s.members, ballots):
        vote(api, s.creds[no], m)
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    r = get_state(screen, s.sitting_id)["result"]
    assert r["status"] == "runoff_pending" and r["tied_count"] == 2 and r["runoff_places"] == 1
    assert [(p["key"], p["rank"], p["selected"], p["tied"], p["for"]) for p in r["projects"]] == [
        ("A", 1, True, False, 4), ("B", None, False, True, 3), ("C", None, False, True, 3),
        ("D", None, False, False, 0)]

    api.call("POST", f"/api/admin/items/{s.item_id}/open")  # round 2 between B and C
    st = get_state(screen, s.sitting_id)
    assert st["mode"] == "voting" and st["vote"]["round"] == 2 and st["vote"]["places"] == 1
    assert st["vote"]["runoff_titles"] == ["项目B", "项目C"] and not keys_in(st) & CHOICE_KEYS
    for no, m in zip(s.members, ["B", "B", "B", "C", "C"]):
        vote(api, s.creds[no], {m: "for"})
    assert get_state(screen, s.sitting_id)["vote"]["voted"] == 5
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    _, results = api.call("GET", f"/api/admin/sessions/{s.sitting_id}/results")
    r = get_state(screen, s.sitting_id)["result"]
    assert r["status"] == "decided" and r["rounds"] == 2 and r["selected_count"] == 2 and r["shortfall"] == 0
    assert [(p["key"], p["rank"], p["selected"], p["runoff_for"]) for p in r["projects"]] == [
        ("A", 1, True, None), ("B", 2, True, 3), ("C", None, False, 2), ("D", None, False, None)]
    entry = results["items"][0]
    assert [p["key"] for p in r["projects"] if p["selected"]] == entry["selected"]
    assert r["runoff"]["returned"] == entry["runoff"]["returned"] == 5


def test_appointment_table(api, screen):
    nominees = [{"key": "n1", "title": "任命张三为局长"}, {"key": "n2", "title": "任命李四为副局长"}]
    s = setup_session(api, members=5, kind="appointment", candidates=nominees, body_kind="standing_committee")
    for no, m in zip(s.members, [{"n1": "for", "n2": "against"}, {"n1": "for", "n2": "for"},
                                 {"n1": "for", "n2": "against"}, {"n1": "against"}]):
        vote(api, s.creds[no], m)
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    _, tallied = api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    r = get_state(screen, s.sitting_id)["result"]
    assert [(n["title"], n["for"], n["against"], n["abstain"], n["passed"]) for n in r["nominees"]] == [
        ("任命张三为局长", 3, 1, 0, True), ("任命李四为副局长", 1, 2, 1, False)]  # unmarked = 弃权
    assert r["not_voted"] == tallied["not_voted"] == 1


def test_quorum_failure_and_void_items_show_their_status(api, screen):
    s = setup_session(api, members=6, present=3, open_vote=False)
    api.call("POST", f"/api/admin/items/{s.item_id}/quorum-failed")
    r = get_state(screen, s.sitting_id)["result"]
    assert r["status"] == "quorum_not_met" and (r["members"], r["present"]) == (6, 3)


def test_open_vote_wins_then_latest_result(api, screen, app):
    app.config.update(DISPLAY_POLL_SECONDS=0.02, DISPLAY_STREAM_SECONDS=10)
    s = setup_session(api, members=3)
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
        assert both()["result"]["item_id"] == s.item_id
        item2 = create_item(api, s.sitting_id, key="item2")
        assert get_state(screen, s.sitting_id)["result"]["item_id"] == s.item_id  # a draft item changes nothing
        api.call("POST", f"/api/admin/items/{item2}/open")
        st = both()
        assert st["mode"] == "voting" and st["vote"]["item_id"] == item2
        api.call("POST", f"/api/admin/items/{item2}/close")
        api.call("POST", f"/api/admin/items/{item2}/tally")
        assert both()["result"]["item_id"] == item2
        api.call("POST", f"/api/admin/items/{s.item_id}/record")  # recording the older item brings it back
        st = both()
        assert st["result"]["item_id"] == s.item_id and st["record"] is not None
    finally:
        stream.close()


def test_secretariat_chooses_the_screen_between_votes(api, screen, app):
    """会标 / check-in / an earlier result on demand; the next vote takes the screen back; the
    choice is an audit event, and the event stream (which reads only new events) agrees."""
    app.config.update(DISPLAY_POLL_SECONDS=0.02, DISPLAY_STREAM_SECONDS=10)
    s = setup_session(api, members=3)
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
        assert both()["result"]["item_id"] == item2
        choose("result", s.item_id)  # an earlier result, on demand
        assert both()["result"]["item_id"] == s.item_id
        # Refused, and nothing changes: unknown choice, a result without its item, an item with
        # no result, an item id with another choice, a wrong type.
        item3 = create_item(api, sid, key="item3")
        for body, where in (({"show": "blank"}, "show"), ({"show": "result"}, "item_id"),
                            ({"show": "result", "item_id": item3}, "item_id"),
                            ({"show": "title", "item_id": item2}, "item_id"),
                            ({"show": "result", "item_id": "1"}, "item_id")):
            status, err = api.call("POST", f"/api/admin/sessions/{sid}/screen", body, expect=(400, 409))
            assert err["errors"][0]["where"] == where, (body, err)
        assert get_state(screen, sid)["result"]["item_id"] == s.item_id
        # Signing a record (routine, often in the break) leaves the chosen screen up.
        choose("title")
        api.call("POST", f"/api/admin/items/{item2}/record")
        assert both()["mode"] == "title"
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


# --- who may see it ------------------------------------------------------------------------------------

def test_roles(api, app, client):
    s = setup_session(api, members=3, open_vote=False)
    sid = s.sitting_id
    anon = app.test_client()
    for path in ("/display", f"/display/{sid}"):
        r = anon.get(path)
        assert r.status_code == 302 and "/login" in r.headers["Location"], path
    for path in (f"/display/{sid}/state", f"/display/{sid}/events"):
        r = anon.get(path)
        assert r.status_code == 401, path
        assert r.get_json()["errors"][0]["errorType"] == "Unauthorized"
        # A seat terminal's credential is no way in either.
        r = anon.get(path, headers={"Authorization": f"Bearer {s.creds['M0001']}"})
        assert r.status_code in (401, 403) and "errors" in r.get_json(), path
    for who in (DISPLAY_OPERATOR, AUDITOR, OPERATOR):
        c = _login(app, who)
        assert c.get("/display").status_code == 200
        assert c.get(f"/display/{sid}").status_code == 200
        assert c.get(f"/display/{sid}/state").status_code == 200
    screen = _login(app, DISPLAY_OPERATOR)
    r = screen.get("/display/9999/state")
    assert r.status_code == 404 and r.get_json()["errors"][0]["errorType"] == "NotFound"
    assert screen.get("/display/9999").status_code == 404
    assert screen.get("/display/9999/events").status_code == 404
    # The screen's login cannot change anything.
    r = screen.post(f"/api/admin/items/{s.item_id}/open")
    assert r.status_code == 403


def test_index_lists_sittings_newest_first(api, screen):
    s1 = setup_session(api, members=2, open_vote=False)
    _, second = api.call("POST", "/api/admin/sessions", {"body_id": s1.body_id, "name": "第二次会议"})
    html = screen.get("/display").get_data(as_text=True)
    ids = [int(x) for x in re.findall(r'data-sitting-id="(\d+)"', html)]
    assert ids == [second["id"], s1.sitting_id]
    assert f'href="/display/{second["id"]}"' in html


# --- the event stream ------------------------------------------------------------------------------------

class Stream:
    """Read a streamed SSE response from the Flask test client, event by event."""

    def __init__(self, response):
        self.response, self.chunks, self.buf = response, iter(response.response), ""

    def next_block(self) -> str:
        while "\n\n" not in self.buf:
            chunk = next(self.chunks)
            self.buf += chunk.decode("utf-8") if isinstance(chunk, bytes) else chunk
        block, self.buf = self.buf.split("\n\n", 1)
        return block

    def next_event(self) -> tuple[str | None, dict | None, str]:
        block = self.next_block()
        name = data = None
        for line in block.split("\n"):
            if line.startswith("event: "):
                name = line[7:]
            elif line.startswith("data: "):
                data = json.loads(line[6:])
        return name, data, block

    def close(self):
        self.response.close()


def test_event_stream(api, screen, app):
    app.config.update(DISPLAY_POLL_SECONDS=0.05, DISPLAY_HEARTBEAT_SECONDS=0.6, DISPLAY_STREAM_SECONDS=4)
    s = setup_session(api, members=4)
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
    s = setup_session(api, members=3)
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


def test_qr_svg_is_inline_and_scalable():
    svg = qr.qr_svg("http://example.test/verify/abc")
    assert svg.startswith("<svg") and "<?xml" not in svg
    head = svg.split(">", 1)[0]
    assert "width=" not in head and "height=" not in head and 'class="qr"' in head


# --- real browser -------------------------------------------------------------------------------------

from browser_support import DISPLAY_OPERATOR as BROWSER_DISPLAY  # noqa: E402,F401
from browser_support import (
    SCREENSHOTS,  # noqa: E402
    login,
    screenshot,
)
from helpers_live import LiveServer  # noqa: E402

assert BROWSER_DISPLAY == DISPLAY_OPERATOR

FIELD = 'document.querySelector(\'[data-f="{f}"]\')'


def open_screen(new_page, base: str, viewport=(1920, 1080)):
    page = new_page(viewport=viewport)
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.js_errors = errors
    login(page, base, DISPLAY_OPERATOR)
    assert page.url.rstrip("/").endswith("/display"), page.url  # a display operator lands on the chooser
    return page


def within(page, js: str, limit: float = 1.0, what: str = "") -> float:
    """Wait until `js` is true on the page; assert it took at most `limit` seconds."""
    t0 = time.monotonic()
    page.wait_for_function(js, polling=50, timeout=max(5_000, limit * 4_000))
    took = time.monotonic() - t0
    print(f"screen showed {what or js[:40]} after {took:.3f}s")
    assert took <= limit, f"the screen took {took:.2f}s to show {what or js}"
    return took


def field_is(page, f: str, value) -> str:
    return f"{FIELD.format(f=f)}.textContent === {json.dumps(str(value))}"


def shows(page, section: str) -> bool:
    return page.locator(f"#{section}").is_visible()


def fits(page) -> None:
    """Nothing is cut off the 16:9 stage: no scrollbars, every figure and title inside it."""
    over = page.evaluate("""() => {
        const stage = document.getElementById('display').getBoundingClientRect();
        const bad = [];
        for (const el of document.querySelectorAll('#display .view:not([hidden]) *')) {
          if (!el.offsetParent || el.closest('[hidden]')) continue;
          const r = el.getBoundingClientRect();
          if (r.width === 0 || r.height === 0) continue;
          if (r.right > stage.right + 1 || r.bottom > stage.bottom + 1 || r.left < stage.left - 1)
            bad.push((el.id || el.className || el.tagName) + ' ' + Math.round(r.right) + 'x' + Math.round(r.bottom));
        }
        return bad;
    }""")
    assert not over, f"outside the stage: {over[:8]}"
    covered = page.evaluate("""() => {
        const card = document.getElementById('r-record');
        if (!card.offsetParent) return [];
        const c = card.getBoundingClientRect();
        return [...document.querySelectorAll('#view-result .tile, #view-result .item-title, #view-result .d-tags, #r-tables, #r-notes, #r-outcome')]
          .filter(e => e.offsetParent)
          .filter(e => { const r = e.getBoundingClientRect();
                         return r.left < c.right && r.right > c.left && r.top < c.bottom && r.bottom > c.top; })
          .map(e => e.id || e.className);
    }""")
    assert not covered, f"the record card covers {covered}"
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")


def snap(page, name: str) -> None:
    """Save the screenshot (build/screenshots/NAME.png), then check nothing spills off the stage."""
    screenshot(page, name)
    fits(page)


def min_font_px(page, selector: str) -> float:
    return page.evaluate(f"""() => Math.min(...[...document.querySelectorAll({json.dumps(selector)})]
        .filter(e => e.offsetParent).map(e => parseFloat(getComputedStyle(e).fontSize)))""")


@pytest.mark.slow
@pytest.mark.browser
def test_screen_follows_a_sitting_live_and_recovers(new_page, live_site):
    api, base = live_site.api, live_site.base_url
    s = setup_session(api, members=12, present=7, open_vote=False)
    sid = s.sitting_id
    page = open_screen(new_page, base)
    screenshot(page, "display-index")
    page.click(f'tr[data-sitting-id="{sid}"] a')
    page.wait_for_url(f"**/display/{sid}")

    # (a) check-in: 7 of 12 is short of two thirds; two more check in and the quorum is met.
    assert shows(page, "view-checkin") and not shows(page, "view-voting")
    assert page.locator('[data-f="attendance.members"]').inner_text() == "12"
    assert page.locator('[data-f="attendance.present"]').inner_text() == "7"
    assert page.locator("#quorum").inner_text() == "不足法定人数"
    assert page.locator("#conn-banner").is_hidden()
    assert min_font_px(page, "#view-checkin .num") >= 150  # from the back of the hall
    snap(page, "display-checkin-short")
    api.call("POST", "/api/terminal/checkin", {"member": "M0008"}, credential=s.creds["M0008"])
    within(page, field_is(page, "attendance.present", 8), what="实到 8")
    api.call("POST", "/api/terminal/checkin", {"member": "M0009"}, credential=s.creds["M0009"])
    within(page, field_is(page, "attendance.present", 9) + " && document.querySelector('#quorum').dataset.ok === 'yes'",
           what="实到 9, quorum met")
    assert page.locator("#quorum").inner_text() == "符合法定人数"
    screenshot(page, "display-checkin")

    # (b) a timed vote: how many of how many, counting down; never how.
    _, item = api.call("POST", f"/api/admin/sessions/{sid}/items", {
        "key": "budget", "kind": "resolution", "time_limit_s": 300,
        "title": "关于批准2025年市级预算执行情况和2026年市级预算的决议"})
    api.call("POST", f"/api/admin/items/{item['id']}/open")
    within(page, "document.getElementById('display').dataset.mode === 'voting'", what="the vote")
    assert page.locator('[data-f="vote.title"]').inner_text().startswith("关于批准2025年")
    assert page.locator('[data-f="vote.voted"]').inner_text() == "0"
    assert page.locator('[data-f="vote.issued"]').inner_text() == "9"
    page.wait_for_function("/^0[45]:\\d\\d$/.test(document.getElementById('v-remaining').textContent)", timeout=3_000)
    voters = s.members[:9]
    marks = ["for"] * 5 + ["against", "abstain", "for"]  # the 9th does not vote
    for i, (no, m) in enumerate(zip(voters, marks), start=1):
        vote(api, s.creds[no], {"motion": m})
        within(page, field_is(page, "vote.voted", i), what=f"{i} voted")
        if i == 3:
            snap(page, "display-voting")
        # Nothing of how anyone voted is anywhere on the page while the vote is open.
        assert page.locator("#view-result").is_hidden()
        assert page.locator("#r-tables tbody tr").count() == 0
        st = page.evaluate("() => fetch(document.getElementById('display').dataset.stateUrl).then(r => r.json())")
        assert not keys_in(st) & CHOICE_KEYS
        if i == 5:
            # (recovery) The server dies under the screen: a small banner, then it comes back by
            # itself when the server does, catches up with what happened meanwhile, and is live again.
            port, env = live_site.port, live_site.env
            live_site.kill()
            page.locator("#conn-banner").wait_for(state="visible", timeout=5_000)
            assert page.locator("#conn-banner").inner_text() == "连接中断，正在重连…"
            assert page.locator('[data-f="vote.voted"]').inner_text() == "5"  # the last figure stays up
            screenshot(page, "display-reconnecting")
            time.sleep(2)  # a while down: EventSource has failed and is retrying
            restarted = LiveServer.start(env, workers=2, threads=16, port=port)
            live_site.proc = restarted.proc  # the fixture's teardown stops the new server
            api = Api.httpx(base)
            api.call("POST", "/api/admin/login", {"username": OPERATOR[0], "password": OPERATOR[1]})
            vote(api, s.creds[voters[5]], {"motion": marks[5]})  # cast before the screen is back
            page.wait_for_function(field_is(page, "vote.voted", 6), polling=100, timeout=15_000)
            page.locator("#conn-banner").wait_for(state="hidden", timeout=5_000)
            assert page.evaluate("() => document.getElementById('display').dataset.connection") == "ok"
            break
    # The browser loses its network (an already open EventSource may not notice: the page also
    # listens for offline/online), then gets it back: banner, then live again.
    page.context.set_offline(True)
    page.locator("#conn-banner").wait_for(state="visible", timeout=5_000)
    page.context.set_offline(False)
    page.locator("#conn-banner").wait_for(state="hidden", timeout=5_000)
    for i, (no, m) in enumerate(zip(voters[6:8], marks[6:8]), start=7):
        vote(api, s.creds[no], {"motion": m})
        within(page, field_is(page, "vote.voted", i), what=f"{i} voted after the restart")

    # (c) closed, tallied: 赞成 6, 反对 1, 弃权 1, 未按 1 -> 2*6 > 12 is false: 未通过.
    api.call("POST", f"/api/admin/items/{item['id']}/close")
    within(page, "document.getElementById('display').dataset.mode === 'counting'", what="counting")
    assert page.locator('[data-f="vote.voted"]').inner_text() == "8"
    snap(page, "display-counting")
    _, tallied = api.call("POST", f"/api/admin/items/{item['id']}/tally")
    within(page, "document.getElementById('display').dataset.mode === 'result'", what="the result")
    motion = tallied["candidates"][0]
    for f, v in (("result.members", 12), ("result.present", 9), ("result.motion.for", motion["for"]),
                 ("result.motion.against", motion["against"]), ("result.motion.abstain", motion["abstain"]),
                 ("result.not_voted", tallied["not_voted"])):
        assert page.locator(f'[data-f="{f}"]').inner_text() == str(v), f
    assert (motion["for"], motion["against"], motion["abstain"], tallied["not_voted"]) == (6, 1, 1, 1)
    assert page.locator("#r-outcome").inner_text() == "未通过"
    assert page.locator("#r-record").is_hidden()
    snap(page, "display-result-resolution")

    # (d) the signed record: fingerprint, audit head and a QR code of /verify/<id>.
    _, rec = api.call("POST", f"/api/admin/items/{item['id']}/record")
    within(page, f"document.getElementById('r-fp').textContent === {json.dumps(rec['fingerprint'])}",
           what="the record's fingerprint")
    assert rec["audit_head"] in page.locator("#r-head").inner_text()
    assert page.locator("#r-url").inner_text() == f"{base}/verify/{rec['id']}"
    assert page.locator("#r-qr svg path").count() == 1
    qr = page.locator("#r-qr svg").bounding_box()
    assert qr["width"] >= 250 and abs(qr["width"] - qr["height"]) < 2
    if shutil.which("zbarimg"):  # (installed by .ci/run) scan the QR as a phone would
        png = SCREENSHOTS / "display-record-qr.png"
        page.locator("#r-qr").screenshot(path=str(png))
        scanned = subprocess.run(["zbarimg", "--raw", "-q", str(png)], capture_output=True, text=True, timeout=30)
        assert scanned.stdout.strip() == f"{base}/verify/{rec['id']}", scanned
        verify = new_page(viewport=(1280, 800))  # no login: the verification page is public
        verify.goto(scanned.stdout.strip())
        assert verify.locator("#verdict").get_attribute("data-genuine") == "true"
    snap(page, "display-result-record")
    page.set_viewport_size({"width": 1280, "height": 720})
    snap(page, "display-result-record-720p")
    page.set_viewport_size({"width": 1920, "height": 1080})

    # (e) a break: the secretariat puts up 会标 (the body and session only), then the votes again.
    api.call("POST", f"/api/admin/sessions/{sid}/screen", {"show": "title"})
    within(page, "document.getElementById('display').dataset.mode === 'title'", what="会标")
    assert page.locator("#view-title .t-body").inner_text() == "测试市人民代表大会"
    assert page.locator("#view-title .t-sitting").inner_text() == "第一次会议"
    assert not shows(page, "view-result") and not shows(page, "view-checkin")
    assert min_font_px(page, "#view-title .t-body") >= 80
    snap(page, "display-title")
    api.call("POST", f"/api/admin/sessions/{sid}/screen", {"show": "auto"})
    within(page, "document.getElementById('display').dataset.mode === 'result'", what="the result again")
    assert not page.js_errors
    live_site.kill()  # not stop(): a graceful stop would wait out the server's grace for the open stream


def spread(nos: list[str], counts: dict[str, int]) -> dict[str, dict]:
    """Ballots giving each candidate its `for` count, marks dealt round-robin over the voters."""
    ballots = {no: {} for no in nos}
    i = 0
    for key, n in counts.items():
        for _ in range(n):
            ballots[nos[i % len(nos)]][key] = "for"
            i += 1
    return ballots


@pytest.mark.slow
@pytest.mark.browser
def test_screen_shows_project_and_nominee_tables(new_page, live_site):
    api, base = live_site.api, live_site.base_url
    titles = ["城区老旧小区改造", "农村饮水安全巩固提升", "中小学校食堂提质改造", "社区嵌入式养老服务中心建设",
              "城乡公交一体化提升", "背街小巷环境整治", "新能源汽车公共充电桩建设", "普惠托育机构建设",
              "农贸市场升级改造", "城市口袋公园建设", "基层医疗卫生机构能力提升", "残疾人康复服务扩面提质"]
    cands = [{"key": f"p{i + 1}", "title": t} for i, t in enumerate(titles)]
    s = setup_session(api, members=12, present=9, kind="livelihood_projects", candidates=cands, places=10)
    page = open_screen(new_page, base)
    page.goto(f"{base}/display/{s.sitting_id}")
    within(page, "document.getElementById('display').dataset.mode === 'voting'", limit=3, what="the vote")
    # 9 voters, up to 10 marks each: p1-p9 get 8, p10 and p11 tie at 7 (both pass 2*7 > 12) for
    # the tenth place, p12 gets 2 and fails.
    counts = {f"p{i}": 8 for i in range(1, 10)} | {"p10": 7, "p11": 7, "p12": 2}
    for no, m in spread(s.present, counts).items():
        vote(api, s.creds[no], m)
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    within(page, "document.getElementById('display').dataset.mode === 'result'", what="the result")
    rows = page.locator("#r-tables tbody tr")
    assert rows.count() == 12
    assert page.locator("#r-tables tr.selected").count() == 9
    assert "待再次投票" in page.locator('#r-tables tr[data-key="p10"]').inner_text()
    assert "需再次投票" in page.locator("#r-outcome").inner_text() or "runoff" in page.locator("#r-outcome").inner_text()
    snap(page, "display-result-projects-runoff-pending")

    api.call("POST", f"/api/admin/items/{s.item_id}/open")  # the runoff for the tenth place
    within(page, "document.getElementById('display').dataset.mode === 'voting'", what="the runoff")
    assert page.locator("#v-round").inner_text() == "第2轮 · 再次投票"
    assert "基层医疗卫生机构能力提升" in page.locator("#v-runoff").inner_text()
    snap(page, "display-voting-runoff")
    for j, no in enumerate(s.present):
        vote(api, s.creds[no], {"p10": "for"} if j < 7 else {"p11": "for"})
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    _, rec = api.call("POST", f"/api/admin/items/{s.item_id}/record")
    within(page, f"document.getElementById('r-fp').textContent === {json.dumps(rec['fingerprint'])}",
           limit=2, what="result and record")
    assert page.locator("#r-tables tr.selected").count() == 10
    first = page.locator("#r-tables tbody tr").first.inner_text()
    assert first.startswith("1") and "入选" in first
    p10 = page.locator('#r-tables tr[data-key="p10"]').inner_text()
    assert "10" in p10 and "入选" in p10 and "7" in p10
    assert min_font_px(page, "#r-tables td") >= 20
    snap(page, "display-result-projects")
    page.set_viewport_size({"width": 1280, "height": 720})
    snap(page, "display-result-projects-720p")
    page.set_viewport_size({"width": 1920, "height": 1080})

    # 任职票决: a table of nominees with 通过 / 未通过.
    nominees = [{"key": "n1", "title": "任命刘振华为示范市人民政府副市长"}, {"key": "n2", "title": "任命陈雅琴为示范市教育局局长"},
                {"key": "n3", "title": "任命王建国为示范市财政局局长"}]
    item = create_item(api, s.sitting_id, kind="appointment", candidates=nominees, key="appoint")
    api.call("POST", f"/api/admin/items/{item}/open")
    for j, no in enumerate(s.present):
        vote(api, s.creds[no], {"n1": "for", "n2": "for" if j < 7 else "against", "n3": "for" if j < 3 else "abstain"})
    api.call("POST", f"/api/admin/items/{item}/close")
    api.call("POST", f"/api/admin/items/{item}/tally")
    within(page, "document.querySelectorAll('#r-tables tr[data-key=\"n3\"]').length === 1", what="nominees")
    assert "未通过" in page.locator('#r-tables tr[data-key="n3"]').inner_text()
    assert page.locator('#r-tables tr[data-key="n1"] td.o').inner_text() == "通过"
    snap(page, "display-result-appointment")

    # Layout only: the largest table the screen is meant for (20 projects, 15 places, long titles,
    # with a record card) rendered from a made-up state through the page's own renderer.
    st = page.evaluate("() => fetch(document.getElementById('display').dataset.stateUrl).then(r => r.json())")
    long_titles = titles + ["城市老旧小区改造提升和既有住宅加装电梯工程", "全民健身设施补短板", "“一老一小”服务场所建设",
                            "城市内涝治理", "公共法律服务体系建设", "农村生活污水治理", "数字乡村建设", "食品安全快检室建设"]
    projects = [{"key": f"q{i}", "title": t, "for": 60 - i, "against": i, "abstain": 0, "void": 0,
                 "passed": i < 18, "selected": i < 15, "rank": i + 1 if i < 15 else None, "tied": False,
                 "runoff_for": None} for i, t in enumerate(long_titles)]
    url = f"{base}/verify/{rec['id']}"
    st["result"] = {**st["result"], "kind": "livelihood_projects", "places": 15, "projects": projects,
                    "selected_count": 15, "tied_count": 0, "runoff_places": 0, "shortfall": 0,
                    "title": "关于2026年市级民生实事项目人大代表票决的决定"}
    st["record"] = {"id": rec["id"], "key_fingerprint": rec["fingerprint"], "audit_head": rec["audit_head"],
                    "audit_seq": 99, "published": False, "verify_url": url, "qr_svg": qr.qr_svg(url)}
    page.evaluate("s => window.BallotDisplay.render(s)", st)
    assert page.locator("#r-tables table").count() == 2 and page.locator("#r-tables tbody tr").count() == 20
    assert min_font_px(page, "#r-tables td.n") >= 28 and min_font_px(page, "#r-tables td.title") >= 20
    snap(page, "display-layout-20-projects")
    page.set_viewport_size({"width": 1280, "height": 720})
    snap(page, "display-layout-20-projects-720p")
    page.set_viewport_size({"width": 1920, "height": 1080})

    page.goto(f"{base}/display/{s.sitting_id}?lang=en")
    page.locator("#r-tables").wait_for()
    assert page.locator("#view-result .tag.done").inner_text() == "Result"
    screenshot(page, "display-result-appointment-en")
    assert not page.js_errors
    live_site.kill()
