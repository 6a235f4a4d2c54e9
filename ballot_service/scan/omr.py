"""The mark reader (OMR): one scanned ballot page in, a reading of every box out.

Steps for a page: decode the QR code (zxing-cpp; its printed square first, then the square
where an upside-down page has it, then the whole page) -> the candidates and layout for that
item and round (`candidates_for(payload)`, supplied by the caller, who has the database) ->
find the four corner fiducials near where the QR code says they are -> homography from the
layout's millimetres to the image -> resample the box columns at RES px/mm -> take the
printed lines out where they are measured (lines.py) -> blobs of ink, each given to the box
holding most of it -> classify each box marked / empty / unclear. Ink over the table's header
row (its printed titles measured out, header.py), on a 另选 line or on the blank paper around
the table sends the page to people too.

Never guess: a box is "marked" only with a dark stroke well above any unclear example (and
no light, erased-looking blob), "empty" only with next to no ink; a mark shared with another
box counts only when it keeps out of that box's core and its own box holds twice as much;
anything else is "unclear" and the page goes to people (adjudication) with the reason. The QR text is checked for form only (`text_to_token`); the
station verifies the signature and serial. Plain dataclasses out; no database, no Flask.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Iterator, Sequence

import cv2
import numpy as np

from ballot_service.formats import ballot_layout as bl
from ballot_service.formats import set_sheet
from ballot_service.formats.ballots import BallotRefused, text_to_token, token_to_text
from ballot_service.scan import lines as lns
from ballot_service.scan.find_qr import find_qr
from ballot_service.scan.header import HEADER_MARK, header_marked
from ballot_service.scan.ink import EMPTY_MAX, MIN_BLOB, STRONG, WEAK, darkness, inked
from ballot_service.scan.lines import RES
from ballot_service.scan.lines import px as _px
from ballot_service.scan.pages import iter_pages

MARK_MIN = 1.5            # mm² of dark ink: at least this and a box is marked (a faint dot is ~0.8)
OWN_SHARE = 0.6           # a mark belongs to a box holding >= 60 % of its ink ...
SPILL_SHARE = 0.5         # ... and no other box holding more than half of what that box holds
DARK_SHARE = 0.3          # a stroke is dark across most of its width (marks: >= 0.35; erased residue <= 0.17):
                          # a box holding a lighter blob is unclear, whatever else it holds
WHOLE_DARK_SHARE = 0.5    # two marks joined across a line count apart only if each is this dark (pen) ...
WHOLE_CENTRE = 0.2        # ... and centred within ±20 % of its box's size (half a mark on a line: ~0.3)
CORE_X, CORE_Y = 2.5, 1.5  # mm: a box's core is its interior this far from its lines; spill stays outside it
CORE_MIN = 0.5            # mm² of dark ink in the core: a mark shared with another box (or cut by the
                          # watched area's edge) needs it in its own box, else it is on the edge: unclear
FOLD_SHARE = 0.35         # a pixel row/column of the watched area this full of light ink is a fold

UNREADABLE_QR = "unreadable QR code"
NOT_A_BALLOT = "not a ballot (QR code is not a ballot token)"
UNKNOWN_LAYOUT = "unknown item, round or layout version"
NO_FIDUCIALS = "corner fiducials not found"
LAYOUT_MISMATCH = "QR code not where the layout puts it"
UNCLEAR_BOX = "unclear box"
TWO_MARKS = "two marks for one candidate"
STRAY_MARK = "stray mark outside the boxes"
ACROSS_BOXES = "mark across two boxes"
WRITTEN_IN = "a name written on a 另选他人 line: the tellers transcribe it"


@dataclass
class BoxReading:
    candidate: str
    mark: str                 # one of the geometry's marks (ballot_layout)
    state: str                # "marked" | "empty" | "unclear"
    fill: float               # fraction of the box interior with ink
    ink_mm2: float            # ink of the marks belonging to this box (any darkness)
    dark_mm2: float           # of which dark (>= STRONG)
    ring_mm2: float           # of which just outside the box (marks slightly outside)
    centre_mm2: float = 0.0   # dark ink in the box's middle: a ○ leaves it clear, √ × and a fill do not
    px: tuple[int, int, int, int] = (0, 0, 0, 0)   # the box in the scan, x0 y0 x1 y1 (for crops)


@dataclass
class PageReading:
    source: str
    page: int
    status: str                                   # "readable" | "adjudicate"
    reasons: list[str] = field(default_factory=list)
    qr_text: str | None = None
    payload: dict | None = None
    layout_version: int | None = None
    rotated: bool = False                         # the page was upside down (read turned 180°)
    marks: dict[str, str | None] = field(default_factory=dict)   # candidate -> mark; None: no mark
    boxes: list[BoxReading] = field(default_factory=list)
    sections: list["PageReading"] = field(default_factory=list)   # a ballot set's sheet: one per election

    @property
    def readable(self) -> bool:
        return self.status == "readable"


Resolver = Callable[[dict], "Sequence[str] | None"]


def read_pages(path: Path | str, candidates_for: Resolver, dpi: int = 200, marks_for=None,
               write_ins_for=None) -> Iterator[PageReading]:
    """Read every page of a scan (PDF, TIFF, image or folder of images); see scan/pages.py."""
    for source, page, grey in iter_pages(path, dpi):
        yield read_page(grey, candidates_for, source=source, page=page, marks_for=marks_for,
                        write_ins_for=write_ins_for)


def read_page(grey: np.ndarray, candidates_for: Resolver, source: str = "", page: int = 0,
              marks_for=None, write_ins_for=None) -> PageReading:
    """Read one greyscale (uint8, 2-D) or BGR page image. `candidates_for(payload)` gives the
    candidate keys in printed order for the QR's item and round, or None if unknown;
    `marks_for(payload)` the box columns when they are not 赞成/反对/弃权 (an evaluation's
    option keys, ballot_layout), or None for those; `write_ins_for(payload)` how many 另选
    lines an election's ballot has under its candidates (0 otherwise). A name written on one
    is handwriting the reader does not read: the page goes to the tellers (WRITTEN_IN)."""
    if grey.ndim == 3:
        grey = cv2.cvtColor(grey, cv2.COLOR_BGR2GRAY)
    out = PageReading(source=source, page=page, status="adjudicate")
    qr = find_qr(grey)
    if qr is None:
        out.reasons.append(UNREADABLE_QR)
        return out
    out.qr_text, corners = qr
    if set_sheet.is_set_text(out.qr_text):
        _read_sheet(grey, out, corners, (candidates_for, marks_for, write_ins_for))
        return out
    try:
        out.payload = text_to_token(out.qr_text)["payload"]
    except BallotRefused:
        out.reasons.append(NOT_A_BALLOT)
        return out
    out.layout_version = bl.layout_version_for(out.payload)
    table = _table(out.payload, out.layout_version, candidates_for, marks_for, write_ins_for)
    try:
        geom = bl.page_geometry(*table[:3], write_in_rows=table[3]) if table else None
    except ValueError:
        geom = None
    if geom is None:
        out.reasons.append(UNKNOWN_LAYOUT)
        return out
    H = _located(grey, geom, corners, out)
    if H is not None:
        _read_table(grey, geom, H, out)
    return out


def _located(grey: np.ndarray, geom: bl.PageGeometry, corners, out: PageReading):
    """_locate, with the reason in `out` when it fails, and whether the page is upside down."""
    H = _locate(grey, geom, corners)
    if H is None or isinstance(H, str):
        out.reasons.append(H or NO_FIDUCIALS)
        return None
    tl, tr = (_apply(H, p) for p in geom.fiducials[:2])
    out.rotated = abs(math.atan2(tr[1] - tl[1], tr[0] - tl[0])) > math.pi / 2
    return H


def _table(payload: dict, version: int | None, candidates_for, marks_for, write_ins_for):
    """(candidate keys, layout version, box columns, 另选 lines) of a ballot's table, or None."""
    keys = candidates_for(payload) if version else None
    if not keys:
        return None
    marks = (marks_for(payload) if marks_for else None) or bl.MARKS
    return tuple(keys), version, tuple(marks), (write_ins_for(payload) if write_ins_for else 0) or 0


