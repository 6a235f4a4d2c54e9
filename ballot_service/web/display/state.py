"""What the presiding screen shows: the rule of `build_state` (see the package docstring)
turned into JSON-ready data read from the audit log and the stored rounds. No Flask."""
from __future__ import annotations

import json
from typing import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session

from ballot_service import rules
from ballot_service.db import database_now
from ballot_service.domain import another_items, audit, ballot_sets, cast_staging, meetings, tally, voting
from ballot_service.domain.sittings import attendance_state, has_result, open_item
from ballot_service.models import AuditEvent, Item, Record, Sitting
from ballot_service.render import evaluation_text, qr
from ballot_service.vocab import (
    AuditKind,
    Channel,
    ElectionStage,
    ItemKind,
    ItemStatus,
    RoundStatus,
    ScreenChoice,
)

CONCLUDING_EVENTS = (AuditKind.VOTE_CLOSED, AuditKind.TALLIED, AuditKind.RECORD_ISSUED, AuditKind.RECORD_PUBLISHED)
SCREEN_EVENT = AuditKind.SCREEN_SET  # the secretariat's choice of what the screen shows between votes
# What ends that choice (besides a vote opening): the hall then sees the vote just taken. Signing
# a record does not: it is routine paperwork, often done during the break the choice is for.
TAKING_BACK_EVENTS = (AuditKind.VOTE_CLOSED, AuditKind.TALLIED, AuditKind.RECORD_PUBLISHED)


class AuditCursor:
    """A stream's memory of the newest concluding event and the newest screen choice it has
    seen ((seq, data) or None), so that each rebuild reads only the audit events appended since
    the last one instead of searching the whole log."""

    def __init__(self) -> None:
        self.scanned = 0
        self.newest: dict[tuple, tuple[int, str] | None] = {}


def build_state(db: Session, sitting: Sitting, verify_url: Callable[[str], str],
                cursor: AuditCursor | None = None) -> dict:
    """Everything the screen shows, as JSON-ready data (labels live in the template).

    During a vote it holds no per-choice figure at all: only counts of ballots cast/issued."""
    seq = audit.head(db, sitting.body_id)[0]  # the sitting's events are all on its body's chain
    body = sitting.body
    state: dict = {
        "sitting": {"id": sitting.id, "name": sitting.name, "status": sitting.status,
                    "body": body.name, "body_kind": body.kind,
                    # check-in and quorum are the plenary meeting's (全体会议) under way
                    "meeting": meetings.meeting_name(meetings.current_number(db, sitting))},
        "attendance": attendance_state(db, sitting).as_dict(),
        "seq": seq,
        "now": database_now(db).isoformat(),  # the clock closes_at is set from: the countdown agrees
    }
    mode, item = _mode(db, sitting, seq, cursor)
    state["mode"] = mode
    if mode in ("voting", "counting", "awaiting"):
        state["vote"] = _vote_view(db, item)
        if item.ballot_set:  # every election of the ballot, each with its own count
            state["vote"]["set"] = [_vote_view(db, m) for m in ballot_sets.voted_with(db, item)]
    elif mode == ScreenChoice.RESULT:
        state["result"] = _result_view(db, item)
        state["record"] = _record_view(db, item, verify_url)
        if item.ballot_set:
            # each election has its own signed record: its QR under its column, once published
            state["result"]["set"] = [{**(res := _set_result(db, m)),
                                       "record": None if res.get("pending") else _record_view(db, m, verify_url)}
                                      for m in ballot_sets.members(db, item)]
    return state


def _set_result(db: Session, item: Item) -> dict:
    """One election of a ballot set on the result screen: its own result once published (a tie
    to re-vote shows at once, as for a single item), otherwise only its title and where it is."""
    if has_result(item) and (published(db, item) or item.status == ItemStatus.RUNOFF_PENDING):
        return _result_view(db, item)
    return {"item_id": item.id, "key": item.key, "title": item.title, "kind": item.kind, "pending": True,
            "status": item.status}


