"""`rehearse` reproduces every shared scenario's expected results through the live endpoints,
and refuses malformed scenarios with the JSON path at fault."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner
from scenario_support import SCENARIOS

from ballot_service.bundle.verify import verify_bundle
from ballot_service.cli import main
from ballot_service.errors import InvalidInput
from ballot_service.formats.scenario import load_scenario
from ballot_service.rehearsal import rehearse

CASES = sorted(p for p in SCENARIOS.glob("*.json") if not p.name.endswith(".expected.json"))
# Kinds built since (scenarios/upcoming/README.md): added one by one as each is built.
CASES += [SCENARIOS / "upcoming" / "evaluation-basic.json"]
CASES += [SCENARIOS / "upcoming" / "election-committee.json"]


def test_the_shared_scenarios_are_found():
    # Without ../shared beside the checkout the parametrised test below would be skipped, not failed.
    assert len(CASES) >= 3, f"no scenarios under {SCENARIOS}"


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_rehearse_reproduces_expected(path: Path, tmp_path, db_url):
    out = tmp_path / "out"
    result = CliRunner().invoke(main, ["rehearse", str(path), "--out", str(out), "--database", db_url])
    assert result.exit_code == 0, result.output
    expected = json.loads(path.with_name(path.stem + ".expected.json").read_text("utf-8"))
    assert json.loads((out / "results.json").read_text("utf-8")) == expected
    records = sorted((out / "records").glob("*.json"))
    assert len(records) == len(expected["items"])
    for rec in records:
        data = json.loads(rec.read_text("utf-8"))
        assert data["signature"] and data["key_fingerprint"]
        text = rec.parent / (rec.stem + ".announcement.txt")
        # An election's 宣布稿 has its own form (本次选举应到代表…人…, issue 20).
        assert text.read_text("utf-8").startswith(("本次会议应到", "本次选举应到"))
    assert (out / "audit").is_dir()
    verify_bundle(out / "audit")  # the auditor's offline check recounts every round the same way


def _write(tmp_path, data) -> Path:
    p = tmp_path / "s.json"
    p.write_text(json.dumps(data, ensure_ascii=False), "utf-8")
    return p


def _base() -> dict:
    return json.loads((SCENARIOS / "appointment-committee.json").read_text("utf-8"))


@pytest.mark.parametrize("mutate, where", [
    (lambda s: s.update(extra=1), "$"),
    (lambda s: s["items"][0].update(colour="red"), "$.items[0]"),
    (lambda s: s["items"][0]["ballots"][0].update(repeat="3"), "$.items[0].ballots[0].repeat"),
    (lambda s: s["items"][0]["ballots"][0]["marks"].update(N9="for"), "$.items[0].ballots[0].marks.N9"),
    (lambda s: s["items"][0]["ballots"][0]["marks"].update(N1="void"), "$.items[0].ballots[0].marks.N1"),
    (lambda s: s["body"].update(kind="senate"), "$.body.kind"),
    (lambda s: s["present"].update(count=99), "$.present.count"),
    (lambda s: s["items"][1].update(key="rm-2027-01"), "$.items[1].key"),
    (lambda s: s["items"][0].update(places=2), "$.items[0].places"),
])
def test_malformed_scenario_names_json_path(tmp_path, mutate, where):
    s = _base()
    mutate(s)
    with pytest.raises(InvalidInput) as exc:
        load_scenario(_write(tmp_path, s))
    assert exc.value.where == where, exc.value.message
    assert _chinese(exc.value.zh), (exc.value.message, exc.value.zh)  # a Chinese wording too


def _chinese(text) -> bool:
    return isinstance(text, str) and any("\u4e00" <= ch <= "\u9fff" for ch in text)


def test_not_json_is_refused_with_position(tmp_path):
    p = tmp_path / "bad.json"
    p.write_text('{"format": "ballot-scenario/1",', "utf-8")
    result = CliRunner().invoke(main, ["rehearse", str(p), "--out", str(tmp_path / "o"), "--lang", "en"])
    assert result.exit_code == 2
    assert "not valid JSON" in result.output and "line 1" in result.output and str(p) in result.output
    assert not (tmp_path / "o" / "results.json").exists()
    result = CliRunner().invoke(main, ["rehearse", str(p), "--out", str(tmp_path / "o")])
    assert result.exit_code == 2
    assert "不是有效的 JSON" in result.output and "第 1 行" in result.output and str(p) in result.output, \
        result.output
    assert "not valid JSON" not in result.output


@pytest.mark.parametrize("mutate, zh, en", [
    (lambda s: s["items"][0].update(places=2), "places", "places"),
    (lambda s: s["body"].update(kind="senate"), "取值须为", "is not one of"),
    (lambda s: s["items"][0].update(colour="red"), "不允许的字段", "Additional properties"),
    (lambda s: s["items"][0].pop("title"), "缺少字段", "required"),
    (lambda s: s["present"].update(count=99), "超过名册人数", "exceeds the roster"),
    (lambda s: s["items"][0]["ballots"][0].update(repeat="3"), "类型", "is not of type"),
])
def test_scenario_errors_say_what_and_where_in_chinese_by_default(tmp_path, mutate, zh, en):
    """`rehearse` refuses a scenario in Chinese by default (English with --lang en or
    BALLOT_LANGUAGE=en), naming the file and the JSON path at fault."""
    s = _base()
    mutate(s)
    p = _write(tmp_path, s)
    out = str(tmp_path / "o")
    result = CliRunner().invoke(main, ["rehearse", str(p), "--out", out], env={"BALLOT_LANGUAGE": None})
    assert result.exit_code == 2
    assert zh in result.output and "错误" in result.output and str(p) in result.output and "$." in result.output, \
        result.output
    assert _chinese(result.output.split("：", 1)[-1]), result.output
    result = CliRunner().invoke(main, ["rehearse", str(p), "--out", out], env={"BALLOT_LANGUAGE": "en"})
    assert result.exit_code == 2 and en in result.output and "错误" not in result.output, result.output


def test_a_missing_scenario_file_is_named(tmp_path):
    p = tmp_path / "none.json"
    result = CliRunner().invoke(main, ["rehearse", str(p), "--out", str(tmp_path / "o")], env={"BALLOT_LANGUAGE": None})
    assert result.exit_code == 2 and "无法读取" in result.output and str(p) in result.output, result.output


def test_quorum_not_met_and_over_return(tmp_path, db_url):
    """A standing committee below quorum cannot vote; a tally sheet with R > I voids the vote."""
    s = {
        "format": "ballot-scenario/1", "body": {"name": "测试常委会", "kind": "standing_committee"},
        "session": {"name": "第一次会议"}, "roster": {"size": 10}, "present": {"count": 6},
        "items": [
            {"key": "sheet", "kind": "resolution", "title": "关于某事项的决定", "channel": "tally_sheet",
             "sheet": {"issued": 6, "returned": 7, "invalid": 0,
                       "counts": {"motion": {"for": 7, "against": 0, "abstain": 0}}}},
            {"key": "low", "kind": "resolution", "title": "另一决定", "present": {"count": 5},
             "ballots": [{"marks": {"motion": "for"}, "repeat": 5}]},
        ]}
    results = rehearse(_write(tmp_path, s), tmp_path / "out", db_url)
    sheet, low = results["items"]
    assert sheet["status"] == "void" and sheet["passed"] is False
    assert (sheet["issued"], sheet["returned"], sheet["not_voted"]) == (6, 7, 0)
    assert low["status"] == "quorum_not_met" and low["quorum_met"] is False and low["present"] == 5
    assert low["passed"] is False and low["issued"] == 0


def test_more_ballots_than_present_names_the_item_in_chinese(tmp_path):
    s = _base()
    s["present"] = {"count": 20}
    s["items"] = s["items"][:1]
    s["items"][0]["ballots"] = [{"marks": s["items"][0]["ballots"][0]["marks"], "repeat": 21}]
    p = _write(tmp_path, s)
    result = CliRunner().invoke(main, ["rehearse", str(p), "--out", str(tmp_path / "o")], env={"BALLOT_LANGUAGE": None})
    assert result.exit_code == 2, result.output
    assert "$.items[0].ballots" in result.output and "实到代表只有 20 人" in result.output, result.output