def _read_table(grey: np.ndarray, geom: bl.PageGeometry, H: np.ndarray, out: PageReading) -> None:
    if any(inked(grey, H, cell) for cell in geom.write_in_cells):
        out.reasons.append(WRITTEN_IN)
    if any(inked(grey, H, blank) for blank in geom.write_in_margins):
        out.reasons.append(STRAY_MARK)   # beside or under the 另选 lines, where the watch ends
    if header_marked(grey, geom, H):
        out.reasons.append(HEADER_MARK)  # over the column titles, above where the watch starts
    _read_boxes(grey, geom, H, out)


def _read_sheet(grey: np.ndarray, out: PageReading, corners, resolvers) -> None:
    """A ballot set's sheet (formats/set_sheet.py): `out.sections`, a reading per election with
    its own ballot text, each decided alone; the page is "readable" once it is located."""
    try:
        tokens = set_sheet.section_tokens(out.qr_text)
    except BallotRefused:
        out.reasons.append(NOT_A_BALLOT)
        return
    tables = [_table(t["payload"], bl.layout_version_for(t["payload"]), *resolvers) for t in tokens]
    try:
        geoms = set_sheet.sheet_geometry([(k, m, w) for k, _, m, w in tables]) if all(tables) else None
    except ValueError:
        geoms = None
    if geoms is None:
        out.reasons.append(UNKNOWN_LAYOUT)
        return
    H = _located(grey, geoms[0], corners, out)
    if H is None:
        return
    out.status, out.layout_version = "readable", geoms[0].version
    for token, geom in zip(tokens, geoms):
        part = PageReading(source=out.source, page=out.page, status="adjudicate", qr_text=token_to_text(token),
                           payload=token["payload"], layout_version=geom.version, rotated=out.rotated)
        _read_table(grey, geom, H, part)
        out.sections.append(part)


