"""The lost answer's resend (Issuance.blinded_sha256, domain/issuance_counts.py) attacked with
ordinary access: a seat tablet's credential (its own and another seat's), a blinded message
sniffed on the hall network, a secretariat operator, a reader of the database during and after
the vote. The properties held: no member obtains two distinct valid ballots in a round without
a recorded replacement, and `issued` never exceeds the ballots handed out nor lags behind them
(identical resends split between the event loop and Flask, resends racing a replacement and
the close, a ballot set half resent, a blinded value moved to another round, absent then
present, a spare tablet released and checked in at by another deputy); no credential learns
anything of another member from a resend; and the close, on every path, leaves no blinded
digest behind (the rows, and on SQLite the files' bytes). Three of these were findings of the
attack pass, fixed since: a resend answered from its read phase beside a replacement allowed
meanwhile, a count committed after the close on PostgreSQL, and a rebound spare tablet
answered for its old member."""
from __future__ import annotations

import asyncio
import json
import os
import threading
from pathlib import Path

import pytest
from asgi_support import call, taught
from console_support import post
from helpers_live import OPERATOR, setup_sitting
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from test_ballot_set_tablet import _set_sitting

from ballot_service.crypto import blind_rsa, tablet
from ballot_service.domain import issuance_counts, voting
from ballot_service.formats.encoding import b64url_encode
from ballot_service.models import Attendance, Issuance, Member, Round
from ballot_service.vocab import Presence
from ballot_service.web import asgi

ON_POSTGRES = bool(os.environ.get("BALLOT_TEST_DATABASE_URL"))
SIGN, SIGN_SET = "/api/terminal/blind-sign", "/api/terminal/blind-sign-set"


# --- helpers -------------------------------------------------------------------------------

def _votes(api, cred) -> list[dict]:
    """The seat's open vote(s) (a ballot set: each election), each with its announced key `pub`."""
    _, state = api.call("GET", "/api/terminal/state", credential=cred)
    votes = state["vote"].get("ballot_set") or [state["vote"]]
    return [{**v, "pub": tablet.round_key_from_announcement(v["round_key"], v["round_ref"], v["key_fingerprint"])}
            for v in votes]


def _fresh(vote) -> tablet.Pending:
    return tablet.start(vote["pub"], vote["round_ref"])


def _sign(api, cred, ref: str, text: str):
    """Flask's path: (status, JSON)."""
    return api.call("POST", SIGN, {"round_ref": ref, "blinded_msg": text}, credential=cred, expect=None)


def _sign_set(api, cred, parts: list[tuple[str, str]]):
    return api.call("POST", SIGN_SET, {"ballots": [{"round_ref": r, "blinded_msg": t} for r, t in parts]},
                    credential=cred, expect=None)


async def _loop_sign(ag, cred, ref: str, text: str):
    """Through the ASGI app (its event loop first, Flask behind it): (status, JSON or None)."""
    status, _, body = await call(ag, "POST", SIGN, cred, {"round_ref": ref, "blinded_msg": text})
    return status, json.loads(body) if body else None


def _sig(answer) -> str | None:
    return answer[1]["blind_sig"] if answer[0] == 200 else None


def _round_ids(app, item_ids) -> list[int]:
    with Session(app.extensions["ballot_engine"]) as db:
        return list(db.scalars(select(Round.id).where(Round.item_id.in_(item_ids)).order_by(Round.id)))


def _rows(app, item_ids) -> list[tuple]:
    """(round id, member id, issued, allowed, blinded_sha256) of every issuance row of the items."""
    with Session(app.extensions["ballot_engine"]) as db:
        return db.execute(select(Issuance.round_id, Issuance.member_id, Issuance.issued, Issuance.allowed,
                                 Issuance.blinded_sha256).join(Round, Round.id == Issuance.round_id)
                          .where(Round.item_id.in_(item_ids)).order_by(Issuance.round_id, Issuance.member_id)).all()


def _row(app, item_id, member_id) -> tuple:
    return next(r for r in _rows(app, [item_id]) if r[1] == member_id)


def _member_id(app, s, no) -> int:
    with Session(app.extensions["ballot_engine"]) as db:
        return db.scalar(select(Member.id).where(Member.body_id == s.body_id, Member.member_no == no))


def _presence(app, s, no, status) -> None:
    """Set behind the API's back (it refuses a leave during a secret vote)."""
    with Session(app.extensions["ballot_engine"]) as db:
        db.execute(update(Attendance).where(Attendance.sitting_id == s.sitting_id,
                                            Attendance.member_id == _member_id(app, s, no)).values(status=status))
        db.commit()


