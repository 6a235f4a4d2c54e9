"""Closing a session (闭会): refused while a vote is open and a second time; afterwards no
check-in, leave, item or vote opening; a `session_closed` event and a checkpoint signed with the
body's key; the audit bundle checks that checkpoint and reports whether the session was closed."""
from __future__ import annotations

import base64
import json
import shutil
import threading

import pytest
from bundle_support import export_app_bundle, rewrite_manifest
from click.testing import CliRunner
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from helpers_live import Api, create_item, setup_sitting, vote
from sqlalchemy import select

from ballot_service.bundle.encoding import pretty_json
from ballot_service.bundle.errors import BundleInvalid
from ballot_service.bundle.verify import verify_bundle
from ballot_service.cli import main
from ballot_service.crypto import keys
from ballot_service.domain import audit, sittings, voting
from ballot_service.errors import Conflict
from ballot_service.models import AuditEvent, Checkpoint, Sitting


def read(app, stmt):
    db = app.extensions["ballot_sessionmaker"]()
    try:
        rows = db.execute(stmt).scalars().all()
        db.expunge_all()
        return rows
    finally:
        db.close()


def error(data) -> str:
    return data["errors"][0]["message"]


def vote_and_close_item(api: Api, s) -> None:
    for no in s.present:
        vote(api, s.creds[no], {"motion": "for"})
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    api.call("POST", f"/api/admin/items/{s.item_id}/record")


def test_close_refused_while_a_vote_is_open_then_closes_with_signed_checkpoint(app, api, settings_env):
    s = setup_sitting(api, members=5)
    status, data = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/close", expect=None)
    assert status == 409 and data["errors"][0]["errorType"] == "Conflict"
    assert "still open" in error(data) and "item1" in error(data)
    assert read(app, select(AuditEvent).where(AuditEvent.kind == "session_closed")) == []

    vote_and_close_item(api, s)
    status, closed = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/close")
    assert closed["status"] == "closed" and closed["closed_at"]
    assert closed["items"] == {"decided": 1}
    cp = closed["checkpoint"]
    assert cp["reason"] == f"session_closed:{s.sitting_id}"

    [sitting] = read(app, select(Sitting).where(Sitting.id == s.sitting_id))
    assert sitting.status == "closed" and sitting.closed_at is not None
    [ev] = read(app, select(AuditEvent).where(AuditEvent.kind == "session_closed"))
    assert json.loads(ev.data) == {"session_id": s.sitting_id, "body_id": s.body_id, "name": "第一次会议",
                                   "items": {"decided": 1}}
    assert ev.at is not None and ev.seq == cp["seq"] == cp["event_seq"]
    [row] = read(app, select(Checkpoint).where(Checkpoint.reason == cp["reason"]))
    assert (row.seq, row.head_hash) == (ev.seq, ev.hash)
    # The checkpoint is signed by the body's own key over the chain head at the close.
    pub = keys.load_public_key(keys.public_path(settings_env["BALLOT_KEYS_DIR"], keys.body_key_name(s.body_id)))
    assert row.key_fingerprint == keys.fingerprint(pub)
    sig = base64.urlsafe_b64decode(row.signature + "=" * (-len(row.signature) % 4))
    pub.verify(sig, audit.checkpoint_message(row.seq, row.head_hash, row.reason))
    assert isinstance(pub, Ed25519PublicKey)


def test_closing_twice_is_refused_and_changes_nothing(app, api):
    s = setup_sitting(api, members=3, open_vote=False)
    api.call("POST", f"/api/admin/sessions/{s.sitting_id}/close")
    n_events = len(read(app, select(AuditEvent)))
    status, data = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/close", expect=None)
    assert status == 409 and "already closed" in error(data) and "已经闭会" in error(data)
    assert len(read(app, select(AuditEvent))) == n_events
    assert len(read(app, select(Checkpoint).where(Checkpoint.reason.like("session_closed:%")))) == 1