# --- finding the page ---------------------------------------------------------------------

def _apply(H: np.ndarray, pt) -> tuple[float, float]:
    v = H @ np.array([pt[0], pt[1], 1.0])
    return v[0] / v[2], v[1] / v[2]


def _locate(grey: np.ndarray, geom: bl.PageGeometry, qr_corners: np.ndarray):
    """Homography layout mm -> image px from the four fiducials; None if one is missing, or a
    reason if the QR code is not where that homography puts it."""
    q = geom.qr
    layout_qr = np.float32([(q.x, q.y), (q.right, q.y), (q.right, q.bottom), (q.x, q.bottom)])
    # A similarity from the QR's corners is stable enough to say where to look for each corner square.
    A, _ = cv2.estimateAffinePartial2D(layout_qr, qr_corners)
    if A is None:
        return None
    scale = math.hypot(A[0, 0], A[1, 0])      # px per mm
    dark = grey < 0.5 * float(np.percentile(grey[::8, ::8], 90))
    want = (bl.FIDUCIAL_SIZE * scale) ** 2
    r = int(14 * scale)
    found = []
    for fx, fy in geom.fiducials:
        px, py = A @ np.array([fx, fy, 1.0])
        x0, y0 = max(0, int(px) - r), max(0, int(py) - r)
        win = dark[y0:int(py) + r, x0:int(px) + r].astype(np.uint8)
        if win.size == 0:
            return None
        n, _, stats, cents = cv2.connectedComponentsWithStats(win, connectivity=8)
        best = None
        for i in range(1, n):
            bw, bh, area = stats[i, 2], stats[i, 3], stats[i, 4]
            # solid and square: area near 36 mm², fills its bounding box (±3° skew keeps ~0.85)
            if 0.6 * want <= area <= 1.5 * want and 0.75 <= bw / bh <= 1.33 and area >= 0.75 * bw * bh:
                d = math.hypot(cents[i, 0] + x0 - px, cents[i, 1] + y0 - py)
                if best is None or d < best[0]:
                    best = (d, cents[i, 0] + x0, cents[i, 1] + y0)
        if best is None:
            return None
        found.append(best[1:])
    H = cv2.getPerspectiveTransform(np.float32(geom.fiducials), np.float32(found))
    err = max(math.dist(_apply(H, c), tuple(p)) for c, p in zip(layout_qr, qr_corners)) / scale
    return H if err <= 3.0 else LAYOUT_MISMATCH


