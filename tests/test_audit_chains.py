"""One audit chain per body (issue #15, Deliver 3): a body's bundle holds that body's chain
alone and verifies with that body's key alone; events of another body, and server-level
events (operator accounts, logins, failed logins by anyone), are not interleaved into it."""
from __future__ import annotations

import json

import pytest
from bundle_support import export_app_bundle
from helpers_live import setup_sitting, vote
from sqlalchemy import select

from ballot_service.bundle.verify import verify_bundle
from ballot_service.domain import audit
from ballot_service.errors import InvalidInput
from ballot_service.models import AuditEvent


@pytest.fixture
def two_bodies(app, api):
    a = setup_sitting(api, members=3, secret=True)
    for no in a.members[:2]:
        vote(api, a.creds[no], {"motion": "for"})
    # An outsider's failed login in the middle of body A's vote: a timed, unauthenticated event.
    api.call("POST", "/api/admin/login", {"username": "nobody", "password": "wrong-password"}, expect=None)
    b = setup_sitting(api, members=3, secret=True)  # a second body (and a login of the operator)
    vote(api, b.creds[b.members[0]], {"motion": "against"})
    vote(api, a.creds[a.members[2]], {"motion": "for"})
    for s in (a, b):
        api.call("POST", f"/api/admin/items/{s.item_id}/close")
        api.call("POST", f"/api/admin/items/{s.item_id}/tally")
        api.call("POST", f"/api/admin/items/{s.item_id}/record")
    return a, b


def test_each_body_has_its_own_chain_and_bundle(app, two_bodies, tmp_path):
    a, b = two_bodies
    with app.extensions["ballot_engine"].connect() as conn:
        rows = conn.execute(select(AuditEvent.chain, AuditEvent.seq, AuditEvent.kind, AuditEvent.data)
                            .order_by(AuditEvent.chain, AuditEvent.seq)).all()
    by_chain: dict[int, list] = {}
    for r in rows:
        by_chain.setdefault(r.chain, []).append(r)
    assert set(by_chain) == {audit.SERVER_CHAIN, a.body_id, b.body_id}
    for chain, evs in by_chain.items():
        assert [e.seq for e in evs] == list(range(1, len(evs) + 1))  # each chain runs 1, 2, 3, …
    server_kinds = {e.kind for e in by_chain[audit.SERVER_CHAIN]}
    assert "login" in server_kinds  # (failed logins: their own table or this chain, never a body's)
    for body in (a.body_id, b.body_id):
        kinds = {e.kind for e in by_chain[body]}
        assert not kinds & {"login", "login_failed", "operator_created"}
        assert {"body_created", "vote_opened", "casts_accepted", "vote_closed", "record_issued"} <= kinds

    for s, other in ((a, b), (b, a)):
        out = export_app_bundle(app, tmp_path / f"body{s.body_id}", body_id=s.body_id)
        events = [json.loads(x) for x in (out / "events.jsonl").read_text("utf-8").splitlines()]
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        datas = [json.loads(e["data"]) for e in events]
        assert not [d for d in datas if d.get("body_id") == other.body_id or d.get("session_id") == other.sitting_id]
        assert not [e for e in events if e["kind"] in ("login", "login_failed", "operator_created")]
        assert sorted(p.name for p in (out / "keys").glob("*.pem")) == [f"body-{s.body_id}.pub.pem"]
        key = (out / "keys" / f"body-{s.body_id}.pub.pem")
        summary = verify_bundle(out, key=[str(key)])  # the body's own key is enough
        assert summary["ok"] and summary["items"] == 1


def test_a_session_bundle_and_an_ambiguousexport_app_bundle(app, two_bodies, tmp_path):
    a, _ = two_bodies
    out = export_app_bundle(app, tmp_path / "session", sitting_id=a.sitting_id)
    counts = json.loads((out / "counts.json").read_text("utf-8"))
    assert counts["scope"] == {"body_id": a.body_id, "session_id": a.sitting_id}
    assert verify_bundle(out)["ok"]
    with pytest.raises(InvalidInput) as exc:  # two bodies, two chains: say which
        export_app_bundle(app, tmp_path / "which")
    assert exc.value.where == "body"
