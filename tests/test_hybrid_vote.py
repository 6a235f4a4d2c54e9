"""The hybrid channel (issue #18 item 5): tablets and paper in one round. A paper ballot is
handed out only after the secretariat allows it for a named member with a reason (a further
issuance, I+1, for a member who holds a tablet ballot); the tablet then draws no second
signature; intake takes both kinds; R = tablet + paper; the record and the 宣布稿 say how many
came by each channel."""
from __future__ import annotations

import base64
import json
import shutil

import pytest
from bundle_support import export_app_bundle, rewrite_manifest
from click.testing import CliRunner
from helpers_live import blind_ballot, create_item, setup_sitting, vote
from sqlalchemy import select, update
from terminal_support import assert_error_shape, events

from ballot_service.bundle.encoding import pretty_json
from ballot_service.bundle.errors import BundleInvalid
from ballot_service.bundle.verify import verify_bundle
from ballot_service.cli import main
from ballot_service.crypto import tablet
from ballot_service.models import Record, Round
from ballot_service.render.announcement import announcement


def _allow_paper(api, item_id, member, reason="平板故障", expect=None):
    return api.call("POST", f"/api/admin/items/{item_id}/replacement",
                    {"member": member, "reason": reason, "channel": "paper"}, expect=expect)


def test_no_paper_ballot_exists_but_the_ones_the_secretariat_allowed(api, app):
    """No stack is pre-printed for a hybrid vote (its serials would be stored and the handed-out
    ones would be the paper casts): each paper ballot is printed, signed with the round's key,
    when the secretariat allows it for a member; nobody gets paper beside a tablet ballot
    without a replacement, and there is no desk step."""
    s = setup_sitting(api, members=3, channel="hybrid")
    status, data = api.call("POST", f"/api/admin/items/{s.item_id}/paper-ballots", {"count": 3}, expect=None)
    assert status == 400 and data["errors"][0]["where"] == "item"
    assert_error_shape(data)
    _, allowed = _allow_paper(api, s.item_id, s.members[0])
    text = allowed["ballot"]
    assert text.startswith("BR1.") and base64.urlsafe_b64decode(allowed["pdf"] + "==").startswith(b"%PDF")
    status, data = api.call("POST", "/api/station/hand-out", {"ballots": [text]}, credential=s.station,
                            expect=None)
    assert status == 400  # no desk step: the ballot is the member's already
    # a ballot signed with the round's key but with an edited serial is forged; one of another round unknown
    parts = text.split(".")
    for bad, reason in ((".".join(parts[:6] + ["0" * 32] + parts[7:]), "forged"),
                        (".".join(parts[:5] + [str(int(parts[5]) + 7)] + parts[6:]), "unknown")):
        status, data = api.call("POST", "/api/station/paper", {"ballot": bad, "marks": {"motion": "for"}},
                                credential=s.station, expect=None)
        assert status == 403 and data["errors"][0]["reason"] == reason, data
    api.call("POST", "/api/station/paper", {"ballot": text, "marks": {"motion": "for"}}, credential=s.station,
             expect=(201,))
    # the same ballot again with the same marks is a rescan; with other marks, refused
    assert api.call("POST", "/api/station/paper", {"ballot": text, "marks": {"motion": "for"}},
                    credential=s.station, expect=None)[0] == 200
    assert api.call("POST", "/api/station/paper", {"ballot": text, "marks": {"motion": "against"}},
                    credential=s.station, expect=None)[0] == 409
    # not a tablet's cast either: the tablet path refuses a paper ballot (its serial's paper mark)
    token = text.split(".")
    status, _ = api.call("POST", "/api/terminal/cast", {"round_ref": f"r{token[5]}", "serial": token[6],
                                                        "prefix": token[7], "signature": token[8],
                                                        "marks": {"motion": "against"},
                                                        "retry_id": tablet.new_retry_id()}, expect=None)
    assert status == 400


