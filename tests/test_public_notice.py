"""Issue #19 item 3: after a vote is published (公布), a public 公告 page and an A4 PDF per item
in the form a 人大 publishes — selected projects in rank order with 赞成 votes, rated subjects
with counts, rate and grade, nominees with outcomes — carrying the record's fingerprint and the
QR of its verification page. Before publishing there is nothing to see (404)."""
from __future__ import annotations

import json
import re
import shutil
import subprocess

from helpers_live import publish, setup_sitting, vote
from sqlalchemy import select

from ballot_service.models import Record
from ballot_service.render import public_notice

PROJECTS = [{"key": "P01", "title": "城区老旧小区改造"}, {"key": "P02", "title": "背街小巷整治"},
            {"key": "P03", "title": "菜市场提升改造"}]


def _decided(api, kind, marks, **extra):
    s = setup_sitting(api, members=5, open_vote=False)
    _, item = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items",
                       {"key": "k", "kind": kind, "title": "2026年度民生实事项目实施情况满意度测评"
                        if kind == "evaluation" else "2027年度民生实事项目票决", "candidates": PROJECTS, **extra})
    iid = item["id"]
    api.call("POST", f"/api/admin/items/{iid}/open")
    for no, m in zip(s.present, marks):
        vote(api, s.creds[no], m)
    api.call("POST", f"/api/admin/items/{iid}/close")
    api.call("POST", f"/api/admin/items/{iid}/tally")
    return iid


def _record(app, iid) -> Record:
    db = app.extensions["ballot_sessionmaker"]()
    rec = db.scalar(select(Record).where(Record.item_id == iid))
    db.expunge(rec)
    db.close()
    return rec


def test_evaluation_notice_page_and_pdf_only_after_publishing(app, api, client, tmp_path):
    iid = _decided(api, "evaluation", [{"P01": "satisfied", "P02": "dissatisfied", "P03": "satisfied"}] * 4
                   + [{"P01": "basically_satisfied"}])
    _, rec = api.call("POST", f"/api/admin/items/{iid}/record")
    assert client.get(f"/notice/{rec['id']}").status_code == 404  # signed, not yet published
    assert client.get(f"/notice/{rec['id']}.pdf").status_code == 404
    api.call("POST", f"/api/admin/items/{iid}/publish")
    page = client.get(f"/notice/{rec['id']}")  # public: no login
    assert page.status_code == 200
    text = re.sub(r"<[^>]+>", "", page.get_data(as_text=True))
    assert "城区老旧小区改造：满意4票，基本满意1票，不满意0票，满意率100.00%，测评等次为满意。" in text
    assert "背街小巷整治：满意0票，基本满意0票，不满意4票，弃权1票，满意率0.00%，测评等次为不满意。" in text
    row = _record(app, iid)
    assert row.key_fingerprint in text and f"/verify/{row.id}" in text and "<svg" in page.get_data(as_text=True)
    pdf = client.get(f"/notice/{rec['id']}.pdf")
    assert pdf.status_code == 200 and pdf.mimetype == "application/pdf"
    assert shutil.which("pdftotext"), "poppler-utils (pdftotext) is needed to read the PDF back"
    path = tmp_path / "notice.pdf"
    path.write_bytes(pdf.data)
    info = subprocess.run(["pdfinfo", str(path)], check=True, capture_output=True, text=True).stdout
    assert "595.28 x 841.89" in info  # A4
    words = re.sub(r"\s+", "", subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], check=True,
                                              capture_output=True, text=True).stdout)
    assert "测试市人民代表大会公告" in words and "满意率100.00%" in words and row.key_fingerprint.replace(" ", "") in words


def test_projects_notice_lists_the_selected_in_rank_order(app, api):
    iid = _decided(api, "livelihood_projects", [{"P02": "for", "P03": "for"}] * 3
                   + [{"P01": "for", "P02": "for"}] * 2, places=2)
    publish(api, iid)
    content = json.loads(_record(app, iid).body_json)
    n = public_notice.notice(content)
    assert n["lines"] == ["票决产生民生实事项目2项（按得票多少排序）：", "1. 背街小巷整治（赞成5票）",
                          "2. 菜市场提升改造（赞成3票）"]
    assert n["title"] == "测试市人民代表大会公告" and "应到5名，实到5名" in n["intro"]


def test_the_verify_page_shows_an_evaluations_grades(app, api, client):
    iid = _decided(api, "evaluation", [{"P01": "satisfied", "P02": "dissatisfied", "P03": "basically_satisfied"}] * 5)
    _, rec = api.call("POST", f"/api/admin/items/{iid}/record")
    page = client.get(f"/verify/{rec['id']}").get_data(as_text=True)
    assert 'data-genuine="true"' in page
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page))
    assert "城区老旧小区改造 5 0 0 0 0 100.00% 满意" in text
    assert "背街小巷整治 0 0 5 0 0 0.00% 不满意" in text
