"""The seat-terminal and counting-station API, in-process (Flask test client): authentication,
input validation at the edge, cast intake and its refusals, quorum, named/secret storage,
paper ballots and hand-count tally sheets; and the OpenAPI document that describes it."""
from __future__ import annotations

import base64
import json
import re
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from helpers_live import OPERATOR, Api, create_item, setup_session
from sqlalchemy import func, select

from ballot_service.crypto import keys
from ballot_service.domain.operators import create_operator
from ballot_service.domain.terminals import authenticate_terminal
from ballot_service.formats import ballots
from ballot_service.models import AuditEvent, Cast, Item, Member, Refusal, Round
from ballot_service.web import cast_endpoint

RE_RECEIPT = r"^[0-9A-F]{12}$"


# --- fixtures and small helpers ---------------------------------------------------------------

@pytest.fixture
def api(app, client):
    db = app.extensions["ballot_sessionmaker"]()
    create_operator(db, OPERATOR[0], OPERATOR[1], "secretariat")
    db.commit()
    db.close()
    return Api.flask(client)


def query(app, stmt):
    """Run one read in its own short session (a held SQLite transaction would block the app)."""
    db = app.extensions["ballot_sessionmaker"]()
    try:
        rows = db.execute(stmt).all()
        db.expunge_all()  # keep loaded rows readable after the session ends
        return rows
    finally:
        db.close()


def n_casts(app) -> int:
    return query(app, select(func.count()).select_from(Cast))[0][0]


def refusals(app, item_id: int | None = None) -> dict[str, int]:
    stmt = select(Refusal.reason, func.sum(Refusal.count)).group_by(Refusal.reason)
    if item_id is not None:
        stmt = stmt.join(Round, Round.id == Refusal.round_id).where(Round.item_id == item_id)
    return {r: int(c or 0) for r, c in query(app, stmt)}


def round_ids(app, item_id: int) -> list[int]:
    return [r for (r,) in query(app, select(Round.id).where(Round.item_id == item_id).order_by(Round.number))]


def refusals_of_round(app, round_id: int) -> dict[str, int]:
    return {r: c for r, c in query(app, select(Refusal.reason, Refusal.count).where(Refusal.round_id == round_id))}


def refused_event_rounds(app) -> list[tuple]:
    """(round_id, reason) of every cast_refused event, in order."""
    return [(d["round_id"], d["reason"]) for d in (json.loads(e.data) for e in events(app, "cast_refused"))]


def events(app, kind: str) -> list[AuditEvent]:
    return [row[0] for row in query(app, select(AuditEvent).where(AuditEvent.kind == kind).order_by(AuditEvent.seq))]


def assert_error_shape(data, error_type: str | None = None) -> dict:
    assert isinstance(data, dict) and set(data) == {"errors"}, data
    assert isinstance(data["errors"], list) and len(data["errors"]) >= 1
    err = data["errors"][0]
    assert isinstance(err["message"], str) and err["message"]
    assert isinstance(err["errorType"], str) and err["errorType"]
    if error_type is not None:
        assert err["errorType"] == error_type, err
    return err


def get_ballot(api: Api, cred: str) -> str:
    _, data = api.call("GET", "/api/terminal/ballot", credential=cred)
    return data["ballot"]


def cast(api: Api, cred: str, ballot: str, marks: dict, expect=None):
    return api.call("POST", "/api/terminal/cast", {"ballot": ballot, "marks": marks}, credential=cred, expect=expect)


def resign(text: str, payload_change: dict | None = None, key=None) -> str:
    """A ballot with the same (or changed) payload signed by `key` (default: a stranger's key)."""
    prefix, payload_b64, _ = text.split(".")
    payload = json.loads(base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)))
    payload.update(payload_change or {})
    raw = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    sig = (key or Ed25519PrivateKey.generate()).sign(raw)
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    return f"{prefix}.{b64(raw)}.{b64(sig)}"


# --- authentication -----------------------------------------------------------------------------

@pytest.mark.parametrize("method,path", [("GET", "/api/terminal/state"), ("GET", "/api/terminal/ballot"),
                                         ("POST", "/api/terminal/cast"), ("POST", "/api/terminal/checkin"),
                                         ("POST", "/api/station/paper"), ("POST", "/api/station/hand-out"),
                                         ("POST", "/api/station/tally-sheet")])
def test_missing_credential_is_401(app, method, path):
    fresh = app.test_client()  # no operator cookie
    for headers in ({}, {"Authorization": "Basic abc"}, {"Authorization": "Bearer"}):
        r = fresh.open(path, method=method, json={}, headers=headers)
        assert r.status_code == 401, (headers, r.get_json())
        assert_error_shape(r.get_json(), "Unauthorized")


