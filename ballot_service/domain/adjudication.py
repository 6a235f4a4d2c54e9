"""Adjudication (裁定) of scanned pages the mark reader would not decide alone.

Two different tellers decide each queued page: a 计票人 (counter) and a 监票人 (scrutineer),
each from their own counting-station credential (the teller is the credential's registered
holder). The same decision from both goes through cast intake like any ballot; different
decisions leave the page `waiting` for the 总监票人 (chief), whose decision then stands. Every
decision is an audit event. A decision is either marks (per candidate for / against /
abstain / void, or an evaluation's option keys / abstain / void; left out: abstain) with, for a page whose QR code was unreadable, the ballot's
text from the QR scanner; or `reject` (not a ballot: nothing is counted). Only flushes.
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ballot_service.config import Settings
from ballot_service.db import begin_write
from ballot_service.domain import audit, ballot_marks, evaluation_items, scanning
from ballot_service.errors import BallotError, Conflict, Forbidden, InvalidInput, NotFound
from ballot_service.formats import ballots, names, set_sheet
from ballot_service.formats.canonical import canonical_json
from ballot_service.models import Item, Round, ScannedPage, Sitting, Terminal
from ballot_service.rules import election as er
from ballot_service.vocab import AuditKind, ItemKind, TellerRole, TerminalKind, label_pair

TWO_TELLERS = (TellerRole.COUNTER, TellerRole.SCRUTINEER)


def adjudicator(station: Terminal | None) -> tuple[str, str]:
    """(holder, role) of a station registered to a 计票人, 监票人 or 总监票人, else Forbidden."""
    if station is None or station.kind != TerminalKind.COUNTING_STATION or not station.holder \
            or station.teller_role not in (*TWO_TELLERS, TellerRole.CHIEF):
        raise Forbidden("this counting-station credential is not registered to a teller: only a 计票人, 监票人 or "
                        "总监票人 decides a scanned ballot", where="credential",
                        zh="该计票站凭据未登记计票人、监票人或总监票人，不能裁定选票")
    return station.holder, station.teller_role


def get_page(db: Session, sitting: Sitting, page_id: str) -> ScannedPage:
    page = db.get(ScannedPage, page_id) if isinstance(page_id, str) else None
    if page is None or page.sitting_id != sitting.id:
        raise NotFound("no such scanned page in this session", where="page", zh="本会次没有这一扫描页")
    return page


def normalise(db: Session, sitting: Sitting, page: ScannedPage, raw: dict) -> dict:
    """A teller's decision in one canonical form, checked against the ballot it is for."""
    if not isinstance(raw, dict):
        raise InvalidInput("decision must be an object", where="decision", zh="裁定内容格式不正确")
    if raw.get("reject") is True:
        if set(raw) != {"reject"}:
            raise InvalidInput("a rejection carries nothing else", where="decision", zh="判为非选票时不能再填写其他内容")
        return {"reject": True}
    text = raw.get("ballot", page.qr_text)
    if page.qr_text and raw.get("ballot") not in (None, page.qr_text):
        raise InvalidInput("this page's QR code was read: the decision is for that ballot", where="decision.ballot", zh="此页二维码已识读，裁定只能针对该选票")
    if not isinstance(text, str) or not text:
        raise InvalidInput("the QR code of this page was not read: scan the paper ballot's QR code",
                           where="decision.ballot", zh="该页二维码无法识读：请用扫码枪扫描该选票的二维码")
    if set_sheet.is_set_text(text):   # a page whose QR code was not read holds the whole sheet
        raise InvalidInput("this is a ballot set's sheet: enter its elections one by one with the QR scanner "
                           "(read by eye), then mark this page as not a ballot", where="decision.ballot",
                           zh="这是选举票组的合印选票：请在“扫码枪读票”中逐项录入，再将此页判为“不是选票”")
    item, rnd = scanning.round_for_text(
        db, sitting.id, text,
        refused=InvalidInput("that is not a ballot's QR text", where="decision.ballot", zh="这不是选票的二维码文本"),
        unknown=InvalidInput("that ballot is not for a vote of this session", where="decision.ballot",
                             zh="这张选票不属于本会次的表决"))
    if page.round_id is not None and rnd.id != page.round_id:
        raise InvalidInput("that ballot is for another vote than this page", where="decision.ballot", zh="这张选票属于另一项表决，与此页不符")
    if item.kind == ItemKind.EVALUATION:   # its own option keys, as keyed at /api/station/paper
        marks = evaluation_items.parse_marks(raw.get("marks"), list(rnd.candidate_keys),
                                             list(evaluation_items.option_keys(item.options)), paper=True)
    else:
        marks = ballot_marks.parse_marks(raw.get("marks"), list(rnd.candidate_keys), allow_void=True,
                                         stage=rnd.stage)
    return {"ballot": text, "marks": marks}