# --- measuring the boxes ------------------------------------------------------------------

def _ink(grey: np.ndarray, geom: bl.PageGeometry, H: np.ndarray):
    """Darkness of the watched area resampled to RES px/mm, table lines and folds removed."""
    d = darkness(grey, H, geom.watch)
    weak, strong = d >= WEAK, d >= STRONG
    # Folds run along the page's axes as light lines across the whole watched area; no mark
    # fills a third of such a line. Light ink is dropped there; dark ink on a fold is kept.
    light = weak & ~strong
    rows = np.convolve(light.mean(axis=1) >= FOLD_SHARE, np.ones(3), "same") > 0
    cols = np.convolve(light.mean(axis=0) >= FOLD_SHARE, np.ones(3), "same") > 0
    weak[rows, :] &= strong[rows, :]
    weak[:, cols] &= strong[:, cols]
    return weak, strong, lns.remove_lines(weak, strong, geom)


def _read_boxes(grey: np.ndarray, geom: bl.PageGeometry, H: np.ndarray, out: PageReading) -> None:
    weak, strong, lines = _ink(grey, geom, H)
    n, labels = cv2.connectedComponents(lns.bridge(weak, lines).astype(np.uint8), connectivity=8)
    W, px_mm2 = geom.watch, 1 / RES ** 2
    total = np.bincount(labels[weak], minlength=n)
    dark = np.bincount(labels[strong], minlength=n)
    keys = list(geom.boxes)
    slices = [(slice(_px(r.y, W.y), _px(r.bottom, W.y)), slice(_px(r.x, W.x), _px(r.right, W.x)))
              for r in geom.boxes.values()]
    cx, cy = int(round(CORE_X * RES)), int(round(CORE_Y * RES))
    inside, dark_in, core = (np.zeros((len(keys), n)) for _ in range(3))
    for j, (ys, xs) in enumerate(slices):
        lab, w, s = labels[ys, xs], weak[ys, xs], strong[ys, xs]
        inside[j] = np.bincount(lab[w], minlength=n)
        dark_in[j] = np.bincount(lab[s], minlength=n)
        core[j] = np.bincount(lab[cy:-cy, cx:-cx][s[cy:-cy, cx:-cx]], minlength=n)
    ink, dk, ring, cdk, light = (np.zeros(len(keys)) for _ in range(5))
    # a blob cut by the watched area's edge runs on where the reader does not look (the title
    # column), and one cut by a printed line may be the end of a stroke from across it: its
    # box must hold ink in its core, as for a mark shared with another box
    edge = np.zeros(n, bool)
    edge[np.concatenate([labels[0], labels[-1], labels[:, 0], labels[:, -1]])] = True
    edge |= lns.cut_at_lines(labels, lines, n)
    needs_core = np.zeros(len(keys), bool)
    unclear: set[int] = set()
    for i in range(1, n):
        if total[i] * px_mm2 < MIN_BLOB:
            continue
        order = np.argsort(inside[:, i])[::-1]
        j, j2 = order[0], order[1]
        own, second = inside[j, i], inside[j2, i]
        # a neighbour with ink in its core has a mark of its own there, not a spill from box j
        cored = [k for k in np.nonzero(core[:, i] * px_mm2 >= MIN_BLOB)[0] if k != j]
        if own == 0:
            out.reasons.append(STRAY_MARK)
            continue
        if own >= OWN_SHARE * total[i] and second <= SPILL_SHARE * own and not cored:
            ink[j] += total[i]
            dk[j] += dark[i]
            ring[j] += total[i] - own
            cdk[j] += core[j, i]
            light[j] += total[i] if dark[i] < DARK_SHARE * total[i] else 0
            needs_core[j] |= bool(second) or edge[i]
            continue
        hit = np.nonzero(inside[:, i] * px_mm2 >= MIN_BLOB)[0]
        if len(hit) >= 2 and inside[hit, i].sum() >= 0.9 * total[i] \
                and all(_whole_mark(labels, weak, i, slices[k], core[k, i], dark_in[k, i], inside[k, i])
                        for k in hit):
            # Two whole marks that touch across a line (small rows): each box holds a dark
            # mark of its own, centred in it; half of one mark drawn on the line is not.
            for k in hit:
                ink[k] += inside[k, i]
                dk[k] += dark_in[k, i]
                cdk[k] += core[k, i]
                needs_core[k] = True
        else:
            unclear.update([int(k) for k in hit] or [int(j)])
            out.reasons.append(ACROSS_BOXES)
    corners = cv2.perspectiveTransform(np.float32([[(r.x, r.y), (r.right, r.y), (r.right, r.bottom), (r.x, r.bottom)]
                                                    for r in geom.boxes.values()]).reshape(-1, 1, 2), H)
    corners = corners.reshape(-1, 4, 2)
    lo, hi = np.floor(corners.min(axis=1)).astype(int), np.ceil(corners.max(axis=1)).astype(int)
    for j, ((cand, mark), (ys, xs)) in enumerate(zip(keys, slices)):
        area = max(1, (ys.stop - ys.start) * (xs.stop - xs.start))
        hy, hx = (ys.stop - ys.start) // 3, (xs.stop - xs.start) // 3
        centre = float(strong[ys.start + hy:ys.stop - hy, xs.start + hx:xs.stop - hx].sum()) * px_mm2
        if j in unclear:
            state = "unclear"
        elif dk[j] * px_mm2 >= MARK_MIN and light[j] * px_mm2 <= EMPTY_MAX \
                and (cdk[j] * px_mm2 >= CORE_MIN or not needs_core[j]):
            state = "marked"
        elif ink[j] * px_mm2 <= EMPTY_MAX:
            state = "empty"
        else:
            state = "unclear"
        out.boxes.append(BoxReading(cand, mark, state, round(float(inside[j].sum() - inside[j, 0]) / area, 4),
                                    round(ink[j] * px_mm2, 2), round(dk[j] * px_mm2, 2),
                                    round(ring[j] * px_mm2, 2), round(centre, 2),
                                    (int(lo[j, 0]), int(lo[j, 1]), int(hi[j, 0]), int(hi[j, 1]))))
    _decide(out, geom)


