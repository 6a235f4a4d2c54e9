"""The auditor's bundle (the same as `ballot-service audit export`) as one zip download."""
from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

from flask import current_app

from ballot_service.bundle.export import export_bundle
from ballot_service.web.common import get_db, settings
from ballot_service.web.console.blueprint import bp
from ballot_service.web.roles import OWN, requires


@bp.get("/console/audit-bundle.zip")
@requires("secretariat", "auditor", body=OWN)
def audit_bundle_zip():
    work = Path(tempfile.mkdtemp(prefix="bundle-"))
    try:
        export_bundle(get_db(), settings(), work / "audit")
        archive = shutil.make_archive(str(work / "audit-bundle"), "zip", root_dir=work, base_dir="audit")
        data = Path(archive).read_bytes()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    audit_name = f"audit-bundle-{time.strftime('%Y%m%d-%H%M%S')}.zip"
    resp = current_app.response_class(data, mimetype="application/zip")
    resp.headers["Content-Disposition"] = f"attachment; filename={audit_name}"
    return resp
