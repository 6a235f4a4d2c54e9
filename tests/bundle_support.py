"""Helpers of the tests that export and verify the audit bundle (test_audit_bundle.py,
test_session_close.py, and the feature tests that end with a bundle that must verify)."""
from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from ballot_service.bundle import layout
from ballot_service.bundle.encoding import pretty_json, sha256_file
from ballot_service.bundle.export import export_bundle
from ballot_service.cli import main


def rewrite_manifest(b: Path) -> None:
    """What an attacker who also rewrites the manifest does."""
    files = {p.relative_to(b).as_posix(): sha256_file(p)
             for p in sorted(b.rglob("*")) if p.is_file() and p.name != "manifest.json"}
    (b / "manifest.json").write_text(pretty_json({"format": layout.BUNDLE_FORMAT, "files": files}), "utf-8")


def export_and_verify(env: dict, out: Path) -> None:
    """`audit export` into `out`, then `audit verify` of it, both as the CLI runs them."""
    for command in ("export", "verify"):
        res = CliRunner().invoke(main, ["audit", command, str(out)], env=env)
        assert res.exit_code == 0, res.output


def export_app_bundle(app, out: Path, **scope) -> Path:
    """The bundle of the test app's database exported into `out` (`scope`: export_bundle's
    body_id, sitting_id) in a session of its own; its folder."""
    db = app.extensions["ballot_sessionmaker"]()
    try:
        return export_bundle(db, app.config["SETTINGS"], out, **scope)
    finally:
        db.close()
