"""Write a body's audit bundle (or one session's of a body) to a folder: reads the database,
writes the files named in layout.py, and checks nothing (verify.py does).

A bundle holds one body's whole audit chain (each body has its own, domain/audit.py), that
body's checkpoints and public key, and the items, ballots, receipts and records of the body
(or of one of its sessions): it stands alone and verifies with that body's key."""
from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from collections import Counter
from importlib import resources
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from sqlalchemy import select
from sqlalchemy.orm import Session

from ballot_service.bundle import layout, scanned_pages
from ballot_service.bundle.encoding import json_line, pretty_json, sha256_file
from ballot_service.crypto import blind_ballots, blind_rsa
from ballot_service.crypto import keys as keys_mod
from ballot_service.domain import cast_staging, election_items, tally
from ballot_service.domain.records import channel_split
from ballot_service.errors import InvalidInput
from ballot_service.models import (
    AuditEvent,
    Body,
    Checkpoint,
    Item,
    Member,
    Record,
    Refusal,
    Round,
    Sitting,
    TallySheet,
)
from ballot_service.vocab import BLIND_CHANNELS, Channel, RoundStatus

_SAFE_STEM = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def export_bundle(db: Session, settings, out_dir: Path, *, body_id: int | None = None,
                  sitting_id: int | None = None) -> Path:
    """Write the audit bundle of a body (`body_id`), or of one session (`sitting_id`: its
    body's chain and only that session's items), to `out_dir` and return it. Neither given:
    the database's only body (refused if there are several). The console and the CLI call this.

    Reads only. Written to a temporary folder first, then moved into place; an earlier bundle
    at `out_dir` is replaced, any other non-empty folder is refused."""
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not (out_dir / layout.MANIFEST).exists():
        raise InvalidInput(f"{out_dir} is not empty and holds no earlier bundle; choose an empty folder",
                           where=str(out_dir))
    scope = bundle_scope(db, body_id, sitting_id)
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        _write_bundle(db, settings, tmp, scope)
        if out_dir.exists():
            shutil.rmtree(out_dir)
        os.replace(tmp, out_dir)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def bundle_scope(db: Session, body_id: int | None, sitting_id: int | None) -> dict:
    """{"body_id", "session_id"} of a bundle, checked against the database."""
    if sitting_id is not None:
        sitting = db.get(Sitting, sitting_id)
        if sitting is None or (body_id is not None and sitting.body_id != body_id):
            raise InvalidInput(f"no session {sitting_id} in body {body_id}" if body_id is not None
                               else f"no session {sitting_id}", where="session",
                               zh=f"没有第 {sitting_id} 号会议")
        return {"body_id": sitting.body_id, "session_id": sitting_id}
    if body_id is None:
        bodies = list(db.scalars(select(Body.id).order_by(Body.id).limit(2)))
        if len(bodies) != 1:
            raise InvalidInput("each body has its own audit chain and bundle: say which body"
                               if bodies else "there is no body yet: nothing to export", where="body",
                               zh="每个机构有各自的审计链和审计包，请指定机构" if bodies else "尚无机构，无可导出")
        body_id = bodies[0]
    elif db.get(Body, body_id) is None:
        raise InvalidInput(f"no body {body_id}", where="body", zh=f"没有第 {body_id} 号机构")
    return {"body_id": body_id, "session_id": None}


def readme_text() -> str:
    return resources.files(__package__).joinpath(layout.README_TEMPLATE).read_text("utf-8")


def _item_stems(items: list[Item]) -> dict[int, str]:
    """File stems for the items' ballots and record files: the item key where it is a safe
    file name and unique, else qualified by the sitting or replaced by the item id."""
    keys = Counter(i.key for i in items)
    stems = {}
    for i in items:
        stem = i.key if _SAFE_STEM.match(i.key) else f"item{i.id}"
        if keys[i.key] > 1 or not _SAFE_STEM.match(i.key):
            stem = f"s{i.sitting_id}-{stem}" if _SAFE_STEM.match(i.key) else stem
        stems[i.id] = stem
    return stems


def _write_json(out: Path, rel: str, obj) -> None:
    (out / rel).write_text(pretty_json(obj), "utf-8")