def _frozen_and_held(app, item_ids) -> list[tuple]:
    """Per round: (Round.issued frozen at the close, sum of Issuance.issued now)."""
    with Session(app.extensions["ballot_engine"]) as db:
        return [(rnd.issued, db.scalar(select(func.coalesce(func.sum(Issuance.issued), 0))
                                       .where(Issuance.round_id == rnd.id)))
                for rnd in db.scalars(select(Round).where(Round.item_id.in_(item_ids)).order_by(Round.id))]


def _valid(vote, pending, blind_sig) -> bool:
    """Whether the answer unblinds to a ballot the round's announced key verifies."""
    try:
        tablet.finish(vote["pub"], pending, blind_sig)
    except Exception:
        return False
    return True


def _close(api, item_id) -> None:
    api.call("POST", f"/api/admin/items/{item_id}/close")


# --- 1. one ballot per member: resends and races -------------------------------------------

def test_identical_first_requests_split_between_loop_and_flask_are_one_ballot(app, api):
    """A tablet whose first answer is slow sends the very same request again many times at
    once: the loop takes one, Flask the others (the count pending or committed). Every answer
    is the same signature and one count is taken."""
    s = setup_sitting(api, members=2)
    cred = s.creds[s.members[0]]
    vote = _votes(api, cred)[0]
    pending = _fresh(vote)
    ag = asgi.create_asgi_app(app, threads=2)

    async def run():
        await taught(ag, cred)
        return await asyncio.gather(*(_loop_sign(ag, cred, vote["round_ref"], pending.blinded_text)
                                      for _ in range(10)))

    answers = asyncio.run(run())
    assert [a[0] for a in answers] == [200] * 10, [a[0] for a in answers]
    assert len({_sig(a) for a in answers}) == 1 and _valid(vote, pending, _sig(answers[0]))
    assert _row(app, s.item_id, _member_id(app, s, s.members[0]))[2:4] == (1, 1)


def test_resends_and_new_requests_racing_on_both_paths_give_one_ballot(app, api):
    """After the first count: identical resends and fresh blinded values at once, split between
    the loop and Flask. The resends get the first signature, every fresh value is refused."""
    s = setup_sitting(api, members=2)
    cred = s.creds[s.members[0]]
    vote = _votes(api, cred)[0]
    first = _fresh(vote)
    ag = asgi.create_asgi_app(app, threads=2)
    fresh = [_fresh(vote) for _ in range(6)]

    async def run():
        await taught(ag, cred)
        answered = await _loop_sign(ag, cred, vote["round_ref"], first.blinded_text)
        await taught(ag, cred)  # a new change would reset the loop's guard; none came: Flask answers
        mixed = [_loop_sign(ag, cred, vote["round_ref"], first.blinded_text) for _ in range(6)]
        mixed += [_loop_sign(ag, cred, vote["round_ref"], p.blinded_text) for p in fresh]
        return answered, await asyncio.gather(*mixed)

    answered, mixed = asyncio.run(run())
    assert answered[0] == 200
    assert [a[0] for a in mixed] == [200] * 6 + [409] * 6, [a[0] for a in mixed]
    assert {_sig(a) for a in mixed[:6]} == {_sig(answered)}
    assert _row(app, s.item_id, _member_id(app, s, s.members[0]))[2] == 1


def test_concurrent_first_requests_with_different_values_hand_out_one_signature(app, api):
    """Two copies of the tablet's page (or an attacker with its credential) race different
    blinded values and duplicates of them: whatever wins, every 200 carries one signature."""
    s = setup_sitting(api, members=2)
    cred = s.creds[s.members[0]]
    vote = _votes(api, cred)[0]
    pendings = [_fresh(vote) for _ in range(4)]
    ag = asgi.create_asgi_app(app, threads=2)

    async def run():
        await taught(ag, cred)
        return await asyncio.gather(*(_loop_sign(ag, cred, vote["round_ref"], p.blinded_text)
                                      for p in pendings * 3))

    answers = asyncio.run(run())
    sigs = {(i % 4, _sig(a)) for i, a in enumerate(answers) if a[0] == 200}
    assert len({sig for _, sig in sigs}) == 1 and len({i for i, _ in sigs}) == 1, [a[0] for a in answers]
    won = next(iter(sigs))
    assert _valid(vote, pendings[won[0]], won[1])
    assert all(a[0] in (200, 409) for a in answers)
    assert _row(app, s.item_id, _member_id(app, s, s.members[0]))[2] == 1


