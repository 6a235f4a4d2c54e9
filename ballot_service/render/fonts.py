"""The Chinese font every PDF embeds (ballots, records): BALLOT_FONT, a font shipped in the
package, or Debian's; a clear error naming the package to install when none is there; and
`a4_pdf`, the A4 document every PDF starts from with that font embedded."""
from __future__ import annotations

import os
from pathlib import Path

from fpdf import FPDF

from ballot_service.errors import BallotError

FONT_CANDIDATES = (
    "/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc",
    "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",
    "/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf",
    "/usr/share/fonts/truetype/arphic/uming.ttc",
)
FONT_APT_PACKAGE = "fonts-wqy-zenhei"
FONT = "zh"  # the name every PDF gives the embedded font (pdf.set_font(FONT, …))
PACKAGE_FONTS = Path(__file__).resolve().parents[1] / "fonts"  # a font shipped with the package, if any

class FontNotFound(BallotError):
    status = 500
    error_type = "FontNotFound"


def find_font() -> Path:
    """The Chinese font to embed; raises FontNotFound naming the apt package to install."""
    looked = []
    env = os.environ.get("BALLOT_FONT")
    if env:
        looked.append(env)
        if Path(env).is_file():
            return Path(env)
    if PACKAGE_FONTS.is_dir():
        for p in sorted(PACKAGE_FONTS.iterdir()):
            if p.suffix.lower() in (".ttf", ".ttc"):
                return p
        looked.append(str(PACKAGE_FONTS))
    for c in FONT_CANDIDATES:
        looked.append(c)
        if Path(c).is_file():
            return Path(c)
    raise FontNotFound(f"no Chinese font found for printing ballots (looked at {', '.join(looked)}): "
                       f"install one with `apt-get install {FONT_APT_PACKAGE}`, or set BALLOT_FONT to a "
                       f".ttf/.ttc file with Chinese glyphs", where="BALLOT_FONT",
                       zh=f"找不到印制选票所需的中文字体（已查找 {', '.join(looked)}）：请运行 "
                          f"`apt-get install {FONT_APT_PACKAGE}` 安装，或将 BALLOT_FONT 设为含中文字形的 .ttf/.ttc 文件")


def a4_pdf(title: str, *, margin: float, top: float, bottom: float | None, font_path: Path | None = None,
           pdf_class: type[FPDF] = FPDF) -> FPDF:
    """A new A4 document in mm with the Chinese font (`font_path`, else find_font()) embedded as
    FONT: `margin` left and right, `top` above, and pages that break by themselves `bottom` mm
    above the foot (None: never; a ballot is laid out to the millimetre)."""
    pdf = pdf_class(orientation="P", unit="mm", format="A4")
    pdf.set_margins(margin, top, margin)
    if bottom is None:
        pdf.set_auto_page_break(False)
    else:
        pdf.set_auto_page_break(True, margin=bottom)
    pdf.add_font(FONT, fname=str(font_path or find_font()))
    pdf.set_creator("ballot-service")
    pdf.set_title(title)
    return pdf
