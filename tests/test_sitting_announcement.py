"""The 宣布稿 on its own (issue #17 item 8): a page and a large-type PDF for the presiding
officer, made from the signed record, worded for the channel (a tablet vote says 参加表决 /
未按表决器, never 发出表决票 / 收回), and never breaking a number from its unit."""
from __future__ import annotations

import re

import pypdfium2 as pdfium
from helpers_live import Api, blind_ballot, publish, setup_sitting, vote


def _decided_resolution(api):
    s = setup_sitting(api, members=40, present=35, open_vote=True)
    for no in s.present[:33]:
        vote(api, s.creds[no], {"motion": "for" if no != "M0001" else "against"})
    for no in s.present[33:]:  # their tablets take the ballot as the vote opens; they do not press
        blind_ballot(api, s.creds[no])
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    publish(api, s.item_id)
    return s


def pdf_lines(data: bytes) -> list[str]:
    doc = pdfium.PdfDocument(data)
    out = []
    for page in doc:
        out += [ln.strip() for ln in page.get_textpage().get_text_range().splitlines() if ln.strip()]
    return out


def test_the_announcement_page_and_pdf_follow_the_channel(app, console):
    api = Api.flask(app.test_client())
    s = _decided_resolution(api)
    page = console.get(f"/console/items/{s.item_id}/announcement").get_data(as_text=True)
    lines = re.findall(r'<p class="read-line">([^<]+)</p>', page)
    assert lines[0] == "本次会议应到代表40名，实到35名，符合法定人数。"
    assert "参加表决33名，未按表决器2名" in lines[1]
    assert lines[-1] == "赞成32票，反对1票，弃权0票，通过。"
    assert "发出表决票" not in page and "收回" not in page
    item_page = console.get(f"/console/items/{s.item_id}").get_data(as_text=True)
    assert f"/console/items/{s.item_id}/announcement" in item_page

    r = console.get(f"/console/items/{s.item_id}/announcement.pdf")
    assert r.status_code == 200 and r.mimetype == "application/pdf"
    text = pdf_lines(r.data)
    assert "宣布稿 · 决议表决结果记录" in text[1] or "宣布稿" in "".join(text[:3])
    joined = "".join(text)
    assert "参加表决33名，未按表决器2名" in joined and "赞成32票，反对1票，弃权0票，通过。" in joined
    for a, b in zip(text, text[1:]):  # no line ends inside a number or before its unit
        assert not (a[-1].isdigit() and (b[0].isdigit() or b[0] in "张票名人项个次轮位%")), (a, b)


def test_no_announcement_before_the_record_is_signed(app, console):
    api = Api.flask(app.test_client())
    s = setup_sitting(api, members=3, open_vote=False)
    assert console.get(f"/console/items/{s.item_id}/announcement").status_code == 404
    assert console.get(f"/console/items/{s.item_id}/announcement.pdf").status_code == 404
