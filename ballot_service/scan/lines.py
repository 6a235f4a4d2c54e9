"""The printed table lines in the reader's view of the box columns: where they are, taking them
out of the ink, and joining a stroke that crosses one. Works on the watched area resampled
to RES px/mm (omr.py); pure numpy/OpenCV.
"""
from __future__ import annotations

import cv2
import numpy as np

from ballot_service.formats import ballot_layout as bl

RES = 5.0                 # px per mm of the resampled box columns (127 dpi): enough for a 0.3 mm stroke
LINE_BAND = 0.7           # mm each side of a printed table line where the reader looks for it
LINE_COVER = 0.5          # a band row this full of ink along the line is the printed line itself
CROSS_REACH = 2.0         # mm along a line between a crossing stroke's ink on its two sides
CUT_REACH = 3.0           # mm: ink this near across a line may be the same stroke (then core ink is needed)


def px(v: float, origin: float) -> int:
    """Layout mm (from `origin`, the watched area's edge) to a pixel of the resampled area."""
    return int(round((v - origin) * RES))


def remove_lines(weak: np.ndarray, strong: np.ndarray, geom: bl.PageGeometry) -> list:
    """Take the printed lines out of both ink masks (in place); their (axis, first, end, from,
    to) pixel rows as measured."""
    near = weak.copy()   # ink before the printed lines are taken out
    lines = []
    for axis, a, b, lo, hi in _line_bands(geom):
        # The printed line's own rows in its band (registration puts it within ±LINE_BAND):
        # those that ink covers along most of the line; no mark runs along a whole line.
        m = near[a:b, lo:hi] if axis == 0 else near[lo:hi, a:b].T
        rows = np.nonzero(m.mean(axis=1) >= LINE_COVER)[0]
        l0, l1 = (a + rows[0] - 1, a + rows[-1] + 2) if len(rows) else (a, b)   # ±1 px of blur
        l0, l1 = max(a, l0), min(b, l1)
        if axis == 0:
            weak[l0:l1, lo:hi] = strong[l0:l1, lo:hi] = False
        else:
            weak[lo:hi, l0:l1] = strong[lo:hi, l0:l1] = False
        lines.append((axis, l0, l1, lo, hi))
    return lines


def _line_bands(geom: bl.PageGeometry) -> list[tuple[int, int, int, int, int]]:
    """(axis, first, end, from, to) pixel bands of the printed table lines in the watched area:
    axis 0 horizontal (rows first..end, columns from..to), 1 vertical."""
    W, lb = geom.watch, LINE_BAND
    x_end, y_end = px(geom.box_x[-1] + lb, W.x) + 1, px(geom.table_bottom + lb, W.y) + 1
    out = [(0, max(0, px(y - lb, W.y)), px(y + lb, W.y) + 1, 0, x_end) for y in geom.row_y]
    out += [(1, max(0, px(x - lb, W.x)), px(x + lb, W.x) + 1, 0, y_end) for x in geom.box_x]
    return out


def bridge(weak: np.ndarray, lines) -> np.ndarray:
    """The ink mask with a stroke that crosses a printed line joined across the line's removed
    rows, so one mark stays one blob: ink touches the line on both sides within CROSS_REACH
    of each other (an oblique stroke's two sides are offset along the line)."""
    conn = weak.copy()
    reach = np.ones((1, int(round(CROSS_REACH * RES)) + 1), np.uint8)   # half the reach each side
    for axis, l0, l1, lo, hi in lines:
        m = weak if axis == 0 else weak.T
        c = conn if axis == 0 else conn.T
        if l0 < 1 or l1 >= m.shape[0]:
            continue
        above = cv2.dilate(m[l0 - 1:l0, lo:hi].astype(np.uint8), reach)[0].astype(bool)
        below = cv2.dilate(m[l1:l1 + 1, lo:hi].astype(np.uint8), reach)[0].astype(bool)
        # where the two sides come within reach, widened to reach the ink on both sides
        ok = cv2.dilate((above & below).astype(np.uint8)[None], reach)[0].astype(bool)
        c[l0:l1, lo:hi][:, ok] = True
    return conn


def cut_at_lines(labels: np.ndarray, lines, n: int) -> np.ndarray:
    """Blobs that touch a printed line with other ink touching it from the far side within
    CUT_REACH along it: perhaps one stroke that the line's removal cut in two."""
    cut = np.zeros(n, bool)
    reach = np.ones((1, 2 * int(round(CUT_REACH * RES)) + 1), np.uint8)
    for axis, l0, l1, lo, hi in lines:
        lab = labels if axis == 0 else labels.T
        if l0 < 1 or l1 >= lab.shape[0]:
            continue
        a, b = lab[l0 - 1, lo:hi], lab[l1, lo:hi]
        near_a, near_b = (cv2.dilate((x > 0).astype(np.uint8)[None], reach)[0].astype(bool) for x in (a, b))
        cut[a[(a > 0) & near_b]] = True
        cut[b[(b > 0) & near_a]] = True
    return cut
