"""Record PDFs (record_pdf.render) and the announcement text, from hand-built record contents
shaped like records.record_body's output. Figures: ../shared/scenarios/tie-runoff and
appointment-committee (.expected.json)."""
from __future__ import annotations

import os
import re
import shutil
import subprocess

import pytest

from ballot_service.domain import records
from ballot_service.render import announcement, record_pdf
from ballot_service.render.fonts import FontNotFound, find_font
from ballot_service.render.linebreak import unbroken_lines

FPR = "1a2b 3c4d 5e6f 7a8b"
SIG = "Q2hhbmdlZCBzaWduYXR1cmUgZm9yIHRlc3Rpbmcgb25seSAtIG5vdCBhIHJlYWwgRWQyNTUxOSBzaWduYXR1cmUhIQ"
HEAD = "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"
URL = "https://ballot.example.cn/verify/record/17"


def _cand(key, f, a, ab, void=0, passed=None, selected=None):
    d = {"key": key, "for": f, "against": a, "abstain": ab, "void": void, "passed": passed}
    if selected is not None:
        d["selected"] = selected
    return d


def _round_result(status, members, present, issued, returned, valid, invalid, candidates, *, places=None,
                  base=None, votes=None, refused=0, **extra):
    base = members if base is None else base
    return {"status": status, "members": members, "present": present, "quorum_met": 3 * present >= 2 * members
            if extra.pop("congress", True) else 2 * present > members,
            "issued": issued, "returned": returned, "valid": valid, "invalid": invalid, "refused": refused,
            "not_voted": max(0, issued - returned), "places": places,
            "rule": {"base": "members", "majority": "half"}, "threshold_base": base,
            "threshold_votes": base // 2 + 1 if votes is None else votes, "candidates": candidates, **extra}


def _content(body, session, item, result, rounds):
    quorum = "3*P >= 2*N" if body["kind"] == "congress" else "2*P > N"
    titles = {c["key"]: c["title"] for c in item["candidates"]}
    return {
        "format": records.RECORD_FORMAT,
        "body": body, "session": session, "item": item,
        "rule": {"quorum": quorum, "base": "members", "majority": "half", "pass": "2*for > base"},
        "result": result, "rounds": rounds,
        "selected_titles": [titles[k] for k in result.get("selected", [])],
        "audit": {"seq": 4211, "head": HEAD}, "key_fingerprint": FPR,
    }


def livelihood_content() -> dict:
    body = {"id": 1, "name": "示范县第十八届人民代表大会", "kind": "congress"}
    session = {"id": 1, "name": "第一次会议"}
    titles = ["城区老旧小区改造", "农村饮水安全巩固提升", "中小学校舍扩建", "社区养老服务中心建设",
              "城乡公交一体化", "菜市场提升改造"]
    item = {"id": 3, "key": "ms-tie", "kind": "livelihood_projects", "title": "民生实事项目票决（差额）",
            "secret": True, "channel": "paper", "places": 4,
            "candidates": [{"key": f"P0{i}", "title": t} for i, t in enumerate(titles, 1)]}
    r1_cands = [_cand("P01", 88, 0, 0, 0, True, True), _cand("P02", 88, 0, 0, 0, True, True),
                _cand("P03", 60, 25, 0, 3, True, True), _cand("P04", 55, 30, 3, 0, True, False),
                _cand("P05", 55, 30, 3, 0, True, False), _cand("P06", 0, 85, 3, 0, False, False)]
    r1 = _round_result("runoff_pending", 100, 90, 90, 88, 88, 0, r1_cands, places=4,
                       selected=["P01", "P02", "P03"], tied=["P04", "P05"], runoff_places=1, shortfall=0)
    r2_cands = [_cand("P04", 52, 0, 36, 0, True, True), _cand("P05", 36, 0, 52, 0, False, False)]
    r2 = _round_result("decided", 100, 90, 90, 88, 88, 0, r2_cands, places=1, selected=["P04"], tied=[],
                       runoff_places=0, shortfall=0)
    final = [dict(c, selected=c["key"] in ("P01", "P02", "P03", "P04")) for c in r1_cands]
    result = {"key": "ms-tie", "members": 100, "present": 90, "quorum_met": True, "issued": 90, "returned": 88,
              "valid": 88, "invalid": 0, "refused": 0, "not_voted": 2,
              "selected": ["P01", "P02", "P03", "P04"],
              "runoff": {"issued": 90, "returned": 88, "valid": 88, "invalid": 0, "refused": 0, "places": 1,
                         "candidates": r2_cands},
              "candidates": final, "status": "decided"}
    rounds = [{"number": 1, "places": 4, "candidates": [c["key"] for c in item["candidates"]],
               "opened_at": "2027-01-15T01:30:00+00:00", "closed_at": "2027-01-15T01:52:10+00:00", "result": r1},
              {"number": 2, "places": 1, "candidates": ["P04", "P05"],
               "opened_at": "2027-01-15T02:20:00+00:00", "closed_at": "2027-01-15T02:31:45+00:00", "result": r2}]
    return _content(body, session, item, result, rounds)


def appointment_content() -> dict:
    body = {"id": 2, "name": "示范市人大常委会", "kind": "standing_committee"}
    session = {"id": 2, "name": "第二十次会议"}
    item = {"id": 7, "key": "rm-2027-01", "kind": "appointment", "title": "人事任免事项", "secret": True,
            "channel": "terminal", "places": None,
            "candidates": [{"key": "N1", "title": "李明 任市财政局局长"}, {"key": "N2", "title": "王芳 任市教育局局长"},
                           {"key": "N3", "title": "赵强 任市水利局局长"}]}
    cands = [_cand("N1", 26, 3, 0, 0, True), _cand("N2", 21, 0, 8, 0, True), _cand("N3", 17, 9, 3, 0, False)]
    r1 = _round_result("decided", 35, 30, 30, 29, 29, 0, cands, congress=False)
    result = {"key": "rm-2027-01", "members": 35, "present": 30, "quorum_met": True, "issued": 30,
              "returned": 29, "valid": 29, "invalid": 0, "refused": 0, "not_voted": 1,
              "candidates": cands, "status": "decided"}
    rounds = [{"number": 1, "places": None, "candidates": ["N1", "N2", "N3"],
               "opened_at": "2027-03-02T07:05:00+00:00", "closed_at": "2027-03-02T07:06:30+00:00", "result": r1}]
    return _content(body, session, item, result, rounds)


def void_content() -> dict:
    """A resolution counted from a tellers' sheet with more ballots returned than issued (R > I)."""
    body = {"id": 1, "name": "示范县第十八届人民代表大会", "kind": "congress"}
    session = {"id": 1, "name": "第一次会议"}
    item = {"id": 9, "key": "res-report", "kind": "resolution", "title": "关于县人民政府工作报告的决议",
            "secret": True, "channel": "tally_sheet", "places": None,
            "candidates": [{"key": "motion", "title": "关于县人民政府工作报告的决议"}]}
    cands = [_cand("motion", 80, 5, 5, 0, False)]
    r1 = _round_result("void", 100, 90, 90, 92, 90, 2, cands, passed=False, refused=1)
    result = {"key": "res-report", "members": 100, "present": 90, "quorum_met": True, "issued": 90,
              "returned": 92, "valid": 90, "invalid": 2, "refused": 1, "not_voted": 0,
              "candidates": cands, "passed": False, "status": "void"}
    rounds = [{"number": 1, "places": None, "candidates": ["motion"],
               "opened_at": "2027-01-15T03:00:00+00:00", "closed_at": "2027-01-15T03:10:00+00:00", "result": r1}]
    return _content(body, session, item, result, rounds)


def quorum_failed_content() -> dict:
    c = appointment_content()
    cands = [_cand(k, 0, 0, 0, 0, False) for k in ("N1", "N2", "N3")]
    r1 = _round_result("quorum_not_met", 35, 15, 0, 0, 0, 0, cands, congress=False)
    c["rounds"] = [dict(c["rounds"][0], opened_at=None, closed_at=None, result=r1)]
    c["result"] = {"key": "rm-2027-01", "members": 35, "present": 15, "quorum_met": False, "issued": 0,
                   "returned": 0, "valid": 0, "invalid": 0, "refused": 0, "not_voted": 0, "candidates": cands,
                   "status": "quorum_not_met"}
    return c


def runoff_pending_content() -> dict:
    c = livelihood_content()
    r1 = c["rounds"][0]["result"]
    c["rounds"] = c["rounds"][:1]
    c["result"] = dict(c["result"], status="runoff_pending", selected=["P01", "P02", "P03"], tied=["P04", "P05"],
                       candidates=[dict(x, selected=x["key"] in ("P01", "P02", "P03")) for x in r1["candidates"]])
    c["result"].pop("runoff")
    return c


# --- the announcement ---------------------------------------------------------------------------

def test_announcement_livelihood_runoff():
    text = announcement.announcement(livelihood_content())
    assert text.startswith("本次会议应到代表100名，实到90名，符合法定人数。")
    assert "民生实事项目票决（差额）：发出票决票90张，收回88张，其中有效票88张，无效票0张。" in text
    assert "收回票数不多于发出票数，本次民生实事项目票决有效。" in text
    assert text.endswith("按得票多少确定的民生实事项目为：城区老旧小区改造、农村饮水安全巩固提升、"
                         "中小学校舍扩建、社区养老服务中心建设。")


def test_announcement_appointment_and_void():
    text = announcement.announcement(appointment_content())
    assert text.startswith("本次会议应到组成人员35名，实到30名，符合法定人数。")
    assert "赵强 任市水利局局长：赞成17票，反对9票，弃权3票，未通过。" in text
    assert "本次表决无效" in announcement.announcement(void_content())


# --- the PDF ------------------------------------------------------------------------------------

def _font_or_skip():
    try:
        find_font()
    except FontNotFound as e:
        pytest.skip(f"no Chinese font: {e}")


def _text(tmp_path, name, pdf: bytes) -> str:
    if not shutil.which("pdftotext"):
        pytest.skip("pdftotext not installed (apt-get install -y poppler-utils); cannot read the PDF back")
    path = tmp_path / f"{name}.pdf"
    path.write_bytes(pdf)
    out = subprocess.run(["pdftotext", "-layout", "-enc", "UTF-8", str(path), "-"], check=True,
                         capture_output=True, text=True).stdout
    if os.environ.get("RECORD_PDF_PNG_DIR") and shutil.which("pdftoppm"):
        # for a person to look at: RECORD_PDF_PNG_DIR=/tmp/x pytest tests/test_record_pdf.py
        subprocess.run(["pdftoppm", "-r", "100", "-png", str(path), os.path.join(os.environ["RECORD_PDF_PNG_DIR"],
                                                                                  name)], check=True)
    return out


def _squash(text: str) -> str:
    return re.sub(r"\s+", " ", text)


HEADINGS = ("应到", "实到", "发出", "收回", "有效", "赞成", "反对", "弃权", "通过")


def _row(text: str, title: str) -> list[str]:
    """The figures printed on the table row of `title` (first occurrence)."""
    for line in text.splitlines():
        if title in line and re.search(r"\d", line.split(title, 1)[1]):
            return line.split(title, 1)[1].split()
    raise AssertionError(f"no table row for {title!r}")


def test_pdf_livelihood_with_runoff(tmp_path):
    _font_or_skip()
    pdf = record_pdf.render(livelihood_content(), SIG, URL)
    assert pdf.startswith(b"%PDF")
    text = _text(tmp_path, "livelihood", pdf)
    flat = _squash(text)
    for h in HEADINGS + ("票决结果", "民生实事项目票决", "三分之二以上", "入选", "未入选", "第1轮", "第2轮",
                         "再次投票", "扫码核验", "北京时间", "UTC+8", FPR, "4211", "拒收", "未按"):
        assert h in flat, h
    assert "应到 实到" in flat and "100 90 符合 90 88 88 0 0 2" in flat
    assert _row(text, "城区老旧小区改造")[:7] == ["88", "0", "0", "0", "通过", "入选", "1"]
    assert _row(text, "中小学校舍扩建")[:7] == ["60", "25", "0", "3", "通过", "入选", "3"]
    assert _row(text, "社区养老服务中心建设")[:7] == ["55", "30", "3", "0", "通过", "入选", "4"]
    assert _row(text, "城乡公交一体化")[:6] == ["55", "30", "3", "0", "通过", "未入选"]
    assert _row(text, "菜市场提升改造")[:6] == ["0", "85", "3", "0", "未通过", "未入选"]
    assert "52 0 36 0 通过 入选 4" in flat and "36 0 52 0 未通过 未入选" in flat   # runoff table
    assert "2027-01-15 09:30:00 北京时间" in flat and "2027-01-15 10:31:45" in flat
    assert "本次会议应到代表100名，实到90名，符合法定人数。" in text.replace("\n", "").replace(" ", "")
    assert "赞成票超过全体代表的半数" in flat and "至少51票" in flat


def test_pdf_appointment(tmp_path):
    _font_or_skip()
    text = _text(tmp_path, "appointment", record_pdf.render(appointment_content(), SIG))
    flat = _squash(text)
    for h in HEADINGS + ("任职票决", "过半数出席", "全体组成人员", "未通过", "扫码核验"):
        assert h in flat, h
    assert "35 30 符合 30 29 29 0 0 1" in flat
    assert _row(text, "李明 任市财政局局长")[:5] == ["26", "3", "0", "0", "通过"]
    assert _row(text, "王芳 任市教育局局长")[:5] == ["21", "0", "8", "0", "通过"]
    assert _row(text, "赵强 任市水利局局长")[:5] == ["17", "9", "3", "0", "未通过"]
    assert "赵强 任市水利局局长：未通过" in flat
    assert "第2轮" not in flat


def test_pdf_void(tmp_path):
    _font_or_skip()
    text = _text(tmp_path, "void", record_pdf.render(void_content(), SIG, URL))
    flat = _squash(text)
    for h in HEADINGS + ("决议表决", "本次表决无效", "计票单", "拒收"):
        assert h in flat, h
    assert "100 90 符合 90 92 90 2 1 0" in flat


def test_pdf_quorum_not_met_and_runoff_pending(tmp_path):
    _font_or_skip()
    flat = _squash(_text(tmp_path, "quorum", record_pdf.render(quorum_failed_content(), SIG)))
    assert "不符合法定人数，未进行表决" in flat and "35 15 不符合" in flat
    flat = _squash(_text(tmp_path, "pending", record_pdf.render(runoff_pending_content(), SIG)))
    assert "需再次投票：社区养老服务中心建设、城乡公交一体化" in flat
    assert "待再次投票" in flat


def test_announcement_of_a_tablet_vote_uses_tablet_words():
    """A vote on seat tablets hands nothing out: no 发出/收回 票, and 未按表决器 is read out."""
    c = appointment_content()
    c["item"] = dict(c["item"], channel="terminal")
    text = announcement.announcement(c)
    r = c["result"]
    assert f"参加表决{r['returned']}名，未按表决器{r['not_voted']}名" in text
    assert "发出" not in text and "收回" not in text and "张" not in text
    assert "赵强 任市水利局局长：赞成17票，反对9票，弃权3票，未通过。" in text


def test_announcement_lines_never_split_a_number_from_its_unit():
    text = announcement.announcement(livelihood_content())
    # A narrow column forces many breaks; measure every character as 1 unit.
    for width in (7, 9, 11, 13, 17):
        lines = unbroken_lines(text, width, len)
        assert "".join(lines) == text
        for a, b in zip(lines, lines[1:]):
            assert not (a[-1].isdigit() and (b[0].isdigit() or b[0] in "张票名人项个%")), (a, b)
            assert b[0] not in "，。、；：）》", (a, b)
