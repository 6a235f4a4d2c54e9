"""Public pages of a published result (公告): /notice/<record_id> and its A4 PDF. Only a record the
secretariat has published (公布) is shown; anything else is 404, as if it did not exist."""
from __future__ import annotations

import json

from flask import Blueprint, abort, current_app, render_template

from ballot_service.models import Record
from ballot_service.render import public_notice, qr
from ballot_service.vocab import Role
from ballot_service.web.common import get_db
from ballot_service.web.roles import requires
from ballot_service.web.urls import public_url_for

bp = Blueprint("notice_page", __name__)


def _published(record_id: str) -> Record:
    rec = get_db().get(Record, record_id) if len(record_id) <= 64 else None
    if rec is None or not rec.published:
        abort(404)
    return rec


@bp.get("/notice/<record_id>")
@requires(Role.PUBLIC)
def notice(record_id: str):
    rec = _published(record_id)
    url = public_url_for("verify_page.verify_record", record_id=rec.id)
    return render_template("notice.html", n=public_notice.notice(json.loads(rec.body_json)), rec=rec,
                           verify_url=url, qr_svg=qr.qr_svg(url))


@bp.get("/notice/<record_id>.pdf")
@requires(Role.PUBLIC)
def notice_pdf(record_id: str):
    rec = _published(record_id)
    url = public_url_for("verify_page.verify_record", record_id=rec.id)
    resp = current_app.response_class(public_notice.render(json.loads(rec.body_json), url),
                                      mimetype="application/pdf")
    resp.headers["Content-Disposition"] = f"inline; filename=notice-{rec.id}.pdf"
    return resp
