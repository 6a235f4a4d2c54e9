"""An item before its vote opens (issue #17 item 17): edit, delete and reorder it from the
console, preview its ballot; all refused once the vote opened or paper ballots were printed;
the audit bundle still verifies (item_edited / item_deleted in the chain)."""
from __future__ import annotations

import json

from bundle_support import export_and_verify
from console_support import flashes, post, print_ballots
from helpers_live import Api, create_item, setup_sitting
from sqlalchemy import func, select
from terminal_support import events, query

from ballot_service.domain import print_jobs
from ballot_service.models import Candidate, Item, PaperBallot


def items(app):
    return [tuple(r) for r in query(app, select(Item.key, Item.title, Item.position).order_by(Item.position))]


def test_edit_a_draft_item_keeps_its_id_and_the_form_keeps_what_was_typed(app, console):
    api = Api.flask(app.test_client())
    s = setup_sitting(api, members=3, open_vote=False, kind="livelihood_projects", places=1,
                      candidates=[{"key": "p1", "title": "项目一"}, {"key": "p2", "title": "项目二"}])
    page = console.get(f"/console/items/{s.item_id}").get_data(as_text=True)
    assert 'id="edit-item"' in page and "p1 | 项目一 |" in page
    form = {"kind": "livelihood_projects", "title": "2027年民生实事", "places": "5", "base": "members",
            "majority": "half", "secret": "1", "channel": "terminal",
            "candidates": "城区老旧小区改造 | 改造小区 32 个\n社区食堂"}
    r = post(console, f"/console/items/{s.item_id}/edit", form)
    assert r.status_code == 400 and "应选数（5）超过候选项目数（2）" in flashes(r)[-1][1]
    assert "城区老旧小区改造 | 改造小区 32 个" in r.get_data(as_text=True)  # kept
    assert items(app)[0][1] == "表决事项 item1"  # nothing changed
    form["places"] = "1"
    r = post(console, f"/console/items/{s.item_id}/edit", form, follow_redirects=True)
    assert ("ok", "已修改表决事项。") in flashes(r)
    assert items(app)[0][:2] == ("item1", "2027年民生实事")
    cands = [tuple(c) for c in query(app, select(Candidate.key, Candidate.title, Candidate.description)
                                     .where(Candidate.item_id == s.item_id).order_by(Candidate.position))]
    assert cands == [("P01", "城区老旧小区改造", "改造小区 32 个"), ("P02", "社区食堂", None)]
    (ev,) = events(app, "item_edited")
    assert json.loads(ev.data)["title"] == "2027年民生实事"
    vote = api.call("POST", f"/api/admin/items/{s.item_id}/open")  # it opens with the new candidates
    assert vote[0] == 200
    state = api.call("GET", "/api/terminal/state", credential=s.creds["M0001"])[1]["vote"]
    assert [c["title"] for c in state["candidates"]] == ["城区老旧小区改造", "社区食堂"]


def test_no_change_once_the_vote_opened(app, console):
    api = Api.flask(app.test_client())
    s = setup_sitting(api, members=3, open_vote=True)
    form = {"kind": "resolution", "title": "改了", "secret": "1", "channel": "terminal"}
    r = post(console, f"/console/items/{s.item_id}/edit", form)
    assert r.status_code == 400 and "已开始表决，不能再修改" in flashes(r)[-1][1]
    r = post(console, f"/console/items/{s.item_id}/delete", follow_redirects=True)
    assert "已开始表决，不能再删除" in flashes(r)[-1][1]
    assert items(app)[0][1] == "表决事项 item1"


def test_no_change_once_paper_ballots_are_printed(app, console):
    api = Api.flask(app.test_client())
    s = setup_sitting(api, members=3, open_vote=False, channel="paper")
    api.call("POST", f"/api/admin/items/{s.item_id}/paper-ballots", {"count": 2})
    r = post(console, f"/console/items/{s.item_id}/delete", follow_redirects=True)
    assert "已印制纸质选票 2 张" in flashes(r)[-1][1]


def test_delete_and_reorder_drafts_and_the_bundle_still_verifies(app, console, settings_env, tmp_path):
    api = Api.flask(app.test_client())
    s = setup_sitting(api, members=3, open_vote=False)
    second = create_item(api, s.sitting_id, key="item2")
    third = create_item(api, s.sitting_id, key="item3")
    post(console, f"/console/items/{third}/move", {"direction": "up"})
    assert [k for k, _, _ in items(app)] == ["item1", "item3", "item2"]
    post(console, f"/console/items/{s.item_id}/move", {"direction": "up"})  # already first: nothing
    assert [k for k, _, _ in items(app)] == ["item1", "item3", "item2"]
    r = post(console, f"/console/items/{second}/delete", follow_redirects=True)
    assert ("ok", "已删除表决事项。") in flashes(r)
    assert [k for k, _, _ in items(app)] == ["item1", "item3"]
    post(console, f"/console/items/{s.item_id}/edit", {"kind": "resolution", "title": "关于某事的决议",
                                                      "secret": "1", "channel": "terminal"})
    export_and_verify(settings_env, tmp_path / "bundle")


def test_preview_shows_the_ballot_as_the_tablet_will(app, console):
    api = Api.flask(app.test_client())
    s = setup_sitting(api, members=3, open_vote=False, kind="appointment",
                      candidates=[{"key": "n1", "title": "王建国", "office": "副县长"}])
    page = console.get(f"/console/items/{s.item_id}/preview").get_data(as_text=True)
    assert "王建国（拟任副县长）" in page and "任职票决" in page and "不能投票" in page
    assert 'disabled>赞成<' in page


def test_a_draft_edited_while_its_ballots_print_voids_that_print(app, console, monkeypatch):
    """The attack: a print job signs and renders outside any transaction, and the item had no
    printed ballot yet, so an edit landing meanwhile (another operator; the job runs for
    minutes) was allowed; the job then recorded ballots that print the old candidates for the
    edited round. Now the job compares what it printed with the item, under its lock: changed,
    the batch is void, its files removed, and the job says to print again."""
    api = Api.flask(app.test_client())
    s = setup_sitting(api, members=3, open_vote=False, kind="livelihood_projects", places=1, channel="paper",
                      candidates=[{"key": "p1", "title": "项目一"}, {"key": "p2", "title": "项目二"}])
    real, out_dirs = print_jobs.write_ballot_pdfs, []

    def edit_while_rendering(layout, pages, out_dir, *args, **kw):
        out_dirs.append(out_dir)
        api.call("PUT", f"/api/admin/items/{s.item_id}", {
            "key": "item1", "kind": "livelihood_projects", "title": "2027年民生实事", "places": 1, "channel": "paper",
            "candidates": [{"key": "p1", "title": "城区老旧小区改造"}, {"key": "p2", "title": "社区食堂"}]})
        return real(layout, pages, out_dir, *args, **kw)

    monkeypatch.setattr(print_jobs, "write_ballot_pdfs", edit_while_rendering)
    state = print_ballots(console, s.item_id, 3)
    assert state["state"] == "failed" and "印制期间" in state["error"], state
    assert query(app, select(func.count()).select_from(PaperBallot))[0][0] == 0
    assert not list(out_dirs[0].glob("*.pdf"))
    monkeypatch.setattr(print_jobs, "write_ballot_pdfs", real)  # printed again: the new candidates
    state = print_ballots(console, s.item_id, 3)
    assert state["state"] == "done", state
    assert query(app, select(func.count()).select_from(PaperBallot))[0][0] == 3
