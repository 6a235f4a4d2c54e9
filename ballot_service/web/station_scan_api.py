"""Blueprint for the counting station's scanner and tellers (API in openapi.yaml): scan
uploads read by the mark reader, the live reconciliation, the adjudication queue with its box
crops, a teller's decision, and ballots read by eye (QR scanned, marks clicked, a second
teller confirms). Every request carries the station's credential (Bearer)."""
from __future__ import annotations

import hashlib
import os
import tempfile

from flask import Blueprint, Response, g, jsonify, request

from ballot_service.config import private_dir
from ballot_service.db import begin_write
from ballot_service.domain import adjudication, audit, scan_recount, scanning, station_board
from ballot_service.errors import InvalidInput, NotFound
from ballot_service.formats import ballots, set_sheet
from ballot_service.models import Item, ScannedPage, Terminal
from ballot_service.render import count_report
from ballot_service.vocab import AuditKind, ItemKind, Role
from ballot_service.web.common import PayloadTooLarge, commit, field, get_db, json_body, settings
from ballot_service.web.roles import CREDENTIAL, credential_sitting, requires

bp = Blueprint("station_scan", __name__, url_prefix="/api/station")

MAX_SCAN_BYTES = 200 * 1024 * 1024   # a 300-dpi colour PDF of a few hundred pages
SCAN_TYPES = {"application/pdf": ".pdf", "image/tiff": ".tif", "image/png": ".png", "image/jpeg": ".jpg"}


@bp.get("/me")
@requires(Role.STATION, body=CREDENTIAL)
def station_me():
    """Who this credential is: the station's name, and its teller and role if registered."""
    term = get_db().get(Terminal, g.terminal.id)
    sitting = credential_sitting()
    return jsonify({"name": term.name, "holder": term.holder, "teller_role": term.teller_role,
                    "session_id": sitting.id, "session": sitting.name})


@bp.get("/board")
@requires(Role.STATION, body=CREDENTIAL)
def station_board_view():
    """The live reconciliation per paper item, and the alerts for the tellers."""
    return jsonify(station_board.board(get_db(), settings(), credential_sitting()))


@bp.post("/scans")
@requires(Role.STATION, body=CREDENTIAL)
def station_scan_upload():
    """A scan file (PDF, TIFF, PNG or JPEG; the request body, typed by Content-Type): every
    page read, clear ballots counted through intake, unclear ones queued."""
    suffix = SCAN_TYPES.get((request.mimetype or "").lower())
    if suffix is None:
        raise InvalidInput(f"Content-Type must be one of {', '.join(SCAN_TYPES)}", where="Content-Type",
                           zh="扫描文件须为 PDF、TIFF、PNG 或 JPEG")
    if (request.content_length or 0) > MAX_SCAN_BYTES:
        raise PayloadTooLarge(MAX_SCAN_BYTES)
    request.max_content_length = MAX_SCAN_BYTES
    data = request.get_data()
    if not data:
        raise InvalidInput("the scan file is empty", where="body", zh="扫描文件为空")
    dpi = field(request.args, "dpi", str, required=False, default="200")
    if not dpi.isdigit() or not 100 <= int(dpi) <= 600:
        raise InvalidInput("dpi must be a whole number from 100 to 600", where="dpi", zh="分辨率（dpi）须为 100 至 600 的整数")
    db, sitting = get_db(), credential_sitting()
    fd, path = tempfile.mkstemp(suffix=suffix, dir=private_dir(settings().instance_path))
    pages = []
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        for out in scanning.take_file(db, settings(), sitting, path, int(dpi)):
            commit()
            p = out.page
            pages.append({"id": p.id, "status": p.status, "reasons": p.reasons, "outcome": p.outcome,
                          "page": out.number, **({"election": out.election} if out.election else {})})
    finally:
        os.unlink(path)
    return jsonify({"pages": pages}), 201


@bp.get("/queue")
@requires(Role.STATION, body=CREDENTIAL)
def station_queue():
    """The pages waiting for the tellers or the 总监票人, with the crops of their unclear boxes."""
    return jsonify({"pages": station_board.queue(get_db(), credential_sitting())})


@bp.get("/pages/<page_id>/image")
@requires(Role.STATION, body=CREDENTIAL)
def station_page_image(page_id: str):
    """The scanned page (PNG), while it is kept."""
    page = adjudication.get_page(get_db(), credential_sitting(), page_id)
    if page.image is None:
        raise NotFound("this page has no image (read by eye, or discarded)", where="page", zh="此页没有保存图像（人工读票或已作废）")
    return Response(page.image, mimetype="image/png")


@bp.post("/pages/<page_id>/decision")
@requires(Role.STATION, body=CREDENTIAL)
def station_decision(page_id: str):
    """One teller's decision on a queued page (adjudication.py)."""
    data = json_body()
    db, sitting = get_db(), credential_sitting()
    page = adjudication.get_page(db, sitting, page_id)
    status = adjudication.decide(db, settings(), sitting, page, db.get(Terminal, g.terminal.id),
                                 field(data, "decision", dict))
    commit()
    return jsonify({"status": status, "outcome": page.outcome}), 201