def _newest(db: Session, sitting: Sitting, kinds: tuple, seq: int, cursor: AuditCursor | None):
    """(seq, data) of the sitting's newest event of `kinds` up to `seq`, or None."""
    query = (select(AuditEvent.seq, AuditEvent.data)
             .where(AuditEvent.chain == sitting.body_id, AuditEvent.sitting_id == sitting.id,
                    AuditEvent.kind.in_(kinds), AuditEvent.seq <= seq)
             .order_by(AuditEvent.seq.desc()).limit(1))
    if cursor is None:
        row = db.execute(query).first()
        return tuple(row) if row is not None else None
    # Only the events appended since the last build (seq was read first, in this snapshot).
    row = db.execute(query.where(AuditEvent.seq > cursor.scanned)).first()
    if row is not None:
        cursor.newest[kinds] = tuple(row)
    return cursor.newest.get(kinds)


def _mode(db: Session, sitting: Sitting, seq: int, cursor: AuditCursor | None) -> tuple[str, Item | None]:
    """Which item the screen is about. An open vote wins (only one can be open at a time).
    Otherwise the secretariat's newest screen choice (screen_choice.set_screen), if no vote closed,
    was tallied or published after it: 会标 ("title"), check-in, or a published result.
    Otherwise the item of the newest vote_closed / tallied / record_issued / record_published
    event of this sitting: "counting" while it is closed, "awaiting" (待公布) once tallied, and
    its "result" only once the secretariat has published it; so the vote just taken stays up
    until the next one opens, and a newly published older item comes back to the front;
    otherwise check-in."""
    voting_now = open_item(db, sitting)
    if voting_now is not None:
        return "voting", voting_now
    concluding = _newest(db, sitting, CONCLUDING_EVENTS, seq, cursor)
    taken_back = _newest(db, sitting, TAKING_BACK_EVENTS, seq, cursor)
    choice = _newest(db, sitting, (SCREEN_EVENT,), seq, cursor)
    if cursor is not None:
        cursor.scanned = max(cursor.scanned, seq)
    if choice is not None and (taken_back is None or choice[0] > taken_back[0]):
        chosen = json.loads(choice[1])
        if chosen.get("show") in (ScreenChoice.TITLE, ScreenChoice.CHECKIN):
            return chosen["show"], None
        if chosen.get("show") == ScreenChoice.RESULT:
            item = _item_of(db, sitting, chosen)
            if item is not None and published(db, item):
                return ScreenChoice.RESULT, item
        # "auto" (or a result no longer there): follow the votes
    item = _item_of(db, sitting, json.loads(concluding[1])) if concluding is not None else None
    if item is None:
        return ScreenChoice.CHECKIN, None
    rnd = voting.current_round(item)
    if item.status == ItemStatus.CLOSED or rnd.status == RoundStatus.CLOSED:
        return "counting", item
    if has_result(item):
        # The hall sees a result only when the secretariat publishes it (公布); until then the
        # screen says the count is done and the result is awaited, with no figure of any choice.
        # A tie at the cut-off is the exception: the hall must see it to vote again (there is
        # no record to publish before the runoff decides the item).
        if item.status == ItemStatus.RUNOFF_PENDING or published(db, item):
            return ScreenChoice.RESULT, item
        return "awaiting", item
    return ScreenChoice.CHECKIN, None


def published(db: Session, item: Item) -> bool:
    return db.scalar(select(Record.published).where(Record.item_id == item.id).limit(1)) is True


def _item_of(db: Session, sitting: Sitting, data: dict) -> Item | None:
    item_id = data.get("item_id")
    item = db.get(Item, item_id) if isinstance(item_id, int) else None
    return item if item is not None and item.sitting_id == sitting.id else None


def _titles(item: Item) -> dict[str, str]:
    return {c.key: c.label for c in item.candidates}


