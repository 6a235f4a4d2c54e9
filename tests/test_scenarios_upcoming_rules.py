"""The evaluation and election rules reproduce the upcoming scenarios' expected figures.

Feeds the ballots of shared/scenarios/upcoming/{evaluation-basic,election-committee}.json
straight into rules_evaluation / rules_election (no HTTP, no database) and compares every
per-item figure with the `.expected.json` files. A few figures come from the service, not
the rules, and are derived here only the way the scenario states them (see SERVICE_FIELDS).
"""
from __future__ import annotations

import json

from scenario_support import SCENARIOS, present_count, split_ballots

from ballot_service import rules
from ballot_service.rules import election as el
from ballot_service.rules import evaluation as ev

# Figures the rules do not compute: attendance and ballots issued (roster, check-in,
# paper issuing) and refusals at intake (forged / reused / spare submissions).
SERVICE_FIELDS = ("members", "present", "issued", "refused")


def _load(name: str) -> tuple[dict, dict]:
    path = SCENARIOS / "upcoming" / f"{name}.json"
    return (json.loads(path.read_text("utf-8")),
            json.loads(path.with_name(f"{name}.expected.json").read_text("utf-8")))


def _roster_ids(scenario: dict) -> list[str]:
    r = scenario["roster"]
    return [f"M{i:04d}" for i in range(1, r["size"] + 1)] if "size" in r else [m["id"] for m in r["members"]]


# --- evaluation ---------------------------------------------------------------------------------

def _evaluation_item(scenario: dict, item: dict) -> dict:
    members = len(_roster_ids(scenario))
    present = present_count(item.get("present", scenario["present"]))
    issued = item.get("issued", present)
    options = [o["key"] for o in item["options"]] if "options" in item else list(ev.SATISFACTION_OPTIONS)
    subjects = [c["key"] for c in item["candidates"]]
    genuine, refused = split_ballots(item["ballots"])
    count = ev.count_ballots(subjects, [b["marks"] for b in genuine], options,
                             paper=item.get("channel", "terminal") == "paper")
    d = ev.decide_evaluation(ev.EvaluationFacts(
        members, present, rules.quorum_met(scenario["body"]["kind"], members, present), issued, count,
        rules.Rule(**item.get("rule", {}))))
    return {
        "key": item["key"], "status": d.status,
        "members": members, "present": present,
        "quorum_met": rules.quorum_met(scenario["body"]["kind"], members, present),
        "issued": issued, "returned": count.returned, "valid": count.valid, "invalid": count.invalid,
        "refused": refused, "not_voted": d.not_voted,
        "candidates": [{"key": o.key, **o.count.as_dict(), "grade": o.grade, "rate": o.rate_text}
                       for o in d.subjects],
    }


def test_evaluation_basic():
    scenario, expected = _load("evaluation-basic")
    out = [_evaluation_item(scenario, item) for item in scenario["items"]]
    assert {"format": "ballot-results/1", "items": out} == expected


def test_evaluation_basic_worked_figures():
    """Spot checks of §5.5 on the scenario, so a failure above reads plainly."""
    scenario, _ = _load("evaluation-basic")
    got = {c["key"]: c for c in _evaluation_item(scenario, scenario["items"][0])["candidates"]}
    # P05: 31 of N = 60 satisfied → 满意 (62 > 60); rate 31/54 = 57.407… → "57.41"
    assert (got["P05"]["grade"], got["P05"]["rate"]) == ("satisfied", "57.41")
    # P03: 25 + 5 = 30 is exactly half of 60, not more → 不满意; 30/54 → "55.56"
    assert (got["P03"]["grade"], got["P03"]["rate"]) == ("dissatisfied", "55.56")


# --- election -----------------------------------------------------------------------------------

def _election_round(scenario, item, *, candidates, seats, ballots, present, issued, kind,
                    write_ins_allowed=True):
    members = len(_roster_ids(scenario))
    keys = [c["key"] for c in candidates]
    listed = keys + [c["title"] for c in candidates]
    # art. 47: 常委会组成人员 must be deputies of this congress — write-ins name a roster member
    eligible = _roster_ids(scenario) if item.get("office") == "committee_member" else None
    genuine, refused = split_ballots(ballots)
    read = [el.read_ballot(b.get("marks", {}), keys, seats, b.get("write_ins", ()), listed=listed,
                           eligible=eligible, write_ins_allowed=write_ins_allowed) for b in genuine]
    facts = el.RoundFacts(members, present, rules.quorum_met(scenario["body"]["kind"], members, present),
                          issued, seats, el.count_ballots(read, keys))
    r = el.decide_revote(facts) if kind == el.REVOTE else el.decide_round(facts, kind)
    return r, facts.count, refused


