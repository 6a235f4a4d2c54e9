"""Scans of marked paper ballots for a rehearsal (预演 `--paper-via-scanner`): the ballots
printed by paper.py, rasterised in grey as a scanner would, with a pen's ○ drawn in the boxes
a scenario marks. Nothing here reads marks: the pages go through the counting station's
upload and mark reader like a real scanner's, so a rehearsal exercises that path end to end.
"""
from __future__ import annotations

import io
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from ballot_service.formats import ballot_layout as bl
from ballot_service.render.paper import BallotLayout, write_ballot_pdfs

INK = 25          # a black pen on white paper
PEN_MM = 0.5      # the pen's stroke width


@dataclass
class Sheet:
    """One ballot to scan: its QR text, the boxes the deputy marked ((candidate key, mark)),
    and whether a scribble beside the table sends it to the tellers (what the reader cannot
    read, such as a 另选 name, the tellers transcribe)."""
    qr_text: str
    boxes: list[tuple[str, str]] = field(default_factory=list)
    scribble: bool = False


def scan_file(layout: BallotLayout, keys: tuple[str, ...], sheets: list[Sheet], dpi: int = 200) -> bytes:
    """A multi-page TIFF (the scanner's output) of `sheets`, printed with `layout` whose rows
    are the candidate `keys` in printed order."""
    geom = bl.page_geometry(keys, marks=tuple(m for m, _ in layout.marks))
    pages = []
    for sheet, page in zip(sheets, _rasterise(layout, [s.qr_text for s in sheets], dpi)):
        ppm = dpi / 25.4
        for box in sheet.boxes:
            _circle(page, geom.boxes[box], ppm)
        if sheet.scribble:
            _scribble(page, geom, ppm)
        pages.append(page)
    buf = io.BytesIO()
    frames = [Image.fromarray(p) for p in pages]
    frames[0].save(buf, format="TIFF", save_all=True, append_images=frames[1:], compression="tiff_deflate")
    return buf.getvalue()


def _rasterise(layout: BallotLayout, texts: list[str], dpi: int) -> list[np.ndarray]:
    import pypdfium2 as pdfium  # only this and the scanner's PDF input need it

    with tempfile.TemporaryDirectory() as d:
        pages = []
        for path in write_ballot_pdfs(layout, [(t, "") for t in texts], Path(d), "rehearsal", processes=1):
            doc = pdfium.PdfDocument(str(path))
            for i in range(len(doc)):
                a = doc[i].render(scale=dpi / 72, grayscale=True).to_numpy()
                pages.append(np.ascontiguousarray(a[:, :, 0] if a.ndim == 3 else a))
            doc.close()
    return pages


def _pt(x_mm: float, y_mm: float, ppm: float) -> tuple[int, int]:
    return int(round(x_mm * ppm * 16)), int(round(y_mm * ppm * 16))  # 4 fractional bits for cv2


def _circle(img: np.ndarray, rect: bl.Rect, ppm: float) -> None:
    """The asked-for ○, well inside the box."""
    cx, cy = rect.center
    axes = (min(rect.w * 0.3, rect.h * 0.5), rect.h * 0.3)
    cv2.ellipse(img, _pt(cx, cy, ppm), _pt(*axes, ppm), 0, 0, 360, INK, max(1, round(PEN_MM * ppm)),
                cv2.LINE_AA, 4)


def _scribble(img: np.ndarray, geom: bl.PageGeometry, ppm: float) -> None:
    """A short line in the right margin beside the table's first row: a mark outside the boxes."""
    x, y = bl.PAGE_W - 14.0, geom.row_y[0] + 3.0
    cv2.line(img, _pt(x, y, ppm), _pt(x + 3.0, y + 2.0, ppm), INK, max(1, round(PEN_MM * ppm)), cv2.LINE_AA, 4)