def _vote_view(db: Session, item: Item) -> dict:
    """A vote in progress (or just closed): how many have voted, never how."""
    rnd = voting.current_round(item)
    if item.channel == Channel.TALLY_SHEET:
        voted = issued = None  # counted by hand after the vote; nothing electronic to show
    else:
        voted = cast_staging.returned(db, rnd.id)
        issued = rnd.issued if rnd.status != RoundStatus.OPEN and rnd.issued is not None \
            else voting.issued_count(db, item, rnd)
    titles = _titles(item)
    return {
        "item_id": item.id, "key": item.key, "title": item.title, "kind": item.kind,
        "secret": item.secret, "channel": item.channel,
        "round": rnd.number, "places": rnd.places, "stage": rnd.stage,
        "candidate_count": len(rnd.candidate_keys),
        # A runoff names the projects it is between (titles only).
        "runoff_titles": [titles.get(k, k) for k in rnd.candidate_keys] if rnd.number > 1 else [],
        "members": rnd.members, "present": rnd.present,
        # Read as the console reads them: 已表决 R of 实到 P, so P − R have not voted yet; P − I of
        # them never took a ballot on their tablet (shown apart: 未按 after the vote is I − R).
        "voted": voted, "issued": issued,
        "not_voted_yet": max(rnd.present - voted, 0) if voted is not None and rnd.present is not None else None,
        "not_issued": rules.not_issued(item.channel, rnd.present, issued),
        "open": rnd.status == RoundStatus.OPEN,
        "closes_at": rnd.closes_at.isoformat() if rnd.closes_at and rnd.status == RoundStatus.OPEN else None,
    }


def _row(c: dict, titles: dict[str, str]) -> dict:
    return {"key": c["key"], "title": titles.get(c["key"], c["key"]), "for": c["for"],
            "against": c["against"], "abstain": c["abstain"], "void": c.get("void", 0),
            "passed": bool(c["passed"])}


def _result_view(db: Session, item: Item) -> dict:
    """The tallied result, from the stored round results via tally.item_result (never recounted)."""
    rounds = [r for r in item.rounds if r.status == RoundStatus.TALLIED and r.result]
    entry = tally.item_result(item.key, item.kind, [r.result for r in rounds])
    first, last = rounds[0].result, rounds[-1].result
    titles = _titles(item)
    out = {
        "item_id": item.id, "key": item.key, "title": item.title, "kind": item.kind,
        "secret": item.secret, "channel": item.channel, "status": entry["status"],
        "rounds": len(rounds), "places": item.places,
        "rule": first.get("rule"), "threshold_votes": first.get("threshold_votes"),
        **{k: entry[k] for k in ("members", "present", "quorum_met", "issued", "returned", "valid",
                                 "invalid", "refused", "not_voted")},
    }
    if item.kind == ItemKind.EVALUATION:
        out["not_issued"] = rules.not_issued(item.channel, out["present"], out["issued"])
        out["threshold_votes"] = None  # graded, not passed: the notes say how (grade_rule)
        return {**out, **evaluation_view(item, entry, titles)}
    rows = [_row(c, titles) for c in entry["candidates"]]
    if item.kind == ItemKind.RESOLUTION:
        out["motion"] = rows[0] if rows else None
        out["passed"] = bool(entry.get("passed"))
    elif item.kind == ItemKind.APPOINTMENT:
        out["nominees"] = rows
    elif item.kind == ItemKind.ELECTION:
        if len(rounds) > 1 and last.get("stage") in (ElectionStage.ANOTHER, ElectionStage.REVOTE):
            # The hall reads the round just tallied (再次投票 / 另行选举): its counts, its 当选.
            out.update({k: last[k] for k in ("issued", "returned", "valid", "invalid", "refused", "not_voted")
                        if k in last})
            out["threshold_votes"] = last.get("threshold_votes", out["threshold_votes"])
            entry = {**entry, "write_ins": [{**w, "elected": "write_in:" + w["name"] in last["elected"]}
                                            for w in last.get("write_ins", [])]}
            rows = [{**_row(c, titles), "round_elected": c["key"] in last["elected"]} for c in last["candidates"]]
        out.update(_election_view(entry, rows, last))
        later = another_items.another_links(db, item).get("another_next")  # seats saved for a later sitting
        out["another_in"] = later["session"]["name"] if later else None
    else:
        selected = list(entry.get("selected", []))
        tied = set(entry.get("tied", []))
        runoff = entry.get("runoff")
        runoff_for = {c["key"]: c["for"] for c in runoff["candidates"]} if runoff else {}
        by_key = {r["key"]: r for r in rows}
        # Ranked: the selected in their selection order, then the rest by 赞成 (descending,
        # equal counts in candidate-list order, as RULES.md §5.1 orders them for display).
        rest = sorted((r for r in rows if r["key"] not in selected), key=lambda r: -r["for"])
        ranked = [by_key[k] for k in selected if k in by_key] + rest
        for r in ranked:
            r["selected"] = r["key"] in selected
            r["rank"] = selected.index(r["key"]) + 1 if r["selected"] else None
            r["tied"] = r["key"] in tied
            r["runoff_for"] = runoff_for.get(r["key"])
        out["projects"] = ranked
        out["selected_count"] = len(selected)
        out["tied_count"] = len(tied)
        out["runoff_places"] = last.get("runoff_places", 0) if entry["status"] == ItemStatus.RUNOFF_PENDING else 0
        out["shortfall"] = last.get("shortfall", 0) if entry["status"] == ItemStatus.DECIDED else 0
        if runoff:
            out["runoff"] = {k: runoff[k] for k in ("places", "issued", "returned", "valid", "invalid", "refused")}
    out["not_issued"] = rules.not_issued(item.channel, out["present"], out["issued"])
    return out


