"""Helpers of the terminal and counting-station API tests (tests/test_terminal_*.py,
test_intake*.py, test_station_api.py, test_votes_quorum_and_storage.py): reading the database in
short sessions (casts, those of an open secret vote opened with the body's key, refusals
per item or round, audit events), the API's error shape, taking
a blind-signed ballot and casting it (with a retry id), forging a terminal ballot with a
stranger's RSA key, and re-signing a paper ballot's text with a stranger's Ed25519 key."""
from __future__ import annotations

import base64
import functools
import json

from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from helpers_live import Api, blind_ballot
from sqlalchemy import func, select

from ballot_service.crypto import blind_rsa, tablet
from ballot_service.domain import cast_staging
from ballot_service.formats.encoding import b64url_decode, b64url_encode
from ballot_service.models import AuditEvent, Item, Refusal, Round, Sitting

RE_RECEIPT = r"^[0-9A-F]{16}$"


def query(app, stmt):
    """Run one read in its own short session (a held SQLite transaction would block the app)."""
    db = app.extensions["ballot_sessionmaker"]()
    try:
        rows = db.execute(stmt).all()
        db.expunge_all()  # keep loaded rows readable after the session ends
        return rows
    finally:
        db.close()


def opened_casts(db, settings) -> list:
    """Every stored cast (its Cast fields as attributes), an open secret vote's sealed ones
    (domain/cast_staging.py) opened with their body's key."""
    rounds = db.execute(select(Round.id, Sitting.body_id).join(Item, Item.id == Round.item_id)
                        .join(Sitting, Sitting.id == Item.sitting_id)).all()
    return [c for round_id, body_id in rounds for c in cast_staging.round_casts(db, settings, body_id, round_id)]


def all_casts(app) -> list:
    db = app.extensions["ballot_sessionmaker"]()
    try:
        return opened_casts(db, app.config["SETTINGS"])
    finally:
        db.close()


def n_casts(app) -> int:
    """Accepted casts, in clear or sealed."""
    db = app.extensions["ballot_sessionmaker"]()
    try:
        return sum(cast_staging.returned(db, round_id) for round_id in db.scalars(select(Round.id)))
    finally:
        db.close()


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


def get_ballot(api: Api, cred: str) -> dict:
    """The seat's blind-signed ballot {round_ref, serial, prefix, signature}."""
    return blind_ballot(api, cred)


def cast(api: Api, cred: str | None, ballot: dict, marks: dict, expect=None, retry_id: str | None = None):
    """POST /api/terminal/cast of a blind-signed ballot with `marks` and a retry id (a new one
    unless given: pass the same one to retry a submission whose answer was lost)."""
    body = {**ballot, "marks": marks, "retry_id": retry_id or tablet.new_retry_id()}
    return api.call("POST", "/api/terminal/cast", body, credential=cred, expect=expect)


@functools.cache
def _stranger_key() -> rsa.RSAPrivateKey:
    return blind_rsa.generate_round_key()


def forge(ballot: dict, **changes) -> dict:
    """The ballot (with `changes`, e.g. another serial) signed by a stranger's RSA key: a
    well-formed RSA-PSS signature that is not the round's."""
    b = {**ballot, **changes}
    msg = b64url_decode(b["prefix"]) + blind_rsa.ballot_message(b["round_ref"], bytes.fromhex(b["serial"]))
    sig = _stranger_key().sign(msg, padding.PSS(mgf=padding.MGF1(hashes.SHA384()), salt_length=blind_rsa.S_LEN),
                               hashes.SHA384())
    return {**b, "signature": b64url_encode(sig)}


def resign(text: str, payload_change: dict | None = None, key=None) -> str:
    """A ballot with the same (or changed) payload signed by `key` (default: a stranger's key)."""
    prefix, payload_b64, _ = text.split(".")
    payload = json.loads(base64.urlsafe_b64decode(payload_b64 + "=" * (-len(payload_b64) % 4)))
    payload.update(payload_change or {})
    raw = json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()
    sig = (key or Ed25519PrivateKey.generate()).sign(raw)
    b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()  # noqa: E731
    return f"{prefix}.{b64(raw)}.{b64(sig)}"
