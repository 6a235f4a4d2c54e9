"""`serve` runs the ASGI app (web/asgi.py): a presiding screen's event stream must not hold a
server thread. With one worker of two threads, six open screens used to take every thread, so
tablets could neither poll nor cast until a stream ended (five minutes); now they cost nothing
and every screen still follows the vote."""
from __future__ import annotations

import json
import threading

import httpx
import pytest
from helpers_live import (
    DISPLAY_OPERATOR,
    OPERATOR,
    Api,
    LiveServer,
    create_operator_in_db,
    server_env,
    setup_sitting,
    vote,
)

SCREENS = 6


@pytest.fixture
def live(tmp_path, db_url):
    create_operator_in_db(db_url, OPERATOR)
    create_operator_in_db(db_url, DISPLAY_OPERATOR, role="display")
    srv = LiveServer.start(server_env(tmp_path, db_url), workers=1, threads=2)
    yield srv
    srv.stop()


def _events(resp):
    """(event name, data) of each block of a Server-Sent Events answer."""
    name, data = None, []
    for line in resp.iter_lines():
        if line.startswith("event: "):
            name = line[7:]
        elif line.startswith("data: "):
            data.append(line[6:])
        elif line == "" and name:
            yield name, json.loads("".join(data))
            name, data = None, []


def test_open_screens_hold_no_thread(live):
    api = Api.httpx(live.base_url)
    s = setup_sitting(api, members=3)
    screen = httpx.Client(base_url=live.base_url, timeout=httpx.Timeout(10, read=20))
    r = screen.post("/api/admin/login", json={"username": DISPLAY_OPERATOR[0], "password": DISPLAY_OPERATOR[1]})
    assert r.status_code == 200
    seen = [[] for _ in range(SCREENS)]
    ready = threading.Barrier(SCREENS + 1, timeout=30)
    done = threading.Event()

    def watch(i):
        with screen.stream("GET", f"/display/{s.sitting_id}/events") as resp:
            assert resp.status_code == 200 and resp.headers["content-type"].startswith("text/event-stream")
            for name, data in _events(resp):
                if name == "state":
                    seen[i].append(data["vote"]["voted"])
                    if len(seen[i]) == 1:
                        ready.wait()
                    if data["vote"]["voted"] >= 1 or done.is_set():
                        return

    threads = [threading.Thread(target=watch, args=(i,), daemon=True) for i in range(SCREENS)]
    for t in threads:
        t.start()
    ready.wait()  # every screen holds its open stream now: more streams than server threads
    # A tablet can still poll and cast (httpx's timeout would fail this if no thread were free).
    tablet = Api.httpx(live.base_url, timeout=10)
    _, state = tablet.call("GET", "/api/terminal/state", credential=s.creds["M0001"])
    assert state["vote"] is not None
    vote(tablet, s.creds["M0001"], {"motion": "for"})
    for t in threads:
        t.join(timeout=15)
    done.set()
    assert all(not t.is_alive() for t in threads)
    assert all(v[0] == 0 and v[-1] == 1 for v in seen), seen


def test_stream_refusals_are_flasks(live):
    """The stream is authorised by Flask itself: no login -> 401 JSON, an unknown sitting -> 404."""
    anon = httpx.get(live.base_url + "/display/1/events", timeout=10)
    assert anon.status_code == 401 and anon.json()["errors"]
    screen = httpx.Client(base_url=live.base_url, timeout=10)
    screen.post("/api/admin/login", json={"username": DISPLAY_OPERATOR[0], "password": DISPLAY_OPERATOR[1]})
    missing = screen.get("/display/999999/events")
    assert missing.status_code == 404


