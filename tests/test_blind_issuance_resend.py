"""A blind signature whose answer was lost (issue 21: a node killed after the count's COMMIT,
a dropped connection, a reload): the tablet sends the very same blinded message again, to
this node or another, and gets the same signature (no second ballot, no second count); any
other blinded message from a member already issued is still refused, a replacement moves the
resend to the new request, and the close leaves no blinded digest behind
(domain/issuance_counts.py)."""
from __future__ import annotations

import asyncio
import json

from asgi_support import call, taught
from helpers_live import setup_sitting
from sqlalchemy import select, update
from sqlalchemy.orm import Session
from terminal_support import cast
from test_ballot_set_tablet import _set_sitting
from test_issue_on_loop import _issued

from ballot_service import create_app
from ballot_service.crypto import tablet
from ballot_service.domain import issuance_counts
from ballot_service.models import Attendance, Issuance, Member, Round
from ballot_service.vocab import Presence
from ballot_service.web import asgi


def _key_and_pending(api, cred):
    """The seat's open vote, its announced key and a fresh blinding (what the seat page keeps)."""
    _, state = api.call("GET", "/api/terminal/state", credential=cred)
    vote = state["vote"]
    pub = tablet.round_key_from_announcement(vote["round_key"], vote["round_ref"], vote["key_fingerprint"])
    return vote, pub, tablet.start(pub, vote["round_ref"])


def _sign(api, cred, pending):
    return api.call("POST", "/api/terminal/blind-sign", {"round_ref": pending.round_ref,
                                                         "blinded_msg": pending.blinded_text},
                    credential=cred, expect=None)


def _digests(app, item_id):
    with Session(app.extensions["ballot_engine"]) as db:
        return db.scalars(select(Issuance.blinded_sha256).join(Round, Round.id == Issuance.round_id)
                          .where(Round.item_id == item_id)).all()


def test_the_same_blinded_message_again_gets_the_same_signature_and_no_second_count(app, api):
    s = setup_sitting(api, members=2)
    cred = s.creds[s.members[0]]
    _, pub, pending = _key_and_pending(api, cred)
    first = _sign(api, cred, pending)
    again = _sign(api, cred, pending)  # the answer to `first` never reached the tablet
    assert first[0] == again[0] == 200 and first[1]["blind_sig"] == again[1]["blind_sig"]
    assert _issued(app, s.item_id) == 1
    other = _sign(api, cred, tablet.start(pub, pending.round_ref))  # a second ballot: refused
    assert other[0] == 409 and "已领取" in other[1]["errors"][0]["message_zh"]
    assert _sign(api, cred, pending)[0] == 200  # the refusal did not move the kept digest
    ballot = tablet.finish(pub, pending, again[1]["blind_sig"])
    status, _ = cast(api, None, ballot, {"motion": "for"}, expect=None)
    assert status in (200, 201)
    assert [d is not None for d in _digests(app, s.item_id)] == [True, False]
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    assert _digests(app, s.item_id) == [None, None]  # nothing of a blinded value outlives the round
    assert _sign(api, cred, pending)[0] == 404  # and a resend after the close is refused
    _, res = api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    assert (res["issued"], res["returned"], res["candidates"][0]["for"]) == (1, 1, 1)