def test_resends_racing_a_replacement_give_no_more_ballots_than_allowed(app, api):
    """The old tablet's answer was lost; the secretariat allows a replacement while the old
    tablet resends and the new tablet asks (each several times). Distinct ballots handed out
    never exceed 1 + replacements, and `issued` never exceeds `allowed`."""
    s = setup_sitting(api, members=2)
    cred = s.creds[s.members[0]]
    vote = _votes(api, cred)[0]
    old, new = _fresh(vote), _fresh(vote)
    ag = asgi.create_asgi_app(app, threads=2)
    ref = vote["round_ref"]

    async def run():
        await taught(ag, cred)
        lost = await _loop_sign(ag, cred, ref, old.blinded_text)
        replacement = asyncio.to_thread(api.call, "POST", f"/api/admin/items/{s.item_id}/replacement",
                                        {"member": s.members[0], "reason": "平板故障"})
        racing = [_loop_sign(ag, cred, ref, (old if i % 2 else new).blinded_text) for i in range(10)]
        answers = await asyncio.gather(replacement, *racing)
        after = [await _loop_sign(ag, cred, ref, p.blinded_text) for p in (old, new, _fresh(vote))]
        return lost, answers[1:], after

    lost, racing, after = asyncio.run(run())
    handed = {_sig(lost)} | {_sig(a) for a in racing + after if a[0] == 200}
    assert handed <= {_sig(lost), _sig_of(vote, new, racing + after)}
    assert len(handed) <= 2
    assert after[2][0] == 409  # a third blinded value: never
    issued, allowed = _row(app, s.item_id, _member_id(app, s, s.members[0]))[2:4]
    assert (issued, allowed) == (2, 2)


def _sig_of(vote, pending, answers):
    """The signature handed out for `pending` among `answers`, if any (checked to unblind)."""
    for a in answers:
        if a[0] == 200 and _valid(vote, pending, _sig(a)):
            return _sig(a)
    return None


@pytest.mark.parametrize("channel", ["terminal", "paper"])
def test_a_resend_read_before_a_further_ballot_is_not_answered_beside_it(app, api, monkeypatch, channel):
    """Deterministic interleaving of the race above on Flask's path: the old tablet's resend
    has read its held digest when the secretariat's replacement (or paper ballot) commits. The
    documented promise: the lost request then counts as the further ballot or is refused, so
    the deputy never holds the lost ballot beside the further one."""
    s = setup_sitting(api, members=2, channel="hybrid" if channel == "paper" else "terminal")
    cred = s.creds[s.members[0]]
    vote = _votes(api, cred)[0]
    old, new = _fresh(vote), _fresh(vote)
    lost = _sign(api, cred, vote["round_ref"], old.blinded_text)
    assert lost[0] == 200  # counted; the answer never reached the tablet
    real, given = blind_rsa.blind_sign, []

    def allow():
        given.append(api.call("POST", f"/api/admin/items/{s.item_id}/replacement",
                              {"member": s.members[0], "reason": "平板未收到选票", "channel": channel})[1])

    def replacement_meanwhile(*a, **k):  # after the resend's read phase, before its answer
        if not given:  # on a thread of its own: a request of its own, as the secretariat's is
            other = threading.Thread(target=allow)
            other.start()
            other.join(60)
        return real(*a, **k)

    monkeypatch.setattr(blind_rsa, "blind_sign", replacement_meanwhile)
    resent = _sign(api, cred, vote["round_ref"], old.blinded_text)
    monkeypatch.setattr(blind_rsa, "blind_sign", real)
    assert given
    further = _sign(api, cred, vote["round_ref"], new.blinded_text) if channel == "terminal" else None
    held = {_sig(resent)} - {None}
    if further is not None and further[0] == 200:
        held.add(_sig(further))
    if channel == "paper":
        held.add(given[0]["ballot"])
    assert len(held) == 1, f"the deputy holds {len(held)} ballots: {resent[0]}, {further and further[0]}"


