"""Ink on a scanned page as the mark reader sees it: a layout rectangle resampled to RES px/mm
through the page's homography, as darkness (0 paper .. 1 black) against this page's own white,
and the thresholds that tell ink, a deliberate stroke and scanner noise apart. Used for the box
columns (omr.py), the 另选 lines and the blank paper around the table, and the header row
(header.py); pure numpy/OpenCV.
"""
from __future__ import annotations

import cv2
import numpy as np

from ballot_service.formats import ballot_layout as bl
from ballot_service.scan.lines import RES

WEAK, STRONG = 0.15, 0.30  # darkness (0 paper .. 1 black) counted as any ink / as a deliberate stroke
MIN_BLOB = 0.12           # mm²: smaller specks are scanner noise, not a mark
EMPTY_MAX = 0.2           # mm² of any ink: at most this and a box (or blank paper) is empty
LINE_INSET = 1.0          # mm kept off a cell's printed lines (registration and blur)


def darkness(grey: np.ndarray, H: np.ndarray, r: bl.Rect) -> np.ndarray:
    """Rectangle `r` (layout mm) of the page resampled at RES px/mm, lightly blurred (scanner and
    JPEG noise), as darkness against the paper's white there (its 75th percentile)."""
    M = np.array([[1 / RES, 0, r.x], [0, 1 / RES, r.y], [0, 0, 1]])   # area px -> layout mm
    size = (int(round(r.w * RES)), int(round(r.h * RES)))
    roi = cv2.warpPerspective(grey, H @ M, size, flags=cv2.INTER_LINEAR | cv2.WARP_INVERSE_MAP,
                              borderMode=cv2.BORDER_REPLICATE)
    roi = cv2.blur(roi, (3, 3)).astype(np.float32)
    white = max(float(np.percentile(roi, 75)), 1.0)
    return np.clip((white - roi) / white, 0, 1)


def specks(weak: np.ndarray):
    """The blobs of ink no smaller than a mark's stroke: (areas in mm², their OpenCV stats)."""
    _, _, stats, _ = cv2.connectedComponentsWithStats(weak.astype(np.uint8), connectivity=8)
    stats = stats[1:]
    areas = stats[:, cv2.CC_STAT_AREA] / RES ** 2
    keep = areas >= MIN_BLOB
    return areas[keep], stats[keep]


def inked(grey: np.ndarray, H: np.ndarray, blank: bl.Rect) -> bool:
    """Ink on paper printed blank (its printed lines kept out): more than an empty box may
    hold, in specks no smaller than a mark's stroke."""
    areas, _ = specks(darkness(grey, H, blank.inset(LINE_INSET)) >= WEAK)
    return float(areas.sum()) > EMPTY_MAX