def _persons(r: el.ElectionRound, final: set[str]) -> list[dict]:
    return [{"key": p.key, "for": p.for_, "against": p.against, "abstain": p.abstain, "void": p.void,
             "passed": p.passed if p.passed is not None else p.elected, "elected": p.key in final}
            for p in r.persons if not p.write_in]


def _write_ins(r: el.ElectionRound, final: set[str]) -> list[dict]:
    return [{"name": p.key[len(el.WRITE_IN):], "for": p.for_, "elected": p.key in final}
            for p in r.persons if p.write_in]


def _election_item(scenario: dict, item: dict) -> dict:
    members = len(_roster_ids(scenario))
    present = present_count(item.get("present", scenario["present"]))
    issued = item.get("issued", present)
    seats = item["places"]
    slate = el.check_slate(item["office"], seats, len(item["candidates"]),
                           by_election=item.get("by_election", False))
    assert slate.status == "ok", slate.message

    r1, c1, refused1 = _election_round(scenario, item, candidates=item["candidates"], seats=seats,
                                       ballots=item["ballots"], present=present, issued=issued, kind=el.FIRST)
    rounds, extra = [r1], {}
    if r1.status == el.RUNOFF_PENDING and "runoff" in item:
        ro = item["runoff"]
        p2 = present_count(ro.get("present", item.get("present", scenario["present"])))
        tied = [c for c in item["candidates"] if c["key"] in r1.tied]
        rv, cv, refv = _election_round(scenario, item, candidates=tied, seats=r1.revote_seats,
                                       ballots=ro["ballots"], present=p2, issued=p2, kind=el.REVOTE,
                                       write_ins_allowed=False)
        rounds.append(rv)
        extra["runoff"] = (rv, cv, refv, p2)
    so_far = el.combine(seats, rounds)
    if so_far.pending == "another" and "another" in item:
        an = item["another"]
        p3 = present_count(an.get("present", item.get("present", scenario["present"])))
        check = el.check_slate(item["office"], so_far.unfilled, len(an["candidates"]), another=True)
        assert check.status == "ok", check.message
        ra, ca, refa = _election_round(scenario, item, candidates=an["candidates"], seats=so_far.unfilled,
                                       ballots=an["ballots"], present=p3, issued=p3, kind=el.ANOTHER)
        rounds.append(ra)
        extra["another"] = (ra, ca, refa, p3)
    final = el.combine(seats, rounds)
    elected = set(final.elected)

    out = {
        "key": item["key"], "status": "runoff_pending" if final.pending == "revote" else r1.status,
        "members": members, "present": present, "quorum_met": r1.status != el.QUORUM_NOT_MET,
        "issued": issued, "returned": c1.returned, "valid": c1.valid, "invalid": c1.invalid,
        "refused": refused1, "not_voted": r1.not_voted,
        "candidates": _persons(r1, elected), "write_ins": _write_ins(r1, elected),
        "elected": list(final.elected), "unfilled": final.unfilled,
    }
    if final.pending == "revote":
        out["tied"] = list(final.tied)
    for name, (r, c, refused, p) in extra.items():
        block = {"issued": p, "returned": c.returned, "valid": c.valid, "invalid": c.invalid,
                 "refused": refused, "places": r.seats, "candidates": _persons(r, elected)}
        if name == "another":
            block.update(write_ins=_write_ins(r, elected), elected=list(r.elected), unfilled=r.unfilled)
        out[name] = block
    return out


def test_election_committee():
    scenario, expected = _load("election-committee")
    out = [_election_item(scenario, item) for item in scenario["items"]]
    assert {"format": "ballot-results/1", "items": out} == expected


def test_election_committee_worked_figures():
    scenario, _ = _load("election-committee")
    got = _election_item(scenario, scenario["items"][0])
    # two ballots invalid: 14 赞成 for 12 seats; 12 赞成 + a write-in = 13 > 12
    assert (got["valid"], got["invalid"]) == (148, 2)
    # C12: 85 of N = 170 is exactly half, not more → not passed in round 1; elected in the 另行选举
    c12 = next(c for c in got["candidates"] if c["key"] == "C12")
    assert (c12["for"], c12["passed"], c12["elected"]) == (85, False, True)
    assert got["elected"][-1] == "C12" and got["another"]["elected"] == ["C12"]
    # the write-in on the invalid ballot (M0033) is not counted
    assert got["write_ins"] == [{"name": "M0101", "for": 10, "elected": False}]