def test_a_resend_that_another_node_answers_on_its_event_loop(app, api, settings_env, tmp_path):
    """Node A counted and committed, its answer was lost; node B (another app on the same
    database, its own process state) signs the same blinded message again on its loop."""
    s = setup_sitting(api, members=2)
    cred = s.creds[s.members[0]]
    node_b = create_app({**settings_env, "BALLOT_INSTANCE_PATH": str(tmp_path / "node-b-instance")})
    node_b.config["TESTING"] = True
    ag_a, ag_b = asgi.create_asgi_app(app, threads=2), asgi.create_asgi_app(node_b, threads=2)
    _, pub, pending = _key_and_pending(api, cred)
    body = {"round_ref": pending.round_ref, "blinded_msg": pending.blinded_text}

    async def run():
        await taught(ag_a, cred)
        lost = await call(ag_a, "POST", "/api/terminal/blind-sign", cred, body)
        await taught(ag_b, cred)
        again = await call(ag_b, "POST", "/api/terminal/blind-sign", cred, body)
        other = await call(ag_b, "POST", "/api/terminal/blind-sign", cred,
                           {**body, "blinded_msg": tablet.start(pub, pending.round_ref).blinded_text})
        return lost, again, other

    try:
        lost, again, other = asyncio.run(run())
    finally:
        node_b.extensions["ballot_engine"].dispose()
    assert lost[0] == again[0] == 200, (lost, again)
    assert json.loads(lost[2])["blind_sig"] == json.loads(again[2])["blind_sig"]
    assert other[0] == 409
    assert _issued(app, s.item_id) == 1
    ballot = tablet.finish(pub, pending, json.loads(again[2])["blind_sig"])
    assert cast(api, None, ballot, {"motion": "against"}, expect=None)[0] in (200, 201)


def test_a_ballot_set_sent_again_gets_the_same_signatures(app, api):
    s, _ = _set_sitting(api)
    cred = s.creds[s.members[0]]
    _, state = api.call("GET", "/api/terminal/state", credential=cred)
    votes = state["vote"]["ballot_set"]
    pendings = [tablet.start(tablet.round_key_from_announcement(v["round_key"], v["round_ref"], v["key_fingerprint"]),
                             v["round_ref"]) for v in votes]
    body = {"ballots": [{"round_ref": p.round_ref, "blinded_msg": p.blinded_text} for p in pendings]}
    first = api.call("POST", "/api/terminal/blind-sign-set", body, credential=cred, expect=None)
    again = api.call("POST", "/api/terminal/blind-sign-set", body, credential=cred, expect=None)
    assert first[0] == again[0] == 200 and first[1]["blind_sigs"] == again[1]["blind_sigs"]
    mixed = {"ballots": [body["ballots"][0], {**body["ballots"][1], "blinded_msg": tablet.start(
        tablet.round_key_from_announcement(votes[1]["round_key"], votes[1]["round_ref"], votes[1]["key_fingerprint"]),
        votes[1]["round_ref"]).blinded_text}]}
    assert api.call("POST", "/api/terminal/blind-sign-set", mixed, credential=cred, expect=None)[0] == 409
    with Session(app.extensions["ballot_engine"]) as db:
        counts = db.scalars(select(Issuance.issued).where(Issuance.terminal_id == s.terminal_ids[s.members[0]])).all()
    assert counts and all(c == 1 for c in counts)


def test_in_one_batch_the_same_request_twice_is_one_count_and_another_is_refused(app, api):
    s = setup_sitting(api, members=2)
    engine = app.extensions["ballot_engine"]
    with Session(engine) as db:
        round_id = db.scalar(select(Round.id).where(Round.item_id == s.item_id))
        member_id = db.scalar(select(Member.id).where(Member.body_id == s.body_id, Member.member_no == s.members[0]))
    mine, theirs = issuance_counts.blinded_digest(b"one blinded value"), issuance_counts.blinded_digest(b"another")

    def job(digest):
        return issuance_counts.IssueJob((round_id,), None, s.sitting_id, s.terminal_ids[s.members[0]], (digest,))

    jobs = [job(mine), job(mine), job(theirs)]
    issuance_counts.run_issue_batch(engine, jobs)
    outcomes = [j.result if j.error is None else j.error.status for j in jobs]
    assert outcomes == [True, True, 409]
    with Session(engine) as db:
        row = db.get(Issuance, (round_id, member_id))
        assert (row.issued, row.blinded_sha256) == (1, mine)