def test_resends_racing_the_close_are_counted_before_it_or_refused(app, api):
    """Late tablets: one resending its lost answer, another asking for the first time, while
    the secretariat closes. Whatever is answered 200 is in the frozen count; nothing of a
    blinded value is left; a resend after the close is refused."""
    s = setup_sitting(api, members=3)
    a, b = s.creds[s.members[0]], s.creds[s.members[1]]
    vote = _votes(api, a)[0]
    mine, theirs = _fresh(vote), _fresh(vote)
    ag = asgi.create_asgi_app(app, threads=2)
    ref = vote["round_ref"]

    async def run():
        await taught(ag, a)
        await taught(ag, b)
        lost = await _loop_sign(ag, a, ref, mine.blinded_text)
        close = asyncio.to_thread(_close, api, s.item_id)
        racing = [_loop_sign(ag, a, ref, mine.blinded_text) for _ in range(4)]
        racing += [_loop_sign(ag, b, ref, theirs.blinded_text) for _ in range(4)]
        answers = await asyncio.gather(*racing, close)
        late = await _loop_sign(ag, a, ref, mine.blinded_text)
        return lost, answers[:-1], late

    lost, racing, late = asyncio.run(run())
    assert lost[0] == 200 and all(_sig(r) == _sig(lost) for r in racing[:4] if r[0] == 200)
    b_given = any(r[0] == 200 for r in racing[4:])
    assert _frozen_and_held(app, [s.item_id]) == [(1 + b_given, 1 + b_given)]
    assert [r[4] for r in _rows(app, [s.item_id])] == [None] * 3
    assert late[0] == 404


def test_a_count_in_flight_at_the_close_commits_before_it_or_is_refused(app, api):
    """The group commit has taken a count (UPDATE done, COMMIT not yet) when the close runs. The
    close must either wait for it (and freeze it, and clear its digest) or the count must be
    refused: never a digest after the close, never a signature outside the frozen count."""
    s = setup_sitting(api, members=2)
    engine = app.extensions["ballot_engine"]
    (round_id,) = _round_ids(app, [s.item_id])
    digest = issuance_counts.blinded_digest(os.urandom(256))
    job = issuance_counts.IssueJob((round_id,), None, s.sitting_id, s.terminal_ids[s.members[0]], (digest,))
    counted, release, done = threading.Event(), threading.Event(), []

    def count():
        db = Session(engine, expire_on_commit=False)
        try:
            issuance_counts.take_counts(db, [job])
            counted.set()
            release.wait(5)
            db.commit()
        finally:
            db.close()

    def close():
        done.append(api.call("POST", f"/api/admin/items/{s.item_id}/close", expect=None)[0])

    counter = threading.Thread(target=count)
    counter.start()
    assert counted.wait(5)
    closer = threading.Thread(target=close)
    closer.start()
    closer.join(1.0)  # SQLite: waits for the count's write lock; PostgreSQL: nothing to wait for
    release.set()
    counter.join(5)
    closer.join(10)
    assert done == [200]
    [(frozen, held)] = _frozen_and_held(app, [s.item_id])
    assert [r[4] for r in _rows(app, [s.item_id])] == [None, None]
    assert held == frozen == (1 if job.error is None else 0)


def test_a_request_counted_while_the_close_is_in_flight_is_refused(app, api, monkeypatch):
    """The secretariat's close has locked the round and is finishing (opening the sealed casts,
    the chain's checkpoint) when a late tablet's request is counted. The count must see the
    round closed: no signature leaves, no digest is left, and the frozen count is the count."""
    s = setup_sitting(api, members=2)
    cred = s.creds[s.members[0]]
    vote = _votes(api, cred)[0]
    pending = _fresh(vote)
    closing, go, closed, asked = threading.Event(), threading.Event(), [], []
    real = voting.checkpoint_wal_after_commit

    def held(db):  # the close's last step before its COMMIT: the round is locked, still open to others
        closing.set()
        go.wait(5)
        return real(db)

    def ask():
        r = app.test_client().post(SIGN, json={"round_ref": vote["round_ref"], "blinded_msg": pending.blinded_text},
                                   headers={"Authorization": f"Bearer {cred}"})
        asked.append((r.status_code, r.get_json()))

    monkeypatch.setattr(voting, "checkpoint_wal_after_commit", held)
    closer = threading.Thread(target=lambda: closed.append(
        api.call("POST", f"/api/admin/items/{s.item_id}/close", expect=None)[0]))
    closer.start()
    assert closing.wait(5)
    tablet_request = threading.Thread(target=ask)
    tablet_request.start()
    tablet_request.join(0.7)  # SQLite: its count waits for the close's write lock; PostgreSQL: counted
    go.set()
    closer.join(10)
    tablet_request.join(10)
    assert closed == [200]
    assert asked[0][0] == 404, asked  # "no vote is open": nothing signed leaves
    assert [r[4] for r in _rows(app, [s.item_id])] == [None, None]
    assert _frozen_and_held(app, [s.item_id]) == [(0, 0)]