def test_after_close_no_checkin_leave_item_vote_or_terminal(app, api):
    s = setup_sitting(api, members=5, present=3, open_vote=False)
    api.call("POST", f"/api/admin/sessions/{s.sitting_id}/close")
    n_events = len(read(app, select(AuditEvent)))

    absent = s.members[4]
    status, data = api.call("POST", "/api/terminal/checkin", {"member": absent}, credential=s.creds[absent],
                            expect=None)
    assert status == 409 and "closed" in error(data) and "check-in" in error(data)
    status, data = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/attendance",
                            {"members": [s.present[0]], "status": "leave"}, expect=None)
    assert status == 409 and "closed" in error(data)
    status, data = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items",
                            {"key": "late", "kind": "resolution", "title": "迟到的事项"}, expect=None)
    assert status == 409 and "adding a vote item" in error(data)
    status, data = api.call("POST", f"/api/admin/items/{s.item_id}/open", expect=None)
    assert status == 409 and "opening a vote" in error(data) and "闭会" in error(data)
    status, data = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/terminals",
                            {"terminals": [{"name": "迟到的表决器", "kind": "seat", "seat": "X1"}]}, expect=None)
    assert status == 409 and "registering a terminal" in error(data)
    status, data = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/screen", {"show": "title"}, expect=None)
    assert status == 409 and "changing the presiding screen" in error(data)
    # Nothing was written by any refused request, and reading still works.
    assert len(read(app, select(AuditEvent))) == n_events
    _, att = api.call("GET", f"/api/admin/sessions/{s.sitting_id}/attendance")
    assert (att["members"], att["present"]) == (5, 3)


def test_close_needs_the_secretariat(client, app, api):
    s = setup_sitting(api, members=2, open_vote=False)
    anon = app.test_client()
    status, _ = Api.flask(anon).call("POST", f"/api/admin/sessions/{s.sitting_id}/close", expect=None)
    assert status in (401, 403)
    status, data = api.call("POST", "/api/admin/sessions/999/close", expect=None)
    assert status == 404


def test_other_sessions_stay_open(app, api):
    s = setup_sitting(api, members=3, open_vote=False)
    _, other = api.call("POST", "/api/admin/sessions", {"body_id": s.body_id, "name": "第二次会议"})
    api.call("POST", f"/api/admin/sessions/{s.sitting_id}/close")
    create_item(api, other["id"], key="next")  # the other session still takes items


# --- the audit bundle ------------------------------------------------------------------------------

