"""重新计票 from the kept scans: on the presiding body's request, every kept page of an item's
round is read again by the mark reader and compared with the ballot that was counted for its
serial. Nothing is changed: the answer lists the pages that read the same, those that read
otherwise (with both markings), those the reader now finds unclear, and the counted ballots
with no kept page (read by eye, or images discarded). Read only.

A hybrid round stores no channel per cast: its pages are compared with the casts of their
serials, and its paper ballots with no kept page are a count (paper returned less the
pages compared), never a list of serials (that would name the paper casts). An open secret
round's casts are sealed: they are opened with the body's key (cast_staging.py), hence
`settings`."""
from __future__ import annotations

import cv2
import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from ballot_service import rules
from ballot_service.domain import cast_staging, evaluation_items, scanning
from ballot_service.formats.ballots import serial_short
from ballot_service.models import Item, Round, ScannedPage
from ballot_service.vocab import Channel, ItemKind


def recount(db: Session, settings, item: Item, rnd: Round) -> dict:
    counted = {c.serial: c.marks for c in cast_staging.round_casts(db, settings, item.sitting.body_id, rnd.id)}
    keys = list(rnd.candidate_keys)
    same, differ, unclear, seen = 0, [], [], set()
    pages = db.scalars(select(ScannedPage).where(ScannedPage.round_id == rnd.id, ScannedPage.image.is_not(None),
                                                 ScannedPage.status.in_(("counted", "rescanned")))
                       .order_by(ScannedPage.id))
    for page in pages:
        grey = cv2.imdecode(np.frombuffer(page.image, np.uint8), cv2.IMREAD_GRAYSCALE)
        reading = scanning.part_for(scanning.read_page(db, item.sitting_id, grey, source=page.id), rnd)
        scanning.apply_mark_rule(reading, item.mark_rule)
        serial = (reading.payload or {}).get("serial")
        if serial in seen:
            continue                                  # a rescan of a ballot compared already
        seen.add(serial)
        if not reading.readable or serial not in counted:
            unclear.append({"page_id": page.id, "reasons": reading.reasons or ["no counted ballot for this serial"]})
            continue
        now = _as_counted(item, keys, {k: v for k, v in reading.marks.items() if v})
        if now == counted[serial]:
            same += 1
        else:
            differ.append({"page_id": page.id, "serial": serial_short(serial), "counted": counted[serial],
                           "read_now": now})
    if item.channel == Channel.HYBRID:
        paper = rnd.paper_returned or 0
        compared = same + len(differ)
        return {"item_id": item.id, "round": rnd.number, "counted": paper, "pages_read": compared + len(unclear),
                "same": same, "differ": differ, "unclear": unclear, "no_kept_page": [],
                "no_kept_page_count": max(paper - compared, 0)}
    without = sorted(serial_short(s) for s in counted if s not in seen)
    return {"item_id": item.id, "round": rnd.number, "counted": len(counted), "pages_read": same + len(differ)
            + len(unclear), "same": same, "differ": differ, "unclear": unclear, "no_kept_page": without,
            "no_kept_page_count": len(without)}


def _as_counted(item: Item, keys: list[str], marks: dict) -> dict:
    """The marks read now in the form intake stored them (an evaluation's in its option keys)."""
    if item.kind == ItemKind.EVALUATION:
        read = evaluation_items.parse_marks(marks, keys, list(evaluation_items.option_keys(item.options)), paper=True)
    else:
        read = rules.normalise_marks(marks, keys)
    return {k: str(v) for k, v in read.items()}  # plain words, as stored and as the report prints them
