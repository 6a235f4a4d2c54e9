"""Scanned ballot pages at the counting station: each page read by the mark reader is kept
(for recounts) and either submitted through cast intake, exactly like a ballot keyed at
`/api/station/paper`, or queued for the tellers (adjudication.py) with crops of its unclear
boxes. Every stored page appends `page_scanned` with its image's SHA-256, so the auditor's
bundle carries the hashes; the images themselves leave only through `export_images`.

A page row has a random id and no time, and pages are submitted as they come: nothing
records which deputy's ballot is which beyond what the paper itself carries.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass, replace
from typing import Iterator

import cv2
import numpy as np
from sqlalchemy import distinct, func, select
from sqlalchemy.orm import Session

from ballot_service.config import Settings
from ballot_service.db import begin_write, checkpoint_wal_after_commit
from ballot_service.domain import audit, intake
from ballot_service.errors import BallotError, Conflict, InvalidInput
from ballot_service.formats import ballot_layout as bl
from ballot_service.formats import ballots, set_sheet
from ballot_service.formats.encoding import b64url_encode
from ballot_service.models import Item, Round, ScannedPage
from ballot_service.rules.election_tally import WRITE_IN_STAGES
from ballot_service.scan import omr
from ballot_service.scan.pages import iter_pages
from ballot_service.vocab import AuditKind, Channel, ItemKind, MarkRule

NOT_ASKED_MARK = "not the asked-for mark ○"
CENTRE_MAX = 1.0   # mm² of dark ink in a box's middle third: more is a √, × or fill, not a ○
CROP_PAD = 0.6     # of a box's size, around it: the tellers see the neighbouring boxes' edges


@dataclass
class ScanOutcome:
    page: ScannedPage
    receipt: intake.Receipt | None = None
    number: int = 0                 # the page's number in its scan file
    election: str | None = None     # a set sheet's section: the title of its election


def round_for(db: Session, sitting_id: int, payload: dict | None) -> tuple[Item, Round] | tuple[None, None]:
    """The item and round a ballot's payload names, if they are of this session."""
    if not payload or not isinstance(payload.get("item"), int) or payload.get("session") != sitting_id:
        return None, None
    item = db.get(Item, payload["item"])
    if item is None or item.sitting_id != sitting_id:
        return None, None
    rnd = db.scalar(select(Round).where(Round.item_id == item.id, Round.number == payload.get("round")))
    return (item, rnd) if rnd is not None else (None, None)


def round_for_text(db: Session, sitting_id: int, text: str, *, refused: Exception,
                   unknown: Exception) -> tuple[Item, Round]:
    """The item and round a ballot's QR text names; raises `refused` when the text is no
    ballot's and `unknown` when its vote is not of this session (each caller words its own)."""
    try:
        payload = ballots.text_to_token(text)["payload"]
    except ballots.BallotRefused:
        raise refused from None
    item, rnd = round_for(db, sitting_id, payload)
    if rnd is None:
        raise unknown
    return item, rnd


def resolver(db: Session, sitting_id: int) -> omr.Resolver:
    """The mark reader's candidates_for: candidate keys in printed order, or None."""
    def candidates_for(payload: dict):
        _, rnd = round_for(db, sitting_id, payload)
        return list(rnd.candidate_keys) if rnd is not None else None
    return candidates_for


def write_in_lines(db: Session, sitting_id: int):
    """The mark reader's write_ins_for: the 另选 lines printed under an election round's
    candidates (as render/paper.py prints them), else 0."""
    def write_ins_for(payload: dict) -> int:
        return write_in_lines_of(*round_for(db, sitting_id, payload))
    return write_ins_for


def write_in_lines_of(item: Item | None, rnd: Round | None) -> int:
    """The 另选 lines a round's paper ballot prints (0 but for an election's first vote or a
    另行选举)."""
    if item is None or item.kind != ItemKind.ELECTION or rnd.stage not in WRITE_IN_STAGES:
        return 0
    return bl.write_in_rows_for(rnd.places, len(rnd.candidate_keys))


def option_columns(db: Session, sitting_id: int):
    """The mark reader's marks_for: an evaluation's option keys, best first, the box columns
    render/paper.py prints for it; None (赞成/反对/弃权) for every other item."""
    def marks_for(payload: dict):
        item, _ = round_for(db, sitting_id, payload)
        if item is None or item.kind != ItemKind.EVALUATION or not item.options:
            return None
        return tuple(o["key"] for o in item.options)
    return marks_for


def read_page(db: Session, sitting_id: int, grey: np.ndarray, source: str = "", page: int = 0) -> omr.PageReading:
    """One page through the mark reader with this session's items and rounds."""
    return omr.read_page(grey, resolver(db, sitting_id), source=source, page=page,
                         marks_for=option_columns(db, sitting_id), write_ins_for=write_in_lines(db, sitting_id))


def part_for(reading: omr.PageReading, round_: Round) -> omr.PageReading:
    """What was read of `round_`'s ballot on a page: the page, or its section of a set sheet."""
    for section in reading.sections:
        if (section.payload["item"], section.payload["round"]) == (round_.item_id, round_.number):
            return section
    return reading


