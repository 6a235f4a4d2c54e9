"""Scans of the service's own printed ballots for the counting-station tests: the ballot texts
the admin API printed, rendered by paper.py, marked and distorted by omr_synth, written as a
multi-page TIFF or PNG files the way a scanner would."""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from helpers_live import setup_sitting
from omr_synth import distort, draw_faint_dot, draw_mark, draw_stray, header_cell, print_and_rasterise
from PIL import Image

from ballot_service.formats import ballot_layout as bl
from ballot_service.models import Item
from ballot_service.render.paper import BallotLayout

TITLE = "关于2025年国民经济和社会发展计划执行情况的决议草案"
# The write-in tests' election: two candidates (key, name) and one 另选 line.
WRITE_IN_CANDIDATES = (("A", "甲一"), ("B", "乙二"))


def write_in_election(api, sitting_id: int) -> int:
    """A paper election for one place (选举主任) between WRITE_IN_CANDIDATES, with a 另选 line: its id."""
    spec = {"key": "zr", "kind": "election", "title": "选举主任", "office": "principal", "places": 1,
            "channel": "paper", "candidates": [{"key": k, "title": t} for k, t in WRITE_IN_CANDIDATES]}
    return api.call("POST", f"/api/admin/sessions/{sitting_id}/items", spec)[1]["id"]


def blank_pages(texts: list[str], candidates: tuple[str, ...], dpi: int = 200, kind: str = "resolution",
                places: int | None = None) -> list[np.ndarray]:
    lay = BallotLayout(body_name="测试市人民代表大会", sitting_name="第一次会议", item_title=TITLE, kind=kind,
                       round_number=1, places=places, candidates=tuple(f"候选{i}" for i in range(len(candidates))))
    return print_and_rasterise(lay, [(t, "") for t in texts], dpi)


def paper_item_handed_out(app, api, spec: dict, count: int):
    """An open paper item (`spec` as POST /api/admin/sessions/<id>/items takes it) in a new
    sitting of 5 members, with `count` ballots printed and handed out: (setup, item id, ballot
    texts, the item's BallotLayout as the service prints it, its candidate keys)."""
    s = setup_sitting(api, open_vote=False, members=5)
    _, created = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items", spec)
    iid = created["id"]
    _, printed = api.call("POST", f"/api/admin/items/{iid}/paper-ballots", {"count": count})
    api.call("POST", f"/api/admin/items/{iid}/open")
    api.call("POST", "/api/station/hand-out", {"ballots": printed["ballots"]}, credential=s.station)
    db = app.extensions["ballot_sessionmaker"]()
    try:
        item = db.get(Item, iid)
        layout, keys = BallotLayout.from_item(item, item.rounds[-1]), tuple(item.rounds[-1].candidate_keys)
    finally:
        db.close()
    return s, iid, printed["ballots"], layout, keys


def printed_pages(layout: BallotLayout, texts: list[str], dpi: int = 200) -> list[np.ndarray]:
    """Blank pages of `texts` printed with `layout` (BallotLayout.from_item: as the service prints
    an item's round), rasterised at dpi."""
    return print_and_rasterise(layout, [(t, "") for t in texts], dpi)


def mark(page: np.ndarray, keys: tuple[str, ...], marks: dict, rng, *, dpi: int = 200, style: str = "tick",
         stray: bool = False, faint: tuple[str, str] | None = None, columns: tuple[str, ...] = bl.MARKS,
         write_in_rows: int = 0, header: str | None = None, scan: bool = True) -> np.ndarray:
    """Draw `marks` ({candidate: one of `columns`, 赞成/反对/弃权 unless told}) on a printed page, a
    stray line or a faint dot in box `faint` ((candidate, mark)) if asked, a mark over the
    table's header row above column `header` (a column, or "no"/"title" for 序号/the title) if
    asked, then scan it. `scan=False` gives the page marked but not scanned, to mark again: a
    scan is padded, skewed and scaled, so marks drawn on one would miss their boxes (refused)."""
    ppm = dpi / 25.4
    if abs(page.shape[0] - bl.PAGE_H * ppm) > 2 or abs(page.shape[1] - bl.PAGE_W * ppm) > 2:
        raise ValueError("mark() draws on a printed page, not on a scan: mark it with scan=False, then scan once")
    img = page.copy()
    geom = bl.page_geometry(keys, marks=columns, write_in_rows=write_in_rows)
    for k, m in marks.items():
        draw_mark(img, geom.boxes[(k, m)], style, ppm, rng)
    if stray:
        draw_stray(img, geom, ppm, rng)
    if faint:
        draw_faint_dot(img, geom.boxes[faint], ppm, rng)
    if header:
        draw_mark(img, header_cell(geom, header), style, ppm, rng)
    return distort(img, rng, dpi=dpi) if scan else img


def write_in_pages(texts: list[str], dpi: int = 200) -> list[np.ndarray]:
    """Blank election ballots of WRITE_IN_CANDIDATES with one 另选 line, rasterised at dpi."""
    lay = BallotLayout(body_name="测试市人民代表大会", sitting_name="第一次会议", item_title="选举主任",
                       kind="election", round_number=1, places=1, write_in_lines=1,
                       candidates=tuple(t for _, t in WRITE_IN_CANDIDATES))
    return print_and_rasterise(lay, [(t, "") for t in texts], dpi)


def scan_write_in(page: np.ndarray, rng, marks=(), name_on_line: bool = False, dpi: int = 200) -> np.ndarray:
    """Tick `marks` (candidate keys) and, if asked, scribble a 'name' on the 另选 line."""
    img = page.copy()
    ppm = dpi / 25.4
    cands = [c for c, _ in WRITE_IN_CANDIDATES]
    geom = bl.page_geometry(len(cands) + 1)     # the printed table: the candidates, then the 另选 line
    for k in marks:
        draw_mark(img, geom.boxes[(str(cands.index(k) + 1), "for")], "tick", ppm, rng)
    if name_on_line:
        row = geom.rows[len(cands)]
        x0, y = bl.MARGIN + bl.COL_NO + 4, row.y + row.h / 2
        for n in range(3):  # three hand-written characters: strokes across the title cell
            for dx, dy0, dy1 in ((0, -2.5, 2.5), (-1.5, 0, 0), (2, -2, 2)):
                cx = x0 + n * 8
                p0 = (int((cx + dx - 1.5) * ppm), int((y + dy0) * ppm))
                p1 = (int((cx + dx + 1.5) * ppm), int((y + dy1) * ppm))
                cv2.line(img, p0, p1, 30, max(1, int(0.5 * ppm)), cv2.LINE_AA)
    return distort(img, rng, dpi=dpi)


def write_tiff(pages: list[np.ndarray], path: Path) -> Path:
    frames = [Image.fromarray(p) for p in pages]
    frames[0].save(path, save_all=True, append_images=frames[1:], compression="tiff_deflate")
    return path


def png_bytes(page: np.ndarray) -> bytes:
    return cv2.imencode(".png", page)[1].tobytes()
