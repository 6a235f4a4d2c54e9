"""The pure core (rules + tally) reproduces every shared scenario's expected results.

This feeds the scenarios' ballots straight into rules.tally.round_result, without HTTP or a
database; tests/test_rehearse.py runs the same scenarios through the live code paths.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from scenario_support import SCENARIOS, present_count, split_ballots

from ballot_service import rules
from ballot_service.rules.tally import item_result, round_result

CASES = sorted(p for p in SCENARIOS.glob("*.json") if not p.name.endswith(".expected.json"))


def _round(item: dict, kind: str, body_kind: str, members: int, present: int, ballots: list[dict],
           places, candidate_keys, issued=None, sheet=None) -> dict:
    genuine, refused = split_ballots(ballots)
    rule = rules.Rule(**{"base": "members", "majority": "half", **item.get("rule", {})})
    return round_result(item_kind=kind, candidate_keys=candidate_keys, places=places, rule=rule,
                        members=members, present=present,
                        quorum_met=rules.quorum_met(body_kind, members, present),
                        issued=issued if issued is not None else present,
                        ballots=[b["marks"] for b in genuine], sheet=sheet, refused=refused)


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_pure_core_reproduces_expected(path: Path):
    scenario = json.loads(path.read_text("utf-8"))
    expected = json.loads(path.with_name(path.stem + ".expected.json").read_text("utf-8"))
    roster = scenario["roster"]
    members = roster["size"] if "size" in roster else len(roster["members"])
    out = []
    for item in scenario["items"]:
        keys = ["motion"] if item["kind"] == "resolution" else [c["key"] for c in item["candidates"]]
        present = present_count(item.get("present", scenario["present"]))
        places = item.get("places")
        r1 = _round(item, item["kind"], scenario["body"]["kind"], members, present, item.get("ballots", []),
                    places, keys, issued=item.get("issued"), sheet=item.get("sheet"))
        rounds = [r1]
        if r1["status"] == "runoff_pending" and "runoff" in item:
            ro = item["runoff"]
            p2 = present_count(ro.get("present", item.get("present", scenario["present"])))
            rounds.append(_round(item, item["kind"], scenario["body"]["kind"], members, p2, ro["ballots"],
                                 r1["runoff_places"], r1["tied"]))
        out.append(item_result(item["key"], item["kind"], rounds))
    assert {"format": "ballot-results/1", "items": out} == expected
