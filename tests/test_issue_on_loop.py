"""A seat's round key and blind signature answered on the ASGI worker's event loop
(web/issue_on_loop.py) are Flask's answers: the same bytes for the key, a signature that makes
a valid ballot, one count per member, the same refusals. Only a seat whose credential Flask
accepted (its long-poll) is answered there; a revoked terminal, a stale watcher or a body the
loop does not take goes on to Flask."""
from __future__ import annotations

import asyncio
import json

from asgi_support import call, taught
from helpers_live import create_item, setup_sitting
from sqlalchemy import func, select
from sqlalchemy.orm import Session
from terminal_support import get_ballot

from ballot_service.crypto import blind_rsa, tablet
from ballot_service.domain import issuance, issuance_counts
from ballot_service.models import Issuance, Member, Round
from ballot_service.web import asgi, head_watcher


class _Calls:
    """Counts the calls of `module.name` (the real function still runs)."""

    def __init__(self, monkeypatch, module, name: str):
        self.calls = 0
        real = getattr(module, name)

        def counted(*a, **k):
            self.calls += 1
            return real(*a, **k)

        monkeypatch.setattr(module, name, counted)


def _flask_signs(monkeypatch) -> _Calls:
    """Counts the blind signatures Flask's path made."""
    return _Calls(monkeypatch, issuance, "blind_sign_for_terminal")


async def _blind_sign(ag, credential: str, vote: dict, key_body: bytes):
    pub = tablet.round_key_from_announcement(json.loads(key_body), vote["round_ref"], vote["key_fingerprint"])
    pending = tablet.start(pub, vote["round_ref"])
    status, headers, body = await call(ag, "POST", "/api/terminal/blind-sign", credential,
                                        {"round_ref": vote["round_ref"], "blinded_msg": pending.blinded_text})
    return status, headers, body, (lambda: tablet.finish(pub, pending, json.loads(body)["blind_sig"]))


def test_a_taught_seat_gets_its_key_and_signature_on_the_loop_as_from_flask(app, api, monkeypatch):
    s = setup_sitting(api, members=3)
    flask_signs = _flask_signs(monkeypatch)
    ag = asgi.create_asgi_app(app, threads=2)
    first, second = s.creds[s.members[0]], s.creds[s.members[1]]

    async def run():
        flask_key = await call(ag, "GET", "/api/terminal/round-key", first)  # not taught yet: Flask
        vote = (await taught(ag, first))["vote"]
        loop_key = await call(ag, "GET", "/api/terminal/round-key", first)
        status, headers, body, finish = await _blind_sign(ag, first, vote, loop_key[2])
        assert (status, flask_signs.calls) == (200, 0)  # signed on the loop
        ballot = finish()  # unblinds and checks the RSA-PSS signature with the announced key
        cast = await call(ag, "POST", "/api/terminal/cast", None, {
            **ballot, "marks": {"motion": "for"}, "retry_id": tablet.new_retry_id()})
        again = await _blind_sign(ag, first, vote, loop_key[2])
        await taught(ag, second)
        flask_refusal = api.call("POST", "/api/terminal/blind-sign", {"round_ref": vote["round_ref"],
                                 "blinded_msg": tablet.start(tablet.round_key_from_announcement(
                                     json.loads(loop_key[2]), vote["round_ref"], vote["key_fingerprint"]),
                                     vote["round_ref"]).blinded_text}, credential=first, expect=(409,))
        return flask_key, loop_key, headers, cast, again, flask_refusal

    flask_key, loop_key, headers, cast, again, flask_refusal = asyncio.run(run())
    assert loop_key[0] == flask_key[0] == 200 and loop_key[2] == flask_key[2]
    for name in ("content-type", "cache-control", "x-content-type-options"):
        assert loop_key[1][name] == flask_key[1][name] == headers[name]
    assert cast[0] == 201
    # The second request of the same seat goes to Flask, which refuses it (and signs nothing).
    assert again[0] == 409 and flask_signs.calls == 2
    assert json.loads(again[2]) == flask_refusal[1]
    assert "已领取" in flask_refusal[1]["errors"][0]["message_zh"]