def evaluation_view(item: Item, entry: dict, titles: dict[str, str]) -> dict:
    """An evaluation's table for the hall: per subject every option's count, 弃权 and 无效 as
    segments of one bar (best option first), the rate and the grade."""
    options = item.options or []
    rank = {o["key"]: i for i, o in enumerate(options)}
    subjects = [{"key": c["key"], "title": titles.get(c["key"], c["key"]),
                 "counts": [c.get(o["key"], 0) for o in options], "abstain": c.get("abstain", 0),
                 "void": c.get("void", 0), "rate": c.get("rate"), "grade": c.get("grade"),
                 "grade_rank": rank.get(c.get("grade")),
                 "grade_title": next((o["title"] for o in options if o["key"] == c.get("grade")), None)}
                for c in entry["candidates"]]
    return {"options": options, "subjects": subjects, "rate_name": evaluation_text.rate_name({"options": options}),
            "grading": item.grading}


def _election_view(entry: dict, rows: list[dict], last: dict) -> dict:
    """当选 / 未当选 per person (round 1's counts; write-ins after the listed candidates)."""
    elected, tied = entry["elected"], set(entry.get("tied", []))
    people = rows + [{"key": "write_in:" + w["name"], "title": w["name"], "for": w["for"], "against": None,
                      "abstain": None, "void": 0, "passed": False, "write_in": True} for w in entry["write_ins"]]
    for p in people:
        p["elected"] = p.pop("round_elected", p["key"] in elected)
        p["tied"] = p["key"] in tied
    pending = entry["status"] == ItemStatus.RUNOFF_PENDING
    return {"nominees": people, "elected_count": len(elected), "unfilled": entry["unfilled"],
            "tied_count": len(tied), "runoff_places": last.get("runoff_places", 0) if pending else 0,
            "stage": last.get("stage")}


def _record_view(db: Session, item: Item, verify_url: Callable[[str], str]) -> dict | None:
    rec = db.scalar(select(Record).where(Record.item_id == item.id).order_by(Record.created_at.desc()).limit(1))
    if rec is None:
        return None
    try:
        seq = json.loads(rec.body_json).get("audit", {}).get("seq")
    except ValueError:
        seq = None
    url = verify_url(rec.id)
    return {"id": rec.id, "key_fingerprint": rec.key_fingerprint, "audit_head": rec.audit_head,
            "audit_seq": seq, "published": rec.published, "verify_url": url, "qr_svg": qr.qr_svg(url)}