def append_event(b, kind: str, data: dict) -> None:
    """What an attacker who rewrites the chain after the last checkpoint does."""
    path = b / "events.jsonl"
    lines = path.read_text("utf-8").splitlines()
    last = json.loads(lines[-1])
    seq, data_json = last["seq"] + 1, json.dumps(data, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    ev = {"seq": seq, "at": None, "kind": kind, "data": data_json, "prev_hash": last["hash"],
          "hash": audit.event_hash(last["hash"], seq, None, kind, data_json)}
    lines.append(json.dumps(ev, ensure_ascii=False, sort_keys=True, separators=(",", ":")))
    path.write_text("\n".join(lines) + "\n", "utf-8")
    rewrite_manifest(b)


@pytest.fixture
def closed_bundle(app, api, tmp_path):
    s = setup_sitting(api, members=4)
    vote_and_close_item(api, s)
    api.call("POST", f"/api/admin/sessions/{s.sitting_id}/close")
    return s, export_app_bundle(app, tmp_path / "bundle")


def test_bundle_verifies_and_says_the_session_was_closed(closed_bundle):
    s, b = closed_bundle
    summary = verify_bundle(b)
    assert summary["sessions"] == [{"id": s.sitting_id, "name": "第一次会议", "closed": True,
                                    "closed_at_event": summary["events"]}]
    assert summary["events_after_last_checkpoint"] == 0
    reasons = [c["reason"] for c in json.loads((b / "checkpoints.json").read_text())]
    assert reasons[-1] == f"session_closed:{s.sitting_id}"
    res = CliRunner().invoke(main, ["audit", "verify", str(b)])
    assert res.exit_code == 0, res.output
    assert "closed (已闭会)" in res.output


def test_bundle_of_an_open_session_says_not_closed(app, api, tmp_path):
    s = setup_sitting(api, members=3)
    vote_and_close_item(api, s)
    b = export_app_bundle(app, tmp_path / "bundle")
    assert verify_bundle(b)["sessions"][0]["closed"] is False
    res = CliRunner().invoke(main, ["audit", "verify", str(b)])
    assert res.exit_code == 0 and "not closed (未闭会)" in res.output


def test_removing_the_session_checkpoint_is_detected(closed_bundle, tmp_path):
    _, src = closed_bundle
    b = tmp_path / "cut"
    shutil.copytree(src, b)
    cps = json.loads((b / "checkpoints.json").read_text())
    (b / "checkpoints.json").write_text(pretty_json([c for c in cps if not c["reason"].startswith("session")]),
                                        "utf-8")
    rewrite_manifest(b)
    with pytest.raises(BundleInvalid, match="session close at event .* has no signed checkpoint"):
        verify_bundle(b)


def test_a_relabelled_checkpoint_is_detected(closed_bundle, tmp_path):
    _, src = closed_bundle
    b = tmp_path / "relabel"
    shutil.copytree(src, b)
    cps = json.loads((b / "checkpoints.json").read_text())
    cps[-1]["reason"] = "session_closed:99"  # the signature no longer covers it
    (b / "checkpoints.json").write_text(pretty_json(cps), "utf-8")
    rewrite_manifest(b)
    with pytest.raises(BundleInvalid):
        verify_bundle(b)


@pytest.mark.parametrize("kind, data", [
    ("attendance_present", {"session_id": 1, "member_no": "M0001", "method": "manual"}),
    ("item_created", {"session_id": 1, "item_id": 99, "key": "late", "kind": "resolution", "title": "x",
                      "places": None, "rule": {"base": "members", "majority": "half"}, "secret": True,
                      "channel": "terminal", "candidates": []}),
    ("vote_opened", {"item_id": 1, "round": 2}),
    ("screen_set", {"session_id": 1, "show": "title"}),
    ("session_closed", {"session_id": 1, "body_id": 1, "name": "第一次会议", "items": {}}),
])
def test_a_change_after_the_close_is_detected(closed_bundle, tmp_path, kind, data):
    """Even with the chain extended consistently and the manifest rewritten."""
    s, src = closed_bundle
    assert s.sitting_id == 1
    b = tmp_path / kind
    shutil.copytree(src, b)
    append_event(b, kind, data)
    with pytest.raises(BundleInvalid, match="after it was closed|a second time"):
        verify_bundle(b)



# --- a close racing a vote opening: the session row lock orders them ----------------------------

def _in_thread(fn):
    out: dict = {}

    def run():
        try:
            out["value"] = fn()
        except Conflict as exc:
            out["refused"] = exc.message

    th = threading.Thread(target=run, daemon=True)
    th.start()
    return th, out


def test_close_waits_for_a_vote_opening_in_flight_then_refuses(app, api):
    s = setup_sitting(api, members=3, open_vote=False)
    make, settings = app.extensions["ballot_sessionmaker"], app.config["SETTINGS"]
    opener = make()
    voting.open_round(opener, settings, sittings.get_item(opener, s.item_id))  # not committed yet

    def close():
        db = make()
        try:
            r = sittings.close_sitting(db, settings, sittings.get_sitting(db, s.sitting_id))
            db.commit()
            return r
        finally:
            db.rollback()
            db.close()

    th, out = _in_thread(close)
    th.join(0.5)
    assert th.is_alive(), f"the close did not wait for the opening: {out}"
    opener.commit()
    opener.close()
    th.join(30)
    assert not th.is_alive() and "still open" in out.get("refused", ""), out


def test_opening_waits_for_a_close_in_flight_then_refuses(app, api):
    s = setup_sitting(api, members=3, open_vote=False)
    make, settings = app.extensions["ballot_sessionmaker"], app.config["SETTINGS"]
    closer = make()
    sittings.close_sitting(closer, settings, sittings.get_sitting(closer, s.sitting_id))  # not committed yet

    def open_vote():
        db = make()
        try:
            return voting.open_round(db, settings, sittings.get_item(db, s.item_id)).number
        finally:
            db.rollback()
            db.close()

    th, out = _in_thread(open_vote)
    th.join(0.5)
    assert th.is_alive(), f"the opening did not wait for the close: {out}"
    closer.commit()
    closer.close()
    th.join(30)
    assert not th.is_alive() and "opening a vote" in out.get("refused", ""), out
