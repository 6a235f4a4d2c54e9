"""Ink over the ballot table's header row: the printed column titles (序号, the title column's
label, 赞成/反对/弃权 or an evaluation's options) and the blank paper beside them, which the box
columns' watch (omr.py) starts below. A mark there is no box's mark, so the reader never
guesses: the page goes to the tellers (HEADER_MARK).

The printed titles are one line of text centred in each cell (11 pt, 8 pt in a narrow
column): every blob of their ink is at most a glyph tall, as measured on printed pages of
every kind at 150-300 dpi (<= 4.2 mm, blur included). A mark drawn over them joins glyphs
and runs above or below the text line, so a blob taller than GLYPH_H is a mark, as is any
ink in the blank paper beside the header. A mark small enough to hide inside the text line
is not seen (nor would a teller see it as a vote).
"""
from __future__ import annotations

import cv2
import numpy as np

from ballot_service.formats import ballot_layout as bl
from ballot_service.scan import ink
from ballot_service.scan.lines import RES

HEADER_MARK = "mark over the table's header row"
GLYPH_H = 4.6             # mm: the tallest blob printed text makes in the header (measured <= 4.2)
MARGIN_RIGHT = 7.0        # mm: the watched paper ends this far from the page's right edge (as omr.py)


def cells(geom: bl.PageGeometry) -> tuple[bl.Rect, ...]:
    """The header row's cells, left to right: 序号, the title, one per box column."""
    h = geom.header
    xs = (h.x, h.x + bl.COL_NO, *geom.box_x)
    return tuple(bl.Rect(a, h.y, b - a, h.h) for a, b in zip(xs, xs[1:]))


def header_marked(grey: np.ndarray, geom: bl.PageGeometry, H: np.ndarray) -> bool:
    """Is there ink over the header row that its printed titles do not explain?"""
    for cell in cells(geom):
        _, stats = ink.specks(ink.darkness(grey, H, cell.inset(ink.LINE_INSET)) >= ink.WEAK)
        if len(stats) and stats[:, cv2.CC_STAT_HEIGHT].max() / RES > GLYPH_H:
            return True
    h = geom.header
    return ink.inked(grey, H, bl.Rect(h.right, h.y, bl.PAGE_W - MARGIN_RIGHT - h.right, h.h))
