"""Blind issuance (issue #15 items 1 and 2): the attacks that worked with sealed, re-fetchable
ballots, and the guarantees that replace them. A tablet credential cannot get a second ballot
(no re-fetch oracle), a used serial answers the same 409 whatever its marks, a database copy
links nobody to a serial, a round's signature counts in no other round, and openssl verifies
a ballot with the round's announced key."""
from __future__ import annotations

import shutil
import sqlite3
import subprocess

import pytest
from helpers_live import blind_ballot, create_item, setup_sitting
from sqlalchemy import MetaData, select

from ballot_service.crypto import blind_rsa, tablet
from ballot_service.formats.encoding import b64url_decode
from ballot_service.models import AuditEvent, Cast, Round


def _cast(api, ballot, marks, retry_id, expect=None, credential=None):
    return api.call("POST", "/api/terminal/cast", {**ballot, "marks": marks, "retry_id": retry_id},
                    credential=credential, expect=expect)


def _blinded(api, cred):
    _, state = api.call("GET", "/api/terminal/state", credential=cred)
    _, ann = api.call("GET", "/api/terminal/round-key", credential=cred)
    pub = tablet.round_key_from_announcement(ann, state["vote"]["round_ref"], state["vote"]["key_fingerprint"])
    return pub, tablet.start(pub, state["vote"]["round_ref"])


def test_a_member_gets_one_blind_signature_per_round(api):
    s = setup_sitting(api, members=3)
    cred = s.creds[s.members[0]]
    blind_ballot(api, cred)
    pub, pending = _blinded(api, cred)
    status, body = api.call("POST", "/api/terminal/blind-sign",
                            {"round_ref": pending.round_ref, "blinded_msg": pending.blinded_text},
                            credential=cred, expect=None)
    assert status == 409 and "blind_sig" not in body
    # The old re-fetch path is gone altogether.
    assert api.call("GET", "/api/terminal/ballot", credential=cred, expect=None)[0] in (404, 405)


def test_a_used_serial_answers_the_same_409_whatever_its_marks(api):
    s = setup_sitting(api, members=3)
    ballot = blind_ballot(api, s.creds[s.members[0]])
    retry = tablet.new_retry_id()
    st, first = _cast(api, ballot, {"motion": "for"}, retry, expect=(201,))
    # A lost answer: the same serial and retry id get the same receipt.
    st, again = _cast(api, ballot, {"motion": "for"}, retry, expect=(200,))
    assert again["receipt"] == first["receipt"] and again["repeated"] is True
    # The oracle attack: resend with guessed marks and a new retry id. True and false guesses
    # get byte-identical answers.
    same = _cast(api, ballot, {"motion": "for"}, tablet.new_retry_id())
    other = _cast(api, ballot, {"motion": "against"}, tablet.new_retry_id())
    assert same[0] == other[0] == 409
    assert same[1] == other[1]


def test_a_replacement_allows_exactly_one_more_signature_with_its_reason_recorded(api, app):
    s = setup_sitting(api, members=3)
    no = s.members[0]
    blind_ballot(api, s.creds[no])
    api.call("POST", f"/api/admin/items/{s.item_id}/replacement", {"member": no, "reason": "平板故障，选票丢失"})
    second = blind_ballot(api, s.creds[no])
    pub, pending = _blinded(api, s.creds[no])
    api.call("POST", "/api/terminal/blind-sign", {"round_ref": pending.round_ref, "blinded_msg": pending.blinded_text},
             credential=s.creds[no], expect=(409,))
    _cast(api, second, {"motion": "for"}, tablet.new_retry_id(), expect=(201,))
    _, closed = api.call("POST", f"/api/admin/items/{s.item_id}/close")
    assert closed["issued"] == 2
    api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    _, rec = api.call("POST", f"/api/admin/items/{s.item_id}/record")
    db = app.extensions["ballot_sessionmaker"]()
    try:
        kinds = [e.kind for e in db.scalars(select(AuditEvent).order_by(AuditEvent.seq))]
        assert "ballot_replacement" in kinds
        assert db.scalar(select(Round.replacements)) == 1
    finally:
        db.close()


def test_a_signature_of_round_a_is_refused_in_round_b(api):
    s = setup_sitting(api, members=3)
    a = blind_ballot(api, s.creds[s.members[0]])
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    item_b = create_item(api, s.sitting_id, key="item2")
    api.call("POST", f"/api/admin/items/{item_b}/open")
    _, state = api.call("GET", "/api/terminal/state", credential=s.creds[s.members[0]])
    moved = {**a, "round_ref": state["vote"]["round_ref"]}
    status, body = _cast(api, moved, {"motion": "for"}, tablet.new_retry_id())
    assert status == 403 and body["errors"][0]["reason"] == "forged"
    status, body = _cast(api, a, {"motion": "for"}, tablet.new_retry_id())  # round A is closed
    assert status == 409 and body["errors"][0]["reason"] == "late"


