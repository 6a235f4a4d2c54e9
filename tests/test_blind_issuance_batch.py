"""Blind issuance under a whole hall's concurrent requests (issuance.py: the count taken by a
group commit, the RSA operation outside the write lock): each member gets exactly one
signature however many requests race, a refused request gets no signature, and a closed
round signs nothing."""
from __future__ import annotations

import threading

import pytest
from helpers_live import setup_sitting
from sqlalchemy import event, func, select

from ballot_service.crypto import openssl_rsa, tablet
from ballot_service.models import Issuance


def _ask(client, cred: str, vote: dict, pub) -> tuple[int, dict | None]:
    pending = tablet.start(pub, vote["round_ref"])
    r = client.post("/api/terminal/blind-sign", json={"round_ref": vote["round_ref"], "blinded_msg": pending.blinded_text},
                    headers={"Authorization": f"Bearer {cred}"})
    return r.status_code, r.get_json(silent=True)


def test_racing_requests_get_one_signature_per_member(app, api):
    s = setup_sitting(api, members=6, present=6)
    _, state = api.call("GET", "/api/terminal/state", credential=s.creds["M0001"])
    vote = state["vote"]
    _, announcement = api.call("GET", "/api/terminal/round-key", credential=s.creds["M0001"])
    pub = tablet.round_key_from_announcement(announcement, vote["round_ref"], vote["key_fingerprint"])
    answers: list[tuple[str, int, dict | None]] = []
    start = threading.Barrier(18)

    def ask(no):
        client = app.test_client()
        start.wait()
        answers.append((no, *_ask(client, s.creds[no], vote, pub)))

    threads = [threading.Thread(target=ask, args=(no,)) for no in s.creds for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    for no in s.creds:
        mine = [(status, body) for who, status, body in answers if who == no]
        assert sorted(status for status, _ in mine) == [200, 409, 409], (no, mine)
        assert all("blind_sig" not in (body or {}) for status, body in mine if status == 409)
    with app.extensions["ballot_sessionmaker"]() as db:
        assert db.scalar(select(func.sum(Issuance.issued))) == 6


def test_a_closed_round_signs_nothing(app, api):
    s = setup_sitting(api, members=2, present=2)
    _, state = api.call("GET", "/api/terminal/state", credential=s.creds["M0001"])
    vote = state["vote"]
    _, announcement = api.call("GET", "/api/terminal/round-key", credential=s.creds["M0001"])
    pub = tablet.round_key_from_announcement(announcement, vote["round_ref"], vote["key_fingerprint"])
    status, _ = _ask(app.test_client(), s.creds["M0001"], vote, pub)
    assert status == 200
    n = pub.public_numbers().n
    assert not openssl_rsa.available() or n in openssl_rsa._keys  # OpenSSL holds the open round's key
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    assert n not in openssl_rsa._keys  # ... and not after the close (blind_rsa.forget_private)
    status, body = _ask(app.test_client(), s.creds["M0002"], vote, pub)
    assert status in (404, 409) and "blind_sig" not in (body or {})


def test_the_eligibility_lookup_reads_the_terminals_rows_by_index(app, api):
    """A whole hall asks at once, and a day's rounds add a hall's rows each: the terminal's
    Issuance in the open round is found by an index, never by reading every issuance."""
    if app.extensions["ballot_engine"].dialect.name != "sqlite":
        pytest.skip("the query plan checked is SQLite's")
    s = setup_sitting(api, members=3, present=3)
    _, state = api.call("GET", "/api/terminal/state", credential=s.creds["M0001"])
    vote = state["vote"]
    _, announcement = api.call("GET", "/api/terminal/round-key", credential=s.creds["M0001"])
    pub = tablet.round_key_from_announcement(announcement, vote["round_ref"], vote["key_fingerprint"])
    engine = app.extensions["ballot_engine"]
    seen: list[tuple[str, object]] = []

    def keep(conn, cursor, statement, parameters, context, executemany):
        if "FROM issuances" in statement and statement.lstrip().upper().startswith("SELECT"):
            seen.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", keep)
    try:
        assert _ask(app.test_client(), s.creds["M0002"], vote, pub)[0] == 200
    finally:
        event.remove(engine, "before_cursor_execute", keep)
    assert seen
    with engine.connect() as conn:
        for statement, parameters in seen:
            plan = " | ".join(row[-1] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters))
            assert "SCAN issuances" not in plan, plan
