"""The counting station's live reconciliation, per paper item of a session (its current
round), in the order a 总监票人 reports it: 发出 (handed out) / 收回 (returned: ballots accepted)
/ 已读 (pages scanned) / 待裁定 (waiting for the tellers) / 有效 / 无效 / 拒收 / 重复扫描; the
paper accounting (printed = handed out + not handed out); and the alerts for the tellers (a
ballot presented again with other marks). Read only. An open secret round's casts are sealed
(cast_staging.py): they are opened with the body's key, hence `settings`."""
from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ballot_service import rules
from ballot_service.db import utcnow
from ballot_service.domain import cast_staging, evaluation_items, scan_queue, scanning, voting
from ballot_service.domain.paper_ballots import paper_counts
from ballot_service.models import (
    Candidate,
    Item,
    Refusal,
    Round,
    ScannedPage,
    Sitting,
    TallySheet,
    Terminal,
)
from ballot_service.rules.election_tally import WRITE_IN_STAGES
from ballot_service.vocab import PAPER_CHANNELS, Channel, ItemKind, Mark, RoundStatus, TerminalKind, label


def _current(item: Item) -> Round | None:
    return item.rounds[-1] if item.rounds else None


def item_board(db: Session, settings, item: Item, rnd: Round) -> dict:
    """A paper item's reconciliation at the station; a hybrid item's paper ballots only, as
    counts (which casts came on paper is not stored, so there is no valid/invalid of its own
    for them: its tablet ballots and paper ballots are counted together at the tally)."""
    marks = [] if item.channel == Channel.HYBRID else [
        c.marks for c in cast_staging.round_casts(db, settings, item.sitting.body_id, rnd.id)]
    if item.kind == ItemKind.EVALUATION:  # its ballots are marked in its own options
        count = evaluation_items.count_paper_ballots(item, list(rnd.candidate_keys), marks)
    else:
        count = rules.count_ballots(list(rnd.candidate_keys), marks, rnd.places)
    pages = dict(db.execute(select(ScannedPage.status, func.count()).where(ScannedPage.round_id == rnd.id)
                            .group_by(ScannedPage.status)).all())
    hybrid = item.channel == Channel.HYBRID
    # hybrid: each paper ballot printed as it was allowed, none stored; which casts came on paper
    # is a count only (Round.paper_returned)
    paper = {"printed": rnd.paper_allowed or 0, "handed_out": rnd.paper_allowed or 0} if hybrid \
        else paper_counts(db, rnd)
    by_channel = voting.returned_by_channel(rnd, cast_staging.returned(db, rnd.id)) if hybrid else None
    return {
        "item_id": item.id, "key": item.key, "title": item.title, "round": rnd.number, "status": rnd.status,
        "channel": item.channel, "mark_rule": item.mark_rule, "candidates": list(rnd.candidate_keys),
        "issued": paper["handed_out"], "returned": by_channel["paper"] if hybrid else count.returned,
        "read": sum(pages.values()), "pending": scan_queue.pending_pages(db, item, rnd),
        "valid": None if hybrid else count.valid, "invalid": None if hybrid else count.invalid,
        "refused": sum(db.scalars(select(Refusal.count).where(Refusal.round_id == rnd.id))),
        "rescanned": rnd.rescanned or 0,
        "printed": paper["printed"], "not_handed_out": paper["printed"] - paper["handed_out"],
        **({"returned_by_channel": by_channel, "paper_allowed": rnd.paper_allowed or 0} if hybrid else {}),
    }


def sheet_board(db: Session, item: Item, rnd: Round) -> dict:
    """A hand-counted item: where its tally sheet stands (none / entered / confirmed), and the
    sheet's columns (`choices`: an evaluation's options, else 赞成/反对; then 弃权/无效), the
    figures tally_sheets.validate_sheet takes per candidate, and whether it takes written-in persons."""
    sheet = db.scalar(select(TallySheet).where(TallySheet.round_id == rnd.id))
    state = "none" if sheet is None else ("confirmed" if sheet.confirmed_by else "entered")
    return {"item_id": item.id, "key": item.key, "title": item.title, "round": rnd.number, "status": rnd.status,
            "channel": item.channel, "candidates": list(rnd.candidate_keys),
            "titles": candidate_titles(db, item.id), "choices": choices(item), "sheet": state,
            "entered_by": sheet.entered_by if sheet else None,
            # an election round that allows 另选他人 adds rows of written-in persons and their 赞成
            "write_ins": item.kind == ItemKind.ELECTION and rnd.stage in WRITE_IN_STAGES}


def board(db: Session, settings, sitting: Sitting) -> dict:
    items = list(db.scalars(select(Item).where(Item.sitting_id == sitting.id,
                                               Item.channel.in_((*PAPER_CHANNELS, Channel.TALLY_SHEET)))
                            .order_by(Item.position, Item.id)))
    out = [item_board(db, settings, it, rnd) if it.channel in PAPER_CHANNELS else sheet_board(db, it, rnd)
           for it in items if (rnd := _current(it)) is not None]
    unread = db.scalar(select(func.count()).select_from(ScannedPage).where(
        ScannedPage.sitting_id == sitting.id, ScannedPage.round_id.is_(None),
        ScannedPage.status.in_(scan_queue.PENDING))) or 0
    alerts = [{"page_id": p.id, "outcome": p.outcome}
              for p in db.scalars(select(ScannedPage).where(ScannedPage.sitting_id == sitting.id,
                                                            ScannedPage.status == "refused")
                                  .order_by(ScannedPage.id))
              if (p.outcome or "").startswith("reused")]
    return {"items": out, "unread_pending": unread, "alerts": alerts}


