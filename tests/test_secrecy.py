"""Secret ballot (RULES.md §7): after a secret terminal vote, nothing the service stores (any
table, any audit event, its log output, any file under its folders) ties a member, seat or
terminal to the serial or the marks of that member's ballot."""
from __future__ import annotations

import json
import logging
import re
import sqlite3

import pytest
from helpers_live import blind_ballot, setup_sitting
from sqlalchemy import DateTime, select

from ballot_service.crypto import tablet
from ballot_service.db import Base
from ballot_service.models import AuditEvent, Cast, Issuance

MEMBER_KEYS = ("member_id", "member_no", "terminal_id", "seat", "terminal", "name", "member")
SERIAL_TABLES = {"casts", "audit_events"}
MARKS = [{"motion": "for"}, {"motion": "against"}, {"motion": "abstain"}, {"motion": "for"},
         {}, {"motion": "for"}, {"motion": "against"}]


@pytest.fixture
def voted(app, api, caplog, tmp_path):
    """A secret terminal vote by 7 of 8 members, closed, tallied and recorded; with all DEBUG logs."""
    caplog.set_level(logging.DEBUG)
    s = setup_sitting(api, members=8, secret=True)
    texts = {}
    for no, marks in zip(s.members, MARKS):
        texts[no] = blind_ballot(api, s.creds[no])
        api.call("POST", "/api/terminal/cast", {**texts[no], "marks": marks, "retry_id": tablet.new_retry_id()},
                 credential=s.creds[no])
    # one refused resend with other marks, so refusal events are inspected too
    api.call("POST", "/api/terminal/cast", {**texts[s.members[0]], "marks": {"motion": "against"},
                                            "retry_id": tablet.new_retry_id()},
             credential=s.creds[s.members[0]], expect=(409,))
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    api.call("POST", f"/api/admin/items/{s.item_id}/record")
    secrets_of = {}  # member_no -> the strings that would reveal that member's ballot
    for no, ballot in texts.items():
        secrets_of[no] = {"serial": ballot["serial"], "prefix": ballot["prefix"], "sig": ballot["signature"]}
    return app, s, secrets_of


def identifiers(s, app) -> dict[str, set[str]]:
    """member_no -> strings identifying that member (number, name, seat, terminal name, credential)."""
    return {no: {no, f"代表{no}", f"席位{no}", s.creds[no]} for no in s.members}


def all_secret_strings(secrets_of) -> list[str]:
    return [v for d in secrets_of.values() for k, v in d.items()]


def _row_text(row: dict) -> str:
    parts = []
    for v in row.values():
        if isinstance(v, (bytes, bytearray, memoryview)):
            parts.append(bytes(v).decode("latin-1"))
        elif isinstance(v, (dict, list)):
            parts.append(json.dumps(v, ensure_ascii=False))
        elif v is not None:
            parts.append(str(v))
    return "\x00".join(parts)


def _names_member(row: dict, text: str, ids: dict) -> bool:
    if any(row.get(c) is not None for c in ("member_id", "terminal_id")):
        return True
    if any(f'"{k}"' in text for k in ("member_id", "member_no", "terminal_id", "seat")):
        return True
    return any(i in text for strings in ids.values() for i in strings)


def test_no_table_links_a_member_to_a_ballot(voted):
    app, s, secrets_of = voted
    ids = identifiers(s, app)
    secret_strings = all_secret_strings(secrets_of)
    engine = app.extensions["ballot_engine"]
    tables_with_serials = set()
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            for row in conn.execute(table.select()).mappings():
                row = dict(row)
                text = _row_text(row)
                has_secret = any(x in text for x in secret_strings) or '"marks"' in text
                if any(x in text for x in secret_strings):
                    tables_with_serials.add(table.name)
                if has_secret:
                    assert not _names_member(row, text, ids), f"{table.name} links a member to a ballot: {row}"
    assert tables_with_serials <= SERIAL_TABLES, tables_with_serials
    assert "casts" in tables_with_serials  # sanity: the search does find what is there


