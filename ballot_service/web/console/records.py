"""Downloading an issued record: the signed JSON, or its PDF with the verification QR code;
and its 宣布稿 alone, as a page and a large-type PDF for the presiding officer."""
from __future__ import annotations

import json

from flask import abort, current_app, render_template
from sqlalchemy import select

from ballot_service.domain.sittings import get_item
from ballot_service.models import Record
from ballot_service.render import announcement, announcement_pdf, record_pdf
from ballot_service.vocab import Role, record_name
from ballot_service.web.common import get_db
from ballot_service.web.console.blueprint import bp
from ballot_service.web.roles import requires
from ballot_service.web.urls import public_url_for


def _record(record_id: str) -> Record:
    rec = get_db().get(Record, record_id) if len(record_id) <= 64 else None
    if rec is None:
        abort(404)
    return rec


@bp.get("/console/records/<record_id>.json")
@requires(Role.SECRETARIAT, Role.AUDITOR, body="record_id")
def record_json(record_id: str):
    rec = _record(record_id)
    doc = {"signed": rec.body_json, "signature": rec.signature, "key_fingerprint": rec.key_fingerprint}
    resp = current_app.response_class(json.dumps(doc, ensure_ascii=False, indent=2), mimetype="application/json")
    resp.headers["Content-Disposition"] = f"attachment; filename=record-{rec.id}.json"
    return resp


@bp.get("/console/records/<record_id>.pdf")
@requires(Role.SECRETARIAT, Role.AUDITOR, body="record_id")
def record_pdf_file(record_id: str):
    rec = _record(record_id)
    url = public_url_for("verify_page.verify_record", record_id=rec.id)
    pdf = record_pdf.render(json.loads(rec.body_json), rec.signature, verify_url=url)
    resp = current_app.response_class(pdf, mimetype="application/pdf")
    resp.headers["Content-Disposition"] = f"inline; filename=record-{rec.id}.pdf"
    return resp


def _signed_content(item_id: int):
    """The item and its signed record's content: the 宣布稿 is read from what was signed."""
    db = get_db()
    item = get_item(db, item_id)
    body_json = db.scalar(select(Record.body_json).where(Record.item_id == item.id))
    if body_json is None:
        abort(404)
    return item, json.loads(body_json)


@bp.get("/console/items/<int:item_id>/announcement")
@requires(Role.SECRETARIAT, Role.AUDITOR, body="item_id")
def announcement_page(item_id: int):
    item, content = _signed_content(item_id)
    return render_template("console/announcement.html", item=item, content=content,
                           sentences=announcement.sentences(content), record_name=record_name(item.kind))


@bp.get("/console/items/<int:item_id>/announcement.pdf")
@requires(Role.SECRETARIAT, Role.AUDITOR, body="item_id")
def announcement_pdf_file(item_id: int):
    item, content = _signed_content(item_id)
    resp = current_app.response_class(announcement_pdf.render(content), mimetype="application/pdf")
    resp.headers["Content-Disposition"] = f"inline; filename=announcement-item{item.id}.pdf"
    return resp