def test_a_member_allowed_paper_draws_no_tablet_signature(api):
    s = setup_sitting(api, members=3, channel="hybrid")
    no = s.members[1]
    _allow_paper(api, s.item_id, no, reason="平板无法开机")  # had not drawn: the ballot moves to paper
    status, _ = api.call("POST", "/api/terminal/blind-sign", {"round_ref": "r1", "blinded_msg": "AA"},
                         credential=s.creds[no], expect=None)
    assert status in (400, 409)
    try:
        blind_ballot(api, s.creds[no])
        drew = True
    except AssertionError:
        drew = False
    assert not drew


def test_paper_is_refused_on_other_channels_and_a_hybrid_vote_is_secret(api):
    s = setup_sitting(api, members=3, channel="terminal")
    status, data = _allow_paper(api, s.item_id, s.members[0])
    assert status == 409
    status, data = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items",
                            {"key": "named", "kind": "resolution", "title": "记名", "secret": False,
                             "channel": "hybrid"}, expect=None)
    assert status == 400 and data["errors"][0]["where"] == "channel"
    status, data = _allow_paper(api, s.item_id, s.members[0], reason="  ")
    assert status == 400


def _hybrid_vote(api, s):
    """3 vote on their tablets; the 4th's tablet fails after drawing its ballot; paper replaces it."""
    for no in s.members[:3]:
        vote(api, s.creds[no], {"motion": "for"})
    blind_ballot(api, s.creds[s.members[3]])
    text = _allow_paper(api, s.item_id, s.members[3], reason="平板故障，改投纸质票")[1]["ballot"]
    api.call("POST", "/api/station/paper", {"ballot": text, "marks": {"motion": "against"}},
             credential=s.station, expect=(201,))
    return text


def test_a_hybrid_bundle_verifies_and_its_split_is_checked(api, app, tmp_path):
    s = setup_sitting(api, members=4, channel="hybrid")
    _hybrid_vote(api, s)
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    api.call("POST", f"/api/admin/items/{s.item_id}/record")
    b = export_app_bundle(app, tmp_path / "bundle")
    verify_bundle(b)
    counts = json.loads((b / "counts.json").read_text("utf-8"))
    (rnd,) = counts["items"][0]["rounds"]
    assert rnd["by_channel"] == {"issued": {"terminal": 4, "paper": 1}, "returned": {"terminal": 3, "paper": 1}}
    lines = (b / rnd["ballots_file"]).read_text("utf-8").splitlines()
    assert sum('"prefix"' in ln for ln in lines) == 4 and len(lines) == 4  # the paper one is signed alike
    # An auditor's copy whose split was shifted (one paper ballot said to have come by tablet),
    # with the manifest rewritten to match: refused.
    for change in ({"issued": {"terminal": 5, "paper": 0}, "returned": {"terminal": 3, "paper": 1}},
                   {"issued": {"terminal": 4, "paper": 1}, "returned": {"terminal": 4, "paper": 0}},
                   {"issued": {"terminal": 4, "paper": 1}, "returned": {"terminal": 3, "paper": 2}}):
        bad = tmp_path / "bad"
        shutil.rmtree(bad, ignore_errors=True)
        shutil.copytree(b, bad)
        c = json.loads((bad / "counts.json").read_text("utf-8"))
        c["items"][0]["rounds"][0]["by_channel"] = change
        (bad / "counts.json").write_text(pretty_json(c), "utf-8")
        rewrite_manifest(bad)
        with pytest.raises(BundleInvalid):
            verify_bundle(bad)


