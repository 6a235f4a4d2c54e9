"""Which vote a refused ballot is counted on (Flask test client): a paper ballot naming another
body's item (wrong_item), another session or an unknown item or round (unknown, on the session's
current vote); a terminal ballot of an earlier round replaced by a runoff (wrong_round, whatever
is open), a straggler of a closed vote (late); the audit events name the same rounds, and the
offline verifier agrees. (A terminal ballot names only its round, by round_ref: one naming no
round of the service is test_intake.py's.)"""
from __future__ import annotations

import json

from bundle_support import export_app_bundle
from helpers_live import create_item, setup_sitting
from sqlalchemy import select
from terminal_support import (
    assert_error_shape,
    cast,
    events,
    get_ballot,
    n_casts,
    refusals,
    refusals_of_round,
    refused_event_rounds,
    round_ids,
)

from ballot_service.bundle.verify import verify_bundle
from ballot_service.crypto import keys
from ballot_service.domain import round_facts
from ballot_service.formats import ballots
from ballot_service.models import Round


def paper(api, s, text, marks, expect=None):
    """A returned paper ballot at the session's counting station (POST /api/station/paper)."""
    return api.call("POST", "/api/station/paper", {"ballot": text, "marks": marks}, credential=s.station,
                    expect=expect)


def _body_key(app, body_id: int):
    st = app.config["SETTINGS"]
    return keys.load_key(st.keys_dir, keys.body_key_name(body_id), st.key_passphrase)


def test_wrong_item_is_refused_and_counted(app, api):
    s = setup_sitting(api, members=3, channel="paper")
    key = _body_key(app, s.body_id)
    _, printed = api.call("POST", f"/api/admin/items/{s.item_id}/paper-ballots", {"count": 1})
    (own,) = printed["ballots"]
    api.call("POST", "/api/station/hand-out", {"ballots": [own]}, credential=s.station)
    # Genuinely signed by this body's key, but naming another body.
    token = ballots.make_token(key, s.body_id + 1, s.sitting_id, s.item_id, 1)
    text = ballots.token_to_text(token)
    status, data = paper(api, s, text, {"motion": "for"})
    assert status == 403, data
    assert assert_error_shape(data, "BallotRefused")["reason"] == "wrong_item"
    assert refusals(app, s.item_id)["wrong_item"] == 1

    # A ballot of an earlier item of the session, returned during the next vote.
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    item2 = create_item(api, s.sitting_id, key="item2")
    api.call("POST", f"/api/admin/items/{item2}/open")
    status, data = paper(api, s, own, {"motion": "for"})
    # Its round is still item 1's current round (no runoff replaced it): a straggler of that
    # vote, late, and counted there, not on item 2's vote.
    assert status == 409, data
    assert assert_error_shape(data, "BallotRefused")["reason"] == "late"
    assert refusals(app, s.item_id)["late"] == 1 and sum(refusals(app, item2).values()) == 0
    assert sum(refusals(app).values()) == 2
    assert n_casts(app) == 0
    # A member's terminal ballot for item2 is good.
    cred = s.creds[s.members[0]]
    assert cast(api, cred, get_ballot(api, cred), {"motion": "for"})[0] == 201


def test_ballot_of_another_session_is_refused(app, api):
    s = setup_sitting(api, members=3, channel="paper")
    key = _body_key(app, s.body_id)
    other = ballots.token_to_text(ballots.make_token(key, s.body_id, s.sitting_id + 1, s.item_id, 1))
    status, data = paper(api, s, other, {"motion": "for"})
    assert status == 403, data
    assert assert_error_shape(data, "BallotRefused")["reason"] == "unknown"
    assert [json.loads(e.data)["reason"] for e in events(app, "cast_refused")] == ["unknown"]
    assert n_casts(app) == 0
    # It names no round of this session, so it is counted on the vote in progress (and its
    # event names that round, so the audit bundle's counts match the log).
    (r1,) = round_ids(app, s.item_id)
    assert refusals_of_round(app, r1)["unknown"] == 1
    assert refused_event_rounds(app) == [(r1, "unknown")]


