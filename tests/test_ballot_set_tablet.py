"""One tablet ballot for a ballot set (issue 20): the seat state lists every open election of
the set, the tablet takes one blind signature per round in one request (all or none) and
sends the set's casts at once, each its own ballot. The attack: an auditor with the database
or the bundle tries to join one deputy's casts across the set's elections; nothing stored
(serial, signature, prefix, retry hash, receipt, id, order) is shared or in step."""
from __future__ import annotations

import base64
import json

import pypdfium2 as pdfium
import pytest
from bundle_support import export_app_bundle
from helpers_live import setup_sitting
from sqlalchemy import select
from terminal_support import all_casts, query

from ballot_service.crypto import tablet
from ballot_service.models import Issuance, Round

SET = "换届选举"
OFFICES = (("zr", "principal", 1, "AB"), ("fzr", "vice", 2, "CDE"), ("wy", "committee_member", 3, "FGHI"))


def _set_sitting(api, *, members=5, channel="terminal"):
    s = setup_sitting(api, members=members, open_vote=False)
    ids = []
    for key, office, places, cands in OFFICES:
        spec = {"key": key, "kind": "election", "title": f"选举{key}", "office": office, "places": places,
                "channel": channel, "ballot_set": SET,
                "candidates": [{"key": c, "title": f"候选人{c}"} for c in cands]}
        _, item = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items", spec)
        ids.append(item["id"])
    api.call("POST", f"/api/admin/items/{ids[0]}/open")
    return s, ids


def _casts(ballots, marks_each):
    """The set's casts as the seat page sends them: each its own retry id and receipt hash."""
    return [{**b, "marks": m, "retry_id": tablet.new_retry_id(), "receipt_hash": tablet.new_receipt()[1]}
            for b, m in zip(ballots, marks_each)]


MARKS = [{"A": "for", "B": "against"}, {"C": "for", "D": "for", "E": "against"},
         {"F": "for", "G": "for", "H": "against", "I": "for"}]


def test_the_seat_state_lists_the_whole_set_and_one_request_signs_every_round(app, api):
    s, ids = _set_sitting(api)
    cred = s.creds[s.members[0]]
    _, state = api.call("GET", "/api/terminal/state", credential=cred)
    listed = state["vote"]["ballot_set"]
    assert [v["item_id"] for v in listed] == ids and len({v["round_ref"] for v in listed}) == 3
    assert len({v["key_fingerprint"] for v in listed}) == 3            # each round its own key
    assert [v["places"] for v in listed] == [1, 2, 3]
    ballots = tablet.take_set_ballots(api.call, cred)
    status, answer = api.call("POST", "/api/terminal/cast-set", {"casts": _casts(ballots, MARKS)})
    assert status == 201 and len(answer["receipts"]) == 3
    assert len({r["receipt"] for r in answer["receipts"]}) == 3
    # a second request for the set's signatures is refused and takes nothing from any round
    status, err = api.call("POST", "/api/terminal/blind-sign-set", {"ballots": [
        {"round_ref": v["round_ref"], "blinded_msg": "AA"} for v in listed]}, credential=cred, expect=None)
    assert status == 400                                               # (a blinded value of the wrong size)
    for no in s.members[1:]:
        api.call("POST", "/api/terminal/cast-set", {"casts": _casts(tablet.take_set_ballots(api.call, s.creds[no]),
                                                                    MARKS)})
    api.call("POST", f"/api/admin/items/{ids[0]}/close")
    _, result = api.call("POST", f"/api/admin/items/{ids[0]}/tally")
    assert result["elected"] == ["A"] and result["issued"] == result["returned"] == 5
    assert result["ballot_set"]["fzr"]["elected"] == ["C", "D"]
    assert result["ballot_set"]["wy"]["elected"] == ["F", "G", "I"]


