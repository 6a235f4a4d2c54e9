"""Scans of the service's own printed ballots for the counting-station tests: the ballot texts
the admin API printed, rendered by paper.py, marked and distorted by omr_synth, written as a
multi-page TIFF or PNG files the way a scanner would."""
from __future__ import annotations

import tempfile
from pathlib import Path

import cv2
import numpy as np
import pypdfium2 as pdfium
from omr_synth import distort, draw_faint_dot, draw_mark, draw_stray
from PIL import Image

from ballot_service.formats import ballot_layout as bl
from ballot_service.render.paper import BallotLayout, write_ballot_pdfs

TITLE = "关于2025年国民经济和社会发展计划执行情况的决议草案"


def blank_pages(texts: list[str], candidates: tuple[str, ...], dpi: int = 200, kind: str = "resolution",
                places: int | None = None) -> list[np.ndarray]:
    lay = BallotLayout(body_name="测试市人民代表大会", session_name="第一次会议", item_title=TITLE, kind=kind,
                       round_number=1, places=places, candidates=tuple(f"候选{i}" for i in range(len(candidates))))
    with tempfile.TemporaryDirectory() as d:
        paths = write_ballot_pdfs(lay, [(t, "") for t in texts], Path(d), "scan", processes=1)
        pages = []
        for p in paths:
            doc = pdfium.PdfDocument(str(p))
            for i in range(len(doc)):
                a = doc[i].render(scale=dpi / 72, grayscale=True).to_numpy()
                pages.append(np.ascontiguousarray(a[:, :, 0] if a.ndim == 3 else a))
            doc.close()
    return pages


def mark(page: np.ndarray, keys: tuple[str, ...], marks: dict, rng, *, dpi: int = 200, style: str = "tick",
         stray: bool = False, faint: tuple[str, str] | None = None) -> np.ndarray:
    """Draw `marks` ({candidate: for|against|abstain}) on a blank page, a stray line or a faint
    dot in box `faint` ((candidate, mark)) if asked, then scan it."""
    img = page.copy()
    geom = bl.page_geometry(keys)
    ppm = dpi / 25.4
    for k, m in marks.items():
        draw_mark(img, geom.boxes[(k, m)], style, ppm, rng)
    if stray:
        draw_stray(img, geom, ppm, rng)
    if faint:
        draw_faint_dot(img, geom.boxes[faint], ppm, rng)
    return distort(img, rng, dpi=dpi)


def write_tiff(pages: list[np.ndarray], path: Path) -> Path:
    frames = [Image.fromarray(p) for p in pages]
    frames[0].save(path, save_all=True, append_images=frames[1:], compression="tiff_deflate")
    return path


def png_bytes(page: np.ndarray) -> bytes:
    return cv2.imencode(".png", page)[1].tobytes()