@bp.post("/ballot-info")
@requires(Role.STATION, body=CREDENTIAL)
def station_ballot_info():
    """What a QR code scanned at the table names: the item, round and candidates to click. A
    ballot set's sheet: {"sections": [the same for each election, with its own "ballot" text]},
    each read by eye and sent to /by-eye on its own."""
    data = json_body()
    db, sitting = get_db(), credential_sitting()
    text = field(data, "ballot", str)
    try:
        if set_sheet.is_set_text(text):
            return jsonify({"sections": [_ballot_info(db, sitting, t) for t in set_sheet.section_texts(text)]})
        return jsonify(_ballot_info(db, sitting, text))
    except ballots.BallotRefused:
        raise InvalidInput("that is not a ballot's QR text", where="ballot", zh="这不是选票的二维码") from None


def _ballot_info(db, sitting, text: str) -> dict:
    payload = ballots.text_to_token(text)["payload"]
    item, rnd = scanning.round_for(db, sitting.id, payload)
    if item is None:
        raise NotFound("this ballot is not for a vote of this session", where="ballot", zh="这张选票不属于本会次的表决")
    titles = station_board.candidate_titles(db, item.id)
    return {"item_id": item.id, "title": item.title, "round": rnd.number, "ballot": text,
            "candidates": [{"key": k, "title": titles.get(k, k)} for k in rnd.candidate_keys],
            "choices": station_board.choices(item), "places": rnd.places if item.kind == ItemKind.ELECTION else None,
            "write_in_lines": scanning.write_in_lines_of(item, rnd)}


@bp.post("/by-eye")
@requires(Role.STATION, body=CREDENTIAL)
def station_by_eye():
    """A ballot read by eye (USB QR scanner + marks clicked, names typed from its 另选他人
    lines): queued with this teller's decision; the other teller confirms it like any queued
    page. `over_selected`: it chooses more persons than seats, so it will count invalid."""
    data = json_body()
    db, sitting = get_db(), credential_sitting()
    text = field(data, "ballot", str)
    if set_sheet.is_set_text(text):
        raise InvalidInput("a ballot set's sheet is entered election by election: send each section's own ballot "
                           "text (ballot-info lists them)", where="ballot",
                           zh="合印选票须逐项录入：请按各项选举分别提交（扫码后逐项显示）")
    station = db.get(Terminal, g.terminal.id)
    adjudication.adjudicator(station)
    item, rnd = scanning.round_for_text(
        db, sitting.id, text,
        refused=InvalidInput("that is not a ballot's QR text", where="ballot", zh="这不是选票的二维码"),
        unknown=NotFound("this ballot is not for a vote of this session", where="ballot", zh="这张选票不属于本会次的表决"))
    marks = adjudication.by_eye_marks(item, rnd, field(data, "marks", dict), data.get("write_ins"))
    begin_write(db)
    page = ScannedPage(sitting_id=sitting.id, round_id=rnd.id, sha256="", image=None, status="queued",
                       reasons=["read by eye"], qr_text=text, boxes=[], crops={}, decisions=[], outcome=None)
    db.add(page)
    db.flush()
    status = adjudication.decide(db, settings(), sitting, page, station, {"marks": marks})
    over = adjudication.over_selected(item, rnd, page.decisions[-1]["decision"])
    commit()
    return jsonify({"id": page.id, "status": status, "over_selected": over}), 201


@bp.post("/count-report")
@requires(Role.STATION, body=CREDENTIAL)
def station_count_report():
    """The 计票结果报告单 as a PDF; its content and the PDF's SHA-256 go into the audit chain."""
    db, sitting = get_db(), credential_sitting()
    content = station_board.count_report(db, settings(), sitting)
    pdf = count_report.render(content)
    begin_write(db)
    audit.append(db, AuditKind.COUNT_REPORT_MADE, {**content, "pdf_sha256": hashlib.sha256(pdf).hexdigest()},
                 sitting_id=sitting.id)
    commit()
    return Response(pdf, mimetype="application/pdf", status=201,
                    headers={"Content-Disposition": "attachment; filename=count-report.pdf"})


@bp.post("/items/<int:item_id>/recount")
@requires(Role.STATION, body=CREDENTIAL)
def station_recount(item_id: int):
    """重新计票: the item's kept scans read again and compared with the ballots counted (changes nothing)."""
    db, sitting = get_db(), credential_sitting()
    item = db.get(Item, item_id)
    if item is None or item.sitting_id != sitting.id or not item.rounds:
        raise NotFound("no such item in this session", where="item_id", zh="本会次没有这个表决事项")
    return jsonify(scan_recount.recount(db, settings(), item, item.rounds[-1]))