def test_an_absent_members_seat_is_refused_as_flask_refuses_it(app, api, monkeypatch):
    s = setup_sitting(api, members=3, present=2)
    absent = s.creds[s.members[2]]
    ag = asgi.create_asgi_app(app, threads=2)

    async def run():
        vote = (await taught(ag, s.creds[s.members[0]]))["vote"]
        key = await call(ag, "GET", "/api/terminal/round-key", s.creds[s.members[0]])
        await taught(ag, absent)
        return vote, key, await _blind_sign(ag, absent, vote, key[2])

    vote, key, (status, _, body, _) = asyncio.run(run())
    pub = tablet.round_key_from_announcement(json.loads(key[2]), vote["round_ref"], vote["key_fingerprint"])
    _, flask = api.call("POST", "/api/terminal/blind-sign", {"round_ref": vote["round_ref"], "blinded_msg":
                        tablet.start(pub, vote["round_ref"]).blinded_text}, credential=absent, expect=(404,))
    assert status == 404 and json.loads(body) == flask


def test_a_revoked_terminal_or_a_stale_watcher_goes_to_flask(app, api, monkeypatch):
    app.config.update(DISPLAY_POLL_SECONDS=0.02)
    s = setup_sitting(api, members=3)
    flask_signs = _flask_signs(monkeypatch)
    ag = asgi.create_asgi_app(app, threads=2)
    revoked, stale = s.creds[s.members[0]], s.creds[s.members[1]]

    async def run():
        vote = (await taught(ag, revoked))["vote"]
        await taught(ag, stale)
        key = await call(ag, "GET", "/api/terminal/round-key", revoked)
        api.call("POST", f"/api/admin/terminals/{s.terminal_ids[s.members[0]]}/revoke", {})
        await asyncio.sleep(0.3)  # the watcher reads the heads every 0.02 s
        refused = await _blind_sign(ag, revoked, vote, key[2])
        key_refused = await call(ag, "GET", "/api/terminal/round-key", revoked)
        monkeypatch.setattr(head_watcher.HeadWatcher, "fresh", lambda self, within=None: False)
        signed = await _blind_sign(ag, stale, vote, key[2])
        return refused, key_refused, signed

    refused, key_refused, signed = asyncio.run(run())
    assert refused[0] == 401 and key_refused[0] == 401  # Flask: the credential was revoked
    assert signed[0] == 200 and flask_signs.calls == 1  # the stale one signed by Flask (the revoked: 401 before)
    signed[3]()


def test_a_body_the_loop_does_not_take_is_answered_by_flask(app, api, monkeypatch):
    s = setup_sitting(api, members=2)
    flask_signs = _flask_signs(monkeypatch)
    ag = asgi.create_asgi_app(app, threads=2)
    cred = s.creds[s.members[0]]

    async def run():
        vote = (await taught(ag, cred))["vote"]
        answers = [await call(ag, "POST", "/api/terminal/blind-sign", cred, body) for body in (
            {"round_ref": vote["round_ref"], "blinded_msg": "AAAA"},  # too short
            {"round_ref": "r999999", "blinded_msg": "AAAA"},  # not an open round
            {"round_ref": vote["round_ref"]},  # no value
            [1, 2])]
        return answers

    answers = asyncio.run(run())
    assert [a[0] for a in answers] == [400, 409, 400, 400], [a[2] for a in answers]
    assert flask_signs.calls == 2  # the two with both fields reached Flask's issuance
    assert json.loads(answers[0][2])["errors"][0]["where"] == "blinded_msg"