def test_unknown_ballots_are_counted_on_the_sessions_current_vote(app, api):
    s = setup_sitting(api, members=3, open_vote=False, channel="paper")
    key = _body_key(app, s.body_id)

    def unknown(item, round_no, session=s.sitting_id):
        text = ballots.token_to_text(ballots.make_token(key, s.body_id, session, item, round_no))
        status, data = paper(api, s, text, {"motion": "for"})
        assert status == 403 and data["errors"][0]["reason"] == "unknown", data

    # No vote opened yet in this session: nothing to count it on; audited only.
    unknown(s.item_id + 50, 1)
    assert refused_event_rounds(app) == [(None, "unknown")]
    assert sum(refusals(app).values()) == 0
    api.call("POST", f"/api/admin/items/{s.item_id}/open")
    (r1,) = round_ids(app, s.item_id)
    unknown(s.item_id + 50, 1)  # an item this session does not have
    unknown(s.item_id, 7)  # a round item 1 does not have (genuinely signed)
    unknown(s.item_id, 1, session=s.sitting_id + 3)  # another session
    assert refusals_of_round(app, r1)["unknown"] == 3
    # After the close, the session's current vote is still the one opened last.
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    unknown(s.item_id + 50, 1)
    assert refusals_of_round(app, r1)["unknown"] == 4
    item2 = create_item(api, s.sitting_id, key="item2", channel="paper")
    api.call("POST", f"/api/admin/items/{item2}/open")
    (r2,) = round_ids(app, item2)
    unknown(s.item_id + 50, 1)
    assert refusals_of_round(app, r2)["unknown"] == 1 and refusals_of_round(app, r1)["unknown"] == 4
    assert refused_event_rounds(app) == [(None, "unknown")] + [(r1, "unknown")] * 4 + [(r2, "unknown")]
    # Malformed text is not a ballot: audited, counted nowhere.
    status, data = paper(api, s, "BS1.x.y", {"motion": "for"})
    assert status == 400 and data["errors"][0]["reason"] == "malformed"
    assert refused_event_rounds(app)[-1] == (None, "malformed")
    assert sum(refusals(app).values()) == 5
    assert n_casts(app) == 0


def test_wrong_round_is_refused_and_counted(app, api):
    cands = [{"key": k, "title": f"项目{k}"} for k in "abc"]
    s = setup_sitting(api, members=3, kind="livelihood_projects", candidates=cands, places=2)
    texts = {}
    for no, marks in zip(s.members, ({"a": "for", "b": "for"}, {"a": "for", "c": "for"},
                                     {"b": "for", "c": "for"})):
        texts[no] = get_ballot(api, s.creds[no])
        assert cast(api, s.creds[no], texts[no], marks)[0] == 201
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    _, result = api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    assert result["status"] == "runoff_pending", result
    _, opened = api.call("POST", f"/api/admin/items/{s.item_id}/open")
    assert opened["round"] == 2
    no = s.members[0]
    before = sum(refusals(app, s.item_id).values())
    status, data = cast(api, s.creds[no], texts[no], {"a": "for"})
    # Round 1 was replaced by the runoff: not late (that would be a straggler of the current
    # round) but a ballot of the wrong round, counted on the round it names (round 1).
    assert status == 403, data
    assert assert_error_shape(data, "BallotRefused")["reason"] == "wrong_round"
    assert sum(refusals(app, s.item_id).values()) == before + 1
    r1, r2 = round_ids(app, s.item_id)
    assert refusals_of_round(app, r1)["wrong_round"] == 1 and sum(refusals_of_round(app, r2).values()) == 0
    assert refused_event_rounds(app)[-1] == (r1, "wrong_round")
    assert n_casts(app) == 3
    round2 = get_ballot(api, s.creds[no])
    assert round2["round_ref"] == f"r{r2}" != texts[no]["round_ref"]
    assert cast(api, s.creds[no], round2, {"a": "for"})[0] == 201


