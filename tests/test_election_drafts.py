"""Editing an election before its vote opens (issue 20): seats, office, candidates in order
and 补选 change like any draft item's, by PUT /api/admin/items/ID and the console's 修改 form;
the 差额 (组织法 art. 27/29/30) is checked again on save — too few refused with the article
and nothing changed, too many turning round 1 into a 预选 and back. The bundle still
verifies with the edited election (item_edited carries its office as item_created does)."""
from __future__ import annotations

import json

from bundle_support import export_and_verify
from console_support import flashes, post
from helpers_live import Api, setup_sitting, vote
from sqlalchemy import select
from terminal_support import events, query

from ballot_service.models import Candidate, Item, Round


def _spec(places=2, cands=("A", "B", "C"), office="committee_member", **extra):
    return {"key": "el", "kind": "election", "title": "选举委员", "office": office, "places": places,
            "candidates": [{"key": k, "title": f"候选人{k}"} for k in cands], **extra}


def _state(app, item_id):
    item, = query(app, select(Item).where(Item.id == item_id))[0]
    rnd, = query(app, select(Round).where(Round.item_id == item_id))[0]
    cands = [k for (k,) in query(app, select(Candidate.key).where(Candidate.item_id == item_id)
                                 .order_by(Candidate.position))]
    return (item.office, item.by_election, item.places), (rnd.stage, rnd.places, rnd.candidate_keys), cands


def test_an_election_draft_is_edited_by_the_api_with_the_差额_checked_again(app, api):
    s = setup_sitting(api, members=7, open_vote=False)
    item_id = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items", _spec())[1]["id"]
    before = _state(app, item_id)
    # 3 seats with 3 candidates: 委员 need ceil(3/10) = 1 more; refused, naming the article; nothing changed
    status, data = api.call("PUT", f"/api/admin/items/{item_id}", _spec(places=3), expect=None)
    assert status == 400 and data["errors"][0]["where"] == "candidates"
    assert "组织法第二十七条" in data["errors"][0]["message_zh"]
    assert _state(app, item_id) == before
    status, data = api.call("PUT", f"/api/admin/items/{item_id}", _spec(rule={"base": "present"}), expect=None)
    assert status == 400 and data["errors"][0]["where"] == "rule" and _state(app, item_id) == before
    # 正职 1 seat, candidates reordered (the secretariat's 姓氏笔画 order) and one more: a 预选 of 2
    _, data = api.call("PUT", f"/api/admin/items/{item_id}", _spec(places=1, office="principal",
                                                                    cands=("C", "A", "B")))
    assert data == {"id": item_id, "key": "el", "stage": "preliminary"}
    assert _state(app, item_id) == (("principal", False, 1), ("preliminary", 2, ["C", "A", "B"]), ["C", "A", "B"])
    # a 补选 of 1 副职 with 1 candidate (等额 allowed, art. 30): the election itself
    _, data = api.call("PUT", f"/api/admin/items/{item_id}", _spec(places=1, office="vice", cands=("B",),
                                                                    by_election=True))
    assert data["stage"] == "first"
    assert _state(app, item_id) == (("vice", True, 1), ("first", 1, ["B"]), ["B"])
    (ev,) = [json.loads(e.data) for e in events(app, "item_edited")][-1:]
    assert (ev["office"], ev["by_election"], ev["stage"]) == ("vice", True, "first")
    # into a resolution and back: an election's facts go with its kind
    api.call("PUT", f"/api/admin/items/{item_id}", {"key": "el", "kind": "resolution", "title": "决议"})
    assert _state(app, item_id)[:2] == ((None, False, None), (None, None, ["motion"]))
    api.call("PUT", f"/api/admin/items/{item_id}", _spec(places=1, office="principal", cands=("A", "B")))
    api.call("POST", f"/api/admin/items/{item_id}/open")
    for cred, marks in zip(s.creds.values(), [{"A": "for"}] * 4 + [{"B": "for"}] * 3):
        vote(api, cred, marks)
    api.call("POST", f"/api/admin/items/{item_id}/close")
    assert api.call("POST", f"/api/admin/items/{item_id}/tally")[1]["elected"] == ["A"]
    assert api.call("PUT", f"/api/admin/items/{item_id}", _spec(), expect=None)[0] == 409  # its vote ran


def test_an_election_draft_is_edited_in_the_console_and_the_bundle_verifies(app, console, settings_env,
                                                                             tmp_path):
    api = Api.flask(app.test_client())
    s = setup_sitting(api, members=5, open_vote=False)
    item_id = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items", _spec())[1]["id"]
    page = console.get(f"/console/items/{item_id}").get_data(as_text=True)
    assert 'id="edit-item"' in page and 'value="committee_member" selected' in page
    form = {"kind": "election", "title": "选举副主任", "key": "el", "places": "2", "office": "vice",
            "base": "members", "majority": "half", "secret": "1", "channel": "terminal",
            "candidates": "A | 候选人A |\nB | 候选人B |"}
    r = post(console, f"/console/items/{item_id}/edit", form)  # 副职 2 seats: 3 to 5 candidates
    assert r.status_code == 400 and "组织法第二十七条" in flashes(r)[-1][1]
    assert "B | 候选人B |" in r.get_data(as_text=True)  # what was typed is kept
    form["candidates"] += "\nD | 候选人D |"
    r = post(console, f"/console/items/{item_id}/edit", form, follow_redirects=True)
    assert ("ok", "已修改表决事项。") in flashes(r)
    assert _state(app, item_id) == (("vice", False, 2), ("first", 2, ["A", "B", "D"]), ["A", "B", "D"])
    api.call("POST", f"/api/admin/items/{item_id}/open")
    for cred, marks in zip(s.creds.values(), [{"A": "for", "B": "for"}] * 3 + [{"D": "for"}] * 2):
        vote(api, cred, marks)
    api.call("POST", f"/api/admin/items/{item_id}/close")
    api.call("POST", f"/api/admin/items/{item_id}/tally")
    api.call("POST", f"/api/admin/items/{item_id}/record")
    export_and_verify(settings_env, tmp_path / "bundle")


def test_an_edited_evaluation_keeps_its_scale_in_the_log_and_the_bundle_verifies(app, api, settings_env, tmp_path):
    """item_edited carries the item as item_created does: an evaluation's options and rule words
    too (before, an edited evaluation's counts.json rule differed from the log's)."""
    s = setup_sitting(api, members=3, open_vote=False)
    spec = {"key": "cp", "kind": "evaluation", "title": "测评", "candidates": [{"key": "a", "title": "甲局"}]}
    item_id = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items", spec)[1]["id"]
    api.call("PUT", f"/api/admin/items/{item_id}", {**spec, "title": "述职评议",
                                                     "candidates": [{"key": "b", "title": "乙局"}]})
    (created,), (edited,) = events(app, "item_created")[-1:], events(app, "item_edited")
    assert json.loads(edited.data)["rule"] == json.loads(created.data)["rule"]
    assert json.loads(edited.data)["options"] == json.loads(created.data)["options"]
    api.call("POST", f"/api/admin/items/{item_id}/open")
    for cred in s.creds.values():
        vote(api, cred, {"b": "satisfied"})
    api.call("POST", f"/api/admin/items/{item_id}/close")
    api.call("POST", f"/api/admin/items/{item_id}/tally")
    api.call("POST", f"/api/admin/items/{item_id}/record")
    export_and_verify(settings_env, tmp_path / "bundle")