def test_a_resend_from_a_member_marked_absent_since_is_refused_as_absent(app, api):
    s = setup_sitting(api, members=2)
    cred = s.creds[s.members[0]]
    _, _, pending = _key_and_pending(api, cred)
    assert _sign(api, cred, pending)[0] == 200
    with Session(app.extensions["ballot_engine"]) as db:
        db.execute(update(Attendance).where(Attendance.sitting_id == s.sitting_id).values(status=Presence.ABSENT))
        db.commit()
    status, body = _sign(api, cred, pending)
    assert status == 409 and "签到" in body["errors"][0]["message_zh"]


def test_after_a_replacement_only_the_newest_request_is_answered_again(app, api):
    s = setup_sitting(api, members=2)
    cred = s.creds[s.members[0]]
    _, pub, old = _key_and_pending(api, cred)
    assert _sign(api, cred, old)[0] == 200
    api.call("POST", f"/api/admin/items/{s.item_id}/replacement", {"member": s.members[0], "reason": "平板故障"})
    new = tablet.start(pub, old.round_ref)
    first, again = _sign(api, cred, new), _sign(api, cred, new)
    assert first[0] == again[0] == 200 and first[1]["blind_sig"] == again[1]["blind_sig"]
    assert _sign(api, cred, old)[0] == 409  # the replaced tablet's request is not answered again
    assert _issued(app, s.item_id) == 2


def test_after_a_replacement_the_lost_request_sent_again_is_the_replacement(app, api):
    """The secretariat allows a replacement for a deputy whose answer was lost; the old tablet's
    request then arrives again: it is counted as the replacement (one ballot), and a new
    request is refused. A lost answer and a replacement never make two ballots (batch path of
    the event loop and Flask's path alike)."""
    s = setup_sitting(api, members=2)
    cred = s.creds[s.members[0]]
    engine = app.extensions["ballot_engine"]
    _, pub, old = _key_and_pending(api, cred)
    lost = _sign(api, cred, old)[1]["blind_sig"]
    api.call("POST", f"/api/admin/items/{s.item_id}/replacement", {"member": s.members[0], "reason": "平板故障"})
    assert _digests(app, s.item_id) == [None, None]  # the replacement forgets the lost request
    with Session(engine) as db:
        round_id = db.scalar(select(Round.id).where(Round.item_id == s.item_id))
    old_digest = issuance_counts.blinded_digest(old.blinded)
    batch = [issuance_counts.IssueJob((round_id,), None, s.sitting_id, s.terminal_ids[s.members[0]], (old_digest,))]
    issuance_counts.run_issue_batch(engine, batch)  # as the event loop's path submits it
    assert batch[0].result is True and _issued(app, s.item_id) == 2  # counted: it is the replacement
    again = _sign(api, cred, old)  # and now an ordinary resend of it (Flask's path): no count
    assert again[0] == 200 and again[1]["blind_sig"] == lost and _issued(app, s.item_id) == 2
    assert _sign(api, cred, tablet.start(pub, old.round_ref))[0] == 409


def test_a_paper_ballot_allowed_after_a_lost_answer_refuses_the_old_request(app, api):
    """Hybrid vote: the tablet's answer was lost, the deputy is given paper; the old request
    sent again is refused, so the deputy holds one ballot (the paper one), counted twice in I
    as any replacement beside a drawn ballot is."""
    s = setup_sitting(api, members=2, channel="hybrid")
    cred = s.creds[s.members[0]]
    _, _, old = _key_and_pending(api, cred)
    assert _sign(api, cred, old)[0] == 200
    _, given = api.call("POST", f"/api/admin/items/{s.item_id}/replacement",
                        {"member": s.members[0], "reason": "平板未收到选票", "channel": "paper"})
    assert given["ballot"]
    status, body = _sign(api, cred, old)
    assert status == 409 and "已领取" in body["errors"][0]["message_zh"]
    assert _issued(app, s.item_id) == 2
