"""`rehearse --paper-via-scanner` (issue #18): paper items are counted through the station's
scanner (printed, marked, read, queued pages decided by two tellers) and must give exactly the
results the scenario expects, the same as marks keyed at the station."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from scenario_support import SCENARIOS

from ballot_service.bundle import layout
from ballot_service.bundle.verify import verify_bundle
from ballot_service.cli import main
from ballot_service.rehearsal import rehearse

TOP = sorted(p for p in SCENARIOS.glob("*.json") if not p.name.endswith(".expected.json"))


def _pages(out: Path) -> list[dict]:
    return json.loads((out / "audit" / layout.SCANNED_PAGES).read_text("utf-8"))["pages"]


def _scanned_as_keyed(tmp_path: Path, scenario: dict, pages: int) -> dict:
    """Rehearse `scenario` with its paper marks keyed and again through the scanner: the results
    are the same, the scanner kept `pages` pages (keying none), and the scanned bundle verifies.
    Returns the one item's result."""
    path = tmp_path / "scenario.json"
    path.write_text(json.dumps(scenario, ensure_ascii=False), "utf-8")
    keyed = rehearse(path, tmp_path / "keyed")
    scanned = rehearse(path, tmp_path / "scanned", paper_via_scanner=True)
    assert scanned == keyed
    assert len(_pages(tmp_path / "scanned")) == pages and _pages(tmp_path / "keyed") == []
    verify_bundle(tmp_path / "scanned" / "audit")
    (item,) = scanned["items"]
    return item


@pytest.mark.parametrize("path", TOP, ids=lambda p: p.stem)
def test_the_top_level_scenarios_reproduce_through_the_scanner(path: Path, tmp_path, db_url):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["rehearse", str(path), "--out", str(out), "--database", db_url,
                                       "--paper-via-scanner"])
    assert result.exit_code == 0, result.output
    expected = json.loads(path.with_name(path.stem + ".expected.json").read_text("utf-8"))
    assert json.loads((out / "results.json").read_text("utf-8")) == expected
    scenario = json.loads(path.read_text("utf-8"))
    paper = [i for i in scenario["items"] if i.get("channel") == "paper"]
    # the paper ballots really went through the scanner: one kept page per ballot submitted
    submitted = sum(b.get("repeat", 1) for i in paper for part in (i, i.get("runoff") or {})
                    for b in part.get("ballots", []))
    assert len(_pages(out)) == submitted
    verify_bundle(out / "audit")


def _small_paper_scenario() -> dict:
    """A paper resolution with every case a scan meets: for/against/abstain, a spoiled (void)
    ballot the reader queues and the tellers decide, a forged, a reused and a spare ballot."""
    marks = lambda m: {"marks": {"motion": m}}  # noqa: E731
    return {"format": "ballot-scenario/1", "body": {"name": "测试县人民代表大会", "kind": "congress"},
            "session": {"name": "第一次会议"}, "roster": {"size": 12}, "present": {"count": 10},
            "items": [{"key": "res", "kind": "resolution", "title": "关于预算的决议", "channel": "paper", "issued": 9,
                       "ballots": [{**marks("for"), "repeat": 4}, {**marks("against"), "repeat": 2}, marks("abstain"),
                                   marks("void"), {"marks": {}},
                                   {**marks("for"), "forged": True}, {**marks("against"), "reuse": True},
                                   {**marks("for"), "spare": True}]}]}


def test_every_paper_case_counts_the_same_scanned_or_keyed(tmp_path):
    item = _scanned_as_keyed(tmp_path, _small_paper_scenario(), pages=12)
    assert (item["issued"], item["returned"], item["refused"]) == (9, 9, 3)
    assert item["candidates"][0]["void"] == 1 and item["candidates"][0]["for"] == 4


def _paper_evaluation_scenario() -> dict:
    """A paper 述职评议 with four option columns: each option, a subject left blank (弃权), a
    subject with two options (void, queued and decided), an empty ballot, and a spare."""
    opts = [{"key": "excellent", "title": "优秀"}, {"key": "competent", "title": "称职"},
            {"key": "basically_competent", "title": "基本称职"}, {"key": "incompetent", "title": "不称职"}]
    return {"format": "ballot-scenario/1", "body": {"name": "测试县人民代表大会常务委员会", "kind": "standing_committee"},
            "session": {"name": "第五次会议"}, "roster": {"size": 9}, "present": {"count": 8},
            "items": [{"key": "eval", "kind": "evaluation", "title": "2026年度述职评议", "channel": "paper",
                       "options": opts, "candidates": [{"key": "A", "title": "公安局局长"},
                                                       {"key": "B", "title": "民政局局长"}],
                       "ballots": [{"marks": {"A": "excellent", "B": "competent"}, "repeat": 2},
                                   {"marks": {"A": "basically_competent", "B": "incompetent"}},
                                   {"marks": {"A": "incompetent"}}, {"marks": {"A": "competent", "B": "void"}},
                                   {"marks": {}}, {"marks": {"A": "excellent"}, "spare": True}]}]}


def test_a_paper_evaluation_counts_the_same_scanned_or_keyed(tmp_path):
    """The reader reads an evaluation's option columns: its ballots are scanned, not keyed."""
    a, b = _scanned_as_keyed(tmp_path, _paper_evaluation_scenario(), pages=7)["candidates"]
    assert (a["excellent"], a["competent"], a["basically_competent"], a["incompetent"], a["abstain"]) == (2, 1, 1, 1, 1)
    assert (b["competent"], b["incompetent"], b["void"], b["abstain"]) == (2, 1, 1, 2)