def test_casts_have_random_ids_no_member_and_no_time(voted):
    app, s, secrets_of = voted
    for col in Cast.__table__.columns:
        assert not isinstance(col.type, DateTime) and not isinstance(getattr(col.type, "impl", None), DateTime), col
        assert not re.search(r"(^|_)(at|time|date|ts|created|updated)($|_)", col.name), col.name
    with app.extensions["ballot_engine"].connect() as conn:
        rows = conn.execute(select(Cast.id, Cast.member_id, Cast.serial)).all()
    assert len(rows) == len(MARKS)
    assert all(re.fullmatch(r"[0-9a-f]{32}", r.id) for r in rows)
    assert len({r.id for r in rows}) == len(rows)
    assert all(r.member_id is None for r in rows)
    assert {r.serial for r in rows} == {d["serial"] for d in list(secrets_of.values())}


def test_audit_events_do_not_link(voted):
    app, s, secrets_of = voted
    ids = identifiers(s, app)
    secret_strings = all_secret_strings(secrets_of)
    with app.extensions["ballot_engine"].connect() as conn:
        evs = conn.execute(select(AuditEvent).order_by(AuditEvent.seq)).all()
    kinds = {e.kind for e in evs}
    assert {"casts_accepted", "cast_refused", "vote_opened", "vote_closed", "attendance_present"} <= kinds
    assert "cast_accepted" not in kinds  # no event per cast: its place in the chain is its arrival
    for e in evs:
        data = json.loads(e.data)
        has_secret = any(x in e.data for x in secret_strings) or "marks" in data
        if has_secret:
            assert not (set(data) & set(MEMBER_KEYS)), e
            assert not any(i in e.data for strings in ids.values() for i in strings), e
        if e.kind in ("casts_accepted", "cast_refused"):
            assert e.at is None, e
            assert e.sitting_id is None, e
    accepted = [json.loads(e.data) for e in evs if e.kind == "casts_accepted"]
    assert sum(d["count"] for d in accepted) == len(MARKS)
    assert all(set(d) == {"round_id", "count"} for d in accepted)
    # A refusal names no serial: its place in the chain (between the batches' counts) would
    # order that ballot's arrival. The reason and the round, counted per reason.
    refused = [json.loads(e.data) for e in evs if e.kind == "cast_refused"]
    assert refused and all(set(d) == {"round_id", "reason"} for d in refused), refused


def test_issuances_hold_only_a_count(voted):
    app, s, secrets_of = voted
    secret_strings = all_secret_strings(secrets_of)
    with app.extensions["ballot_engine"].connect() as conn:
        rows = conn.execute(select(Issuance)).mappings().all()
    assert len(rows) == len(s.members)
    for row in rows:  # the blinded message's digest only while the round is open (a lost answer's resend)
        assert set(row) == {"round_id", "member_id", "terminal_id", "issued", "allowed", "blinded_sha256"}
        assert row["blinded_sha256"] is None  # the round is closed
        assert not any(x in _row_text(dict(row)) for x in secret_strings)


def test_logs_do_not_link(voted, caplog, capfd):
    app, s, secrets_of = voted
    ids = identifiers(s, app)
    secret_strings = all_secret_strings(secrets_of)
    out, err = capfd.readouterr()
    lines = [r.getMessage() for r in caplog.records] + out.splitlines() + err.splitlines()
    for line in lines:
        if any(x in line for x in secret_strings):
            assert not any(i in line for strings in ids.values() for i in strings), line
    # The service's own loggers (not the SQL echo an operator may switch on) never log a serial.
    own = [r.getMessage() for r in caplog.records if not r.name.startswith("sqlalchemy")]
    assert not [m for m in own if any(x in m for x in secret_strings)]


