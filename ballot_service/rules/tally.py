"""A round counted from its ballots (or the tellers' tally sheet) and decided, and an item's
tallied rounds folded into one entry of the results format (FORMAT.md): pure functions over
marks, counts and options, so the service's tally and an auditor's tool recomputing from an
exported bundle give the same figures. An evaluation is counted by rules.evaluation_tally,
an election by rules.election_tally; the other kinds by the rules of RULES.md §4–§5.
"""
from __future__ import annotations

from typing import Iterable, Mapping

from ballot_service import rules
from ballot_service.rules import election_tally, evaluation_tally
from ballot_service.vocab import ItemKind, ItemStatus


def round_result(*, item_kind: str, candidate_keys: list[str], places: int | None, rule: rules.Rule,
                 members: int, present: int, quorum_met: bool, issued: int,
                 ballots: Iterable[Mapping[str, str]] | None = None, sheet: dict | None = None,
                 refused: int = 0, rescanned: int = 0, scale: dict | None = None,
                 election: dict | None = None) -> dict:
    """Count one round from its ballots (or a tellers' sheet) and decide it. `scale`: an
    evaluation's options and grading (evaluation_tally.scale_of); `election`: an election
    round's {stage, listed, eligible} (election_tally.round_result)."""
    if item_kind == ItemKind.EVALUATION:
        return evaluation_tally.round_result(
            candidate_keys=candidate_keys, scale=scale or evaluation_tally.scale_of(None, None), rule=rule,
            members=members, present=present, quorum_met=quorum_met, issued=issued, ballots=ballots,
            sheet=sheet, refused=refused)
    if item_kind == ItemKind.ELECTION:
        return election_tally.round_result(
            candidate_keys=candidate_keys, places=places, members=members, present=present,
            quorum_met=quorum_met, issued=issued, ballots=ballots, sheet=sheet, refused=refused, **election)
    if sheet is not None:
        valid = sheet["returned"] - sheet["invalid"]
        counts = [rules.CandidateCount(k, sheet["counts"][k]["for"], sheet["counts"][k]["against"],
                                       sheet["counts"][k]["abstain"], sheet["counts"][k].get("void", 0))
                  for k in candidate_keys]
        count = rules.BallotCount(valid, sheet["invalid"], counts)
        issued = sheet["issued"]
    else:
        count = rules.count_ballots(candidate_keys, ballots or [], places)
    decision = rules.decide_round(rules.RoundFacts(
        item_kind=item_kind, members=members, present=present, quorum_met=quorum_met, issued=issued,
        returned=count.returned, valid=count.valid, invalid=count.invalid, places=places,
        counts=count.candidates, rule=rule))
    out = {
        "status": decision.status, "members": members, "present": present, "quorum_met": quorum_met,
        "issued": issued, "returned": count.returned, "valid": count.valid, "invalid": count.invalid,
        "refused": refused, "not_voted": decision.not_voted, "places": places,
        "rule": {"base": rule.base, "majority": rule.majority}, "threshold_base": decision.base,
        "threshold_votes": rules.minimum_votes(decision.base, rule.majority),
        "candidates": [_candidate(c) for c in decision.candidates],
    }
    if rescanned:  # 重复扫描: the same paper ballot read again, neither returned nor refused
        out["rescanned"] = rescanned
    if item_kind == ItemKind.LIVELIHOOD:
        out.update(selected=decision.selected, tied=decision.tied, runoff_places=decision.runoff_places,
                   shortfall=decision.shortfall)
    if item_kind == ItemKind.RESOLUTION:
        out["passed"] = bool(decision.passed)
    return out


def _candidate(c: rules.CandidateOutcome) -> dict:
    d = {"key": c.key, "for": c.for_, "against": c.against, "abstain": c.abstain, "void": c.void,
         "passed": c.passed}
    if c.selected is not None:
        d["selected"] = c.selected
    return d


def item_result(key: str, kind: str, rounds: list[dict]) -> dict:
    """Combine an item's tallied rounds into one entry of the results format (FORMAT.md)."""
    if kind == ItemKind.ELECTION:
        return election_tally.item_result(key, rounds)
    first, last = rounds[0], rounds[-1]
    entry = {k: first[k] for k in ("members", "present", "quorum_met", "issued", "returned", "valid",
                                   "invalid", "refused", "not_voted")}
    entry = {"key": key, **entry}
    if first.get("rescanned"):
        entry["rescanned"] = first["rescanned"]
    candidates = [dict(c) for c in first["candidates"]]
    if kind == ItemKind.LIVELIHOOD:
        selected = list(first["selected"])
        for later in rounds[1:]:
            selected += later["selected"]
        final = set(selected) if last["status"] in (ItemStatus.DECIDED, ItemStatus.RUNOFF_PENDING) else set()
        for c in candidates:
            c["selected"] = c["key"] in final
        entry["selected"] = selected if last["status"] in (ItemStatus.DECIDED, ItemStatus.RUNOFF_PENDING) else []
        if last["status"] == ItemStatus.RUNOFF_PENDING:
            entry["tied"] = list(last["tied"])
        if len(rounds) > 1:
            r = rounds[1]
            entry["runoff"] = {k: r[k] for k in ("issued", "returned", "valid", "invalid", "refused", "places")}
            entry["runoff"]["candidates"] = r["candidates"]
    if kind in (ItemKind.APPOINTMENT, ItemKind.EVALUATION):
        for c in candidates:
            c.pop("selected", None)
    entry["candidates"] = candidates
    if kind == ItemKind.RESOLUTION:
        entry["passed"] = bool(last.get("passed"))
    entry["status"] = last["status"]
    return entry
