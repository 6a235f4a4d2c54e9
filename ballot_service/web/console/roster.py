"""Importing a body's roster in two steps: the upload is parsed and staged with a preview
of what would change, and nothing changes until the operator confirms."""
from __future__ import annotations

import json
import secrets
from pathlib import Path

from flask import abort, flash, redirect, render_template, request, url_for

from ballot_service.domain.roster import import_roster, members_of, roster_changes
from ballot_service.domain.sittings import get_body
from ballot_service.errors import BallotError
from ballot_service.formats.roster import read_roster
from ballot_service.vocab import Role
from ballot_service.web.common import get_db, settings
from ballot_service.web.console.blueprint import bp
from ballot_service.web.console.common import run_action
from ballot_service.web.i18n import t
from ballot_service.web.roles import requires


def _uploads() -> Path:
    path = Path(settings().instance_path) / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


@bp.get("/console/bodies/<int:body_id>/roster")
@requires(Role.SECRETARIAT, Role.AUDITOR, body="body_id")
def roster_page(body_id: int):
    db = get_db()
    body = get_body(db, body_id)
    members = members_of(db, body)
    return render_template("console/roster.html", body=body, members=members)


@bp.post("/console/bodies/<int:body_id>/roster/preview")
@requires(Role.SECRETARIAT, body="body_id")
def roster_preview(body_id: int):
    """Parse the file and show what an import would do, or every error found; nothing is
    changed until the operator confirms."""
    db = get_db()
    body = get_body(db, body_id)
    f = request.files.get("file")
    if f is None or not f.filename:
        flash(t("请选择名册文件（.csv 或 .xlsx）。", "Choose a roster file (.csv or .xlsx)."), "error")
        return redirect(url_for(".roster_page", body_id=body_id))
    data = f.read()
    try:
        rows = read_roster(f.filename, data)
    except BallotError as exc:
        return render_template("console/roster_preview.html", body=body, filename=f.filename, error=exc,
                               rows=None), 400
    token = secrets.token_urlsafe(16)
    (_uploads() / f"{token}.roster").write_bytes(data)
    (_uploads() / f"{token}.json").write_text(json.dumps({"body_id": body_id, "filename": f.filename}))
    changes = roster_changes(db, body, rows)
    return render_template("console/roster_preview.html", body=body, filename=f.filename, rows=rows,
                           changes=changes, token=token, error=None)


@bp.post("/console/bodies/<int:body_id>/roster/import")
@requires(Role.SECRETARIAT, body="body_id")
def roster_import(body_id: int):
    token = request.form.get("token", "")
    if not token.replace("-", "").replace("_", "").isalnum():
        abort(400)
    data_path, meta_path = _uploads() / f"{token}.roster", _uploads() / f"{token}.json"
    if not data_path.exists():
        flash(t("预览已失效，请重新上传。", "The preview has expired; upload the file again."), "error")
        return redirect(url_for(".roster_page", body_id=body_id))
    meta = json.loads(meta_path.read_text())
    if meta["body_id"] != body_id:
        abort(400)

    def import_staged(db):
        rows = read_roster(meta["filename"], data_path.read_bytes())
        return import_roster(db, get_body(db, body_id), rows, source=meta["filename"])

    resp, summary = run_action(import_staged, "", url_for(".roster_page", body_id=body_id))
    if summary:
        data_path.unlink(missing_ok=True)
        meta_path.unlink(missing_ok=True)
        flash(t(f"已导入名册：新增 {summary['added']}，更新 {summary['updated']}，离任 {summary['left_office']}，"
                f"在任 {summary['in_office']}。",
                f"Roster imported: {summary['added']} added, {summary['updated']} updated, "
                f"{summary['left_office']} left office, {summary['in_office']} in office."), "ok")
    return resp