def test_a_batch_of_counts_decides_each_job_as_one_at_a_time(app, api):
    """The issuance batch counts a round's jobs with one UPDATE ... RETURNING: a member's second
    job in the same batch, an absent member's seat and a member who drew already are refused
    exactly as one by one, and each member is counted once."""
    s = setup_sitting(api, members=5, present=4)
    get_ballot(api, s.creds[s.members[2]])  # drew already
    engine = app.extensions["ballot_engine"]
    with Session(engine) as db:
        round_id = db.scalar(select(Round.id).where(Round.item_id == s.item_id))
        member_ids = dict(db.execute(select(Member.member_no, Member.id).where(Member.body_id == s.body_id)).all())

    def by_seat(no):
        return issuance_counts.IssueJob((round_id,), None, s.sitting_id, s.terminal_ids[no])

    jobs = [by_seat(s.members[0]), by_seat(s.members[0]),
            issuance_counts.IssueJob((round_id,), member_ids[s.members[1]], s.sitting_id),  # Flask's: member known
            by_seat(s.members[4]),  # absent: no issuance row for the seat
            by_seat(s.members[2]), by_seat(s.members[3])]
    issuance_counts.run_issue_batch(engine, jobs)
    outcomes = [j.result if j.error is None else (j.error.status, j.error.zh) for j in jobs]
    assert outcomes[0] is True and outcomes[2] is True and outcomes[5] is True
    assert outcomes[1][0] == 409 and "已领取" in outcomes[1][1]
    assert outcomes[3][0] == 404
    assert outcomes[4][0] == 409 and "已领取" in outcomes[4][1]
    with Session(engine) as db:
        issued = dict(db.execute(select(Issuance.member_id, Issuance.issued).where(Issuance.round_id == round_id)).all())
    assert issued == {member_ids[no]: 1 for no in s.members[:4]}


def _issued(app, item_id: int) -> int:
    with Session(app.extensions["ballot_engine"]) as db:
        return db.scalar(select(func.sum(Issuance.issued)).join(Round, Round.id == Issuance.round_id)
                         .where(Round.item_id == item_id)) or 0


def _with_a_slow_watcher(app, api):
    """A sitting of three, the ASGI app whose watcher reads the heads once and not again within
    the test, and the first seat's credential."""
    app.config.update(DISPLAY_POLL_SECONDS=30.0)
    s = setup_sitting(api, members=3)
    return s, asgi.create_asgi_app(app, threads=2), s.creds[s.members[0]]


def test_a_terminal_revoked_after_the_snapshot_is_refused_as_by_flask(app, api):
    """Revocation takes effect at once, as on Flask's path: a snapshot read before it (the
    watcher has not yet read the heads that moved) signs nothing for the revoked tablet."""
    s, ag, cred = _with_a_slow_watcher(app, api)

    async def run():
        vote = (await taught(ag, cred))["vote"]
        key = await call(ag, "GET", "/api/terminal/round-key", cred)  # the snapshot: not revoked
        api.call("POST", f"/api/admin/terminals/{s.terminal_ids[s.members[0]]}/revoke", {})
        return await _blind_sign(ag, cred, vote, key[2])

    status, _, body, _ = asyncio.run(run())
    assert status == 401, body
    assert _issued(app, s.item_id) == 0


def test_a_watcher_started_again_after_idling_does_not_serve_an_older_snapshot(app, api):
    """The watcher stops when nobody listens; what changed meanwhile (a vote closed, the next
    opened) is a change for the snapshots when it starts again: the round key is the open one's."""
    app.config.update(DISPLAY_POLL_SECONDS=0.02)
    s = setup_sitting(api, members=3)
    ag = asgi.create_asgi_app(app, threads=2)
    cred = s.creds[s.members[0]]

    async def run():
        await taught(ag, cred)
        first = await call(ag, "GET", "/api/terminal/round-key", cred)
        await asyncio.sleep(0.6)  # nobody listens: the watcher stops after ten readings
        api.call("POST", f"/api/admin/items/{s.item_id}/close")
        api.call("POST", f"/api/admin/items/{create_item(api, s.sitting_id, key='item2')}/open")
        await taught(ag, cred)  # starts the watcher again
        return first, await call(ag, "GET", "/api/terminal/round-key", cred)

    first, now = asyncio.run(run())
    _, flask = api.call("GET", "/api/terminal/round-key", credential=cred)
    assert json.loads(now[2]) == flask != json.loads(first[2])