def candidate_titles(db: Session, item_id: int) -> dict[str, str]:
    return dict(db.execute(select(Candidate.key, Candidate.title).where(Candidate.item_id == item_id)).all())


def choices(item: Item | None) -> list[dict]:
    """What a teller may decide per candidate, in printed order: an evaluation's own options
    (best first), else 赞成/反对; then 弃权/无效 (a page whose ballot is unknown yet: the latter)."""
    if item is not None and item.kind == ItemKind.EVALUATION:
        first = [{"key": o["key"], "title": o["title"]} for o in item.options or evaluation_items.DEFAULT_OPTIONS]
    else:
        first = [{"key": m.value, "title": label(m)} for m in (Mark.FOR, Mark.AGAINST)]
    return first + [{"key": m.value, "title": label(m)} for m in (Mark.ABSTAIN, Mark.VOID)]


def queue(db: Session, sitting: Sitting) -> list[dict]:
    """The pages waiting for a decision, with what the reader saw and who decided so far."""
    pages = db.scalars(select(ScannedPage).where(ScannedPage.sitting_id == sitting.id,
                                                 ScannedPage.status.in_(scan_queue.PENDING))
                       .order_by(ScannedPage.id))
    out = []
    for p in pages:
        rnd = db.get(Round, p.round_id) if p.round_id is not None else None
        out.append({"id": p.id, "status": p.status, "reasons": p.reasons, "round_id": p.round_id,
                    "item_id": rnd.item_id if rnd is not None else None, "has_qr": bool(p.qr_text),
                    "title": rnd.item.title if rnd is not None else None,
                    "candidates": list(rnd.candidate_keys) if rnd is not None else [],
                    "titles": candidate_titles(db, rnd.item_id) if rnd is not None else {},
                    "choices": choices(db.get(Item, rnd.item_id) if rnd is not None else None),
                    "boxes": p.boxes, "crops": p.crops,
                    "write_in_lines": scanning.write_in_lines_of(rnd.item, rnd) if rnd is not None else 0,
                    "decisions": [{"teller": d["teller"], "teller_role": d["teller_role"]} for d in p.decisions]})
    return out


def count_report(db: Session, settings, sitting: Sitting) -> dict:
    """The 计票结果报告单's content: per paper or hand-counted item its figures now (and, once
    tallied, per candidate), and the tellers registered with this session's stations."""
    items = []
    for it in db.scalars(select(Item).where(Item.sitting_id == sitting.id,
                                            Item.channel.in_((*PAPER_CHANNELS, Channel.TALLY_SHEET)))
                         .order_by(Item.position, Item.id)):
        rnd = _current(it)
        if rnd is None:
            continue
        if rnd.result and rnd.status == RoundStatus.TALLIED:
            r = rnd.result
            row = {k: r.get(k, 0) for k in ("issued", "returned", "valid", "invalid", "refused", "rescanned")}
            row["pending"] = 0
            titles, columns = {c.key: c.title for c in it.candidates}, choices(it)
            # in the item's own columns (an evaluation's options), those its result has
            row["candidates_count"] = [{"title": titles.get(c["key"], c["key"]),
                                        "counts": [[col["title"], c[col["key"]]] for col in columns
                                                   if col["key"] in c]} for c in r["candidates"]]
            row["candidates_count"] += [{"title": f"另选 {w['name']}",  # an election's 另选他人
                                         "counts": [[label(Mark.FOR), w["for"]]]} for w in r.get("write_ins", [])]
        elif it.channel in PAPER_CHANNELS:
            row = {k: v for k, v in item_board(db, settings, it, rnd).items()
                   if k in ("issued", "returned", "valid", "invalid", "refused", "rescanned", "pending")}
        else:
            row = dict.fromkeys(("issued", "returned", "valid", "invalid", "refused", "rescanned", "pending"))
        items.append({"item_id": it.id, "title": it.title, "round": rnd.number, "status": rnd.status, **row})
    tellers: dict[str, list[str]] = {"counter": [], "scrutineer": [], "chief": []}
    for term in db.scalars(select(Terminal).where(Terminal.sitting_id == sitting.id,
                                                  Terminal.kind == TerminalKind.COUNTING_STATION, Terminal.revoked_at.is_(None),
                                                  Terminal.holder.is_not(None)).order_by(Terminal.id)):
        if term.teller_role in tellers and term.holder not in tellers[term.teller_role]:
            tellers[term.teller_role].append(term.holder)
    return {"body": sitting.body.name, "session": sitting.name, "session_id": sitting.id,
            "made_at": utcnow().isoformat(), "items": items, "tellers": tellers}