def png(grey: np.ndarray) -> bytes:
    ok, buf = cv2.imencode(".png", grey, [cv2.IMWRITE_PNG_COMPRESSION, 3])
    if not ok:
        raise InvalidInput("the scanned page could not be stored as PNG", where="page", zh="扫描页无法保存为 PNG 图像")
    return buf.tobytes()


def apply_mark_rule(reading: omr.PageReading, mark_rule: str) -> None:
    """Only the asked-for ○ counts (MarkRule.CIRCLE): a marked box with ink across its middle
    (√, ×, a filled box) is unclear and the page goes to the tellers."""
    if mark_rule != MarkRule.CIRCLE or not reading.readable:
        return
    odd = [b for b in reading.boxes if b.state == "marked" and b.centre_mm2 > CENTRE_MAX]
    for b in odd:
        b.state = "unclear"
    if odd:
        reading.status, reading.marks = "adjudicate", {}
        reading.reasons.append(NOT_ASKED_MARK)


def _crops(grey: np.ndarray, reading: omr.PageReading) -> dict[str, str]:
    out = {}
    h, w = grey.shape[:2]
    for b in reading.boxes:
        if b.state != "unclear":
            continue
        x0, y0, x1, y1 = b.px
        px, py = int((x1 - x0) * CROP_PAD), int((y1 - y0) * CROP_PAD)
        crop = grey[max(0, y0 - py):min(h, y1 + py), max(0, x0 - px):min(w, x1 + px)]
        if reading.rotated:
            crop = crop[::-1, ::-1]
        if crop.size:
            out[f"{b.candidate}|{b.mark}"] = b64url_encode(png(np.ascontiguousarray(crop)))
    return out


SECTION_CROP = "section"   # a set sheet's queued section: its part of the page, for the tellers


def _section_crop(grey: np.ndarray, section: omr.PageReading, lines: int) -> str:
    """The band of the page holding one section of a set sheet (its title, table and 另选
    lines), upright: the tellers see the election they decide, not the whole sheet."""
    if not section.boxes:
        return ""
    h = grey.shape[0]
    ppm = grey.shape[1] / bl.PAGE_W
    row = max(b.px[3] - b.px[1] for b in section.boxes)
    head = int((set_sheet.SECTION_HEAD + bl.HEADER_H + 1) * ppm)
    tail = int(lines * row + 2 * ppm)
    y0, y1 = min(b.px[1] for b in section.boxes), max(b.px[3] for b in section.boxes)
    y0, y1 = (y0 - tail, y1 + head) if section.rotated else (y0 - head, y1 + tail)
    crop = grey[max(0, y0):min(h, y1), :]
    return b64url_encode(png(np.ascontiguousarray(crop[::-1, ::-1] if section.rotated else crop)))


def submit_marks(db: Session, settings: Settings, sitting, qr_text: str, marks: dict) -> tuple[str, str, object]:
    """Through cast intake, as /api/station/paper does: (status, outcome text, receipt or None).
    Commits on SQLite (group commit); elsewhere the caller commits."""
    try:
        receipt = intake.accept(db, settings, intake.SittingRef(sitting.id, sitting.body_id), qr_text, marks,
                                channel=Channel.PAPER)
    except ballots.BallotRefused as exc:
        return "refused", f"{exc.reason}: {exc.message}", None
    except BallotError as exc:
        return "refused", exc.message, None
    if receipt.repeated:
        return "rescanned", f"receipt {receipt.receipt}", receipt
    return "counted", f"receipt {receipt.receipt}", receipt


def take_page(db: Session, settings: Settings, sitting, reading: omr.PageReading, grey: np.ndarray,
              image: bytes | None = None, section: omr.PageReading | None = None) -> ScanOutcome:
    """Store one read page (or one `section` of a ballot set's sheet, read in `reading`); submit
    it if clear, else queue it. Leaves the write transaction to the caller to commit."""
    part = section or reading
    item, rnd = round_for(db, sitting.id, part.payload)
    if item is not None:
        apply_mark_rule(part, item.mark_rule)
    image = image or png(grey)
    receipt = None
    status, outcome = "queued", None
    if part.readable and part.qr_text:
        marks = {k: v for k, v in part.marks.items() if v}
        status, outcome, receipt = submit_marks(db, settings, sitting, part.qr_text, marks)
    begin_write(db)
    crops = _crops(grey, part) if status == "queued" else {}
    if section is not None and status == "queued" and rnd is not None:
        crops[SECTION_CROP] = _section_crop(grey, section, write_in_lines(db, sitting.id)(section.payload))
    page = ScannedPage(sitting_id=sitting.id, round_id=rnd.id if rnd is not None else None,
                       sha256=hashlib.sha256(image).hexdigest(), image=image, status=status,
                       reasons=list(part.reasons), qr_text=part.qr_text,
                       boxes=[[b.candidate, b.mark, b.state] for b in part.boxes],
                       crops=crops, decisions=[], outcome=outcome)
    db.add(page)
    db.flush()
    audit.append(db, AuditKind.PAGE_SCANNED, {"page_id": page.id, "sha256": page.sha256, "status": status,
                                              "round_id": page.round_id, "session_id": sitting.id,
                                              "reasons": page.reasons},
                 sitting_id=sitting.id, timed=False)
    return ScanOutcome(page, receipt)