def _write_bundle(db: Session, settings, out: Path, scope: dict) -> None:
    for folder in (layout.BALLOTS_DIR, layout.RECEIPTS_DIR, layout.RECORDS_DIR, layout.KEYS_DIR):
        (out / folder).mkdir()
    chain = scope["body_id"]
    _write_events(db, out, chain)
    cps = [{"seq": c.seq, "head_hash": c.head_hash, "reason": c.reason, "signature": c.signature,
            "key_fingerprint": c.key_fingerprint} for c in db.scalars(select(Checkpoint).where(Checkpoint.chain == chain))]
    cps.sort(key=lambda c: (c["seq"], c["reason"]))
    _write_json(out, layout.CHECKPOINTS, cps)
    _write_counts(db, settings, out, scope)
    _write_scanned_pages(db, out, scope)
    _write_keys(settings, out, {chain})
    (out / layout.README).write_text(readme_text(), "utf-8")
    files = {}
    for p in sorted(out.rglob("*")):
        if p.is_file() and p.name != layout.MANIFEST:
            files[p.relative_to(out).as_posix()] = sha256_file(p)
    _write_json(out, layout.MANIFEST, {"format": layout.BUNDLE_FORMAT, "files": files})


def _write_scanned_pages(db: Session, out: Path, scope: dict) -> None:
    """The scanned pages' hashes, sorted (scanned_pages.py), from the chain's page_scanned events."""
    events = [json.loads(d) for d in db.scalars(select(AuditEvent.data).where(
        AuditEvent.chain == scope["body_id"], AuditEvent.kind == scanned_pages.EVENT))]
    round_session = dict(db.execute(select(Round.id, Item.sitting_id).join(Item, Item.id == Round.item_id)
                                    .where(Round.id.in_({d.get("round_id") for d in events
                                                         if isinstance(d.get("round_id"), int)}))).all())
    _write_json(out, layout.SCANNED_PAGES,
                scanned_pages.document(scanned_pages.listing(events, round_session, scope["session_id"])))


def _write_events(db: Session, out: Path, chain: int) -> None:
    """Every event of the body's chain in seq order, streamed."""
    with open(out / layout.EVENTS, "w", encoding="utf-8", newline="\n") as f:
        for ev in db.execute(select(AuditEvent).where(AuditEvent.chain == chain)
                             .order_by(AuditEvent.seq)).scalars().yield_per(5000):
            f.write(json_line({"seq": ev.seq, "at": ev.at.isoformat() if ev.at else None, "kind": ev.kind,
                               "data": ev.data, "prev_hash": ev.prev_hash, "hash": ev.hash}))


