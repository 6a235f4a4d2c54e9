"""Reading a round's round_key_announced event back from its body's audit chain: the tablets
take it from their state (web/terminal_api.py) and check it before blinding anything.

Read backwards from the chain's head, the newest announcement first: the open vote's rounds
were announced at its opening, so only the events since then are passed over (the chain is
the key's first column: no scan of other bodies' events)."""
from __future__ import annotations

import json

from sqlalchemy import select
from sqlalchemy.orm import Session

from ballot_service.errors import NotFound
from ballot_service.models import AuditEvent, Round
from ballot_service.vocab import AuditKind


def announcements(db: Session, rounds: list[Round]) -> dict[int, dict]:
    """{round id: its event {seq, hash, kind, data}} for `rounds` (all of one sitting); a round
    with no announcement is left out."""
    wanted = {rnd.id for rnd in rounds}
    found: dict[int, dict] = {}
    if not wanted:
        return found
    sitting = rounds[0].item.sitting
    rows = db.execute(select(AuditEvent.seq, AuditEvent.hash, AuditEvent.kind, AuditEvent.data)
                      .where(AuditEvent.chain == sitting.body_id, AuditEvent.kind == AuditKind.ROUND_KEY_ANNOUNCED,
                             AuditEvent.sitting_id == sitting.id)
                      .order_by(AuditEvent.seq.desc()))
    for row in rows:
        data = json.loads(row.data)
        round_id = data.get("round_id")
        if round_id in wanted and round_id not in found:
            found[round_id] = {"seq": row.seq, "hash": row.hash, "kind": row.kind, "data": data}
            if len(found) == len(wanted):
                break
    return found


def of_round(found: dict[int, dict], rnd: Round) -> dict:
    """The round's event from `announcements`, or NotFound."""
    if rnd.id not in found:
        raise NotFound(f"round {rnd.ref} has no announced key", where="round", zh=f"轮次 {rnd.ref} 没有公布签名公钥")
    return found[rnd.id]
