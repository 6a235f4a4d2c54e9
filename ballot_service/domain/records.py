"""Signed resolution records (决议记录): canonical JSON signed with the body's key, and the
announcement text (宣布稿) the presiding officer reads. The PDF is rendered by record_pdf.py."""
from __future__ import annotations

import base64

from sqlalchemy import select
from sqlalchemy.orm import Session

from ballot_service import rules
from ballot_service.config import Settings
from ballot_service.crypto import keys
from ballot_service.domain import audit
from ballot_service.domain.tally import item_result
from ballot_service.errors import Conflict
from ballot_service.formats.canonical import canonical_json
from ballot_service.models import Item, Record, status_name

RECORD_FORMAT = "ballot-record/1"
FINAL = ("decided", "void", "quorum_not_met")
KIND_NAMES = {"livelihood_projects": "民生实事项目票决", "appointment": "任职票决", "resolution": "决议表决"}


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
                    "result": r.result} for r in tallied],
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
    key = keys.load_key(settings.keys_dir, keys.body_key_name(body.id), settings.key_passphrase)
    seq, head = audit.head(db)
    content = record_body(item, seq, head, key.fingerprint)
    data = canonical_json(content)
    sig = base64.urlsafe_b64encode(key.sign(data)).rstrip(b"=").decode("ascii")
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


def announcement(content: dict) -> str:
    """宣布稿: the text the presiding officer reads, generated from the signed record."""
    body_kind = content["body"]["kind"]
    who = "代表" if body_kind == "congress" else "组成人员"
    r = content["result"]
    item = content["item"]
    titles = {c["key"]: c["title"] for c in item["candidates"]}
    quorum = "符合法定人数" if r["quorum_met"] else "不符合法定人数"
    lines = [f"本次会议应到{who}{r['members']}名，实到{r['present']}名，{quorum}。"]
    if r["status"] == "quorum_not_met":
        lines.append(f"《{item['title']}》不能进行表决。")
        return "".join(lines)
    ticket = "票决票" if item["kind"] == "livelihood_projects" else "表决票"
    counts = (f"{item['title']}：发出{ticket}{r['issued']}张，收回{r['returned']}张，"
              f"其中有效票{r['valid']}张，无效票{r['invalid']}张")
    if r["refused"]:
        counts += f"，拒收{r['refused']}张"
    lines.append(counts + "。")
    if r["status"] == "void":
        lines.append("收回票数多于发出票数，本次表决无效，应当重新表决。")
        return "".join(lines)
    lines.append(f"收回票数不多于发出票数，本次{KIND_NAMES[item['kind']]}有效。")
    if item["kind"] == "resolution":
        c = r["candidates"][0]
        lines.append(f"赞成{c['for']}票，反对{c['against']}票，弃权{c['abstain']}票，"
                     f"{'通过' if r['passed'] else '未通过'}。")
    elif item["kind"] == "appointment":
        for c in r["candidates"]:
            lines.append(f"{titles[c['key']]}：赞成{c['for']}票，反对{c['against']}票，弃权{c['abstain']}票，"
                         f"{'通过' if c['passed'] else '未通过'}。")
    else:
        if r.get("status") == "runoff_pending":
            tied = "、".join(titles[k] for k in r.get("tied", []))
            lines.append(f"{tied}得票相等，需再次投票。")
        elif r.get("selected"):
            chosen = "、".join(titles[k] for k in r["selected"])
            lines.append(f"得赞成票超过全体{who}半数、按得票多少确定的民生实事项目为：{chosen}。")
        shortfall = (item.get("places") or 0) - len(r.get("selected", []))
        if r["status"] == "decided" and shortfall > 0:
            lines.append(f"通过项目少于应选{item['places']}项，差{shortfall}项。")
    return "".join(lines)