def test_a_ballot_set_half_resent_half_new_is_refused_on_both_paths(app, api):
    """Set [A: a1, B: b1] answered; then [A: a1 (resent), B: b2 (new)], by Flask and by a batch
    job: refused, nothing counted. The resend alone and the set resent are answered again."""
    s, ids = _set_sitting(api)
    cred = s.creds[s.members[0]]
    votes = _votes(api, cred)
    firsts = [_fresh(v) for v in votes]
    first = _sign_set(api, cred, [(p.round_ref, p.blinded_text) for p in firsts])
    assert first[0] == 200
    other = _fresh(votes[1])
    half = [(firsts[0].round_ref, firsts[0].blinded_text), (other.round_ref, other.blinded_text)] + \
        [(p.round_ref, p.blinded_text) for p in firsts[2:]]
    assert _sign_set(api, cred, half)[0] == 409
    rounds = _round_ids(app, ids)
    job = issuance_counts.IssueJob(tuple(rounds), _member_id(app, s, s.members[0]), s.sitting_id,
                                   digests=tuple(issuance_counts.blinded_digest(p.blinded) for p in
                                                 [firsts[0], other, *firsts[2:]]))
    issuance_counts.run_issue_batch(app.extensions["ballot_engine"], [job])
    assert job.error is not None and job.error.status == 409
    alone = _sign(api, cred, firsts[0].round_ref, firsts[0].blinded_text)
    assert alone[0] == 200 and _sig(alone) == first[1]["blind_sigs"][0]
    assert _sign(api, cred, other.round_ref, other.blinded_text)[0] == 409
    again = _sign_set(api, cred, [(p.round_ref, p.blinded_text) for p in firsts])
    assert again[0] == 200 and again[1]["blind_sigs"] == first[1]["blind_sigs"]
    mine = _member_id(app, s, s.members[0])
    assert [r[2] for r in _rows(app, ids) if r[1] == mine] == [1, 1, 1]


def test_a_blinded_value_held_for_one_round_is_no_resend_in_another(app, api):
    """The tablet blinds two ballots of round A (x, y) and sends y as round B's value (B's key
    signs anything below its modulus). If the digest held for B answered y in round A, the
    member would unblind a second ballot of A. Refused on Flask's path and in a batch job."""
    s, ids = _set_sitting(api)
    cred = s.creds[s.members[0]]
    votes = _votes(api, cred)
    a, b = votes[0], votes[1]
    n_b = b["pub"].public_numbers().n
    x = _fresh(a)
    y = next(p for p in (_fresh(a) for _ in range(64)) if int.from_bytes(p.blinded, "big") < n_b)
    rest = [_fresh(v) for v in votes[2:]]
    parts = [(a["round_ref"], x.blinded_text), (b["round_ref"], y.blinded_text)] + \
        [(p.round_ref, p.blinded_text) for p in rest]
    first = _sign_set(api, cred, parts)
    assert first[0] == 200 and _valid(a, x, first[1]["blind_sigs"][0])
    moved = _sign(api, cred, a["round_ref"], y.blinded_text)  # y is held, but for round B
    assert moved[0] == 409, moved
    swapped = _sign_set(api, cred, [(a["round_ref"], y.blinded_text), (b["round_ref"], x.blinded_text)]
                        + [(p.round_ref, p.blinded_text) for p in rest])
    assert swapped[0] == 409
    rounds = _round_ids(app, ids)
    job = issuance_counts.IssueJob((rounds[0],), None, s.sitting_id, s.terminal_ids[s.members[0]],
                                   (issuance_counts.blinded_digest(y.blinded),))
    issuance_counts.run_issue_batch(app.extensions["ballot_engine"], [job])
    assert job.error is not None and job.error.status == 409
    mine = _member_id(app, s, s.members[0])
    assert [r[2] for r in _rows(app, ids) if r[1] == mine] == [1, 1, 1]


