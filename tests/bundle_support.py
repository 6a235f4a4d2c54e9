"""Helpers of the audit bundle's tests (test_audit_bundle.py, test_session_close.py)."""
from __future__ import annotations

from pathlib import Path

from ballot_service.bundle import layout
from ballot_service.bundle.encoding import pretty_json, sha256_file


def rewrite_manifest(b: Path) -> None:
    """What an attacker who also rewrites the manifest does."""
    files = {p.relative_to(b).as_posix(): sha256_file(p)
             for p in sorted(b.rglob("*")) if p.is_file() and p.name != "manifest.json"}
    (b / "manifest.json").write_text(pretty_json({"format": layout.BUNDLE_FORMAT, "files": files}), "utf-8")
