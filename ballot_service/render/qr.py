"""QR codes, one way for every output: the module matrix for PDFs (ballots, records) and an
inline SVG for pages (the presiding screen)."""
from __future__ import annotations

import functools

import qrcode
import qrcode.image.svg


@functools.lru_cache(maxsize=64)
def qr_svg(url: str) -> str:
    """The URL as an inline SVG QR code (sized by CSS through its viewBox)."""
    img = qrcode.make(url, image_factory=qrcode.image.svg.SvgPathImage, border=2,
                      error_correction=qrcode.constants.ERROR_CORRECT_M)
    svg = img.to_string(encoding="unicode")
    if svg.startswith("<?xml"):
        svg = svg[svg.index("?>") + 2:]
    head, rest = svg.split(">", 1)
    for attr in ("width", "height"):
        start = head.find(f' {attr}="')
        if start >= 0:
            end = head.index('"', start + len(attr) + 3)
            head = head[:start] + head[end + 1:]
    return head + ' class="qr" role="img" aria-label="QR">' + rest