def take_file(db: Session, settings: Settings, sitting, path, dpi: int = 200) -> Iterator[ScanOutcome]:
    """Read and take every page of a scan file or folder (scan/pages.py), one at a time: the
    caller commits after each, so a page is stored as soon as it is read. A ballot set's sheet
    gives one outcome per election section: each is its own ballot, counted or queued alone."""
    for source, number, grey in _readable_pages(path, dpi):
        reading = read_page(db, sitting.id, grey, source=source, page=number)
        if not reading.sections:
            yield replace(take_page(db, settings, sitting, reading, grey), number=number)
            continue
        image = png(grey)
        for section in reading.sections:
            item, _ = round_for(db, sitting.id, section.payload)
            yield replace(take_page(db, settings, sitting, reading, grey, image, section), number=number,
                          election=item.title if item is not None else None)


MIN_PAGE_PIXELS = 200  # an A5 ballot at the lowest dpi accepted (100) is over 500 pixels a side


def _readable_pages(path, dpi: int) -> Iterator:
    """iter_pages, with a file that is no readable PDF or image refused as such (and only the
    reading: a fault while a page is taken is not the file's)."""
    pages = iter_pages(path, dpi)
    while True:
        try:
            page = next(pages)
        except StopIteration:
            return
        except (ValueError, OSError) as exc:
            raise InvalidInput(f"the scan file could not be read: {exc}", where="body",
                               zh="无法读取扫描文件") from None
        source, number, grey = page
        if min(grey.shape[:2]) < MIN_PAGE_PIXELS:
            raise InvalidInput(f"page {number} is {grey.shape[1]}x{grey.shape[0]} pixels: too small to be a scanned "
                               f"ballot (at least {MIN_PAGE_PIXELS} pixels a side)", where=f"page {number}",
                               zh=f"第{number}页只有 {grey.shape[1]}x{grey.shape[0]} 像素，不是扫描的选票"
                                  f"（每边至少 {MIN_PAGE_PIXELS} 像素）")
        yield page


def export_images(db: Session, sitting_id: int) -> list[tuple[ScannedPage, bytes]]:
    """The kept images of a session (for the auditors who may see ballots)."""
    return [(p, p.image) for p in db.scalars(select(ScannedPage).where(ScannedPage.sitting_id == sitting_id,
                                                                       ScannedPage.image.is_not(None))
                                              .order_by(ScannedPage.id))]


def discard_images(db: Session, sitting_id: int) -> int:
    """After the retention period: drop every kept image (and crop) of a session, and of a set
    sheet's pages what names their ballots (QR text, receipt, boxes, decisions); the hashes
    stay in the audit chain. Returns how many were dropped. Refused while a page waits."""
    begin_write(db)
    if db.scalar(select(ScannedPage.id).where(ScannedPage.sitting_id == sitting_id,
                                              ScannedPage.status.in_(("queued", "waiting"))).limit(1)):
        raise Conflict("scanned ballots of this session still wait for adjudication", where="session",
                       zh="本次会议还有扫描选票待裁定，不能删除图像")
    pages = list(db.scalars(select(ScannedPage).where(ScannedPage.sitting_id == sitting_id,
                                                      ScannedPage.image.is_not(None))))
    # a ballot set's sheet is kept as a page per election, all with its image: once the image
    # is gone, nothing may still pair one election's ballot with another's of the same sheet
    sheets = set(db.scalars(select(ScannedPage.sha256).where(ScannedPage.sitting_id == sitting_id)
                            .group_by(ScannedPage.sha256).having(func.count(distinct(ScannedPage.round_id)) > 1)))
    for p in pages:
        p.image, p.crops = None, {}
        if p.sha256 in sheets:
            p.qr_text, p.outcome, p.boxes = None, None, []
            p.decisions = [{"teller": d["teller"], "teller_role": d["teller_role"]} for d in p.decisions]
    # A hybrid round's pages are all paper ballots, one of them maybe a lone one whose member the
    # chain names: with the images go their QR texts (serials), readings and the tellers' marks.
    hybrid = select(Round.id).join(Item, Item.id == Round.item_id).where(Item.sitting_id == sitting_id,
                                                                         Item.channel == Channel.HYBRID)
    for p in db.scalars(select(ScannedPage).where(ScannedPage.round_id.in_(hybrid))):
        p.qr_text, p.boxes, p.decisions = None, [], []
    db.flush()
    audit.append(db, AuditKind.SCANNED_IMAGES_DISCARDED, {"count": len(pages)}, sitting_id=sitting_id)
    checkpoint_wal_after_commit(db)  # SQLite: no frame keeps what was just dropped
    return len(pages)