def test_unknown_and_revoked_credentials_are_401(app, api):
    s = setup_session(api, members=3)
    fresh = Api.flask(app.test_client())
    status, data = fresh.call("GET", "/api/terminal/state", credential="not-a-credential", expect=None)
    assert status == 401
    assert_error_shape(data, "Unauthorized")

    no = s.members[0]
    ballot = get_ballot(fresh, s.creds[no])
    api.call("POST", f"/api/admin/terminals/{s.terminal_ids[no]}/revoke")
    for method, path, body in (("GET", "/api/terminal/state", None), ("GET", "/api/terminal/ballot", None),
                               ("POST", "/api/terminal/cast", {"ballot": ballot, "marks": {"motion": "for"}})):
        status, data = fresh.call(method, path, body, credential=s.creds[no], expect=None)
        assert status == 401, data
        assert "revoked" in assert_error_shape(data, "Unauthorized")["message"]
    assert n_casts(app) == 0


def test_station_and_seat_credentials_are_not_interchangeable(app, api):
    s = setup_session(api, members=3)
    no = s.members[0]
    ballot = get_ballot(api, s.creds[no])
    status, data = cast(api, s.station, ballot, {"motion": "for"})
    assert status == 403
    assert_error_shape(data, "Forbidden")
    for path, body in (("/api/station/paper", {"ballot": ballot, "marks": {"motion": "for"}}),
                       ("/api/station/hand-out", {"ballot": ballot}),
                       ("/api/station/tally-sheet", {"item_id": s.item_id, "teller": "x", "sheet": {}})):
        status, data = api.call("POST", path, body, credential=s.creds[no], expect=None)
        assert status == 403, (path, data)
        assert_error_shape(data, "Forbidden")
    status, data = api.call("GET", "/api/terminal/ballot", credential=s.station, expect=None)
    assert status == 403
    assert n_casts(app) == 0
    assert cast(api, s.creds[no], ballot, {"motion": "for"})[0] == 201


# --- validation at the edge: 4xx and nothing stored -----------------------------------------------