def test_the_set_is_signed_all_or_none(app, api):
    s, ids = _set_sitting(api)
    cred = s.creds[s.members[0]]
    _, state = api.call("GET", "/api/terminal/state", credential=cred)
    listed = state["vote"]["ballot_set"]
    # the tablet took the first election's ballot alone (an old page): the set request then
    # finds that round issued and hands out none of the others
    api.call("POST", "/api/terminal/blind-sign", {"round_ref": listed[0]["round_ref"],
                                                  "blinded_msg": _blinded_for(api, cred, listed[0])}, credential=cred)
    status, err = api.call("POST", "/api/terminal/blind-sign-set", {"ballots": [
        {"round_ref": v["round_ref"], "blinded_msg": _blinded_for(api, cred, v)} for v in listed]},
        credential=cred, expect=None)
    assert status == 409 and "已领取" in err["errors"][0]["message_zh"]
    issued = {rid: n for rid, n in query(app, select(Issuance.round_id, Issuance.issued)
                                         .where(Issuance.terminal_id == s.terminal_ids[s.members[0]]))}
    assert sorted(issued.values()) == [0, 0, 1]
    # a round named twice, or a round not open, is refused before anything is signed
    twice = {"ballots": [{"round_ref": listed[1]["round_ref"], "blinded_msg": _blinded_for(api, cred, listed[1])}] * 2}
    assert api.call("POST", "/api/terminal/blind-sign-set", twice, credential=cred, expect=None)[0] == 400
    other = s.creds[s.members[1]]
    status, _ = api.call("POST", "/api/terminal/blind-sign-set", {"ballots": [
        {"round_ref": "r999999", "blinded_msg": _blinded_for(api, other, listed[1])}]}, credential=other, expect=None)
    assert status == 409
    assert not any(n for rid, n in query(app, select(Issuance.round_id, Issuance.issued)
                                         .where(Issuance.terminal_id == s.terminal_ids[s.members[1]])))


def _blinded_for(api, cred, vote) -> str:
    _, ann = api.call("GET", f"/api/terminal/round-key?round_ref={vote['round_ref']}", credential=cred)
    return tablet.start(tablet.round_key_from_announcement(ann, vote["round_ref"], vote["key_fingerprint"]),
                        vote["round_ref"]).blinded_text


def test_a_resent_set_gets_its_receipts_again_and_a_bad_cast_is_named(app, api):
    s, ids = _set_sitting(api)
    body = {"casts": _casts(tablet.take_set_ballots(api.call, s.creds[s.members[0]]), MARKS)}
    _, first = api.call("POST", "/api/terminal/cast-set", body)
    status, again = api.call("POST", "/api/terminal/cast-set", body)
    assert status == 200 and [r["receipt"] for r in again["receipts"]] == [r["receipt"] for r in first["receipts"]]
    ballots = tablet.take_set_ballots(api.call, s.creds[s.members[1]])
    bad = _casts(ballots, MARKS)
    bad[2]["signature"] = bad[1]["signature"]                          # not this round's signature
    status, err = api.call("POST", "/api/terminal/cast-set", {"casts": bad}, expect=None)
    assert status == 403 and err["errors"][0]["reason"] == "forged", err
    assert [("receipt" in r) for r in err["results"]] == [True, True, False]