def decide(db: Session, settings: Settings, sitting: Sitting, page: ScannedPage, station: Terminal,
           raw: dict) -> str:
    """Record one teller's decision. Returns the page's status afterwards: queued (one
    decision so far), waiting (the two disagree), or, once decided: counted, rescanned,
    refused (intake refused it; `outcome` says why) or rejected."""
    holder, role = adjudicator(station)
    decision = normalise(db, sitting, page, raw)
    begin_write(db)
    db.refresh(page, with_for_update=True)   # two tellers deciding at once: one waits
    if page.status not in ("queued", "waiting"):
        raise Conflict("this page has been decided already", where="page", zh="该页已裁定")
    if page.status == "waiting" and role != TellerRole.CHIEF:
        raise Conflict("the two tellers disagreed: the 总监票人 decides this page", where="page",
                       zh="两名计票人员意见不一致：由总监票人裁定")
    if page.status == "queued" and role == TellerRole.CHIEF:
        raise Conflict("the 计票人 and 监票人 decide first; the 总监票人 decides when they disagree", where="page",
                       zh="先由计票人和监票人裁定；两人意见不一致时由总监票人裁定")
    earlier = list(page.decisions)
    if page.status == "queued" and earlier:
        first = earlier[0]
        if first["teller"] == holder or first["teller_role"] == role:
            other = label_pair(TellerRole.SCRUTINEER if first["teller_role"] == TellerRole.COUNTER
                               else TellerRole.COUNTER, TellerRole)
            raise Conflict(f"the {first['teller_role']} {first['teller']} decided first; the {other[1]} decides "
                           f"next", where="teller", zh=f"已由{first['teller']}裁定；须由{other[0]}再裁定")
    page.decisions = earlier + [{"teller": holder, "teller_role": role, "decision": decision}]
    if page.status == "queued" and not earlier:
        step, final = "first", None
    elif page.status == "queued":
        same = canonical_json(earlier[0]["decision"]) == canonical_json(decision)
        step, final = ("agreed", decision) if same else ("disagreed", None)
        if not same:
            page.status = "waiting"
    else:
        step, final = TellerRole.CHIEF, decision
    # A hybrid round's paper ballot (BR1): the chain also names the member allowed paper, so its
    # decided marks (and serial) stay with the page, out of the chain (README, "Hybrid votes").
    hybrid = str(decision.get("ballot", "")).startswith(ballots.ROUND_KEY_PREFIX + ".")
    if final is not None and not final.get("reject"):
        _lock_round_counted(db, sitting, page, final)
    audit.append(db, AuditKind.ADJUDICATION_DECIDED, {"page_id": page.id, "teller": holder, "teller_role": role,
                                              "step": step, **({} if hybrid else {"decision": decision})},
                 sitting_id=sitting.id, timed=False)
    if final is not None:
        _apply(db, settings, sitting, page, final)
    db.flush()
    return page.status


def _lock_round_counted(db: Session, sitting: Sitting, page: ScannedPage, decision: dict) -> None:
    """PostgreSQL: the round the decision counts on, FOR NO KEY UPDATE as intake takes a paper
    cast's round (round_facts.lock_in_id_order), and before the chain's head, the order every
    item step and cast batch keeps. The other way round, this decision holding the head and
    waiting for the round, and a scan or a close holding the round and waiting for the head,
    waited for each other."""
    round_id = page.round_id
    if round_id is None:  # its QR was unreadable: the round the tellers' ballot text names
        try:
            _, rnd = scanning.round_for(db, sitting.id, ballots.text_to_token(decision["ballot"])["payload"])
        except BallotError:
            rnd = None  # intake refuses it, with the reason
        round_id = rnd.id if rnd is not None else None
    if round_id is not None:
        db.execute(select(Round.id).where(Round.id == round_id).with_for_update(key_share=True))


def _apply(db: Session, settings: Settings, sitting: Sitting, page: ScannedPage, decision: dict) -> None:
    if decision.get("reject"):
        page.status, page.outcome = "rejected", "not a ballot: nothing counted"
        return
    page.status, page.outcome, _ = scanning.submit_marks(db, settings, sitting, decision["ballot"],
                                                         decision["marks"])
    if page.round_id is None:
        _, rnd = scanning.round_for(db, sitting.id, ballots.text_to_token(decision["ballot"])["payload"])
        page.round_id = rnd.id


def by_eye_marks(item: Item, rnd: Round, marks: dict, write_ins) -> dict:
    """A ballot read by eye: the marks clicked with the names typed from its 另选他人 lines
    (`write_ins`, as written: "write_in:<name>": "for", checked as a scanned page's are), no
    more names than the ballot prints lines."""
    if write_ins is None:
        return marks
    if not isinstance(write_ins, list):
        raise InvalidInput("write_ins must be a list of the names on the ballot's 另选他人 lines", where="write_ins",
                           zh="另选他人须为姓名列表（每行一名，照票面抄录）")
    lines = scanning.write_in_lines_of(item, rnd)
    if len(write_ins) > lines:
        raise InvalidInput(f"this ballot prints {lines} 另选他人 line(s), not {len(write_ins)}", where="write_ins",
                           zh=f"这张选票只印有 {lines} 行另选他人，不能填写 {len(write_ins)} 人" if lines else
                           "这张选票没有另选他人栏")
    typed = [names.check_name(n, what="另选他人 (written-in name)", where=f"write_ins.{i}", max_len=names.MEMBER_NAME)
             for i, n in enumerate(write_ins)]
    return {**marks, **{er.WRITE_IN + n: "for" for n in typed}}


def over_selected(item: Item, rnd: Round, decision: dict) -> bool:
    """Whether a decided election ballot chooses more persons than seats (赞成 + 另选): taken
    as written, it counts invalid (rules.election.read_ballot)."""
    if item.kind != ItemKind.ELECTION or "marks" not in decision:
        return False
    marks = decision["marks"]
    written = [k[len(er.WRITE_IN):] for k in marks if k.startswith(er.WRITE_IN)]
    listed = {c.key: c.title for c in item.candidates}
    ballot = er.read_ballot({k: v for k, v in marks.items() if k in rnd.candidate_keys}, list(rnd.candidate_keys),
                            rnd.places, written, listed=[*listed, *listed.values()])
    return not ballot.valid