def test_waiting_tablets_hold_no_thread_and_learn_of_the_opening_at_once(live):
    """Six tablets long-poll (?wait=<ETag>) on a server of two threads; a tablet can still poll,
    and when the vote opens every waiting tablet is answered with it, long before the 12 s hold
    ends (the read timeout below is shorter than the hold)."""
    api = Api.httpx(live.base_url)
    s = setup_sitting(api, members=SCREENS, open_vote=False)
    answers: dict[str, httpx.Response] = {}
    held = threading.Barrier(SCREENS + 1, timeout=30)

    def wait(no):
        client = httpx.Client(base_url=live.base_url, timeout=httpx.Timeout(10, read=8),
                              headers={"Authorization": f"Bearer {s.creds[no]}"})
        first = client.get("/api/terminal/state")
        assert first.status_code == 200 and first.json()["vote"] is None
        tag = first.headers["ETag"].strip('"')
        held.wait()
        answers[no] = client.get("/api/terminal/state", params={"wait": tag})

    threads = [threading.Thread(target=wait, args=(no,), daemon=True) for no in s.creds]
    for t in threads:
        t.start()
    held.wait()
    plain = httpx.get(live.base_url + "/api/terminal/state", timeout=10,
                      headers={"Authorization": f"Bearer {s.creds['M0001']}"})
    assert plain.status_code == 200  # a thread was free: the waiting tablets hold none
    api.call("POST", f"/api/admin/items/{s.item_id}/open")
    for t in threads:
        t.join(timeout=20)
    assert sorted(answers) == sorted(s.creds)
    assert all(r.status_code == 200 and r.json()["vote"]["item_id"] == s.item_id for r in answers.values())


def test_a_long_poll_with_a_stale_or_foreign_tag_is_answered_at_once(live):
    api = Api.httpx(live.base_url)
    s = setup_sitting(api, members=2, open_vote=False)
    auth = {"Authorization": f"Bearer {s.creds['M0001']}"}
    r = httpx.get(live.base_url + "/api/terminal/state", params={"wait": "0-00000000"}, headers=auth, timeout=5)
    assert r.status_code == 200 and r.json()["terminal"]["seat"] == "M0001"
    anon = httpx.get(live.base_url + "/api/terminal/state", params={"wait": "x"}, timeout=5)
    assert anon.status_code == 401


def _held(live, s, nos):
    """Long-poll each of `nos` with the ETag of its first state; returns (start barrier, answers, threads)."""
    answers: dict[str, httpx.Response] = {}
    held = threading.Barrier(len(nos) + 1, timeout=30)

    def wait(no):
        client = httpx.Client(base_url=live.base_url, timeout=httpx.Timeout(10, read=8),
                              headers={"Authorization": f"Bearer {s.creds[no]}"})
        first = client.get("/api/terminal/state")
        assert first.status_code == 200
        held.wait()
        answers[no] = client.get("/api/terminal/state", params={"wait": first.headers["ETag"].strip('"')})

    threads = [threading.Thread(target=wait, args=(no,), daemon=True) for no in nos]
    for t in threads:
        t.start()
    held.wait()
    return answers, threads


def test_a_woken_tablet_gets_the_bytes_and_etag_flask_gives(live):
    """The woken long-polls are answered from one read of the sitting's state (seat_wake.py):
    each answer is the one a plain request gets right after, byte for byte, ETag included."""
    api = Api.httpx(live.base_url)
    s = setup_sitting(api, members=4, present=3, open_vote=False)
    answers, threads = _held(live, s, list(s.creds))
    api.call("POST", f"/api/admin/items/{s.item_id}/open", {"override_reason": "M0004 votes on paper"})
    for t in threads:
        t.join(timeout=20)
    assert sorted(answers) == sorted(s.creds)
    for no, woken in answers.items():
        plain = httpx.get(live.base_url + "/api/terminal/state", timeout=10, headers={"Authorization": f"Bearer {s.creds[no]}"})
        assert woken.status_code == plain.status_code == 200
        assert woken.content == plain.content and woken.headers["ETag"] == plain.headers["ETag"]
        assert woken.headers["Content-Type"] == plain.headers["Content-Type"]
        assert woken.headers["Cache-Control"] == "no-store"
    assert answers["M0001"].json()["member"]["member_no"] == "M0001" and answers["M0004"].json()["member"] is None


def test_a_tablet_revoked_while_it_waits_is_not_answered_its_state(live):
    api = Api.httpx(live.base_url)
    s = setup_sitting(api, members=3, open_vote=False)
    answers, threads = _held(live, s, ["M0001", "M0002"])
    api.call("POST", f"/api/admin/terminals/{s.terminal_ids['M0001']}/revoke")
    api.call("POST", f"/api/admin/items/{s.item_id}/open", {"override_reason": "M0001 votes on paper"})
    for t in threads:
        t.join(timeout=20)
    assert answers["M0001"].status_code == 401 and "vote" not in answers["M0001"].text
    # M0002 is answered its state: the vote, or the revocation's change when the opening took
    # longer than the 3 s a change that is not urgent waits (a slow machine)
    assert answers["M0002"].status_code == 200 and answers["M0002"].json()["terminal"]["seat"] == "M0002"
