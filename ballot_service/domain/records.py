"""Signed records of a vote's result: canonical JSON signed with the body's key, issued once
per item and published to the presiding screen. The PDF is render/record_pdf.py; the
宣布稿 is render/announcement.py."""
from __future__ import annotations

import json

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from ballot_service import rules
from ballot_service.config import Settings
from ballot_service.crypto import keys
from ballot_service.domain import another_items, audit, election_items, voting
from ballot_service.domain.tally import recount_round
from ballot_service.errors import Conflict
from ballot_service.formats.canonical import canonical_json
from ballot_service.formats.encoding import b64url_encode
from ballot_service.models import Cast, Item, Record, TallySheet, Terminal
from ballot_service.rules.tally import item_result
from ballot_service.vocab import (
    BLIND_CHANNELS,
    AuditKind,
    Channel,
    ItemKind,
    ItemStatus,
    Majority,
    RoundStatus,
    TellerRole,
    status_name,
)

RECORD_FORMAT = "ballot-record/1"
FINAL = (ItemStatus.DECIDED, ItemStatus.VOID, ItemStatus.QUORUM_NOT_MET)


def record_body(item: Item, audit_seq: int, audit_head: str, fingerprint: str,
                tellers: dict[int, dict] | None = None, by_channel: dict[int, dict] | None = None,
                links: dict | None = None) -> dict:
    """Everything the record states, built from the stored rounds (issue_record has recounted
    them first). `tellers`: round number -> {"counter", "scrutineer"}, the two tellers who
    entered and confirmed a tally sheet (tally-sheet items only). `by_channel`: round number ->
    issued and returned by tablet and by paper (hybrid items only, channel_split). `links`: a
    另行选举 saved for a later sitting (another_items.another_links)."""
    sitting, body = item.sitting, item.sitting.body
    tallied = [r for r in item.rounds if r.status == RoundStatus.TALLIED]
    titles = {c.key: c.title for c in item.candidates}
    result = item_result(item.key, item.kind, [r.result for r in tallied])
    return {
        "format": RECORD_FORMAT,
        "body": {"id": body.id, "name": body.name, "kind": body.kind},
        "session": {"id": sitting.id, "name": sitting.name},
        "item": {"id": item.id, "key": item.key, "kind": item.kind, "title": item.title,
                 "secret": item.secret, "channel": item.channel, "places": item.places,
                 "candidates": [{"key": c.key, "title": c.title,
                                 **({"office": c.office} if c.office else {}),
                                 # an evaluation's subjects keep their description: where a project was selected (§5.5)
                                 **({"description": c.description} if item.kind == ItemKind.EVALUATION and c.description
                                    else {})} for c in item.candidates],
                 **({"options": item.options, "grading": item.grading} if item.kind == ItemKind.EVALUATION else {}),
                 **({"office": item.office, "by_election": item.by_election,
                     "written_in": election_items.written_in_deputies(item)} if item.office else {}),
                 **(links or {})},
        "rule": {"quorum": rules.quorum_rule_text(body.kind), "base": item.base, "majority": item.majority,
                 "pass": _pass_rule(item)},
        "result": result,
        "rounds": [{"number": r.number, "places": r.places, "candidates": r.candidate_keys,
                    "opened_at": r.opened_at.isoformat() if r.opened_at else None,
                    "closed_at": r.closed_at.isoformat() if r.closed_at else None,
                    "result": r.result, **({"tellers": tellers[r.number]} if tellers and r.number in tellers
                                           else {}),
                    **({"round_ref": r.ref, "round_key_fingerprint": r.blind_key_fingerprint,
                        "replacements": r.replacements or 0,
                        # P − I: present members who took no ballot (audit verify checks it)
                        "not_issued": rules.not_issued(item.channel, r.result.get("present"),
                                                       r.result.get("issued"))}
                       if item.channel in BLIND_CHANNELS else {}),
                    **({"by_channel": by_channel[r.number]} if by_channel and r.number in by_channel else {}),
                    # opened although some present members had no ready tablet: who typed why
                    **({"tablets_override": r.open_override} if r.open_override else {})}
                   for r in tallied],
        "selected_titles": [titles[k] for k in result.get("selected", [])],
        "audit": {"seq": audit_seq, "head": audit_head},
        "key_fingerprint": fingerprint,
    }


def _pass_rule(item: Item) -> str:
    if item.kind == ItemKind.EVALUATION:  # RULES.md §5.5
        if (item.grading or {}).get("by") == "rate_thresholds":
            return "grade = first step with rate >= minimum, else the last option; rate = round_half_up(10000*positive/valid)"
        return "grade = first option g_j (j < m) with 2*c_j > base, else g_m; rate = round_half_up(10000*positive/valid)"
    return "2*for > base" if item.majority == Majority.HALF else "3*for >= 2*base"