def test_a_tablet_fails_mid_vote_and_the_member_votes_on_paper(api, app):
    s = setup_sitting(api, members=4, channel="hybrid")
    for no in s.members[:3]:
        vote(api, s.creds[no], {"motion": "for"})
    failed = s.members[3]
    blind_ballot(api, s.creds[failed])  # drew its signature, then the tablet died before casting
    _, allowed = _allow_paper(api, s.item_id, failed, reason="平板故障，改投纸质票")
    assert allowed["replacements"] == 1 and allowed["paper_allowed"] == 1
    texts = [allowed["ballot"]]
    api.call("POST", "/api/station/paper", {"ballot": texts[0], "marks": {"motion": "against"}},
             credential=s.station, expect=(201,))
    # the tablet's own ballot channel still refuses a paper cast's double: a terminal cast of a
    # paper token is not a thing, and the paper ballot once more is a rescan, not a second vote
    assert api.call("POST", "/api/station/paper", {"ballot": texts[0], "marks": {"motion": "for"}},
                    credential=s.station, expect=None)[0] == 409
    _, closed = api.call("POST", f"/api/admin/items/{s.item_id}/close")
    assert closed["issued"] == 5  # 4 signatures + 1 paper: I+1 for the replacement
    (ev,) = [json.loads(e.data) for e in events(app, "vote_closed")]
    assert ev["blind_signatures"] == 4 and ev["paper_handed_out"] == 1 and ev["replacements"] == 1
    assert ev["returned_by_channel"] == {"terminal": 3, "paper": 1}
    _, result = api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    # 重新计票 at the station compares the paper ballots only: the tablets' have no page to lack
    _, again = api.call("POST", f"/api/station/items/{s.item_id}/recount", credential=s.counter)
    assert again["counted"] == 1 and again["no_kept_page_count"] == 1 and again["no_kept_page"] == []
    api.call("POST", f"/api/admin/items/{s.item_id}/record")
    db = app.extensions["ballot_sessionmaker"]()
    try:
        content = json.loads(db.scalar(select(Record.body_json)))
    finally:
        db.close()
    assert content["result"]["issued"] == 5 and content["result"]["returned"] == 4
    assert content["result"]["candidates"][0]["for"] == 3 and content["result"]["candidates"][0]["against"] == 1
    split = content["rounds"][0]["by_channel"]
    assert split == {"issued": {"terminal": 4, "paper": 1}, "returned": {"terminal": 3, "paper": 1}}
    text = announcement(content)
    assert "电子表决器发出4张、收回3张" in text and "纸质票发出1张、收回1张" in text
    kinds = [json.loads(e.data) for e in events(app, "ballot_replacement")]
    assert kinds[0]["channel"] == "paper" and kinds[0]["reason"] == "平板故障，改投纸质票"
    assert "serial" not in kinds[0]  # the member is never named with the paper ballot's serial


def test_a_member_who_has_not_drawn_a_tablet_ballot_takes_it_on_paper(api, app):
    s = setup_sitting(api, members=3, channel="hybrid", open_vote=False)
    item = create_item(api, s.sitting_id, channel="hybrid", key="item2")
    api.call("POST", f"/api/admin/items/{item}/open")
    _, allowed = _allow_paper(api, item, s.members[0], reason="代表未带平板")
    assert allowed["replacements"] == 0  # the member's one ballot, on paper: not a further issuance
    texts = [allowed["ballot"]]
    api.call("POST", "/api/station/paper", {"ballot": texts[0], "marks": {"motion": "for"}}, credential=s.station,
             expect=(201,))
    status = None
    try:
        tablet.take_ballot(api.call, s.creds[s.members[0]])
    except AssertionError:
        status = 409
    assert status == 409
    _, closed = api.call("POST", f"/api/admin/items/{item}/close")
    assert closed["issued"] == 1


def test_ballots_verify_checks_a_hybrid_paper_ballot_with_the_round_key(api, settings_env):
    s = setup_sitting(api, members=2, channel="hybrid")
    text = _allow_paper(api, s.item_id, s.members[0])[1]["ballot"]
    runner = CliRunner()
    r = runner.invoke(main, ["ballots", "verify", text], env=settings_env)
    assert r.exit_code == 0 and "signature valid" in r.output and "not yet counted" in r.output, r.output
    parts = text.split(".")
    forged = ".".join(parts[:6] + [("0" if parts[6][0] != "0" else "1") + parts[6][1:]] + parts[7:])
    r = runner.invoke(main, ["ballots", "verify", forged], env=settings_env)
    assert r.exit_code == 1 and "forged" in r.output, r.output
    api.call("POST", "/api/station/paper", {"ballot": text, "marks": {"motion": "for"}}, credential=s.station,
             expect=(201,))
    r = runner.invoke(main, ["ballots", "verify", text], env=settings_env)
    assert r.exit_code == 0 and "already counted" in r.output, r.output