def _whole_mark(labels, weak, label: int, box, core: float, dark: float, ink: float) -> bool:
    """Is blob `label`'s part in this box (pixel slices) a mark of its own: dark ink in the
    core, a stroke's dark share (not erased residue), its centre in the middle of the box."""
    if core / RES ** 2 < CORE_MIN or dark / RES ** 2 < MARK_MIN or dark < WHOLE_DARK_SHARE * ink:
        return False
    ys, xs = np.nonzero((labels[box] == label) & weak[box])
    h, w = labels[box].shape
    return abs(ys.mean() - h / 2) <= WHOLE_CENTRE * h and abs(xs.mean() - w / 2) <= WHOLE_CENTRE * w


def _decide(out: PageReading, geom: bl.PageGeometry) -> None:
    """Page verdict: readable only if every box is marked or empty, at most one mark a
    candidate, and no stray ink."""
    by_cand: dict[str, list[str]] = {k: [] for k in geom.candidates}
    for b in out.boxes:
        if b.state == "unclear" and UNCLEAR_BOX not in out.reasons:
            out.reasons.append(UNCLEAR_BOX)
        if b.state == "marked":
            by_cand[b.candidate].append(b.mark)
    if any(len(v) > 1 for v in by_cand.values()):
        out.reasons.append(TWO_MARKS)
    out.reasons = list(dict.fromkeys(out.reasons))
    if out.reasons:
        return
    out.status = "readable"
    out.marks = {k: (v[0] if v else None) for k, v in by_cand.items()}
