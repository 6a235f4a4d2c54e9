"""Finding a scanned ballot's QR code: where it is printed, where an upside-down page has it,
then anywhere on the page (zxing-cpp). The mark reader (omr.py) starts from its corners."""
from __future__ import annotations

import numpy as np
import zxingcpp

from ballot_service.formats import ballot_layout as bl


def find_qr(grey: np.ndarray):
    """(text, 4 corners in image px: the symbol's top-left, top-right, bottom-right, bottom-left)."""
    h, w = grey.shape
    sx, sy = w / bl.PAGE_W, h / bl.PAGE_H   # the scan shows about the whole page
    q = bl.page_geometry(1).qr               # the QR square is the same for every candidate count
    pad = 25.0
    x1, y0 = int((q.right + pad) * sx), int((q.y - pad) * sy)
    regions = [(0, y0, x1, h),                         # where the QR is printed
               (w - x1, 0, w, h - y0),                 # where it is when the page is upside down
               (0, 0, w, h)]                           # anywhere
    for rx0, ry0, rx1, ry1 in regions:
        crop = np.ascontiguousarray(grey[max(0, ry0):ry1, max(0, rx0):rx1])
        for r in zxingcpp.read_barcodes(crop, formats=zxingcpp.BarcodeFormat.QRCode):
            if r.valid and r.text:
                p = r.position
                pts = [(c.x + max(0, rx0), c.y + max(0, ry0))
                       for c in (p.top_left, p.top_right, p.bottom_right, p.bottom_left)]
                return r.text, np.float32(pts)
    return None