def issue_record(db: Session, settings: Settings, item: Item) -> Record:
    if item.status not in FINAL:
        zh, en = status_name(item.status)
        raise Conflict(f"{item.title} is {en}; a record is issued once the item is tallied, void or "
                       f"without quorum", where="item",
                       zh=f"《{item.title}》当前为“{zh}”：计票得出结果、表决无效或不足法定人数后才能签发表决结果记录")
    existing = db.scalar(select(Record).where(Record.item_id == item.id))
    if existing is not None:
        return existing
    tellers = recount_before_signing(db, item)
    body = item.sitting.body
    key = keys.body_signing_key(settings, body.id)
    seq, head = audit.head(db, body.id)
    split = {r.number: channel_split(db, r) for r in item.rounds
             if item.channel == Channel.HYBRID and r.status == RoundStatus.TALLIED and r.quorum_met}
    content = record_body(item, seq, head, key.fingerprint, tellers, split, another_items.another_links(db, item))
    data = canonical_json(content)
    sig = b64url_encode(key.sign(data))
    rec = Record(item_id=item.id, body_json=data.decode("utf-8"), signature=sig,
                 key_fingerprint=key.fingerprint, audit_head=head)
    try:
        # records.item_id is unique: of two concurrent issuings the second waits for the
        # first to commit (PostgreSQL), fails here, and answers with the first one's record.
        with db.begin_nested():
            db.add(rec)
            db.flush()
    except IntegrityError:
        existing = db.scalar(select(Record).where(Record.item_id == item.id))
        if existing is None:
            raise
        return existing
    audit.append(db, AuditKind.RECORD_ISSUED, {"item_id": item.id, "record_id": rec.id, "signature": sig,
                                       "record_sha256": audit.sha256_hex(data)}, sitting_id=item.sitting_id)
    return rec


def channel_split(db: Session, rnd) -> dict:
    """A hybrid round's I and R by channel: blind signatures and paper ballots handed out; tablet
    and paper ballots returned. Each pair adds up to the round's I and R."""
    tablets = voting.blind_signatures(db, rnd)
    returned = voting.returned_by_channel(rnd, db.scalar(select(func.count()).select_from(Cast)
                                                         .where(Cast.round_id == rnd.id)) or 0)
    return {"issued": {"terminal": tablets, "paper": (rnd.issued or 0) - tablets}, "returned": returned}


def _plain(value):
    """As stored in a JSON column (tuples become lists), to compare a recount with a stored result."""
    return json.loads(json.dumps(value))


def recount_before_signing(db: Session, item: Item) -> dict[int, dict]:
    """Count every tallied round of the item again from its casts or confirmed tally sheet
    (tally.recount_round, the code the tally used) and refuse if any differs from the stored
    `Round.result`, or the item's status from its last round's. Returns the tellers of each
    tally-sheet round (round number -> {"counter", "scrutineer"})."""
    tellers: dict[int, dict] = {}
    tallied = [r for r in item.rounds if r.status == RoundStatus.TALLIED]
    if not tallied:
        raise Conflict(f"{item.title} has no tallied round", where="item", zh=f"《{item.title}》尚未计票")
    for r in tallied:
        fresh = _plain(recount_round(db, item, r))
        if fresh != _plain(r.result):
            stored = r.result if isinstance(r.result, dict) else {}
            differ = sorted(k for k in set(fresh) | set(stored) if fresh.get(k) != stored.get(k))
            raise Conflict(f"the stored result of {item.title} round {r.number} differs from a recount of its "
                           f"{'tally sheet' if item.channel == Channel.TALLY_SHEET and r.quorum_met else 'ballots'} "
                           f"({', '.join(differ) or 'result'}): the record is not signed; check the database "
                           f"and the audit log", where="result",
                           zh=f"《{item.title}》第{r.number}轮保存的计票结果与重新清点的结果不一致（{'、'.join(differ)}），"
                              f"不予签发表决结果记录，请核查数据库和审计日志")
        if item.channel == Channel.TALLY_SHEET and r.quorum_met:
            tellers[r.number] = sheet_tellers(db, r)
    if item.status != tallied[-1].result["status"]:
        now, counted = status_name(item.status), status_name(tallied[-1].result["status"])
        raise Conflict(f"{item.title} is {now[1]} but its last round was tallied {counted[1]}: "
                       f"the record is not signed", where="item",
                       zh=f"《{item.title}》的状态（{now[0]}）与计票结果（{counted[0]}）不一致，不予签发表决结果记录")
    return tellers


def sheet_tellers(db: Session, rnd) -> dict:
    """The two tellers of a round's confirmed tally sheet, by role, from their credentials."""
    sheet = db.scalar(select(TallySheet).where(TallySheet.round_id == rnd.id))
    out = {}
    for terminal_id in (sheet.entered_terminal_id, sheet.confirmed_terminal_id):
        station = db.get(Terminal, terminal_id) if terminal_id else None
        if station is None or station.teller_role not in (TellerRole.COUNTER, TellerRole.SCRUTINEER):
            raise Conflict(f"the tally sheet of round {rnd.number} was not entered and confirmed by two "
                           f"registered tellers", where="tally_sheet",
                           zh=f"第{rnd.number}轮计票单未经两名登记的计票人员录入和确认")
        out[station.teller_role] = station.holder
    if set(out) != {TellerRole.COUNTER, TellerRole.SCRUTINEER}:
        raise Conflict(f"the tally sheet of round {rnd.number} needs a counter and a scrutineer",
                       where="tally_sheet", zh=f"第{rnd.number}轮计票单须由计票人和监票人分别录入和确认")
    return out


def publish_record(db: Session, item: Item) -> Record:
    """公布: the secretariat releases a signed record to the presiding officer's screen.
    Publishing changes nothing in the signed content; it is audited, and done once."""
    rec = db.scalar(select(Record).where(Record.item_id == item.id))
    if rec is None:
        raise Conflict(f"{item.title} has no signed record yet; issue the record first", where="item",
                       zh=f"《{item.title}》尚未签发表决结果记录，请先签发")
    if rec.published:
        raise Conflict("this record is already published", where="record", zh="该表决结果记录已公布")
    rec.published = True
    db.flush()
    audit.append(db, AuditKind.RECORD_PUBLISHED, {"item_id": item.id, "record_id": rec.id}, sitting_id=item.sitting_id)
    return rec
