"""Read the bundle's files into plain data, refusing any file that is not in the form the
service writes: the pretty JSON files, the lines of a JSON-lines file (the one place such a
file is read), the manifest, counts, checkpoints, records and public keys."""
from __future__ import annotations

import json
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ballot_service.bundle import layout
from ballot_service.bundle.encoding import pretty_json
from ballot_service.bundle.errors import fail
from ballot_service.crypto import keys as keys_mod
from ballot_service.errors import BallotError
from ballot_service.numbers import is_int


def read_json(bundle: Path, rel: str):
    path = bundle / rel
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError:
        fail(f"{rel} is missing", rel)
    except UnicodeDecodeError:
        fail(f"{rel} is not UTF-8 text", rel)
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        fail(f"{rel} is not valid JSON (line {exc.lineno}): the file was damaged or edited", rel)
    if pretty_json(data) != text:
        fail(f"{rel} is not in the form the service writes (keys sorted, one-space indent): "
             f"the file was edited", rel)
    return data


def read_lines(bundle: Path, rel: str) -> list[bytes]:
    """The lines of a JSON-lines file, each without its newline; a missing file or a cut-off
    last line fails."""
    try:
        raw = (bundle / rel).read_bytes()
    except FileNotFoundError:
        fail(f"{rel} is missing", rel)
    if raw and not raw.endswith(b"\n"):
        fail(f"{rel}: the last line is cut off (no final newline)", rel)
    return raw.split(b"\n")[:-1] if raw else []


def read_manifest(bundle: Path) -> dict[str, str]:
    """manifest.json's files: path -> sha256."""
    manifest = read_json(bundle, layout.MANIFEST)
    if not isinstance(manifest, dict) or set(manifest) != {"format", "files"} \
            or manifest["format"] != layout.BUNDLE_FORMAT or not isinstance(manifest["files"], dict):
        fail(f"{layout.MANIFEST} is not a {layout.BUNDLE_FORMAT} manifest", layout.MANIFEST)
    return manifest["files"]


def read_fingerprints(bundle: Path) -> dict[str, str]:
    """keys/fingerprints.json: key name -> fingerprint."""
    fps = read_json(bundle, layout.FINGERPRINTS)
    if not isinstance(fps, dict) or not all(isinstance(v, str) for v in fps.values()):
        fail(f"{layout.FINGERPRINTS} must map key names to fingerprints", layout.FINGERPRINTS)
    return fps


def public_key_names(bundle: Path) -> set[str]:
    """The names of the public key files in keys/."""
    return {p.name[: -len(keys_mod.PUBLIC_SUFFIX)]
            for p in (bundle / layout.KEYS_DIR).glob("*" + keys_mod.PUBLIC_SUFFIX)}


def read_public_key(bundle: Path, name: str) -> Ed25519PublicKey:
    rel = layout.key_file(name)
    data = (bundle / rel).read_bytes()
    try:
        pub = keys_mod.load_public_key(data)
    except BallotError:
        fail(f"{rel} is not a valid Ed25519 public key", rel)
    if pub.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo) != data:
        fail(f"{rel} is not in the form the service writes: the file was edited", rel)
    return pub


def read_checkpoints(bundle: Path) -> list:
    """checkpoints.json: a list; each entry is checked with the chain it signs."""
    cps = read_json(bundle, layout.CHECKPOINTS)
    if not isinstance(cps, list):
        fail(f"{layout.CHECKPOINTS} must be a list", layout.CHECKPOINTS)
    return cps


def read_counts(bundle: Path) -> tuple[list, dict]:
    """counts.json's items, each checked against the event log later, and its scope
    {"body_id", "session_id"}: the body whose chain the bundle holds, and the one session
    whose items it lists (null: all the body's)."""
    counts = read_json(bundle, layout.COUNTS)
    if not isinstance(counts, dict) or set(counts) != {"format", "scope", "items"} \
            or counts["format"] != layout.COUNTS_FORMAT or not isinstance(counts["items"], list):
        fail(f"{layout.COUNTS} is not a {layout.COUNTS_FORMAT} file", layout.COUNTS)
    scope = counts["scope"]
    if not isinstance(scope, dict) or set(scope) != {"body_id", "session_id"} or not is_int(scope["body_id"]) \
            or not (scope["session_id"] is None or is_int(scope["session_id"])):
        fail(f"{layout.COUNTS}: scope must name the body (body_id) and one session or null (session_id)",
             layout.COUNTS)
    return counts["items"], scope


def peek_counts(bundle: Path):
    """counts.json parsed without any check, or None: only to start work early, before the
    checks that may refuse it."""
    try:
        return json.loads((bundle / layout.COUNTS).read_text("utf-8"))
    except (OSError, ValueError):
        return None


def read_record(bundle: Path, rel: str) -> dict:
    """A records/<item>.json file: record_id, signed (the text as signed), signature, key_fingerprint."""
    rec = read_json(bundle, rel)
    if not isinstance(rec, dict) or set(rec) != layout.RECORD_FIELDS or not isinstance(rec["signed"], str):
        fail(f"{rel} does not have exactly the fields {', '.join(sorted(layout.RECORD_FIELDS))}", rel)
    return rec


def files_under(bundle: Path, folder: str) -> set[str]:
    """The bundle-relative paths of the entries in one of its folders (none if it is absent)."""
    d = bundle / folder
    return {p.relative_to(bundle).as_posix() for p in d.glob("*")} if d.is_dir() else set()