def test_the_same_blinded_value_for_a_round_not_yet_drawn_is_a_first_ballot_of_that_round(app, api):
    """Value v signed in round A, then sent for round B (not drawn yet): B's first ballot, with
    B's key (not A's signature again), and v in A still answered again: one each."""
    s, ids = _set_sitting(api)
    cred = s.creds[s.members[0]]
    votes = _votes(api, cred)
    a, b = votes[0], votes[1]
    n_b = b["pub"].public_numbers().n
    v = next(p for p in (_fresh(a) for _ in range(64)) if int.from_bytes(p.blinded, "big") < n_b)
    in_a = _sign(api, cred, a["round_ref"], v.blinded_text)
    in_b = _sign(api, cred, b["round_ref"], v.blinded_text)
    assert in_a[0] == in_b[0] == 200 and _sig(in_a) != _sig(in_b)
    assert _sig(_sign(api, cred, a["round_ref"], v.blinded_text)) == _sig(in_a)
    assert _sig(_sign(api, cred, b["round_ref"], v.blinded_text)) == _sig(in_b)
    assert _sign(api, cred, b["round_ref"], _fresh(b).blinded_text)[0] == 409
    mine = _member_id(app, s, s.members[0])
    assert [r[2] for r in _rows(app, ids) if r[1] == mine] == [1, 1, 0]


def test_mixed_and_foreign_round_refs_take_no_count(app, api):
    """A set naming one round twice, or a round of another sitting (its own tablets' vote, open
    at the same time), on Flask's path and the loop's: refused, and no count in either sitting."""
    s, ids = _set_sitting(api)
    t = setup_sitting(api, members=2)  # another body's sitting, its vote open too
    cred = s.creds[s.members[0]]
    votes = _votes(api, cred)
    foreign = _votes(api, t.creds[t.members[0]])[0]
    p = _fresh(votes[0])
    twice = _sign_set(api, cred, [(p.round_ref, p.blinded_text), (p.round_ref, _fresh(votes[0]).blinded_text)])
    assert twice[0] == 400
    f = _fresh(foreign)
    assert _sign_set(api, cred, [(p.round_ref, p.blinded_text), (f.round_ref, f.blinded_text)])[0] == 409
    assert _sign(api, cred, f.round_ref, f.blinded_text)[0] == 409
    ag = asgi.create_asgi_app(app, threads=2)

    async def run():
        await taught(ag, cred)
        await taught(ag, t.creds[t.members[0]])
        return await _loop_sign(ag, cred, f.round_ref, f.blinded_text)

    assert asyncio.run(run())[0] == 409
    assert all(r[2] == 0 and r[4] is None for r in _rows(app, ids + [t.item_id]))


def test_a_resend_while_absent_then_present_again_is_the_same_ballot(app, api):
    """Marked absent after drawing: every request refused as absent (a resend too). Present
    again: the resend is answered the same signature, anything else refused, on both paths."""
    s = setup_sitting(api, members=2)
    cred = s.creds[s.members[0]]
    vote = _votes(api, cred)[0]
    mine, other = _fresh(vote), _fresh(vote)
    ref = vote["round_ref"]
    ag = asgi.create_asgi_app(app, threads=2)

    async def run():
        await taught(ag, cred)
        first = await _loop_sign(ag, cred, ref, mine.blinded_text)
        _presence(app, s, s.members[0], Presence.ABSENT)
        absent = [await _loop_sign(ag, cred, ref, p.blinded_text) for p in (mine, other)]
        _presence(app, s, s.members[0], Presence.PRESENT)
        await taught(ag, cred)
        back = [await _loop_sign(ag, cred, ref, p.blinded_text) for p in (mine, other)]
        return first, absent, back

    first, absent, back = asyncio.run(run())
    assert first[0] == 200
    assert [a[0] for a in absent] == [409, 409]
    assert all("签到" in a[1]["errors"][0]["message_zh"] for a in absent)
    assert back[0][0] == 200 and _sig(back[0]) == _sig(first) and back[1][0] == 409
    flask_again = _sign(api, cred, ref, mine.blinded_text)
    assert _sig(flask_again) == _sig(first) and _sign(api, cred, ref, other.blinded_text)[0] == 409
    assert _row(app, s.item_id, _member_id(app, s, s.members[0]))[2:4] == (1, 1)


def test_a_spare_tablet_released_and_rebound_during_the_vote_gets_no_answer_for_its_old_member(app, api):
    """M0002 drew at a spare tablet, the answer was lost; the secretariat releases the spare and
    M0003 (absent at the opening: no ballot in this round) checks in there. The tablet's kept
    request, sent again, must not hand M0002's ballot to the tablet now serving M0003."""
    s = setup_sitting(api, members=3, present=1, open_vote=False)
    for no in ("M0002", "M0003"):  # their seat tablets broke
        api.call("POST", f"/api/admin/terminals/{s.terminal_ids[no]}/revoke")
    _, terms = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/terminals",
                        {"terminals": [{"name": "备用表决器", "kind": "seat"}]})
    spare = terms["terminals"][0]
    cred = spare["credential"]
    api.call("POST", "/api/terminal/checkin", {"member": "M0002"}, credential=cred)
    api.call("POST", f"/api/admin/items/{s.item_id}/open", {"override_reason": "M0003 on paper"})
    vote = _votes(api, cred)[0]
    kept = _fresh(vote)
    assert _sign(api, cred, vote["round_ref"], kept.blinded_text)[0] == 200  # answer lost
    api.call("POST", f"/api/admin/terminals/{spare['id']}/release")
    _, checked = api.call("POST", "/api/terminal/checkin", {"member": "M0003"}, credential=cred)
    assert checked["member"]["member_no"] == "M0003"
    again = _sign(api, cred, vote["round_ref"], kept.blinded_text)
    assert again[0] != 200, "M0002's ballot answered to the tablet now serving M0003"


