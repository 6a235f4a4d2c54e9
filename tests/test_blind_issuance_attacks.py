"""Blind issuance attacked from a seat tablet's credential: bursts split between the event loop's
path and Flask's, a replacement then a burst, a ballot set racing single requests, a request
that goes away, absent then present, a key that will not unwrap, the early 409 as an oracle, and
a closed round's key kept after the close. Each member gets exactly the signatures allowed, no
seat is stranded, and the closed round's key is not kept (web/issue_on_loop.py, the Snapshot's
signing guard, issuance.blind_sign_set_for_terminal, crypto/openssl_rsa.py)."""
from __future__ import annotations

import asyncio
import json
import threading

import pytest
from asgi_support import call, taught
from helpers_live import setup_sitting
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from terminal_support import get_ballot
from test_ballot_set_tablet import _blinded_for, _set_sitting
from test_issue_on_loop import _issued

from ballot_service.crypto import blind_rsa, openssl_rsa, tablet
from ballot_service.domain import issuance
from ballot_service.models import Attendance, Issuance, Member
from ballot_service.vocab import Presence
from ballot_service.web import asgi


async def _open_vote(ag, cred) -> tuple[dict, bytes]:
    """The seat taught to the loop (its long-poll), its vote and the round key's body."""
    vote = (await taught(ag, cred))["vote"]
    return vote, (await call(ag, "GET", "/api/terminal/round-key", cred))[2]


async def _ask(ag, cred, vote, key_body):
    pub = tablet.round_key_from_announcement(json.loads(key_body), vote["round_ref"], vote["key_fingerprint"])
    pending = tablet.start(pub, vote["round_ref"])
    status, _, body = await call(ag, "POST", "/api/terminal/blind-sign", cred,
                                 {"round_ref": vote["round_ref"], "blinded_msg": pending.blinded_text})
    ballot = tablet.finish(pub, pending, json.loads(body)["blind_sig"]) if status == 200 else None
    return status, body, ballot


def _valid(answers):
    return [a for a in answers if a[0] == 200 and a[2] is not None]


def test_a_concurrent_burst_split_between_loop_and_flask_gives_one_signature(app, api):
    s = setup_sitting(api, members=2)
    ag = asgi.create_asgi_app(app, threads=2)
    cred = s.creds[s.members[0]]

    async def run():
        vote, key_body = await _open_vote(ag, cred)
        return await asyncio.gather(*(_ask(ag, cred, vote, key_body) for _ in range(12)))

    answers = asyncio.run(run())
    assert len(_valid(answers)) == 1, [a[0] for a in answers]
    assert sorted(a[0] for a in answers) == [200] + [409] * 11
    assert _issued(app, s.item_id) == 1


def test_a_replacement_then_a_burst_gives_exactly_one_more_signature(app, api):
    s = setup_sitting(api, members=2)
    ag = asgi.create_asgi_app(app, threads=2)
    cred = s.creds[s.members[0]]

    async def run():
        vote, key_body = await _open_vote(ag, cred)
        first = await _ask(ag, cred, vote, key_body)
        refused = await _ask(ag, cred, vote, key_body)
        api.call("POST", f"/api/admin/items/{s.item_id}/replacement", {"member": s.members[0], "reason": "故障"})
        burst = await asyncio.gather(*(_ask(ag, cred, vote, key_body) for _ in range(10)))
        after = await _ask(ag, cred, vote, key_body)
        return first, refused, burst, after

    first, refused, burst, after = asyncio.run(run())
    assert first[0] == 200 and refused[0] == 409 and after[0] == 409
    assert len(_valid(burst)) == 1, [a[0] for a in burst]  # the replacement is not refused, and only one
    assert _issued(app, s.item_id) == 2


def test_a_set_and_a_single_request_race_for_one_round(app, api):
    s, ids = _set_sitting(api)
    ag = asgi.create_asgi_app(app, threads=2)
    cred = s.creds[s.members[0]]

    async def run():
        state = await taught(ag, cred)
        listed = state["vote"]["ballot_set"]
        vote = listed[0]
        key_body = (await call(ag, "GET", "/api/terminal/round-key", cred,
                               query=f"round_ref={vote['round_ref']}".encode()))[2]
        set_body = {"ballots": [{"round_ref": v["round_ref"], "blinded_msg": _blinded_for(api, cred, v)}
                                for v in listed]}
        singles = [_ask(ag, cred, vote, key_body) for _ in range(3)]
        sets = [call(ag, "POST", "/api/terminal/blind-sign-set", cred, set_body) for _ in range(3)]
        return await asyncio.gather(*singles, *sets)

    answers = asyncio.run(run())
    ok = [a for a in answers if a[0] == 200]
    assert len(ok) == 1, [a[0] for a in answers]
    with Session(app.extensions["ballot_engine"]) as db:
        issued = db.scalars(select(Issuance.issued).where(Issuance.terminal_id == s.terminal_ids[s.members[0]])).all()
    assert max(issued) == 1