def _write_counts(db: Session, settings, out: Path, scope: dict) -> None:
    """counts.json, with the ballots, receipts and record files it names: the items of the
    scope's body, or of its one session."""
    query = select(Item).join(Sitting, Sitting.id == Item.sitting_id).where(Sitting.body_id == scope["body_id"])
    if scope["session_id"] is not None:
        query = query.where(Item.sitting_id == scope["session_id"])
    items = list(db.scalars(query.order_by(Item.id)))
    stems = _item_stems(items)
    records = {r.item_id: r for r in db.scalars(select(Record))}
    member_no: dict[int, str] = {}
    counts_items = []
    for item in items:
        body = item.sitting.body
        rounds = []
        for rnd in item.rounds:
            refused = dict(db.execute(select(Refusal.reason, Refusal.count)
                                      .where(Refusal.round_id == rnd.id)).all())
            casts = cast_staging.round_casts(db, settings, body.id, rnd.id)  # an open secret round's: opened
            sheet = db.scalar(select(TallySheet).where(TallySheet.round_id == rnd.id))
            ballots_file = receipts_file = None
            if rnd.status != RoundStatus.PENDING and item.channel != Channel.TALLY_SHEET:
                ballots_file = layout.ballots_file(stems[item.id], rnd.number)
                _write_ballots(db, out / ballots_file, casts, item.secret, member_no)
                receipts_file = layout.receipts_file(stems[item.id], rnd.number)
                _write_receipts(out / receipts_file, [c.receipt for c in casts])
            blind = item.channel in BLIND_CHANNELS and rnd.blind_public_key is not None
            round_key_file = layout.round_key_file(rnd.ref) if blind else None
            if blind:
                (out / layout.ROUND_KEYS_DIR).mkdir(exist_ok=True)
                (out / round_key_file).write_bytes(blind_rsa.public_key_pem(
                    blind_ballots.load_round_key(rnd.blind_public_key)))
            rounds.append({
                "number": rnd.number, "round_id": rnd.id, "status": rnd.status,
                "candidates": list(rnd.candidate_keys), "places": rnd.places, "members": rnd.members,
                "present": rnd.present, "quorum_met": rnd.quorum_met, "issued": rnd.issued,
                "returned": len(casts), "refused": refused, "ballots_file": ballots_file,
                "sheet": sheet.data if sheet is not None and sheet.confirmed_by is not None else None,
                "round_ref": rnd.ref if blind else None, "round_key_file": round_key_file,
                "replacements": (rnd.replacements or 0) if blind else None, "receipts_file": receipts_file,
                "stage": rnd.stage,
                # hybrid: I and R by tablet and by paper (checks_counts.check_channel_split)
                **({"by_channel": channel_split(db, rnd) if rnd.status in (RoundStatus.CLOSED, RoundStatus.TALLIED)
                    and rnd.quorum_met else None} if item.channel == Channel.HYBRID else {})})
        record_file = None
        rec = records.get(item.id)
        if rec is not None:
            record_file = layout.record_file(stems[item.id])
            _write_json(out, record_file, {"record_id": rec.id, "signed": rec.body_json,
                                           "signature": rec.signature, "key_fingerprint": rec.key_fingerprint})
        counts_items.append({
            "id": item.id, "key": item.key, "kind": item.kind, "title": item.title, "secret": item.secret,
            "channel": item.channel, "places": item.places,
            "rule": {"base": item.base, "majority": item.majority, **(tally.item_scale(item) or {})},
            "body": {"id": body.id, "name": body.name, "kind": body.kind},
            "session": {"id": item.sitting.id, "name": item.sitting.name},
            "rounds": rounds, "record_file": record_file, "election": election_items.bundle_facts(db, item)})
    _write_json(out, layout.COUNTS, {"format": layout.COUNTS_FORMAT, "scope": scope, "items": counts_items})


def _write_ballots(db: Session, path: Path, casts: list, secret: bool, member_no: dict[int, str]) -> None:
    """One round's accepted casts; member_no caches member numbers across rounds."""
    casts.sort(key=lambda c: c.serial)  # file order reveals nothing about cast order
    with open(path, "w", encoding="utf-8", newline="\n") as f:
        for c in casts:
            line = {"serial": c.serial, "signature": c.signature, "marks": c.marks}
            if c.msg_prefix is not None:  # a blind-signed terminal ballot (crypto/blind_ballots.py)
                line["prefix"] = c.msg_prefix
            if not secret:
                if c.member_id is not None and c.member_id not in member_no:
                    member_no[c.member_id] = db.get(Member, c.member_id).member_no
                line["member_id"] = c.member_id
                line["member_no"] = member_no.get(c.member_id)
            f.write(json_line(line))


def _write_receipts(path: Path, receipts: list[str]) -> None:
    """One round's receipts, sorted, one per line: a member finds their code here (proof that
    their ballot is counted), and nothing links a receipt to a line of the ballots file."""
    with open(path, "w", encoding="ascii", newline="\n") as f:
        f.writelines(r + "\n" for r in sorted(receipts))


def _write_keys(settings, out: Path, body_ids: set[int]) -> None:
    """The bodies' public keys and keys/fingerprints.json."""
    wanted = {keys_mod.body_key_name(b) for b in body_ids}
    fps = {}
    keys_dir = Path(settings.keys_dir)
    for name in sorted(wanted):
        pub_path = keys_mod.public_path(keys_dir, name)
        if not pub_path.exists() and not keys_mod.private_path(keys_dir, name).exists():
            continue  # a body without its key yet: nothing it signed to check
        if pub_path.exists():
            pub = keys_mod.load_public_key(pub_path)
        else:
            pub = keys_mod.load_key(keys_dir, name, keys_mod.passphrase_for(settings, name)).public_key
        pem = pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        (out / layout.key_file(name)).write_bytes(pem)
        fps[name] = keys_mod.fingerprint(pub)
    _write_json(out, layout.FINGERPRINTS, fps)