def test_a_body_flask_refuses_as_too_large_or_malformed_is_refused_on_the_loop_too(app, api):
    """Over the tablets' body limit: the 413 Flask gives (from the ASGI read; no count); a round_ref that is not a
    string: Flask's 400, not an exception out of the loop."""
    s = setup_sitting(api, members=2)
    ag = asgi.create_asgi_app(app, threads=2)
    cred = s.creds[s.members[0]]

    async def run():
        vote = (await taught(ag, cred))["vote"]
        key = await call(ag, "GET", "/api/terminal/round-key", cred)
        pub = tablet.round_key_from_announcement(json.loads(key[2]), vote["round_ref"], vote["key_fingerprint"])
        blinded = tablet.start(pub, vote["round_ref"]).blinded_text
        big = await call(ag, "POST", "/api/terminal/blind-sign", cred, {
            "round_ref": vote["round_ref"], "blinded_msg": blinded, "pad": "x" * (70 * 1024)})
        odd = await call(ag, "POST", "/api/terminal/blind-sign", cred, {"round_ref": [1], "blinded_msg": blinded})
        return big, odd

    big, odd = asyncio.run(run())
    assert big[0] == 413 and _issued(app, s.item_id) == 0
    assert odd[0] == 400 and json.loads(odd[2])["errors"][0]["where"] == "round_ref"


def test_a_round_closed_since_the_snapshot_is_refused_as_by_flask(app, api):
    """The vote closed and the next opened before the watcher read the heads: the loop's count
    refuses the closed round's request, with Flask's answer (the round is not the open one)."""
    s, ag, cred = _with_a_slow_watcher(app, api)

    async def run():
        vote = (await taught(ag, cred))["vote"]
        key = await call(ag, "GET", "/api/terminal/round-key", cred)  # the snapshot: the first vote
        api.call("POST", f"/api/admin/items/{s.item_id}/close")
        api.call("POST", f"/api/admin/items/{create_item(api, s.sitting_id, key='item2')}/open")
        return vote, key, await _blind_sign(ag, cred, vote, key[2])

    vote, key, (status, _, body, _) = asyncio.run(run())
    pub = tablet.round_key_from_announcement(json.loads(key[2]), vote["round_ref"], vote["key_fingerprint"])
    _, flask = api.call("POST", "/api/terminal/blind-sign", {"round_ref": vote["round_ref"], "blinded_msg":
                        tablet.start(pub, vote["round_ref"]).blinded_text}, credential=cred, expect=(404, 409))
    assert json.loads(body) == flask and status == 409


def test_resends_from_one_tablet_cost_no_further_rsa_operation(app, api, monkeypatch):
    """A tablet asking again and again for its signature (a flood from one credential) makes
    one RSA operation: the loop signs a seat's ballot once per change, and Flask refuses a
    member already issued before signing; each resend gets the count's 409."""
    s = setup_sitting(api, members=2)
    rsa_ops = _Calls(monkeypatch, blind_rsa, "blind_sign")  # the server's RSA private operations
    ag = asgi.create_asgi_app(app, threads=2)
    cred = s.creds[s.members[0]]

    async def run():
        vote = (await taught(ag, cred))["vote"]
        key = await call(ag, "GET", "/api/terminal/round-key", cred)
        first = await _blind_sign(ag, cred, vote, key[2])
        resends = [await _blind_sign(ag, cred, vote, key[2]) for _ in range(5)]
        flood = await asyncio.gather(*(_blind_sign(ag, cred, vote, key[2]) for _ in range(10)))
        return first, resends + list(flood)

    first, again = asyncio.run(run())
    assert first[0] == 200 and [a[0] for a in again] == [409] * 15
    assert "已领取" in json.loads(again[0][2])["errors"][0]["message_zh"]
    assert rsa_ops.calls == 1
    assert _issued(app, s.item_id) == 1


def test_flask_refuses_a_member_already_issued_before_signing(app, api, monkeypatch):
    s = setup_sitting(api, members=2)
    cred = s.creds[s.members[0]]
    get_ballot(api, cred)
    rsa_ops = _Calls(monkeypatch, blind_rsa, "blind_sign")  # the server's RSA private operations
    _, state = api.call("GET", "/api/terminal/state", credential=cred)
    vote = state["vote"]
    pub = tablet.round_key_from_announcement(vote["round_key"], vote["round_ref"], vote["key_fingerprint"])
    _, body = api.call("POST", "/api/terminal/blind-sign", {"round_ref": vote["round_ref"], "blinded_msg":
                       tablet.start(pub, vote["round_ref"]).blinded_text}, credential=cred, expect=(409,))
    assert "已领取" in body["errors"][0]["message_zh"] and rsa_ops.calls == 0
