"""Signed records of a vote's result: canonical JSON signed with the body's key, issued once
per item and published to the presiding screen. The PDF is render/record_pdf.py; the
宣布稿 is render/announcement.py."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ballot_service import rules
from ballot_service.config import Settings
from ballot_service.crypto import keys
from ballot_service.domain import audit
from ballot_service.domain.tally import item_result
from ballot_service.errors import Conflict
from ballot_service.formats.canonical import canonical_json
from ballot_service.formats.encoding import b64url_encode
from ballot_service.models import Item, Record
from ballot_service.vocab import status_name

RECORD_FORMAT = "ballot-record/1"
FINAL = ("decided", "void", "quorum_not_met")


def record_body(item: Item, audit_seq: int, audit_head: str, fingerprint: str) -> dict:
    """Everything the record states, built only from stored rounds (never recounted here)."""
    sitting, body = item.sitting, item.sitting.body
    tallied = [r for r in item.rounds if r.status == "tallied"]
    titles = {c.key: c.title for c in item.candidates}
    result = item_result(item.key, item.kind, [r.result for r in tallied])
    return {
        "format": RECORD_FORMAT,
        "body": {"id": body.id, "name": body.name, "kind": body.kind},
        "session": {"id": sitting.id, "name": sitting.name},
        "item": {"id": item.id, "key": item.key, "kind": item.kind, "title": item.title,
                 "secret": item.secret, "channel": item.channel, "places": item.places,
                 "candidates": [{"key": c.key, "title": c.title} for c in item.candidates]},
        "rule": {"quorum": rules.quorum_rule_text(body.kind), "base": item.base, "majority": item.majority,
                 "pass": "2*for > base" if item.majority == "half" else "3*for >= 2*base"},
        "result": result,
        "rounds": [{"number": r.number, "places": r.places, "candidates": r.candidate_keys,
                    "opened_at": r.opened_at.isoformat() if r.opened_at else None,
                    "closed_at": r.closed_at.isoformat() if r.closed_at else None,
                    "result": r.result,
                    **({"round_ref": r.ref, "round_key_fingerprint": r.blind_key_fingerprint,
                        "replacements": r.replacements or 0} if item.channel == "terminal" else {})}
                   for r in tallied],
        "selected_titles": [titles[k] for k in result.get("selected", [])],
        "audit": {"seq": audit_seq, "head": audit_head},
        "key_fingerprint": fingerprint,
    }


def issue_record(db: Session, settings: Settings, item: Item) -> Record:
    if item.status not in FINAL:
        zh, en = status_name(item.status)
        raise Conflict(f"item {item.key} is {en}; a record is issued once the item is tallied, void or "
                       f"without quorum", where="item",
                       zh=f"表决事项 {item.key} 当前为“{zh}”：计票得出结果、表决无效或不足法定人数后才能签发表决结果记录")
    existing = db.scalar(select(Record).where(Record.item_id == item.id))
    if existing is not None:
        return existing
    body = item.sitting.body
    key = keys.body_signing_key(settings, body.id)
    seq, head = audit.head(db)
    content = record_body(item, seq, head, key.fingerprint)
    data = canonical_json(content)
    sig = b64url_encode(key.sign(data))
    rec = Record(item_id=item.id, body_json=data.decode("utf-8"), signature=sig,
                 key_fingerprint=key.fingerprint, audit_head=head)
    db.add(rec)
    db.flush()
    audit.append(db, "record_issued", {"item_id": item.id, "record_id": rec.id, "signature": sig,
                                       "record_sha256": audit.sha256_hex(data)}, sitting_id=item.sitting_id)
    return rec


def publish_record(db: Session, item: Item) -> Record:
    """公布: the secretariat releases a signed record to the presiding officer's screen.
    Publishing changes nothing in the signed content; it is audited, and done once."""
    rec = db.scalar(select(Record).where(Record.item_id == item.id))
    if rec is None:
        raise Conflict(f"item {item.key} has no signed record yet; issue the record first", where="item",
                       zh=f"表决事项 {item.key} 尚未签发表决结果记录，请先签发")
    if rec.published:
        raise Conflict("this record is already published", where="record", zh="该表决结果记录已公布")
    rec.published = True
    db.flush()
    audit.append(db, "record_published", {"item_id": item.id, "record_id": rec.id}, sitting_id=item.sitting_id)
    return rec
