"""The auditor's bundle (the same as `ballot-service audit export`) as one zip download: the
bundle of one body (its own chain, verified with its key alone) or of one sitting of it, for a
login of that body; never another body's."""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from flask import current_app, request

from ballot_service.bundle.export import export_bundle
from ballot_service.domain.grants import EVERY_BODY
from ballot_service.errors import Conflict, Forbidden
from ballot_service.models import Sitting
from ballot_service.vocab import Role
from ballot_service.web.common import get_db, settings
from ballot_service.web.console.blueprint import bp
from ballot_service.web.roles import OWN, requires, visible_bodies


def _zip(export, label: str):
    work = Path(tempfile.mkdtemp(prefix="bundle-"))
    try:
        export(work / "audit")
        archive = shutil.make_archive(str(work / "audit-bundle"), "zip", root_dir=work, base_dir="audit")
        data = Path(archive).read_bytes()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    audit_name = f"audit-bundle{label}-{time.strftime('%Y%m%d-%H%M%S')}.zip"
    resp = current_app.response_class(data, mimetype="application/zip")
    resp.headers["Content-Disposition"] = f"attachment; filename={audit_name}"
    return resp


@bp.get("/console/audit-bundle.zip")
@requires(Role.SECRETARIAT, Role.AUDITOR, body=OWN)
def audit_bundle_zip():
    """?body=N or ?session=S name the bundle; neither: the login's one body (or the service's
    only body)."""
    body_id, sitting_id = request.args.get("body", type=int), request.args.get("session", type=int)
    if sitting_id is not None:
        sitting = get_db().get(Sitting, sitting_id)
        body_id = sitting.body_id if sitting is not None else body_id
    bodies = visible_bodies()
    if bodies is EVERY_BODY:
        return _zip(lambda out: export_bundle(get_db(), settings(), out, body_id=body_id, sitting_id=sitting_id),
                    f"-session{sitting_id}" if sitting_id else (f"-body{body_id}" if body_id else ""))
    if body_id is not None and body_id not in bodies:
        raise Forbidden("your login does not serve that body", zh="您的登录不服务于该机构")
    if sitting_id is not None:
        return _sitting_zip(body_id, sitting_id)
    if body_id is not None:
        return _body_zip(body_id)
    if len(bodies) != 1:
        raise Conflict("your login serves several bodies: download each body's bundle from its page",
                       zh="您的登录服务多个机构，请在各机构页面分别下载审计包")
    (body_id,) = bodies
    return _body_zip(body_id)


@bp.get("/console/bodies/<int:body_id>/audit-bundle.zip")
@requires(Role.SECRETARIAT, Role.AUDITOR, body="body_id")
def body_bundle_zip(body_id: int):
    return _body_zip(body_id)


def _body_zip(body_id: int):
    return _zip(lambda out: export_bundle(get_db(), settings(), out, body_id=body_id), f"-body{body_id}")


@bp.get("/console/sessions/<int:sitting_id>/audit-bundle.zip")
@requires(Role.SECRETARIAT, Role.AUDITOR, body="sitting_id")
def sitting_bundle_zip(sitting_id: int):
    return _sitting_zip(get_db().get(Sitting, sitting_id).body_id, sitting_id)


def _sitting_zip(body_id: int, sitting_id: int):
    return _zip(lambda out: export_bundle(get_db(), settings(), out, body_id=body_id, sitting_id=sitting_id),
                f"-session{sitting_id}")