def test_named_vote_is_bound_to_the_casting_member_once(api, app):
    s = setup_sitting(api, members=3, secret=False)
    no = s.members[0]
    ballot = blind_ballot(api, s.creds[no])
    _cast(api, ballot, {"motion": "for"}, tablet.new_retry_id(), expect=(401,))  # no credential
    _cast(api, ballot, {"motion": "for"}, tablet.new_retry_id(), credential=s.creds[no], expect=(201,))
    db = app.extensions["ballot_sessionmaker"]()
    try:
        assert db.scalar(select(Cast.member_id)) is not None
    finally:
        db.close()


def test_a_database_copy_after_the_vote_links_nobody(api, app, tmp_path):
    s = setup_sitting(api, members=4)
    ballots = {no: blind_ballot(api, s.creds[no]) for no in s.members}
    db = app.extensions["ballot_sessionmaker"]()
    private = db.scalar(select(Round.blind_private_key))
    db.close()
    assert private  # held while the round is open
    for no, b in ballots.items():
        _cast(api, b, {"motion": "for"}, tablet.new_retry_id(), expect=(201,))
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    engine = app.extensions["ballot_engine"]
    if engine.dialect.name != "sqlite":
        _rows_link_nobody(engine, ballots, s.creds, private)
        return
    path = engine.url.database
    engine.dispose()  # the pooled connections go; the WAL is copied back into the file and emptied
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchone()[0] == 0
    con.close()
    copy = tmp_path / "copy.sqlite3"
    shutil.copy(path, copy)
    raw = copy.read_bytes()
    assert private not in raw  # the round's private key does not survive the close
    con = sqlite3.connect(copy)
    dump = "\n".join(con.iterdump())
    tables = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
    con.close()
    assert "sealed_token" not in dump and "seal_public_key" not in dump
    for no, b in ballots.items():
        for secret in (b["serial"], b["signature"], b["prefix"]):
            # Only the anonymous cast row and its anonymous event hold them.
            lines = [ln for ln in dump.splitlines() if secret in ln]
            assert lines and all(ln.startswith(('INSERT INTO "casts"', 'INSERT INTO "audit_events"')) for ln in lines)
            assert not any(s.creds[no] in ln or f'"{no}"' in ln for ln in lines)
    assert "issuances" in tables


def _rows_link_nobody(engine, ballots, creds, private) -> None:
    """PostgreSQL: every row of every table, as text (its files are the server's to keep: the
    README says what a database administrator can see): the private key is gone, and a
    serial, signature or prefix stands only in a cast row or its event, beside no member."""
    meta = MetaData()
    meta.reflect(engine)
    with engine.connect() as conn:
        text_of = {t.name: "\n".join(repr(tuple(r)) for r in conn.execute(t.select())) for t in meta.sorted_tables}
    everything = "\n".join(text_of.values())
    assert repr(private)[2:40] not in everything and "sealed_token" not in text_of
    for no, b in ballots.items():
        for secret in (b["serial"], b["signature"], b["prefix"]):
            holders = {name for name, txt in text_of.items() if secret in txt}
            assert holders and holders <= {"casts", "audit_events"}, holders
            rows = [ln for name in holders for ln in text_of[name].splitlines() if secret in ln]
            assert not any(creds[no] in ln or f"'{no}'" in ln for ln in rows)


def test_openssl_verifies_a_ballot_with_the_announced_round_key(api, tmp_path):
    if shutil.which("openssl") is None:
        pytest.skip("openssl is not installed")
    s = setup_sitting(api, members=2)
    b = blind_ballot(api, s.creds[s.members[0]])
    _, ann = api.call("GET", "/api/terminal/round-key", credential=s.creds[s.members[0]])
    (tmp_path / "round.pem").write_text(ann["data"]["public_key_pem"])
    (tmp_path / "msg.bin").write_bytes(b64url_decode(b["prefix"]) +
                                       blind_rsa.ballot_message(b["round_ref"], bytes.fromhex(b["serial"])))
    (tmp_path / "sig.bin").write_bytes(b64url_decode(b["signature"]))
    cmd = ["openssl", "dgst", "-sha384", "-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:48",
           "-sigopt", "rsa_mgf1_md:sha384", "-verify", "round.pem", "-signature", "sig.bin", "msg.bin"]
    ok = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True)
    assert ok.returncode == 0 and "Verified OK" in ok.stdout, ok
    (tmp_path / "msg.bin").write_bytes(b"x" + (tmp_path / "msg.bin").read_bytes())
    assert subprocess.run(cmd, cwd=tmp_path, capture_output=True).returncode != 0


def test_a_cast_naming_a_round_id_beyond_any_row_is_refused_not_a_server_error(api):
    """PostgreSQL refuses an id beyond its INTEGER columns with an error (found by the fuzzer):
    such a round_ref is simply no round."""
    setup_sitting(api, members=2)
    body = {"round_ref": "r90324750605147", "serial": "3145bd85e1b7c3f91b9e159b7c4ced44", "prefix": "AAAA",
            "signature": "AAAA", "marks": {}, "retry_id": tablet.new_retry_id()}
    status, data = _cast(api, body, {}, body["retry_id"], expect=(400, 404, 409))
    assert status < 500
