"""The seat tablet's state is built once per state version (domain/seat_state.py), not per poll,
and every node agrees on it: two apps on one database (two nodes) give the same ETag for the
same state, and a change made through one is seen at once through the other."""
from __future__ import annotations

import pytest
from helpers_live import Api, setup_sitting, vote

from ballot_service import create_app


@pytest.fixture
def other_node(app, settings_env):
    node = create_app(settings_env)
    node.config["TESTING"] = True
    yield node
    node.extensions["ballot_engine"].dispose()


def _state(client, cred: str, etag: str | None = None):
    headers = {"Authorization": f"Bearer {cred}"}
    if etag:
        headers["If-None-Match"] = etag
    return client.get("/api/terminal/state", headers=headers)


def test_both_nodes_agree_and_see_each_others_changes(app, api, other_node):
    s = setup_sitting(api, members=4, present=2, open_vote=False)
    a, b = app.test_client(), other_node.test_client()
    first_a, first_b = _state(a, s.creds["M0003"]), _state(b, s.creds["M0003"])
    assert first_a.status_code == first_b.status_code == 200
    assert first_a.headers["ETag"] == first_b.headers["ETag"] and first_a.json == first_b.json
    assert first_a.json["member"] is None and first_a.json["attendance"]["present"] == 2
    # A check-in through node B: node A's cached state is out of date at once.
    Api.flask(b).call("POST", "/api/terminal/checkin", {"member": "M0003"}, credential=s.creds["M0003"])
    after = _state(a, s.creds["M0003"], first_a.headers["ETag"])
    assert after.status_code == 200 and after.headers["ETag"] != first_a.headers["ETag"]
    assert after.json["member"]["member_no"] == "M0003" and after.json["attendance"]["present"] == 3
    # Another tablet of the same sitting is told the same counts, but its own terminal and member.
    other = _state(a, s.creds["M0001"]).json
    assert other["attendance"] == after.json["attendance"] and other["member"]["member_no"] == "M0001"
    assert other["terminal"]["seat"] == "M0001"
    # The vote opens through node A: node B's tablets see it on their next request.
    api.call("POST", f"/api/admin/items/{s.item_id}/open")
    opened = _state(b, s.creds["M0003"], after.headers["ETag"])
    assert opened.status_code == 200 and opened.json["vote"]["item_id"] == s.item_id


def test_an_unchanged_state_answers_304_and_casts_do_not_change_it(app, api, other_node):
    s = setup_sitting(api, members=3, present=3, open_vote=True)
    a, b = app.test_client(), other_node.test_client()
    first = _state(a, s.creds["M0001"])
    tag = first.headers["ETag"]
    assert _state(a, s.creds["M0001"], tag).status_code == 304
    vote(api, s.creds["M0002"], {"motion": "for"})  # a cast batch: nothing a tablet shows changed
    again = _state(b, s.creds["M0001"], tag)
    assert again.status_code == 304 and again.headers["ETag"] == tag
    # The tag is the tablet's own: another tablet's tag does not match this one's answer.
    assert _state(a, s.creds["M0002"], tag).status_code == 200
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    closed = _state(b, s.creds["M0001"], tag)
    assert closed.status_code == 200 and closed.json["vote"] is None


def test_wait_is_a_plain_poll_under_wsgi(app, api):
    """?wait=<tag> (the seat page's long-poll) under plain WSGI: answered at once, 304 if unchanged."""
    s = setup_sitting(api, members=2, open_vote=False)
    client = app.test_client()
    tag = _state(client, s.creds["M0001"]).headers["ETag"].strip('"')
    auth = {"Authorization": f"Bearer {s.creds['M0001']}"}
    assert client.get(f"/api/terminal/state?wait={tag}", headers=auth).status_code == 304
    assert client.get("/api/terminal/state?wait=1-0", headers=auth).status_code == 200


def test_the_round_key_kept_per_state_version_follows_the_close(app, api):
    """The round key is answered from a copy built once per state version: after a cast (no
    new version) it is still the open round's, after the close it is refused at once."""
    s = setup_sitting(api, members=3, present=3)
    _, state = api.call("GET", "/api/terminal/state", credential=s.creds["M0001"])
    _, first = api.call("GET", "/api/terminal/round-key", credential=s.creds["M0001"])
    assert first["data"]["fingerprint"] == state["vote"]["key_fingerprint"]
    vote(api, s.creds["M0002"], {"motion": "for"})
    _, again = api.call("GET", "/api/terminal/round-key", credential=s.creds["M0003"])
    assert again == first
    status, _ = api.call("GET", "/api/terminal/round-key?round_ref=nope", credential=s.creds["M0003"], expect=None)
    assert status == 404
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    status, body = api.call("GET", "/api/terminal/round-key", credential=s.creds["M0001"], expect=None)
    assert status == 404 and body["errors"][0]["where"] == "vote"


def test_tally_record_and_publish_leave_a_tablets_state_and_tag_alone(app, api, other_node):
    # Nothing a tablet shows changes after the close; a tag that moved with every event woke
    # the whole hall's long-polls into Flask three more times (bench_hall: seconds of delay).
    s = setup_sitting(api, members=3, present=3, open_vote=True)
    for no in s.members:
        vote(api, s.creds[no], {"motion": "for"})
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    closed = _state(app.test_client(), s.creds["M0001"])
    tag = closed.headers["ETag"]
    for action in ("tally", "record", "publish"):
        api.call("POST", f"/api/admin/items/{s.item_id}/{action}")
        again = _state(other_node.test_client(), s.creds["M0001"], tag)
        assert again.status_code == 304 and again.headers["ETag"] == tag, action
    # a change a tablet shows still moves it (the sitting closes)
    api.call("POST", f"/api/admin/sessions/{s.sitting_id}/close")
    assert _state(app.test_client(), s.creds["M0001"], tag).status_code == 200
