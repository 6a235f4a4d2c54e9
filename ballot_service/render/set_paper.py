"""Print-ready A4 PDFs of a ballot set's sheets (选举票组): the set's elections on one page, in
the set's order, each a section with its title, 应选 n 名, its candidates and 另选 lines, under
one QR code that carries every section's own signed ballot (formats/set_sheet.py). A set too
long for one page is printed as several sheets of whole sections, each with its own QR code
("第 1 张 共 2 张"): the pages of one set follow each other in the file.

Geometry from `set_sheet.sheet_geometry`, the one the mark reader uses; tables, fiducials and
fonts as paper.py draws a single ballot.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ballot_service.formats import set_sheet
from ballot_service.render.fonts import FONT, a4_pdf
from ballot_service.render.paper import (
    MARGIN,
    TOP,
    BallotLayout,
    draw_page_marks,
    draw_qr_block,
    draw_table,
    fit,
    fit_rows,
    save_pdf,
)


@dataclass(frozen=True)
class SetSheetLayout:
    """Everything printed on every sheet of a set's batch but the QR codes: the pages, each a
    tuple of the sections (a BallotLayout each, BallotLayout.from_item) printed on it."""

    body_name: str
    sitting_name: str
    set_name: str
    pages: tuple[tuple[BallotLayout, ...], ...]
    key_fingerprint: str | None = None

    def renderer(self, font_path: Path) -> "_SheetRenderer":
        return _SheetRenderer(self, font_path)


def section_label(lay: BallotLayout) -> str:
    """A section's title line: the election, and its round when it is not the first."""
    return lay.item_title + (f"（第{lay.round_number}轮 · 再次投票）" if lay.round_number > 1 else "")


def places_line(lay: BallotLayout) -> str:
    """What the voter may do in this section: 应选 n 名, and what makes it invalid."""
    n = lay.places or 0
    write = "，另选他人的在另选栏写上姓名" if lay.write_in_lines else ""
    return f"应选 {n} 名{write}；赞成{'与另选合计' if lay.write_in_lines else '的人数'}多于 {n} 名的，本项选举无效。"


def sheet_geometry(page: tuple[BallotLayout, ...]):
    """The geometry of one page of sections (only counts matter: rows keyed "1".."n")."""
    return set_sheet.sheet_geometry([(tuple(str(i) for i in range(1, len(lay.candidates) + 1)),
                                      [m for m, _ in lay.marks], lay.write_in_lines) for lay in page])


class _SheetRenderer:
    def __init__(self, layout: SetSheetLayout, font_path: Path):
        self.layout = layout
        pdf = a4_pdf(f"{layout.body_name}{layout.sitting_name} {layout.set_name}", margin=MARGIN, top=TOP,
                     bottom=None, font_path=font_path)
        self.pdf, self.width = pdf, pdf.w - 2 * MARGIN
        self.geoms = [sheet_geometry(page) for page in layout.pages]
        self.rows = [[fit_rows(pdf, g, lay) for g, lay in zip(gs, page)] for gs, page in zip(self.geoms, layout.pages)]
        self._static: dict[int, bytes] = {}

    def page(self, qr_text: str, page_index: str) -> None:
        """One sheet page: `page_index` (a string, as paper.write_ballot_pdfs passes the short
        serial) says which of the set's pages it is."""
        pdf, k = self.pdf, int(page_index)
        pdf.add_page()
        if k not in self._static:
            contents = pdf.pages[pdf.page].contents
            start = len(contents)
            self._draw_static(k)
            self._static[k] = bytes(contents[start:]).rstrip(b"\n")
        else:
            pdf._out(self._static[k])
        self._draw_variable(qr_text, k)

    def _draw_static(self, k: int) -> None:
        pdf, lay = self.pdf, self.layout
        pdf.set_xy(MARGIN, TOP)
        for text, h, size, smallest in ((f"{lay.body_name}{lay.sitting_name}", 8, 14, 9),
                                        (f"选 举 票 · {lay.set_name}", 11, 18, 11)):
            text, size = fit(pdf, text, self.width, size, smallest)
            pdf.set_font(FONT, size=size)
            pdf.cell(self.width, h, text, align="C", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FONT, size=9.5)
        for line in ("1. 本票含以下各项选举，每项分别计票；在“赞成”“反对”“弃权”中任选一项划“○”，不划的视为弃权。",
                     "2. 某一项选举多选或无法辨认的，只该项无效，不影响其他各项。",
                     "3. 请用黑色或蓝色笔填写，不得在选票上作其他标记；二维码请勿折叠、污损。"):
            pdf.cell(self.width, 5, line, new_x="LMARGIN", new_y="NEXT")
        for g, section, rows in zip(self.geoms[k], lay.pages[k], self.rows[k]):
            y = g.header.y - set_sheet.SECTION_HEAD
            pdf.set_xy(MARGIN, y)
            text, size = fit(pdf, section_label(section), self.width, 13, 9)
            pdf.set_font(FONT, size=size)
            pdf.cell(self.width, 7, text, new_x="LMARGIN", new_y="NEXT")
            text, size = fit(pdf, places_line(section), self.width, 9.5, 7)
            pdf.set_font(FONT, size=size)
            pdf.cell(self.width, 5, text)
            draw_table(pdf, g, section, rows)
        g = self.geoms[k][0]
        draw_page_marks(pdf, g)

    def _draw_variable(self, qr_text: str, k: int) -> None:
        lay = self.layout
        pages = len(lay.pages)
        draw_qr_block(self.pdf, qr_text, self.geoms[k][0].qr,
                      (13, f"第 {k + 1} 张 共 {pages} 张（各张一并发出、分别投入票箱）") if pages > 1 else None,
                      "二维码含本张各项选举的选票号与签名（每项各一），各项分别计票。", lay.key_fingerprint)

    def save(self, path: Path) -> None:
        save_pdf(self.pdf, path)