# --- 2. no oracle: a resend tells nothing about another member ------------------------------

def test_another_seat_sending_a_sniffed_blinded_value_learns_nothing_of_its_owner(app, api, monkeypatch):
    """Seat A drew with value v (sniffed). Seats that already drew send v, and a never-signed
    value w: the same refusal, byte for byte, on Flask's path and the loop's, with no RSA
    operation on Flask's (no timing either). A's row is untouched and A's resend still works."""
    s = setup_sitting(api, members=5)
    a, b1, b2, c1, c2 = (s.creds[no] for no in s.members)
    vote = _votes(api, a)[0]
    ref = vote["round_ref"]
    v = _fresh(vote)
    a_first = _sign(api, a, ref, v.blinded_text)
    for cred in (b1, b2):
        assert _sign(api, cred, ref, _fresh(vote).blinded_text)[0] == 200
    w = _fresh(vote)
    rsa_ops = []
    real = blind_rsa.blind_sign
    monkeypatch.setattr(blind_rsa, "blind_sign", lambda *x, **k: rsa_ops.append(1) or real(*x, **k))
    client = api.client
    sniffed = client.post(SIGN, json={"round_ref": ref, "blinded_msg": v.blinded_text},
                          headers={"Authorization": f"Bearer {b1}"})
    unknown = client.post(SIGN, json={"round_ref": ref, "blinded_msg": w.blinded_text},
                          headers={"Authorization": f"Bearer {b1}"})
    assert (sniffed.status_code, sniffed.data) == (unknown.status_code, unknown.data) and sniffed.status_code == 409
    assert rsa_ops == []
    monkeypatch.setattr(blind_rsa, "blind_sign", real)
    ag = asgi.create_asgi_app(app, threads=2)

    async def run():  # each seat's first request on this worker's loop
        for cred in (b1, b2, c1, c2):
            await taught(ag, cred)
        drawn = [await call(ag, "POST", SIGN, cred, {"round_ref": ref, "blinded_msg": t.blinded_text})
                 for cred, t in ((b1, v), (b2, w))]
        fresh = [await call(ag, "POST", SIGN, cred, {"round_ref": ref, "blinded_msg": t.blinded_text})
                 for cred, t in ((c1, v), (c2, w))]
        return drawn, fresh

    drawn, fresh = asyncio.run(run())
    assert (drawn[0][0], drawn[0][2]) == (drawn[1][0], drawn[1][2]) and drawn[0][0] == 409
    # Seats not yet drawn: both given (each spends its own ballot), whether or not v was A's.
    assert fresh[0][0] == fresh[1][0] == 200
    assert sorted(fresh[0][1]) == sorted(fresh[1][1])  # the same headers either way
    assert _sig(_sign(api, a, ref, v.blinded_text)) == _sig(a_first)
    for no, want in zip(s.members, (1, 1, 1, 1, 1)):
        assert _row(app, s.item_id, _member_id(app, s, no))[2] == want


def test_no_credential_or_a_revoked_one_learns_whether_a_value_was_signed(app, api):
    """Someone with only the sniffed value: no credential, a made-up one, or seat A's credential
    after the secretariat revoked it: 401, the same for a signed and a never-signed value."""
    s = setup_sitting(api, members=3)
    a = s.creds[s.members[0]]
    vote = _votes(api, a)[0]
    v, w = _fresh(vote), _fresh(vote)
    assert _sign(api, a, vote["round_ref"], v.blinded_text)[0] == 200
    api.call("POST", f"/api/admin/terminals/{s.terminal_ids[s.members[0]]}/revoke")
    client = api.client
    for cred in (None, "x" * 43, a):
        answers = [client.post(SIGN, json={"round_ref": vote["round_ref"], "blinded_msg": p.blinded_text},
                               headers={"Authorization": f"Bearer {cred}"} if cred else {}) for p in (v, w)]
        assert answers[0].status_code == answers[1].status_code == 401
        assert answers[0].data == answers[1].data
    ag = asgi.create_asgi_app(app, threads=2)

    async def run():  # the loop's path: a revoked seat goes to Flask, which refuses it
        return [await call(ag, "POST", SIGN, a, {"round_ref": vote["round_ref"], "blinded_msg": p.blinded_text})
                for p in (v, w)]

    loop = asyncio.run(run())
    assert loop[0][0] == loop[1][0] == 401 and loop[0][2] == loop[1][2]