def _as_tablet_cast(text: str, marks: dict) -> dict:
    """A BR1 paper ballot's fields as a tablet would send them (POST /api/terminal/cast)."""
    t = text.split(".")
    return {"round_ref": f"r{t[5]}", "serial": t[6], "prefix": t[7], "signature": t[8], "marks": marks,
            "retry_id": tablet.new_retry_id()}


def test_a_paper_ballot_is_not_cast_on_the_tablet_path(api, app):
    """The paper ballot is signed with the round's key like a tablet's: sent to the tablet's
    path before the station read it, it would count as a tablet ballot (returned by channel
    wrong, and the one who holds it could vote it twice over the two channels' counts). Refused
    with a 400 that says where a paper ballot goes, and nothing is stored: the station then
    counts it."""
    s = setup_sitting(api, members=3, channel="hybrid")
    vote(api, s.creds[s.members[0]], {"motion": "for"})
    text = _allow_paper(api, s.item_id, s.members[1], reason="平板故障")[1]["ballot"]
    status, data = api.call("POST", "/api/terminal/cast", _as_tablet_cast(text, {"motion": "against"}),
                            expect=None)
    assert status == 400, data
    assert_error_shape(data)
    err = data["errors"][0]
    assert err["where"] == "ballot" and "计票" in err["message_zh"], err
    api.call("POST", "/api/station/paper", {"ballot": text, "marks": {"motion": "against"}},
             credential=s.station, expect=(201,))
    _, closed = api.call("POST", f"/api/admin/items/{s.item_id}/close")
    (ev,) = [json.loads(e.data) for e in events(app, "vote_closed")]
    assert ev["returned_by_channel"] == {"terminal": 1, "paper": 1}, ev


def test_a_tablet_ballot_is_not_entered_as_paper_at_the_station(api, app):
    """The converse: a tablet's blind-signed ballot written out in the BR1 form verifies with
    the round's key too; entered at the station it would count as paper. Refused (4xx, nothing
    stored), and the tablet can still cast it."""
    s = setup_sitting(api, members=3, channel="hybrid")
    _allow_paper(api, s.item_id, s.members[2], reason="平板故障")  # a paper ballot exists in the round
    ballot = blind_ballot(api, s.creds[s.members[0]])
    rid = ballot["round_ref"][1:]
    text = ".".join(["BR1", str(s.body_id), str(s.sitting_id), str(s.item_id),
                     "1", rid, ballot["serial"], ballot["prefix"], ballot["signature"]])
    status, data = api.call("POST", "/api/station/paper", {"ballot": text, "marks": {"motion": "for"}},
                            credential=s.station, expect=None)
    assert status == 400, data
    assert_error_shape(data)
    assert data["errors"][0]["where"] == "ballot" and "表决器" in data["errors"][0]["message_zh"], data
    api.call("POST", "/api/terminal/cast", {**ballot, "marks": {"motion": "for"}, "retry_id": tablet.new_retry_id()},
             expect=(201,))
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    (ev,) = [json.loads(e.data) for e in events(app, "vote_closed")]
    assert ev["returned_by_channel"] == {"terminal": 1, "paper": 0}, ev


def test_the_verifier_flags_more_paper_returned_than_printed(api, app, tmp_path):
    """A server that let tablet ballots in as paper (as intake did before the paper mark) leaves
    more paper ballots returned than the secretariat allowed: no genuine round does that (each
    allowance prints one ballot, a rescan is counted apart), so `audit verify` refuses it even
    when the close froze that split."""
    s = setup_sitting(api, members=4, channel="hybrid")
    for no in s.members[:3]:
        vote(api, s.creds[no], {"motion": "for"})
    _allow_paper(api, s.item_id, s.members[3], reason="代表未带平板")  # I: 3 signatures + 1 paper
    db = app.extensions["ballot_sessionmaker"]()
    try:  # two of the tablets' ballots counted as paper
        db.execute(update(Round).values(paper_returned=2))
        db.commit()
    finally:
        db.close()
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    api.call("POST", f"/api/admin/items/{s.item_id}/record")
    b = export_app_bundle(app, tmp_path / "bundle")
    with pytest.raises(BundleInvalid, match="paper"):
        verify_bundle(b)
