"""The scanned pages' SHA-256 hashes in the bundle (`scanned_pages.json`), and check 10.

The audit chain records each page the counting station read (`page_scanned`: page id,
SHA-256 of the kept PNG, round, session). The bundle lists the same pages sorted by hash,
without their ids, so the list keeps no scan order or time; never the images: handwritten
另选 names can identify a voter. Check 10 holds the list to the chain's events, and, only when
the auditor gives an export of the images (`scan-images export`, for the auditors who may see
ballots), checks every image there against the list: each is a page of this bundle, unaltered.
"""
from __future__ import annotations

import hashlib
import json
import re
from collections import Counter
from pathlib import Path

from ballot_service.bundle import layout
from ballot_service.bundle.errors import fail
from ballot_service.bundle.readers import read_json
from ballot_service.numbers import is_int
from ballot_service.vocab import AuditKind

EVENT = AuditKind.PAGE_SCANNED
FIELDS = {"sha256", "session_id", "round_id"}
_HASH = re.compile(r"[0-9a-f]{64}")
F = layout.SCANNED_PAGES


def listing(events: list[dict], round_session: dict[int, int], scope_session: int | None) -> list[dict]:
    """The bundle's list from the chain's page_scanned data: the pages of the scope's sessions,
    each {sha256, session_id, round_id}, sorted. An event without session_id (written before
    the field) takes its round's; one with neither is listed only in a whole body's bundle."""
    out = []
    for d in events:
        rid = d.get("round_id")
        sid = d.get("session_id", round_session.get(rid) if is_int(rid) else None)
        if scope_session is None or sid == scope_session:
            out.append({"sha256": d.get("sha256"), "session_id": sid, "round_id": rid})
    return sorted(out, key=_order)


def _order(p: dict) -> tuple:
    return (str(p["sha256"]), p["session_id"] if is_int(p["session_id"]) else -1,
            p["round_id"] if is_int(p["round_id"]) else -1)


def document(pages: list[dict]) -> dict:
    return {"format": layout.SCANNED_PAGES_FORMAT, "pages": pages}


def check_scanned_pages(b: Path, citems: list[dict], events: list[dict], scope_session: int | None) -> list[dict]:
    """10. scanned_pages.json lists, sorted, exactly the pages the chain says were scanned in
    the bundle's scope. A bundle written before the list existed may lack it only when the
    chain has no such page. Returns the list."""
    round_session = {r["round_id"]: ci["session"]["id"] for ci in citems for r in ci["rounds"]}
    expected = listing(events, round_session, scope_session)
    if not (b / F).is_file():
        if expected:
            fail(f"{F} is missing, yet the event log records {len(expected)} scanned page(s)", F)
        return []
    doc = read_json(b, F)
    if not isinstance(doc, dict) or set(doc) != {"format", "pages"} or doc["format"] != layout.SCANNED_PAGES_FORMAT \
            or not isinstance(doc["pages"], list):
        fail(f"{F} is not a {layout.SCANNED_PAGES_FORMAT} document", F)
    pages = doc["pages"]
    for n, p in enumerate(pages):
        if not isinstance(p, dict) or set(p) != FIELDS or not isinstance(p["sha256"], str) \
                or not _HASH.fullmatch(p["sha256"]):
            fail(f"{F}: page {n} is not {{sha256 (64 hex digits), session_id, round_id}}", F)
    if pages != sorted(pages, key=_order):
        fail(f"{F} is not sorted by hash: the list must keep no scan order", F)
    if pages != expected:
        have, want = Counter(p["sha256"] for p in pages), Counter(p["sha256"] for p in expected)
        extra, missing = sorted((have - want).elements()), sorted((want - have).elements())
        fail(f"{F} differs from the pages the event log says were scanned"
             + (f" (not in the log: {extra[0][:16]}…)" if extra else "")
             + (f" (missing: {missing[0][:16]}…)" if missing else "") + ": a page was added, removed or changed", F)
    return pages


def check_images(images: Path, pages: list[dict]) -> dict:
    """Opt-in (audit verify --images DIR): every page image of a `scan-images export` folder
    hashes to its manifest entry and is a page the bundle lists. Pages without an image were
    discarded after the retention period (or are of other sessions' exports): counted, not failed."""
    images = Path(images)
    where = str(images / "manifest.json")
    try:
        manifest = json.loads((images / "manifest.json").read_text("utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        fail(f"{images} holds no readable manifest.json from `scan-images export`", where)
    if not isinstance(manifest, list):
        fail(f"{where} is not a list of pages", where)
    listed = Counter(p["sha256"] for p in pages)
    found = 0
    named = set()
    for n, entry in enumerate(manifest):
        pid = entry.get("page_id") if isinstance(entry, dict) else None
        if not isinstance(pid, str) or not re.fullmatch(r"[0-9a-f]{32}", pid):
            fail(f"{where}: entry {n} names no page", where)
        path = images / f"{pid}.png"
        if not path.is_file():
            fail(f"{path.name} is listed in the images' manifest but missing", str(path))
        digest = hashlib.sha256(path.read_bytes()).hexdigest()
        if digest != entry.get("sha256"):
            fail(f"{path.name} does not hash to its manifest entry: the image was changed", str(path))
        if listed[digest] <= 0:
            fail(f"{path.name} is not a page the bundle lists in {F}: the image is not one scanned for "
                 f"this bundle, or was altered", str(path))
        listed[digest] -= 1
        named.add(path.name)
        found += 1
    stray = sorted(p.name for p in images.glob("*.png") if p.name not in named)
    if stray:
        fail(f"{stray[0]} is in the images folder but not in its manifest", str(images / stray[0]))
    return {"images_checked": found, "pages_without_image": len(pages) - found}