def test_a_loop_request_cancelled_before_its_count_does_not_strand_the_seat(app, api, monkeypatch):
    s = setup_sitting(api, members=2)
    ag = asgi.create_asgi_app(app, threads=2)
    cred = s.creds[s.members[0]]
    real = issuance.count_nowait
    monkeypatch.setattr(issuance, "count_nowait", lambda engine, job, notify: None)  # never counted

    async def run():
        vote, key_body = await _open_vote(ag, cred)
        task = asyncio.ensure_future(_ask(ag, cred, vote, key_body))
        await asyncio.sleep(0.3)
        task.cancel()  # the tablet went away
        try:
            await task
        except asyncio.CancelledError:
            pass
        monkeypatch.setattr(issuance, "count_nowait", real)
        return await _ask(ag, cred, vote, key_body)

    again = asyncio.run(run())
    assert again[0] == 200 and again[2] is not None  # Flask's path signs it
    assert _issued(app, s.item_id) == 1


def test_absent_at_the_count_then_checked_in_is_not_stuck(app, api):
    s = setup_sitting(api, members=2)
    ag = asgi.create_asgi_app(app, threads=2)
    cred = s.creds[s.members[0]]
    engine = app.extensions["ballot_engine"]

    def presence(status):
        with Session(engine) as db:
            mid = db.scalar(select(Member.id).where(Member.member_no == s.members[0], Member.body_id == s.body_id))
            db.execute(update(Attendance).where(Attendance.member_id == mid, Attendance.sitting_id == s.sitting_id)
                       .values(status=status))
            db.commit()

    async def run():
        vote, key_body = await _open_vote(ag, cred)
        presence(Presence.LEAVE)  # behind the watcher's back
        refused = await _ask(ag, cred, vote, key_body)
        presence(Presence.PRESENT)
        return refused, await _ask(ag, cred, vote, key_body)

    refused, again = asyncio.run(run())
    assert refused[0] == 409 and "签到" in json.loads(refused[1])["errors"][0]["message_zh"]
    assert again[0] == 200 and again[2] is not None


def test_a_key_unwrap_failure_on_the_loop_does_not_strand_the_seat(app, api, monkeypatch):
    s = setup_sitting(api, members=2)
    ag = asgi.create_asgi_app(app, threads=2)
    cred = s.creds[s.members[0]]
    real = issuance.signer_key

    def broken(*a, **k):
        raise ValueError("cannot unwrap")

    async def run():
        vote, key_body = await _open_vote(ag, cred)
        monkeypatch.setattr(issuance, "signer_key", broken)
        first = await _ask(ag, cred, vote, key_body)
        monkeypatch.setattr(issuance, "signer_key", real)
        return first, await _ask(ag, cred, vote, key_body)

    first, again = asyncio.run(run())
    # The loop gives up on the key and Flask (which unwraps it its own way) signs; the resend is refused.
    assert first[0] == 200 and first[2] is not None, first
    assert again[0] == 409
    assert _issued(app, s.item_id) == 1


def test_the_early_409_is_only_for_the_seats_own_member(app, api):
    s = setup_sitting(api, members=3)
    get_ballot(api, s.creds[s.members[0]])  # seat 0 drew
    _, state = api.call("GET", "/api/terminal/state", credential=s.creds[s.members[1]])
    vote = state["vote"]
    pub = tablet.round_key_from_announcement(vote["round_key"], vote["round_ref"], vote["key_fingerprint"])
    status, _ = api.call("POST", "/api/terminal/blind-sign", {"round_ref": vote["round_ref"], "blinded_msg":
                         tablet.start(pub, vote["round_ref"]).blinded_text}, credential=s.creds[s.members[1]],
                         expect=None)
    assert status == 200  # seat 1 learns nothing of seat 0, and is not refused
    # no credential / a bad one: 401 before anything about issuance
    for cred in (None, "x" * 43):
        st, _ = api.call("POST", "/api/terminal/blind-sign", {"round_ref": vote["round_ref"], "blinded_msg": "AA"},
                         credential=cred, expect=None)
        assert st == 401