def test_files_do_not_link(voted, tmp_path):
    """Serials may be in the database file only (its casts and audit tables); no other file under
    the service's folders holds a serial, a ballot text or a signature."""
    app, s, secrets_of = voted
    if not app.config["SETTINGS"].database_url.startswith("sqlite"):
        pytest.skip("raw database bytes are checked on SQLite")
    db_path = app.config["SETTINGS"].database_url.split("sqlite:///", 1)[1]
    needles = []
    for d in secrets_of.values():
        needles += [d["serial"].encode(), bytes.fromhex(d["serial"]), d["prefix"].encode(), d["sig"].encode()]
    db_files = {db_path, db_path + "-wal", db_path + "-shm", db_path + "-journal"}
    seen_in_db = False
    for f in tmp_path.rglob("*"):
        if not f.is_file():
            continue
        data = f.read_bytes()
        if str(f) in db_files:
            seen_in_db |= any(n in data for n in needles)
            continue
        leaked = [n for n in needles if n in data]
        assert not leaked, f"{f} holds ballot secrets"
    assert seen_in_db  # sanity

    # Raw bytes without the two tables allowed to hold serials: no serial anywhere in the file.
    app.extensions["ballot_engine"].dispose()
    copy = tmp_path / "copy.sqlite3"
    src = sqlite3.connect(db_path)
    src.execute(f"VACUUM INTO '{copy}'")
    src.close()
    c = sqlite3.connect(copy)
    c.execute("PRAGMA foreign_keys=OFF")
    for t in SERIAL_TABLES:
        c.execute(f"DROP TABLE {t}")
    c.commit()
    c.execute("VACUUM")
    c.close()
    raw = copy.read_bytes()
    for suffix in ("-wal", "-journal"):
        p = copy.with_name(copy.name + suffix)
        if p.exists():
            raw += p.read_bytes()
    leaked = [n for n in needles if n in raw]
    assert not leaked, "serial or ballot text stored outside casts/audit_events"


def test_attendance_during_a_secret_vote_leaves_no_event_beside_the_casts(app, api):
    """A member's attendance event placed in the chain next to a cast would point at that cast.
    While a secret vote is open: checking in again writes nothing at all; a ballot holder's
    leave is refused (recorded after the close); a late arrival, who holds no ballot in this
    round, is checked in at once."""
    s = setup_sitting(api, members=6, present=4, secret=True)

    def events():
        with app.extensions["ballot_engine"].connect() as conn:
            return conn.execute(select(AuditEvent.seq, AuditEvent.kind)).all()

    before = events()
    first = s.members[0]
    api.call("POST", "/api/terminal/checkin", {"member": first}, credential=s.creds[first])
    api.call("POST", f"/api/admin/sessions/{s.sitting_id}/attendance", {"members": [first], "status": "present"})
    assert events() == before  # nothing written: no event to order against the casts

    _, body = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/attendance",
                       {"members": [first], "status": "leave"}, expect=(409,))
    err = body["errors"][0]
    assert err["where"] == "attendance" and "secret vote" in err["message"]
    assert "表决结束后" in err["message_zh"]
    assert events() == before

    late = s.members[5]
    _, state = api.call("POST", "/api/terminal/checkin", {"member": late}, credential=s.creds[late])
    # The tablet shows the vote's 实到, as the presiding screen does (#17 item 5); the check-in counts.
    assert state["attendance"]["present"] == 4 and state["vote_open"] is True
    assert api.call("GET", f"/api/admin/sessions/{s.sitting_id}/attendance")[1]["present"] == 5
    assert [k for _, k in events()[len(before):]] == ["attendance_present"]
    _, vote = api.call("GET", "/api/terminal/state", credential=s.creds[late])
    api.call("POST", "/api/terminal/blind-sign", {"round_ref": vote["vote"]["round_ref"], "blinded_msg": "AAAA"},
             credential=s.creds[late], expect=(404,))  # not eligible: no ballot this round

    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    _, state = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/attendance",
                        {"members": [first], "status": "leave"})
    assert state["leave"] == 1
