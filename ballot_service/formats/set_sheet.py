"""A ballot set's paper sheet (选举票组): the elections of a set printed on one A4 page, each a
section with its title, 应选 n 名, its candidates and 另选 lines, under one QR code. Pure: the
QR text and the geometry the printer (render/set_paper.py) and the reader (scan/omr.py) share.

QR text (stable)::

    BSS1.<body>.<session>.<section>.<section>…      section = <item>~<round>~<serial>~<sig>

Each section is a whole paper ballot of its own (formats/ballots.py): its own random serial and
its own Ed25519 signature over the canonical payload {"v":1,"body","session","item","round",
"serial"}. `section_tokens` rebuilds those tokens, and each goes through intake as its
`token_to_text` form, so every round stores its cast exactly as a ballot printed alone: nothing
in the database or the bundle (serials, signatures, receipts) ties one round's cast to another's.
Only the sheet itself, and its scan while kept, shows them together, as a paper ballot does.

Layout: the sections in the set's order, top to bottom, one row height for the page (from
MAX_ROW_H down to MIN_ROW_H, whatever fits). A set whose sections do not fit on one page is
printed on several pages, whole sections each (`paginate`): every page is a sheet of its own
with its own QR code holding only its sections, handed out together and scanned one by one.
"""
from __future__ import annotations

import re
from typing import Sequence

from ballot_service.formats import ballot_layout as bl
from ballot_service.formats.ballots import BallotRefused, _check_payload, token_to_text

SET_PREFIX = "BSS1"
MAX_SECTIONS = 4   # a page's QR code holds a signed ballot each: four keep its modules ≥ 3 px at 200 dpi
_SECTION = re.compile(r"^([1-9][0-9]{0,15})~([1-9][0-9]{0,5})~([0-9a-f]{32})~([A-Za-z0-9_-]{86})$")
_ID = re.compile(r"^[1-9][0-9]{0,15}$")

SHEET_TOP = bl.TOP + 8 + 11 + 5 * 3 + 2   # heading, the set's label, three instruction lines
SECTION_HEAD = 12.0                        # a section's title and its 应选 line, above its table
GAP = 6.0                                  # between one table and the next title: 4 mm of it watched for strays
BOTTOM = bl.PAGE_H - bl.TOP - bl.QR_SIZE - 4.0
MAX_ROW_H = 9.0
MIN_ROW_H = 6.0   # not bl.MIN_ROW_H's 5: marks over a line in 5-mm rows reach the neighbour's box (OMR set)


def is_set_text(text) -> bool:
    return isinstance(text, str) and text.strip().startswith(SET_PREFIX + ".")


def set_text(tokens: Sequence[dict]) -> str:
    """The QR text of one sheet page holding these sections' tokens (one per election, in order)."""
    first = tokens[0]["payload"]
    parts = [SET_PREFIX, str(first["body"]), str(first["session"])]
    for t in tokens:
        p = _check_payload(t["payload"])
        if (p["body"], p["session"]) != (first["body"], first["session"]):
            raise ValueError("a sheet's sections are of one body and session")
        parts.append(f"{p['item']}~{p['round']}~{p['serial']}~{t['sig']}")
    return ".".join(parts)


def section_tokens(text) -> list[dict]:
    """The sections' ballot tokens ({"payload", "sig"}) of a sheet's QR text, in printed order.
    Form only (signatures are checked by intake and the desk); BallotRefused("malformed") else."""
    if not isinstance(text, str) or len(text) > 2000:
        raise BallotRefused("malformed", "ballot sheet text missing or too long")
    parts = text.strip().split(".")
    if len(parts) < 4 or parts[0] != SET_PREFIX or not all(_ID.match(p) for p in parts[1:3]):
        raise BallotRefused("malformed", f"a ballot sheet's text looks like {SET_PREFIX}.<body>.<session>.<section>…")
    if len(parts) - 3 > MAX_SECTIONS:
        raise BallotRefused("malformed", f"a ballot sheet holds at most {MAX_SECTIONS} elections")
    out = []
    for part in parts[3:]:
        m = _SECTION.match(part)
        if not m:
            raise BallotRefused("malformed", "a ballot sheet's section looks like <item>~<round>~<serial>~<signature>")
        payload = {"v": 1, "body": int(parts[1]), "session": int(parts[2]), "item": int(m[1]),
                   "round": int(m[2]), "serial": m[3]}
        out.append({"payload": _check_payload(payload), "sig": m[4]})
    if len({t["payload"]["item"] for t in out}) != len(out):
        raise BallotRefused("malformed", "a ballot sheet names an election twice")
    return out


def section_texts(text) -> list[str]:
    """Each section's own ballot text (BS1…), as intake and the station take a single ballot."""
    return [token_to_text(t) for t in section_tokens(text)]


# --- geometry ---------------------------------------------------------------------------

def _tenths(rows: Sequence[int]) -> int | None:
    """The page's row height in tenths of a millimetre for sections of these row counts, or None
    if they do not fit on one page even at the smallest row height."""
    room = round((BOTTOM - SHEET_TOP) * 10) - len(rows) * round((SECTION_HEAD + bl.HEADER_H + GAP) * 10)
    total = sum(rows)
    if total < 1 or room < total * round(MIN_ROW_H * 10):
        return None
    return min(round(MAX_ROW_H * 10), room // total)


def paginate(rows: Sequence[int]) -> list[list[int]]:
    """The set's sections (their row counts: candidates plus 另选 lines) on pages: indices, in
    order, as many on a page as fit (at most MAX_SECTIONS). ValueError if a section does not fit on a page alone."""
    pages: list[list[int]] = []
    for i, n in enumerate(rows):
        if _tenths([n]) is None or n > bl.MAX_ROWS:
            raise ValueError(f"section {i + 1} ({n} rows) does not fit on one A4 page")
        if pages and len(pages[-1]) < MAX_SECTIONS and _tenths([rows[j] for j in pages[-1]] + [n]) is not None:
            pages[-1].append(i)
        else:
            pages.append([i])
    return pages


def sheet_geometry(sections: Sequence[tuple[Sequence[str], Sequence[str], int]],
                   version: int = bl.LAYOUT_VERSION) -> list[bl.PageGeometry]:
    """One page's sections, each (candidate keys, box columns, 另选 lines), laid out top to
    bottom: a PageGeometry each (the same fiducials and QR square, its own table)."""
    rows = [len(k) + w for k, _, w in sections]
    tenths = _tenths(rows)
    if tenths is None or not 1 <= len(sections) <= MAX_SECTIONS:
        raise ValueError("these sections do not fit on one sheet")
    rh = tenths / 10
    tops, y = [], SHEET_TOP
    for n in rows:
        tops.append(y + SECTION_HEAD)
        y += SECTION_HEAD + bl.HEADER_H + n * rh + GAP
    limits = [t - SECTION_HEAD for t in tops[1:]] + [None]
    return [bl.page_geometry(tuple(keys), version, tuple(marks), lines, section=(top, rh, limit))
            for (keys, marks, lines), top, limit in zip(sections, tops, limits)]