def test_an_absent_member_who_drew_is_refused_as_absent_not_as_issued(app, api):
    """The refusal order as before: absence first."""
    s = setup_sitting(api, members=2)
    cred = s.creds[s.members[0]]
    get_ballot(api, cred)
    # the API refuses a leave during a secret vote; set it behind its back
    with Session(app.extensions["ballot_engine"]) as db:
        mid = db.scalar(select(Member.id).where(Member.member_no == s.members[0], Member.body_id == s.body_id))
        db.execute(update(Attendance).where(Attendance.member_id == mid, Attendance.sitting_id == s.sitting_id)
                   .values(status=Presence.LEAVE))
        db.commit()
    _, state = api.call("GET", "/api/terminal/state", credential=cred)
    vote = state["vote"]
    pub = tablet.round_key_from_announcement(vote["round_key"], vote["round_ref"], vote["key_fingerprint"])
    status, body = api.call("POST", "/api/terminal/blind-sign", {"round_ref": vote["round_ref"], "blinded_msg":
                            tablet.start(pub, vote["round_ref"]).blinded_text}, credential=cred, expect=None)
    assert status == 409 and "签到" in body["errors"][0]["message_zh"]


def test_a_closed_rounds_key_is_not_kept_after_the_close(app, api):
    """The close frees this process's OpenSSL copy; a request signing on a snapshot read before
    the close (the watcher has not read the heads yet) does not load it back for good, and
    nothing it signed leaves (the count refuses)."""
    if not openssl_rsa.available():
        pytest.skip("no usable OpenSSL libcrypto in this process")
    app.config.update(DISPLAY_POLL_SECONDS=30.0)
    s = setup_sitting(api, members=3)
    ag = asgi.create_asgi_app(app, threads=2)
    a, b = s.creds[s.members[0]], s.creds[s.members[1]]

    async def run():
        vote = (await taught(ag, a))["vote"]
        await taught(ag, b)
        key_body = (await call(ag, "GET", "/api/terminal/round-key", a))[2]
        first = await _ask(ag, a, vote, key_body)
        pub = tablet.round_key_from_announcement(json.loads(key_body), vote["round_ref"], vote["key_fingerprint"])
        n = pub.public_numbers().n
        held_before = n in openssl_rsa._keys
        api.call("POST", f"/api/admin/items/{s.item_id}/close")
        held_after_close = n in openssl_rsa._keys
        late = await _ask(ag, b, vote, key_body)  # the stale snapshot still holds the unwrapped key
        return first, held_before, held_after_close, late, n in openssl_rsa._keys, n

    first, before, after_close, late, after_late, n = asyncio.run(run())
    assert first[0] == 200 and before and not after_close
    assert late[0] != 200 and late[2] is None  # nothing leaves
    assert not after_late, "closed round's private key reloaded into OpenSSL after the close"


def test_flask_signs_while_the_loops_count_is_pending_still_one_signature(app, api, monkeypatch):
    """Deterministic split: the loop's count is held back 0.5 s, so a resend (Flask's path, the
    guard being set) reads issued 0, passes the early check, signs, and counts first: one
    signature leaves (at most one RSA operation per path: Flask's threads bound the rest)."""
    s = setup_sitting(api, members=2)
    ag = asgi.create_asgi_app(app, threads=2)
    cred = s.creds[s.members[0]]
    real = issuance.count_nowait
    rsa_ops = []
    real_sign = blind_rsa.blind_sign
    monkeypatch.setattr(blind_rsa, "blind_sign", lambda *a, **k: rsa_ops.append(1) or real_sign(*a, **k))

    def late(engine, job, notify):
        threading.Timer(0.5, real, (engine, job, notify)).start()

    async def run():
        vote, key_body = await _open_vote(ag, cred)
        monkeypatch.setattr(issuance, "count_nowait", late)
        loop_req = asyncio.ensure_future(_ask(ag, cred, vote, key_body))
        for _ in range(500):  # until the loop has signed (its guard is set): not a fixed sleep, which a
            if rsa_ops:  # loaded machine outran (the second request then took the loop's path too)
                break
            await asyncio.sleep(0.01)
        flask_req = await _ask(ag, cred, vote, key_body)
        return await loop_req, flask_req

    loop_answer, flask_answer = asyncio.run(run())
    assert len(rsa_ops) <= 2
    assert sorted([loop_answer[0], flask_answer[0]]) == [200, 409], (loop_answer[:2], flask_answer[:2])
    assert flask_answer[0] == 200 and loop_answer[0] == 409
    assert _issued(app, s.item_id) == 1
