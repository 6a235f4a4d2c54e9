"""Scanned ballot pages as greyscale images: one job, turning a scan file or folder into pages.

Accepts a multi-page PDF (rasterised with pypdfium2), a multi-page TIFF, a single JPEG/PNG,
or a folder of such files (read in name order). Colour is converted to grey (ITU-R 601 luma,
as Pillow does), which keeps blue ink dark enough to read.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import cv2
import numpy as np
from PIL import Image, ImageSequence

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".tif", ".tiff"}
SCAN_SUFFIXES = IMAGE_SUFFIXES | {".pdf"}


def _grey(img: Image.Image) -> np.ndarray:
    if img.mode not in ("L", "RGB"):
        img = img.convert("RGB")
    return np.asarray(img.convert("L"), dtype=np.uint8)


def iter_pages(path: Path | str, dpi: int = 200) -> Iterator[tuple[str, int, np.ndarray]]:
    """Yield (file name, page number from 1, greyscale uint8 array) for every page under path.
    `dpi` is used only to rasterise PDFs; images are read at the resolution they were scanned."""
    path = Path(path)
    if path.is_dir():
        for p in sorted(q for q in path.iterdir() if q.suffix.lower() in SCAN_SUFFIXES):
            yield from iter_pages(p, dpi)
        return
    suffix = path.suffix.lower()
    if suffix == ".pdf":
        import pypdfium2 as pdfium  # only PDFs need it

        try:
            doc = pdfium.PdfDocument(str(path))
        except pdfium.PdfiumError as exc:
            raise ValueError(f"{path.name}: not a readable PDF ({exc})") from None
        try:
            for i in range(len(doc)):
                bitmap = doc[i].render(scale=dpi / 72, grayscale=True)
                arr = bitmap.to_numpy()
                if arr.ndim == 3:  # some pdfium builds return a 1-channel third axis
                    arr = arr[:, :, 0]
                yield path.name, i + 1, np.ascontiguousarray(arr)
        finally:
            doc.close()
    elif suffix in (".png", ".jpg", ".jpeg"):
        # OpenCV decodes these faster than Pillow (libjpeg-turbo decodes a colour JPEG's luma
        # only): reading the file dominates a page's time.
        grey = cv2.imdecode(np.fromfile(str(path), np.uint8), cv2.IMREAD_GRAYSCALE)
        if grey is None:
            raise ValueError(f"{path.name}: not a readable image")
        yield path.name, 1, grey
    elif suffix in IMAGE_SUFFIXES:
        try:
            img = Image.open(path)
        except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
            raise ValueError(f"{path.name}: not a readable image ({exc})") from None
        with img:
            for i, frame in enumerate(ImageSequence.Iterator(img)):
                try:
                    grey = _grey(frame)
                except (OSError, SyntaxError, Image.DecompressionBombError) as exc:
                    raise ValueError(f"{path.name} page {i + 1}: not a readable image ({exc})") from None
                yield path.name, i + 1, grey
    else:
        raise ValueError(f"{path}: not a PDF, TIFF, JPEG or PNG scan")
