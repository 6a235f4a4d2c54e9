"""Where things are on a printed paper ballot: the one geometry the printer and the reader share.

Pure arithmetic, no I/O. `page_geometry(candidates)` gives, in millimetres on the A4 page
(origin top left, y down), the centres of the four corner fiducials, the QR code's square,
the table's rows and every mark box, keyed by (candidate_key, mark). `paper.py` draws the
ballot from it and `omr.py` reads the scan with it, so the two cannot disagree.

Layout version: the geometry depends only on the layout version and the number of
candidates. The signed QR payload has exactly the fields listed in `ballots.py` (adding one
would make every existing ballot and check refuse it), so the layout version is derived from
the payload's signed format version `v` (`layout_version_for`); it is also printed on the page
("版式 L1") for people. A new layout means a new `v` and a new entry in LAYOUT_FOR_FORMAT.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from typing import Sequence

from ballot_service.vocab import ELECTRONIC_MARKS

LAYOUT_VERSION = 1
LAYOUT_FOR_FORMAT = {1: 1}  # signed payload "v" -> layout version

PAGE_W, PAGE_H = 210.0, 297.0
MARGIN = 18.0          # left/right margin of the printed text and table
TOP = 14.0             # top and bottom margin
QR_SIZE = 40.0         # the QR square, bottom left
FIDUCIAL_SIZE = 6.0    # solid black squares in the four corners
FIDUCIAL_INSET = 9.0   # centre distance from the page edges: clear of most printers' dead margin
HEADER_H = 9.0         # the table's header row (序号 / title / 赞成 反对 弃权)
COL_NO, COL_BOX = 14.0, 20.0
MAX_NOTE_LINES = 3     # the table top is fixed so the reader needs no text metrics
TABLE_TOP = TOP + 8 + 11 + 9 + 5 * MAX_NOTE_LINES + 4   # heading, title, label, notes, gap
MAX_ROWS = 32
MIN_ROW_H, MAX_ROW_H = 5.0, 12.0

MARKS = ELECTRONIC_MARKS
MARK_LABELS = {"for": "赞成", "against": "反对", "abstain": "弃权"}
# An evaluation (满意度测评) has a column per option instead (its option keys, best first): the
# reader gets them from the item as it gets the candidates. Narrower boxes past three columns.
MAX_MARK_COLUMNS = 8
MIN_TITLE_W = 60.0


@dataclass(frozen=True)
class Rect:
    x: float
    y: float
    w: float
    h: float

    @property
    def right(self) -> float:
        return self.x + self.w

    @property
    def bottom(self) -> float:
        return self.y + self.h

    @property
    def center(self) -> tuple[float, float]:
        return self.x + self.w / 2, self.y + self.h / 2

    def inset(self, dx: float, dy: float | None = None) -> "Rect":
        dy = dx if dy is None else dy
        return Rect(self.x + dx, self.y + dy, self.w - 2 * dx, self.h - 2 * dy)


@dataclass(frozen=True, eq=False)
class PageGeometry:
    version: int
    candidates: tuple[str, ...]   # candidate keys, top to bottom
    row_h: float
    fiducials: tuple[tuple[float, float], ...]   # centres: top left, top right, bottom right, bottom left
    qr: Rect
    header: Rect
    rows: tuple[Rect, ...]        # each candidate's full table row, then the 另选 lines'
    boxes: dict                   # (candidate_key, mark) -> Rect of the printed box
    col_title: float
    box_x: tuple[float, ...]      # x of the box columns' vertical lines, left to right (columns + 1)
    row_y: tuple[float, ...]      # y of the horizontal lines from the header's bottom (rows + 1)
    marks: tuple[str, ...] = MARKS  # the box columns, left to right
    col_box: float = COL_BOX
    write_in_rows: int = 0        # an election's blank 另选他人 lines under the candidates: no boxes
    limit: float | None = None    # a set sheet's section (set_sheet.py): where the next section begins

    @property
    def floor(self) -> float:
        """How far down the blank paper under the table may be watched: above the QR code, or
        above the next section of a set sheet."""
        return self.qr.y - 2.0 if self.limit is None else min(self.qr.y, self.limit) - 2.0

    @property
    def write_in_cells(self) -> tuple[Rect, ...]:
        """Where a name is written on each 另选 line: the row's title cell."""
        x = MARGIN + COL_NO
        return tuple(Rect(x, r.y, self.col_title, r.h) for r in self.rows[len(self.candidates):])

    @property
    def write_in_margins(self) -> tuple[Rect, ...]:
        """The blank paper the watch leaves out on a page with 另选 lines, where a stray mark may
        fall too: the right margin beside those lines and the gap under the table."""
        if not self.write_in_rows:
            return ()
        top, right = self.row_y[len(self.candidates)], PAGE_W - 7.0
        under = min(self.floor, self.table_bottom + 7.0) - self.table_bottom
        beside = Rect(self.box_x[-1], top, right - self.box_x[-1], self.table_bottom - top)
        below = Rect(self.box_x[0] - 1.5, self.table_bottom, right - self.box_x[0] + 1.5, under)
        return tuple(r for r in (beside, below) if min(r.w, r.h) > 3.0)

    @property
    def table_bottom(self) -> float:
        return self.row_y[-1]

    @property
    def watch(self) -> Rect:
        """Where the reader looks for ink: the box columns plus blank paper around them
        (right margin, the gap under the table); marks found there outside a box are strays.
        Under the candidates' rows of an election come the 另选 lines, whose box columns hold
        printed words: the watch ends at the last candidate's row."""
        x0 = self.box_x[0] - 1.5      # the last 1.5 mm of the title column is blank (text is inset)
        y0 = self.row_y[0] - 0.2
        y1 = self.row_y[len(self.candidates)] + 0.2 if self.write_in_rows else self.table_bottom + 7.0
        return Rect(x0, y0, PAGE_W - 7.0 - x0, min(self.floor, y1) - y0)