def _runoff_item(api, s, key: str) -> tuple[int, dict]:
    """An item whose round 1 ties at the cut-off (runoff pending); returns it and each
    present member's round-1 ballot text."""
    cands = [{"key": k, "title": f"项目{k}"} for k in "abc"]
    item = create_item(api, s.sitting_id, kind="livelihood_projects", candidates=cands, places=2, key=key)
    api.call("POST", f"/api/admin/items/{item}/open")
    texts = {}
    for no, marks in zip(s.members, ({"a": "for", "b": "for"}, {"a": "for", "c": "for"},
                                     {"b": "for", "c": "for"})):
        texts[no] = get_ballot(api, s.creds[no])
        assert cast(api, s.creds[no], texts[no], marks)[0] == 201
    api.call("POST", f"/api/admin/items/{item}/close")
    _, result = api.call("POST", f"/api/admin/items/{item}/tally")
    assert result["status"] == "runoff_pending", result
    return item, texts


def test_superseded_round_is_wrong_round_whatever_is_open(app, api, tmp_path):
    s = setup_sitting(api, members=3, open_vote=False)
    item, texts = _runoff_item(api, s, "projects")
    r1, r2 = round_ids(app, item)
    no = s.members[1]

    def replay(expect_reason):
        status, data = cast(api, s.creds[no], texts[no], {"a": "for"})
        assert data["errors"][0]["reason"] == expect_reason, data
        return status

    # The runoff exists but has not opened: round 1 is no longer its item's current round.
    assert replay("wrong_round") == 403
    # During another item's vote, and during the runoff itself: still wrong_round, on round 1.
    other = create_item(api, s.sitting_id, key="motion")
    api.call("POST", f"/api/admin/items/{other}/open")
    assert replay("wrong_round") == 403
    api.call("POST", f"/api/admin/items/{other}/close")
    api.call("POST", f"/api/admin/items/{item}/open")
    assert replay("wrong_round") == 403
    assert refusals_of_round(app, r1)["wrong_round"] == 3
    assert sum(refusals_of_round(app, r2).values()) == 0
    assert sum(refusals(app, other).values()) == 0
    # The runoff's own ballot, after the runoff closed, is late (its round is current).
    runoff = get_ballot(api, s.creds[no])
    api.call("POST", f"/api/admin/items/{item}/close")
    status, data = cast(api, s.creds[no], runoff, {"a": "for"})
    assert status == 409 and data["errors"][0]["reason"] == "late", data
    assert refusals_of_round(app, r2)["late"] == 1
    assert n_casts(app) == 3  # the round-1 casts only

    # Counted where the event log says: the offline verifier agrees.
    bundle = export_app_bundle(app, tmp_path / "bundle")
    assert verify_bundle(bundle)["ok"]


def test_a_ballot_naming_a_draft_round_leaves_no_cached_facts(app, api):
    """A draft's round may still be edited (its candidates) or deleted, so a ballot naming it
    (refused: the vote has not opened) must not leave its facts in the process's cache, which
    every later cast of that round in this process would be checked against."""
    s = setup_sitting(api, members=2)
    draft = create_item(api, s.sitting_id, key="draft")
    db = app.extensions["ballot_sessionmaker"]()
    ref = db.scalar(select(Round).where(Round.item_id == draft)).ref
    db.close()
    ballot = {**get_ballot(api, s.creds[s.members[0]]), "round_ref": ref}
    status, _ = cast(api, None, ballot, {"motion": "for"}, expect=None)
    assert status in (403, 409), status
    engine = app.extensions["ballot_engine"]
    assert round_facts.known(engine, (s.sitting_id, draft, 1)) is None
    cast(api, None, get_ballot(api, s.creds[s.members[1]]), {"motion": "for"})  # an open round's are kept
    assert round_facts.known(engine, (s.sitting_id, s.item_id, 1)) is not None