# --- 3. nothing left after the close -------------------------------------------------------

def test_a_ballot_set_closed_together_leaves_no_digest_in_any_round(app, api):
    s, ids = _set_sitting(api)
    for no in s.members[:3]:
        tablet.take_set_ballots(api.call, s.creds[no])
    assert sum(r[4] is not None for r in _rows(app, ids)) == 9
    _close(api, ids[1])  # any election of the set closes them all
    assert all(r[4] is None for r in _rows(app, ids))
    assert [f == h for f, h in _frozen_and_held(app, ids)] == [True] * 3


def test_the_consoles_close_of_a_set_leaves_no_digest(app, api):
    s, ids = _set_sitting(api)
    for no in s.members[:2]:
        tablet.take_set_ballots(api.call, s.creds[no])
    console = app.test_client()
    r = post(console, "/login", {"username": OPERATOR[0], "password": OPERATOR[1]})
    assert r.status_code == 302
    r = post(console, f"/console/items/{ids[2]}/close")
    assert r.status_code in (200, 302)
    assert all(r[4] is None for r in _rows(app, ids))
    assert _round_ids(app, ids) and all(f == h for f, h in _frozen_and_held(app, ids))


def test_a_hybrid_close_after_paper_and_a_replacement_leaves_no_digest(app, api):
    """Hybrid vote: one deputy drew then had a replacement and drew again, another drew then
    was given paper: the close clears every row."""
    s = setup_sitting(api, members=3, channel="hybrid")
    a, b = s.creds[s.members[0]], s.creds[s.members[1]]
    vote = _votes(api, a)[0]
    assert _sign(api, a, vote["round_ref"], _fresh(vote).blinded_text)[0] == 200
    api.call("POST", f"/api/admin/items/{s.item_id}/replacement", {"member": s.members[0], "reason": "故障"})
    assert _sign(api, a, vote["round_ref"], _fresh(vote).blinded_text)[0] == 200
    assert _sign(api, b, vote["round_ref"], _fresh(vote).blinded_text)[0] == 200
    api.call("POST", f"/api/admin/items/{s.item_id}/replacement",
             {"member": s.members[1], "reason": "平板未收到选票", "channel": "paper"})
    assert sum(r[4] is not None for r in _rows(app, [s.item_id])) == 1
    _close(api, s.item_id)
    assert all(r[4] is None for r in _rows(app, [s.item_id]))


@pytest.mark.skipif(ON_POSTGRES, reason="SQLite's files; PostgreSQL keeps dead row versions (README)")
def test_after_the_close_no_digest_is_in_the_sqlite_files(app, api):
    """A reader of the database files after the vote (a copy, a backup): none of the digests
    held during the vote (one replaced by a replacement, the others until the close) is left in
    the main file or the WAL."""
    s = setup_sitting(api, members=3)
    held = []
    for no in s.members:
        cred = s.creds[no]
        vote = _votes(api, cred)[0]
        p = _fresh(vote)
        assert _sign(api, cred, vote["round_ref"], p.blinded_text)[0] == 200
        held.append(issuance_counts.blinded_digest(p.blinded))
    api.call("POST", f"/api/admin/items/{s.item_id}/replacement", {"member": s.members[0], "reason": "故障"})
    vote = _votes(api, s.creds[s.members[0]])[0]
    p = _fresh(vote)
    assert _sign(api, s.creds[s.members[0]], vote["round_ref"], p.blinded_text)[0] == 200
    held.append(issuance_counts.blinded_digest(p.blinded))
    _close(api, s.item_id)
    path = Path(app.extensions["ballot_engine"].url.database)
    files = [f for f in (path, Path(f"{path}-wal")) if f.exists()]
    content = b"".join(f.read_bytes() for f in files)
    left = [d.hex()[:12] for d in held if d in content or b64url_encode(d).encode() in content]
    assert left == [], f"digests still in {[f.name for f in files]}: {left}"
