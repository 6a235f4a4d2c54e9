"""拟任职务 (issue #17 item 10): each nominee of an appointment item carries the proposed office,
on the item form, the tablet's ballot and confirm step (the vote's candidates), the presiding
screen, the paper ballot, the record's table and the 宣布稿."""
from __future__ import annotations

import json

import pypdfium2 as pdfium
from console_support import flashes, post
from helpers_live import Api, publish, setup_sitting, vote
from sqlalchemy import select
from terminal_support import query

from ballot_service.models import Candidate, Item, Record
from ballot_service.render import announcement, paper, record_pdf

NOMINEES = [{"key": "n1", "title": "王建国", "office": "副县长"},
            {"key": "n2", "title": "李秀英", "office": "县人民政府办公室主任"}]


def pdf_text(data: bytes) -> str:
    return "".join(p.get_textpage().get_text_range() for p in pdfium.PdfDocument(data)).replace("\r", "")


def test_the_proposed_office_is_everywhere_a_nominee_is_named(app, api, screen):
    s = setup_sitting(api, members=3, kind="appointment", candidates=NOMINEES, open_vote=True)
    vote_view = api.call("GET", "/api/terminal/state", credential=s.creds["M0001"])[1]["vote"]
    assert [(c["title"], c["office"]) for c in vote_view["candidates"]] == [("王建国", "副县长"),
                                                                             ("李秀英", "县人民政府办公室主任")]
    for no in s.present:
        vote(api, s.creds[no], {"n1": "for", "n2": "against" if no == "M0001" else "for"})
    for action in ("close", "tally"):
        api.call("POST", f"/api/admin/items/{s.item_id}/{action}")
    publish(api, s.item_id)
    (body_json,) = query(app, select(Record.body_json).where(Record.item_id == s.item_id))[0]
    content = json.loads(body_json)
    assert content["item"]["candidates"][0]["office"] == "副县长"
    words = announcement.announcement(content)
    assert "王建国（拟任副县长）：赞成3票" in words and "李秀英（拟任县人民政府办公室主任）：赞成2票" in words
    table = pdf_text(record_pdf.render(content, "sig", verify_url="https://hall.example/v"))
    assert "王建国（拟任副县长）" in table.replace("\n", "")
    shown = screen.get(f"/display/{s.sitting_id}/state").get_json()
    assert [n["title"] for n in shown["result"]["nominees"]] == ["王建国（拟任副县长）", "李秀英（拟任县人民政府办公室主任）"]


def test_the_paper_ballot_prints_the_office(app, api):
    s = setup_sitting(api, members=3, kind="appointment", candidates=NOMINEES, channel="paper", open_vote=False)
    with app.extensions["ballot_sessionmaker"]() as db:
        item = db.get(Item, s.item_id)
        layout = paper.BallotLayout.from_item(item, item.rounds[0])
    assert layout.candidates == ("王建国（拟任副县长）", "李秀英（拟任县人民政府办公室主任）")


def test_the_item_form_asks_for_the_office_and_keeps_it(app, console):
    api = Api.flask(app.test_client())
    s = setup_sitting(api, members=3, open_vote=False)
    form = {"kind": "appointment", "title": "任命县人民政府组成人员", "secret": "1", "channel": "terminal",
            "candidates": "王建国 | 副县长\n李秀英"}
    r = post(console, f"/console/sessions/{s.sitting_id}/items", form)
    assert r.status_code == 400
    kind, text = flashes(r)[-1]
    assert kind == "error" and "第 2 行" in text and "拟任职务" in text
    assert "王建国 | 副县长" in r.get_data(as_text=True)  # what was typed is kept
    form["candidates"] = "王建国 | 副县长\nN9 | 李秀英 | 县人民政府办公室主任"
    assert post(console, f"/console/sessions/{s.sitting_id}/items", form).status_code == 302
    rows = query(app, select(Candidate.key, Candidate.title, Candidate.office).order_by(Candidate.id))[-2:]
    assert [tuple(r) for r in rows] == [("N01", "王建国", "副县长"), ("N9", "李秀英", "县人民政府办公室主任")]


def test_an_office_on_a_project_is_refused(app, api):
    s = setup_sitting(api, members=3, open_vote=False)
    status, data = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items", {
        "key": "ms", "kind": "livelihood_projects", "title": "民生实事", "places": 1,
        "candidates": [{"key": "p1", "title": "项目", "office": "局长"}]}, expect=None)
    assert status == 400 and data["errors"][0]["where"] == "candidates[0].office"