def test_one_deputys_set_casts_are_not_linkable_in_the_database_or_the_bundle(app, api, tmp_path):
    s, ids = _set_sitting(api, members=6)
    sent = []  # per deputy: the three casts, in the set's order
    for no in s.members:
        casts = _casts(tablet.take_set_ballots(api.call, s.creds[no]), MARKS)
        api.call("POST", "/api/terminal/cast-set", {"casts": casts})
        sent.append(casts)
    rows = all_casts(app)  # the vote is open: sealed (domain/cast_staging.py), opened here
    assert len(rows) == 18 and all(r.member_id is None for r in rows)
    # no stored value of one cast appears in another cast (of the same deputy or anyone's)
    for field in ("id", "serial", "signature", "msg_prefix", "retry_hash", "receipt", "submission_digest"):
        values = [getattr(r, field) for r in rows]
        assert len(set(values)) == len(values), field
    by_serial = {r.serial: r for r in rows}
    for casts in sent:
        mine = [by_serial[c["serial"]] for c in casts]
        for a in mine:
            others = " ".join(json.dumps([b.id, b.serial, b.signature, b.msg_prefix, b.retry_hash, b.receipt,
                                          b.submission_digest]) for b in mine if b is not a)
            assert a.serial not in others and a.msg_prefix not in others and a.id not in others
    # Issuance keeps a count per member and round, never a serial; the blinded value's digest (a
    # lost answer's resend, issuance_counts.py) only while the round is open
    assert {c.name for c in Issuance.__table__.columns} == {"round_id", "member_id", "terminal_id", "issued",
                                                            "allowed", "blinded_sha256"}
    api.call("POST", f"/api/admin/items/{ids[0]}/close")
    closed = query(app, select(Issuance.blinded_sha256).join(Round, Round.id == Issuance.round_id)
                   .where(Round.item_id == ids[0]))
    assert closed and all(row[0] is None for row in closed)
    b = export_app_bundle(app, tmp_path / "bundle")
    files = sorted((b / "ballots").iterdir())
    assert len(files) == 3
    lines = [[json.loads(x) for x in f.read_text("utf-8").splitlines()] for f in files]
    for per_round in lines:  # each round's file is in serial order: its order says nothing
        assert [x["serial"] for x in per_round] == sorted(x["serial"] for x in per_round)
        assert all(set(x) <= {"round_ref", "serial", "prefix", "signature", "marks", "channel"} for x in per_round), \
            per_round[0].keys()
    everything = [x for per_round in lines for x in per_round]
    for x in everything:  # no line carries a value of another line (other than its round's)
        for y in everything:
            if x is not y:
                assert x["serial"] != y["serial"] and x["prefix"] != y["prefix"] and x["signature"] != y["signature"]
    text = "".join(p.read_text("utf-8") for p in b.rglob("*") if p.is_file() and p.suffix in (".json", ".jsonl"))
    for casts in sent:
        for c in casts:
            assert c["retry_id"] not in text  # (the receipts are listed apart, sorted: test_secrecy_bundle)


def test_a_replacement_is_of_the_whole_set(app, api):
    s, ids = _set_sitting(api)
    no = s.members[0]
    tablet.take_set_ballots(api.call, s.creds[no])                     # the tablet broke after this
    with pytest.raises(AssertionError, match="409"):
        tablet.take_set_ballots(api.call, s.creds[no])
    api.call("POST", f"/api/admin/items/{ids[1]}/replacement", {"member": no, "reason": "表决器故障"})
    ballots = tablet.take_set_ballots(api.call, s.creds[no])           # every election's ballot again
    api.call("POST", "/api/terminal/cast-set", {"casts": _casts(ballots, MARKS)})
    issued = [n for (n,) in query(app, select(Issuance.issued).where(Issuance.terminal_id == s.terminal_ids[no]))]
    assert issued == [2, 2, 2]


def test_a_hybrid_sets_paper_ballot_is_of_the_whole_set(app, api):
    s, ids = _set_sitting(api, channel="hybrid")
    no = s.members[0]
    _, answer = api.call("POST", f"/api/admin/items/{ids[2]}/replacement",
                         {"member": no, "reason": "不用表决器", "channel": "paper"})
    allowed = [n for (n,) in query(app, select(Round.paper_allowed).where(Round.item_id.in_(ids)).order_by(Round.id))]
    assert allowed == [1, 1, 1]
    # each election's own round-key ballot, printed at once: one PDF, a page per election
    assert sorted(item_id for item_id, _ in answer["ballots"]) == sorted(ids)
    assert all(text.startswith("BR1.") for _, text in answer["ballots"])
    assert len({text.split(".")[5] for _, text in answer["ballots"]}) == 3          # three rounds
    assert len(pdfium.PdfDocument(base64.urlsafe_b64decode(answer["pdf"] + "=="))) == 3
    with pytest.raises(AssertionError, match="409"):                   # no tablet ballot for any of them now
        tablet.take_set_ballots(api.call, s.creds[no])
    ballots = tablet.take_set_ballots(api.call, s.creds[s.members[1]])  # the others vote on their tablets
    assert api.call("POST", "/api/terminal/cast-set", {"casts": _casts(ballots, MARKS)})[0] == 201