BAD_BODIES = {
    "not_json": (b"{not json", 400),
    "json_array": (b'[1, 2]', 400),
    "json_string": (b'"ballot"', 400),
    "empty": (b"", 400),
    "missing_marks": (lambda t: {"ballot": t}, 400),
    "missing_ballot": (lambda t: {"marks": {"motion": "for"}}, 400),
    "ballot_not_string": (lambda t: {"ballot": 12345, "marks": {"motion": "for"}}, 400),
    "marks_not_object": (lambda t: {"ballot": t, "marks": ["for"]}, 400),
    "marks_bool": (lambda t: {"ballot": t, "marks": True}, 400),
    "mark_not_string": (lambda t: {"ballot": t, "marks": {"motion": 1}}, 400),
    "unknown_candidate": (lambda t: {"ballot": t, "marks": {"nobody": "for"}}, 400),
    "unknown_mark": (lambda t: {"ballot": t, "marks": {"motion": "yes"}}, 400),
    "void_from_terminal": (lambda t: {"ballot": t, "marks": {"motion": "void"}}, 400),
    "too_large": (lambda t: {"ballot": t, "marks": {"motion": "for"}, "pad": "x" * (65 * 1024)}, 413),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_submission_is_refused_and_nothing_stored(app, api, client, case):
    s = setup_session(api, members=3)
    cred = s.creds[s.members[0]]
    ballot = get_ballot(api, cred)
    raw, expected = BAD_BODIES[case]
    data = raw if isinstance(raw, bytes) else json.dumps(raw(ballot)).encode()
    before = n_casts(app)
    r = client.post("/api/terminal/cast", data=data, content_type="application/json",
                    headers={"Authorization": f"Bearer {cred}"})
    assert r.status_code == expected, r.get_json()
    assert_error_shape(r.get_json())
    if expected == 413:
        assert r.get_json()["errors"][0]["errorType"] == "PayloadTooLarge"
    assert n_casts(app) == before == 0
    # The ballot is not burnt: the member can still cast it.
    status, ok = cast(api, cred, ballot, {"motion": "against"})
    assert status == 201, ok


def test_cast_endpoint_edge_cases_answer_in_the_api_error_shape(app, api, client, monkeypatch):
    """POST /api/terminal/cast is served in front of Flask (cast_endpoint.py): its edge cases
    answer as the rest of the API does, and store nothing."""
    s = setup_session(api, members=3)
    cred = s.creds[s.members[0]]
    ballot = get_ballot(api, cred)
    auth_header = {"Authorization": f"Bearer {cred}"}
    r = client.get("/api/terminal/cast", headers=auth_header)
    assert r.status == "405 Method Not Allowed" and r.headers["Allow"] == "POST"
    assert_error_shape(r.get_json(), "MethodNotAllowed")
    r = client.post("/api/terminal/cast", data=b'{"ballot": "\xff\xfe", "marks": {}}', content_type="application/json",
                    headers=auth_header)
    assert r.status_code == 400 and r.get_json()["errors"][0]["where"] == "body"
    # A chunked body (no Content-Length) over the limit is refused as well.
    big = json.dumps({"ballot": ballot, "marks": {"motion": "for"}, "pad": "x" * (70 * 1024)}).encode()
    r = client.post("/api/terminal/cast", input_stream=__import__("io").BytesIO(big),
                    headers={**auth_header, "Transfer-Encoding": "chunked"})
    assert r.status_code == 413
    assert_error_shape(r.get_json(), "PayloadTooLarge")

    # An unexpected failure is a 500 in the same shape; nothing is stored and the ballot stays usable.
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(cast_endpoint.intake, "accept", broken)
    status, data = cast(api, cred, ballot, {"motion": "for"})
    assert status == 500
    assert_error_shape(data, "InternalServerError")
    monkeypatch.undo()
    assert n_casts(app) == 0
    status, ok = cast(api, cred, ballot, {"motion": "for"})
    assert status == 201, ok
    # The same JSON form as Flask's own answers (sorted keys, compact, a final newline).
    r = client.post("/api/terminal/cast", json={"ballot": ballot, "marks": {"motion": "for"}}, headers=auth_header)
    assert r.status_code == 200 and r.content_type == "application/json"
    assert r.get_data() == (json.dumps(r.get_json(), sort_keys=True, separators=(",", ":")) + "\n").encode()


# --- intake ---------------------------------------------------------------------------------------

def test_cast_retry_and_reuse(app, api):
    s = setup_session(api, members=3)
    cred = s.creds[s.members[0]]
    ballot = get_ballot(api, cred)
    status, first = cast(api, cred, ballot, {"motion": "for"})
    assert status == 201
    assert first["repeated"] is False
    assert re.match(RE_RECEIPT, first["receipt"])
    assert first["serial"] == ballots.text_to_token(ballot)["payload"]["serial"]

    status, again = cast(api, cred, ballot, {"motion": "for"})
    assert status == 200
    assert again["receipt"] == first["receipt"] and again["repeated"] is True

    status, data = cast(api, cred, ballot, {"motion": "against"})
    assert status == 409
    assert assert_error_shape(data, "BallotRefused")["reason"] == "reused"
    assert n_casts(app) == 1
    assert refusals(app, s.item_id)["reused"] == 1
    assert [c.marks for (c,) in query(app, select(Cast))] == [{"motion": "for"}]


def test_forged_ballot_is_refused_and_counted(app, api):
    s = setup_session(api, members=3)
    cred = s.creds[s.members[0]]
    ballot = get_ballot(api, cred)
    status, data = cast(api, cred, resign(ballot), {"motion": "for"})
    assert status == 403
    assert assert_error_shape(data, "BallotRefused")["reason"] == "forged"
    # A stranger's key for a made-up serial is forged too, never 'unknown'.
    status, data = cast(api, cred, resign(ballot, {"serial": "ab" * 16}), {"motion": "for"})
    assert status == 403 and data["errors"][0]["reason"] == "forged"
    assert n_casts(app) == 0
    assert refusals(app, s.item_id)["forged"] == 2
    assert len(events(app, "cast_refused")) == 2
    assert cast(api, cred, ballot, {"motion": "for"})[0] == 201


def test_garbage_ballot_text_is_malformed(app, api):
    s = setup_session(api, members=3)
    cred = s.creds[s.members[0]]
    for text in ("hello", "BS1.e30.AAAA", "BS1..", "BS2.a.b", "x" * 3000):
        status, data = cast(api, cred, text, {"motion": "for"})
        assert status == 400, (text, data)
        assert assert_error_shape(data, "BallotRefused")["reason"] == "malformed"
    assert n_casts(app) == 0


def _body_key(app, body_id: int):
    st = app.config["SETTINGS"]
    return keys.load_key(st.keys_dir, keys.body_key_name(body_id), st.key_passphrase)


def test_wrong_item_is_refused_and_counted(app, api):
    s = setup_session(api, members=3)
    cred = s.creds[s.members[0]]
    ballot = get_ballot(api, cred)
    key = _body_key(app, s.body_id)
    # Genuinely signed by this body's key, but naming another body.
    token = ballots.make_token(key, s.body_id + 1, s.sitting_id, s.item_id, 1)
    text = ballots.token_to_text(token)
    status, data = cast(api, cred, text, {"motion": "for"})
    assert status == 403, data
    assert assert_error_shape(data, "BallotRefused")["reason"] == "wrong_item"
    assert refusals(app, s.item_id)["wrong_item"] == 1

    # A ballot of an earlier item of the session, cast during the next vote.
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    item2 = create_item(api, s.sitting_id, key="item2")
    api.call("POST", f"/api/admin/items/{item2}/open")
    status, data = cast(api, cred, ballot, {"motion": "for"})
    # Its round is still item 1's current round (no runoff replaced it): a straggler of that
    # vote, late, and counted there, not on item 2's vote.
    assert status == 409, data
    assert assert_error_shape(data, "BallotRefused")["reason"] == "late"
    assert refusals(app, s.item_id)["late"] == 1 and sum(refusals(app, item2).values()) == 0
    assert sum(refusals(app).values()) == 2
    assert n_casts(app) == 0
    # The member's ballot for item2 is still good.
    assert cast(api, cred, get_ballot(api, cred), {"motion": "for"})[0] == 201


def test_ballot_of_another_session_is_refused(app, api):
    s = setup_session(api, members=3)
    cred = s.creds[s.members[0]]
    key = _body_key(app, s.body_id)
    other = ballots.token_to_text(ballots.make_token(key, s.body_id, s.sitting_id + 1, s.item_id, 1))
    status, data = cast(api, cred, other, {"motion": "for"})
    assert status == 403, data
    assert assert_error_shape(data, "BallotRefused")["reason"] == "unknown"
    assert [json.loads(e.data)["reason"] for e in events(app, "cast_refused")] == ["unknown"]
    assert n_casts(app) == 0
    # It names no round of this session, so it is counted on the vote in progress (and its
    # event names that round, so the audit bundle's counts match the log).
    (r1,) = round_ids(app, s.item_id)
    assert refusals_of_round(app, r1)["unknown"] == 1
    assert refused_event_rounds(app) == [(r1, "unknown")]


def test_unknown_ballots_are_counted_on_the_sessions_current_vote(app, api):
    s = setup_session(api, members=3, open_vote=False)
    cred = s.creds[s.members[0]]
    key = _body_key(app, s.body_id)

    def unknown(item, round_no, session=s.sitting_id):
        text = ballots.token_to_text(ballots.make_token(key, s.body_id, session, item, round_no))
        status, data = cast(api, cred, text, {"motion": "for"})
        assert status == 403 and data["errors"][0]["reason"] == "unknown", data

    # No vote opened yet in this session: nothing to count it on; audited only.
    unknown(s.item_id + 50, 1)
    assert refused_event_rounds(app) == [(None, "unknown")]
    assert sum(refusals(app).values()) == 0
    api.call("POST", f"/api/admin/items/{s.item_id}/open")
    (r1,) = round_ids(app, s.item_id)
    unknown(s.item_id + 50, 1)  # an item this session does not have
    unknown(s.item_id, 7)  # a round item 1 does not have (genuinely signed)
    unknown(s.item_id, 1, session=s.sitting_id + 3)  # another session
    assert refusals_of_round(app, r1)["unknown"] == 3
    # After the close, the session's current vote is still the one opened last.
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    unknown(s.item_id + 50, 1)
    assert refusals_of_round(app, r1)["unknown"] == 4
    item2 = create_item(api, s.sitting_id, key="item2")
    api.call("POST", f"/api/admin/items/{item2}/open")
    (r2,) = round_ids(app, item2)
    unknown(s.item_id + 50, 1)
    assert refusals_of_round(app, r2)["unknown"] == 1 and refusals_of_round(app, r1)["unknown"] == 4
    assert refused_event_rounds(app) == [(None, "unknown")] + [(r1, "unknown")] * 4 + [(r2, "unknown")]
    # Malformed text is not a ballot: audited, counted nowhere.
    status, data = cast(api, cred, "BS1.x.y", {"motion": "for"})
    assert status == 400 and data["errors"][0]["reason"] == "malformed"
    assert refused_event_rounds(app)[-1] == (None, "malformed")
    assert sum(refusals(app).values()) == 5
    assert n_casts(app) == 0


def test_wrong_round_is_refused_and_counted(app, api):
    cands = [{"key": k, "title": f"项目{k}"} for k in "abc"]
    s = setup_session(api, members=3, kind="livelihood_projects", candidates=cands, places=2)
    texts = {}
    for no, marks in zip(s.members, ({"a": "for", "b": "for"}, {"a": "for", "c": "for"},
                                     {"b": "for", "c": "for"})):
        texts[no] = get_ballot(api, s.creds[no])
        assert cast(api, s.creds[no], texts[no], marks)[0] == 201
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    _, result = api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    assert result["status"] == "runoff_pending", result
    _, opened = api.call("POST", f"/api/admin/items/{s.item_id}/open")
    assert opened["round"] == 2
    no = s.members[0]
    before = sum(refusals(app, s.item_id).values())
    status, data = cast(api, s.creds[no], texts[no], {"a": "for"})
    # Round 1 was replaced by the runoff: not late (that would be a straggler of the current
    # round) but a ballot of the wrong round, counted on the round it names (round 1).
    assert status == 403, data
    assert assert_error_shape(data, "BallotRefused")["reason"] == "wrong_round"
    assert sum(refusals(app, s.item_id).values()) == before + 1
    r1, r2 = round_ids(app, s.item_id)
    assert refusals_of_round(app, r1)["wrong_round"] == 1 and sum(refusals_of_round(app, r2).values()) == 0
    assert refused_event_rounds(app)[-1] == (r1, "wrong_round")
    assert n_casts(app) == 3
    round2 = get_ballot(api, s.creds[no])
    assert ballots.text_to_token(round2)["payload"]["round"] == 2
    assert cast(api, s.creds[no], round2, {"a": "for"})[0] == 201


def _runoff_item(api, s, key: str) -> tuple[int, dict]:
    """An item whose round 1 ties at the cut-off (runoff pending); returns it and each
    present member's round-1 ballot text."""
    cands = [{"key": k, "title": f"项目{k}"} for k in "abc"]
    item = create_item(api, s.sitting_id, kind="livelihood_projects", candidates=cands, places=2, key=key)
    api.call("POST", f"/api/admin/items/{item}/open")
    texts = {}
    for no, marks in zip(s.members, ({"a": "for", "b": "for"}, {"a": "for", "c": "for"},
                                     {"b": "for", "c": "for"})):
        texts[no] = get_ballot(api, s.creds[no])
        assert cast(api, s.creds[no], texts[no], marks)[0] == 201
    api.call("POST", f"/api/admin/items/{item}/close")
    _, result = api.call("POST", f"/api/admin/items/{item}/tally")
    assert result["status"] == "runoff_pending", result
    return item, texts


def test_superseded_round_is_wrong_round_whatever_is_open(app, api, tmp_path):
    s = setup_session(api, members=3, open_vote=False)
    item, texts = _runoff_item(api, s, "projects")
    r1, r2 = round_ids(app, item)
    no = s.members[1]

    def replay(expect_reason):
        status, data = cast(api, s.creds[no], texts[no], {"a": "for"})
        assert data["errors"][0]["reason"] == expect_reason, data
        return status

    # The runoff exists but has not opened: round 1 is no longer its item's current round.
    assert replay("wrong_round") == 403
    # During another item's vote, and during the runoff itself: still wrong_round, on round 1.
    other = create_item(api, s.sitting_id, key="motion")
    api.call("POST", f"/api/admin/items/{other}/open")
    assert replay("wrong_round") == 403
    api.call("POST", f"/api/admin/items/{other}/close")
    api.call("POST", f"/api/admin/items/{item}/open")
    assert replay("wrong_round") == 403
    assert refusals_of_round(app, r1)["wrong_round"] == 3
    assert sum(refusals_of_round(app, r2).values()) == 0
    assert sum(refusals(app, other).values()) == 0
    # The runoff's own ballot, after the runoff closed, is late (its round is current).
    runoff = get_ballot(api, s.creds[no])
    api.call("POST", f"/api/admin/items/{item}/close")
    status, data = cast(api, s.creds[no], runoff, {"a": "for"})
    assert status == 409 and data["errors"][0]["reason"] == "late", data
    assert refusals_of_round(app, r2)["late"] == 1
    assert n_casts(app) == 3  # the round-1 casts only

    # Counted where the event log says: the offline verifier agrees.
    from ballot_service.bundle.export import export_bundle
    from ballot_service.bundle.verify import verify_bundle

    db = app.extensions["ballot_sessionmaker"]()
    try:
        bundle = export_bundle(db, app.config["SETTINGS"], tmp_path / "bundle")
    finally:
        db.close()
    assert verify_bundle(bundle)["ok"]


def test_cast_after_close_is_late(app, api):
    s = setup_session(api, members=3)
    cred = s.creds[s.members[0]]
    ballot = get_ballot(api, cred)
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    status, data = cast(api, cred, ballot, {"motion": "for"})
    assert status == 409
    assert assert_error_shape(data, "BallotRefused")["reason"] == "late"
    assert refusals(app, s.item_id)["late"] == 1
    assert n_casts(app) == 0
    assert [json.loads(e.data)["reason"] for e in events(app, "cast_refused")] == ["late"]
    status, data = api.call("GET", "/api/terminal/ballot", credential=cred, expect=None)
    assert status == 404


# --- the write lock (SQLite) -----------------------------------------------------------------------

def _hold_write_lock(app):
    """Another connection holding SQLite's write lock (as a concurrent cast would)."""
    import sqlite3

    path = app.extensions["ballot_engine"].url.database
    other = sqlite3.connect(path, isolation_level=None, timeout=0.1)
    other.execute("BEGIN IMMEDIATE")
    return other


def test_authentication_and_read_phases_do_not_wait_for_the_write_lock(app, api):
    from ballot_service.db import begin_write, read_phase

    if app.extensions["ballot_engine"].dialect.name != "sqlite":
        pytest.skip("SQLite's write lock")
    s = setup_session(api, members=3)
    cred = s.creds[s.members[0]]
    (r1,) = round_ids(app, s.item_id)
    other = _hold_write_lock(app)
    try:
        db = app.extensions["ballot_sessionmaker"]()
        try:
            term = authenticate_terminal(db, cred)  # would wait 30 s under BEGIN IMMEDIATE
            assert term.id == s.terminal_ids[s.members[0]] and not db.in_transaction()
            with read_phase(db):
                assert db.get(Round, r1).status == "open"
                with pytest.raises(RuntimeError, match="read phase"):
                    db.connection().exec_driver_sql("UPDATE rounds SET places = places")
        finally:
            db.close()
    finally:
        other.rollback()
        other.close()
    db = app.extensions["ballot_sessionmaker"]()
    try:
        begin_write(db)  # the lock is free again
        assert db.in_transaction()
    finally:
        db.close()
    assert cast(api, cred, get_ballot(api, cred), {"motion": "for"})[0] == 201


# --- quorum, named and secret votes ------------------------------------------------------------------

def test_open_without_quorum_is_refused_and_audited(app, api):
    s = setup_session(api, members=6, present=3, open_vote=False)  # congress: needs 4 of 6
    status, data = api.call("POST", f"/api/admin/items/{s.item_id}/open", expect=None)
    assert status == 409
    assert_error_shape(data, "QuorumNotMet")
    refused = events(app, "vote_open_refused")
    assert len(refused) == 1
    assert json.loads(refused[0].data)["reason"] == "quorum_not_met"
    (rnd,) = [r for (r,) in query(app, select(Round).where(Round.item_id == s.item_id))]
    assert rnd.status == "pending" and rnd.opened_at is None
    assert query(app, select(Item.status).where(Item.id == s.item_id))[0][0] == "draft"
    status, _ = api.call("GET", "/api/terminal/ballot", credential=s.creds[s.members[0]], expect=None)
    assert status == 404
    # With one more member checked in the vote opens.
    api.call("POST", "/api/terminal/checkin", {"member": s.members[3]}, credential=s.creds[s.members[3]])
    api.call("POST", f"/api/admin/items/{s.item_id}/open")


@pytest.mark.parametrize("secret", [True, False])
def test_named_vote_stores_member_secret_does_not(app, api, secret):
    s = setup_session(api, members=3, secret=secret)
    for no in s.members:
        assert cast(api, s.creds[no], get_ballot(api, s.creds[no]), {"motion": "for"})[0] == 201
    stored = {c.member_id for (c,) in query(app, select(Cast))}
    if secret:
        assert stored == {None}
        for e in events(app, "cast_accepted"):
            assert "member_id" not in json.loads(e.data)
    else:
        ids = {i for (i,) in query(app, select(Member.id).where(Member.member_no.in_(s.members)))}
        assert stored == ids


# --- paper ballots and tally sheets -------------------------------------------------------------------

def test_paper_flow(app, api):
    s = setup_session(api, members=3, channel="paper")
    _, printed = api.call("POST", f"/api/admin/items/{s.item_id}/paper-ballots", {"count": 4})
    texts = printed["ballots"]
    for t in texts[:3]:
        status, data = api.call("POST", "/api/station/hand-out", {"ballot": t}, credential=s.station)
        assert status == 201 and data == {"handed_out": True}
    status, data = api.call("POST", "/api/station/hand-out", {"ballot": texts[0]}, credential=s.station,
                            expect=None)
    assert status == 409
    assert_error_shape(data)

    def paper(text, marks):
        return api.call("POST", "/api/station/paper", {"ballot": text, "marks": marks}, credential=s.station,
                        expect=None)

    status, data = paper(texts[0], {"motion": "void"})
    assert status == 201, data
    status, data = paper(texts[1], {"motion": "for"})
    assert status == 201
    assert paper(texts[1], {"motion": "for"})[0] == 200
    status, data = paper(texts[1], {"motion": "against"})
    assert status == 409 and data["errors"][0]["reason"] == "reused"
    status, data = paper(texts[3], {"motion": "for"})  # printed, never handed out
    assert status == 403
    assert assert_error_shape(data, "BallotRefused")["reason"] == "spare"
    status, data = paper(texts[2], {"bogus": "for"})
    assert status == 400
    assert n_casts(app) == 2
    assert {c.marks["motion"] for (c,) in query(app, select(Cast))} == {"void", "for"}
    r = refusals(app, s.item_id)
    assert r["spare"] == 1 and r["reused"] == 1
    # A paper ballot cannot be cast from a seat terminal.
    status, data = cast(api, s.creds[s.members[0]], texts[2], {"motion": "for"})
    assert status == 400
    assert n_casts(app) == 2


SHEET = {"issued": 3, "returned": 3, "invalid": 0,
         "counts": {"motion": {"for": 2, "against": 1, "abstain": 0, "void": 0}}}


def test_tally_sheet_needs_a_second_teller(app, api):
    s = setup_session(api, members=3, channel="tally_sheet")

    def sheet(teller, data=SHEET, item_id=s.item_id):
        return api.call("POST", "/api/station/tally-sheet", {"item_id": item_id, "teller": teller, "sheet": data},
                        credential=s.station, expect=None)

    status, data = sheet("甲")
    assert status == 409  # the vote is still open
    assert_error_shape(data, "Conflict")
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    bad = json.loads(json.dumps(SHEET))
    bad["counts"]["motion"]["for"] = 3
    assert sheet("甲", bad)[0] == 400  # rows must add up to the valid ballots
    assert sheet("甲") == (201, {"state": "entered"})
    status, data = sheet("甲")
    assert status == 409 and data["errors"][0]["where"] == "teller"
    differing = json.loads(json.dumps(SHEET))
    differing["counts"]["motion"] = {"for": 1, "against": 2, "abstain": 0, "void": 0}
    status, data = sheet("乙", differing)
    assert status == 409 and data["errors"][0]["where"] == "sheet"
    assert sheet("乙") == (201, {"state": "confirmed"})
    assert sheet("丙")[0] == 409
    assert [e.kind for e in events(app, "tally_sheet_entered")] == ["tally_sheet_entered"]
    assert len(events(app, "tally_sheet_confirmed")) == 1
    _, result = api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    assert result["status"] == "decided", result


# --- the OpenAPI document -------------------------------------------------------------------------------

OPENAPI = Path(__file__).resolve().parent.parent / "ballot_service" / "openapi.yaml"


def test_openapi_document_is_valid_and_matches_routes(app):
    import openapi_spec_validator as validator
    import yaml
    spec = yaml.safe_load(OPENAPI.read_text("utf-8"))
    validator.validate(spec)
    routes = {}
    for rule in app.url_map.iter_rules():
        routes.setdefault(rule.rule, set()).update(m.lower() for m in rule.methods)
    routes[cast_endpoint.PATH] = {"post"}  # served in front of Flask (cast_endpoint.py)
    for path, ops in spec["paths"].items():
        assert path in routes, f"{path} is documented but not served"
        for method in ops:
            if method in ("get", "post", "put", "patch", "delete"):
                assert method in routes[path], f"{method.upper()} {path} is documented but not served"
    served = {r for r in routes if r.startswith(("/api/terminal/", "/api/station/"))}
    assert served <= set(spec["paths"]), f"undocumented: {served - set(spec['paths'])}"
    reasons = set(spec["components"]["schemas"]["RefusalReason"]["enum"])
    assert reasons == set(ballots.REFUSAL_STATUS)


# --- SQLite group commit (intake._GroupCommit / _run_batch) -------------------------------------

def _sqlite_only(app):
    if app.extensions["ballot_engine"].dialect.name != "sqlite":
        pytest.skip("group commit is SQLite's")


def _jobs(app, s, subs):
    """intake jobs, prepared as a request would (step 1), for (member, ballot, marks) tuples."""
    from ballot_service.domain import intake

    engine, settings = app.extensions["ballot_engine"], app.config["SETTINGS"]
    ref = intake.SittingRef(s.sitting_id, s.body_id)
    jobs = []
    for no, ballot, marks in subs:
        job = intake._Job(ref, ballot, marks, "terminal", s.terminal_ids[no])
        intake._prepare(settings, engine, job)
        jobs.append(job)
    return jobs


def _outcome(job):
    try:
        return job.outcome()
    except Exception as exc:  # noqa: BLE001 - the test looks at which error
        return exc


def _chain_is_whole(app) -> bool:
    from ballot_service.domain import audit

    prev = audit.GENESIS
    for (e,) in query(app, select(AuditEvent).order_by(AuditEvent.seq)):
        at = e.at.isoformat() if e.at else None
        if e.prev_hash != prev or e.hash != audit.event_hash(prev, e.seq, at, e.kind, e.data):
            return False
        prev = e.hash
    return True


def test_group_commit_one_batch_decides_each_cast_on_its_own(app, api):
    from ballot_service.domain import intake
    from ballot_service.errors import InvalidInput

    _sqlite_only(app)
    s = setup_session(api, members=4)
    m = s.members
    b = {no: get_ballot(api, s.creds[no]) for no in m}
    jobs = _jobs(app, s, [
        (m[0], b[m[0]], {"motion": "for"}),
        (m[1], b[m[1]], {"nobody": "for"}),          # bad marks: stores nothing
        (m[2], b[m[2]], {"motion": "against"}),
        (m[0], b[m[0]], {"motion": "for"}),          # a retry within the batch: the same receipt
        (m[0], b[m[0]], {"motion": "abstain"}),      # the serial again, other marks: reused
        (m[3], resign(b[m[3]]), {"motion": "for"}),  # forged
    ])
    intake._run_batch(app.extensions["ballot_engine"], jobs)
    got = [_outcome(j) for j in jobs]
    assert isinstance(got[0], intake.Receipt) and not got[0].repeated
    assert isinstance(got[1], InvalidInput)
    assert isinstance(got[2], intake.Receipt) and not got[2].repeated
    assert got[3] == intake.Receipt(got[0].serial, got[0].receipt, True)
    assert isinstance(got[4], ballots.BallotRefused) and got[4].reason == "reused"
    assert isinstance(got[5], ballots.BallotRefused) and got[5].reason == "forged"
    assert n_casts(app) == 2
    assert {r: c for r, c in refusals(app, s.item_id).items() if c} == {"reused": 1, "forged": 1}
    assert [json.loads(e.data)["serial"] for e in events(app, "cast_accepted")] == [got[0].serial, got[2].serial]
    assert len(events(app, "cast_refused")) == 2
    assert _chain_is_whole(app)
    # The member's retry over HTTP, after the batch, still gets the same receipt.
    status, again = cast(api, s.creds[m[0]], b[m[0]], {"motion": "for"})
    assert status == 200 and again["receipt"] == got[0].receipt


def test_group_commit_an_unexpected_error_fails_only_its_own_cast(app, api, monkeypatch):
    from ballot_service.domain import intake

    _sqlite_only(app)
    s = setup_session(api, members=3)
    m = s.members
    b = {no: get_ballot(api, s.creds[no]) for no in m}
    jobs = _jobs(app, s, [(no, b[no], {"motion": "for"}) for no in m])
    poison = jobs[1].serial
    real = intake.receipt_code

    def receipt_code(serial, digest):
        if serial == poison:
            raise RuntimeError("disk on fire")
        return real(serial, digest)

    monkeypatch.setattr(intake, "receipt_code", receipt_code)
    intake._run_batch(app.extensions["ballot_engine"], jobs)
    got = [_outcome(j) for j in jobs]
    assert isinstance(got[1], RuntimeError)
    assert isinstance(got[0], intake.Receipt) and isinstance(got[2], intake.Receipt)
    assert {c.serial for (c,) in query(app, select(Cast))} == {jobs[0].serial, jobs[2].serial}
    assert len(events(app, "cast_accepted")) == 2 and _chain_is_whole(app)


def test_group_commit_failed_commit_gives_no_receipt(app, api, monkeypatch):
    from ballot_service.domain import intake

    _sqlite_only(app)
    s = setup_session(api, members=2)
    jobs = _jobs(app, s, [(no, get_ballot(api, s.creds[no]), {"motion": "for"}) for no in s.members])

    def commit_fails(db):
        raise OSError("fsync failed")

    monkeypatch.setattr(intake, "_commit_batch", commit_fails)
    intake._run_batch(app.extensions["ballot_engine"], jobs)
    assert all(isinstance(_outcome(j), OSError) and j.result is None for j in jobs)
    assert n_casts(app) == 0 and events(app, "cast_accepted") == []


_CRASHING_CASTER = r"""
import json, os, sys, threading
from ballot_service import create_app
from ballot_service.domain import intake

env, jobs_path, crash_at = json.loads(sys.argv[1]), sys.argv[2], int(sys.argv[3])
app = create_app(env)
batches, in_batch = [0], {}
real_store, real_commit = intake._store, intake._commit_batch

def store(db, jobs):
    in_batch[threading.get_ident()] = [j.serial for j in jobs]
    return real_store(db, jobs)

def commit(db):
    batches[0] += 1
    mine = in_batch[threading.get_ident()]
    if batches[0] >= crash_at and len(mine) > 1:
        # Statements executed, COMMIT not yet: the process dies here (kill -9 alike).
        sys.stderr.write("CRASH " + json.dumps(mine) + "\n"); sys.stderr.flush()
        os._exit(9)
    return real_commit(db)

intake._store, intake._commit_batch = store, commit
todo = json.load(open(jobs_path))
lock = threading.Lock()

def client():
    c = app.test_client()
    while True:
        with lock:
            if not todo:
                return
            cred, ballot = todo.pop()
        r = c.post("/api/terminal/cast", json={"ballot": ballot, "marks": {"motion": "for"}},
                   headers={"Authorization": "Bearer " + cred})
        if r.status_code == 201:  # acknowledged: the member has the receipt
            with lock:
                sys.stdout.write("ACK " + json.dumps(r.get_json()) + "\n"); sys.stdout.flush()

threads = [threading.Thread(target=client) for _ in range(12)]
[t.start() for t in threads]
[t.join() for t in threads]
sys.stdout.write("DONE\n")
"""


def test_group_commit_crash_mid_batch_loses_no_acknowledged_cast(app, api, settings_env, tmp_path):
    import subprocess
    import sys

    _sqlite_only(app)
    s = setup_session(api, members=60)
    todo = [(s.creds[no], get_ballot(api, s.creds[no])) for no in s.members]
    jobs_path = tmp_path / "jobs.json"
    jobs_path.write_text(json.dumps(todo))
    app.extensions["ballot_engine"].dispose()
    proc = subprocess.run([sys.executable, "-c", _CRASHING_CASTER, json.dumps(settings_env), str(jobs_path), "3"],
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr[-3000:]
    crashed = json.loads(next(line for line in proc.stderr.splitlines() if line.startswith("CRASH "))[6:])
    acked = [json.loads(line[4:]) for line in proc.stdout.splitlines() if line.startswith("ACK ")]
    assert len(crashed) > 1 and acked
    stored = {c.serial: c.receipt for (c,) in query(app, select(Cast))}
    for receipt in acked:  # every receipt given is a stored cast
        assert stored.get(receipt["serial"]) == receipt["receipt"]
    assert not set(crashed) & set(stored)  # the batch that died before its COMMIT left nothing
    assert not set(crashed) & {r["serial"] for r in acked}
    assert len(events(app, "cast_accepted")) == len(stored) and _chain_is_whole(app)