def layout_version_for(payload: dict) -> int | None:
    """The layout a ballot was printed with, from its signed payload (None if unknown)."""
    return LAYOUT_FOR_FORMAT.get(payload.get("v")) if isinstance(payload, dict) else None


def row_height(n: int) -> float:
    avail = PAGE_H - TOP - (QR_SIZE + 8) - TABLE_TOP - HEADER_H
    return max(MIN_ROW_H, min(MAX_ROW_H, avail / n))


def page_geometry(candidates: int | Sequence[str], version: int = LAYOUT_VERSION,
                  marks: Sequence[str] = MARKS, write_in_rows: int = 0, *,
                  section: tuple[float, float, float] | None = None) -> PageGeometry:
    """The geometry for `candidates` (their keys in printed order, or a count: keys "1".."n"),
    with a box column per mark (赞成/反对/弃权, or an evaluation's options), and an election's
    `write_in_rows` blank 另选 lines under them (write_in_rows_for). `section`: (table top, row
    height, limit) of one section of a set sheet (set_sheet.py), else the whole page's table."""
    keys = tuple(str(i) for i in range(1, candidates + 1)) if isinstance(candidates, int) else tuple(candidates)
    return _geometry(keys, version, tuple(marks), write_in_rows, section)


def write_in_rows_for(places: int | None, candidates: int) -> int:
    """How many 另选 lines an election round's ballot prints: one a seat, as many as fit."""
    return max(0, min(places or 0, MAX_ROWS - candidates))


@lru_cache(maxsize=256)
def _geometry(keys: tuple[str, ...], version: int, marks: tuple[str, ...] = MARKS,
              write_in_rows: int = 0, section: tuple[float, float, float] | None = None) -> PageGeometry:
    if version != LAYOUT_VERSION:
        raise ValueError(f"unknown ballot layout version {version}")
    if not 0 <= write_in_rows <= MAX_ROWS - len(keys):
        raise ValueError(f"a ballot page holds at most {MAX_ROWS} rows with its 另选 lines")
    n = len(keys)
    if not 1 <= n <= MAX_ROWS:
        raise ValueError(f"a ballot page holds 1 to {MAX_ROWS} candidates, not {n}")
    if len(set(keys)) != n:
        raise ValueError("candidate keys must be distinct")
    if not 2 <= len(marks) <= MAX_MARK_COLUMNS or len(set(marks)) != len(marks):
        raise ValueError(f"a ballot has 2 to {MAX_MARK_COLUMNS} distinct mark columns")
    width = PAGE_W - 2 * MARGIN
    col_box = min(COL_BOX, (width - COL_NO - MIN_TITLE_W) / len(marks))
    col_title = width - COL_NO - len(marks) * col_box
    rows = n + write_in_rows
    top, rh, limit = section or (TABLE_TOP, row_height(rows), None)
    first = top + HEADER_H
    box_x = tuple(MARGIN + COL_NO + col_title + i * col_box for i in range(len(marks) + 1))
    row_y = tuple(first + i * rh for i in range(rows + 1))
    boxes = {(k, m): Rect(box_x[j], row_y[i], col_box, rh)
             for i, k in enumerate(keys) for j, m in enumerate(marks)}
    c = FIDUCIAL_INSET
    return PageGeometry(
        version=version, candidates=keys, row_h=rh,
        fiducials=((c, c), (PAGE_W - c, c), (PAGE_W - c, PAGE_H - c), (c, PAGE_H - c)),
        qr=Rect(MARGIN, PAGE_H - TOP - QR_SIZE, QR_SIZE, QR_SIZE),
        header=Rect(MARGIN, top, width, HEADER_H),
        rows=tuple(Rect(MARGIN, row_y[i], width, rh) for i in range(rows)),
        boxes=boxes, col_title=col_title, box_x=box_x, row_y=row_y, marks=marks, col_box=col_box,
        write_in_rows=write_in_rows, limit=limit)
