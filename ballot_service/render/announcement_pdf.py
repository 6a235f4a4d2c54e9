"""The 宣布稿 on its own, in large type, for the presiding officer to read from (A4, one
sentence a paragraph). Made from the signed record's content like the record PDF, with the
same line breaking: never inside a number and its unit, never before closing punctuation."""
from __future__ import annotations

from fpdf import FPDF
from fpdf.enums import WrapMode

from ballot_service.render.announcement import sentences
from ballot_service.render.fonts import find_font
from ballot_service.render.linebreak import unbroken_lines
from ballot_service.vocab import record_name

_FONT = "zh"
MARGIN = 20.0
READ_SIZE = 22  # pt: read at arm's length from a lectern
LINE_H = 12.0  # mm


def render(content: dict) -> bytes:
    """A4 PDF (bytes) of the 宣布稿 of a signed record (`content` from records.record_body)."""
    item = content["item"]
    pdf = FPDF(orientation="P", unit="mm", format="A4")
    pdf.set_margins(MARGIN, 18, MARGIN)
    pdf.set_auto_page_break(True, margin=18)
    pdf.add_font(_FONT, fname=str(find_font()))
    pdf.set_creator("ballot-service")
    pdf.set_title(f"宣布稿 {item['title']}")
    width = pdf.w - 2 * MARGIN
    pdf.add_page()
    pdf.set_font(_FONT, size=13)
    pdf.cell(width, 8, f"{content['body']['name']}{content['session']['name']}", align="C",
             new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(_FONT, size=16)
    pdf.cell(width, 9, f"宣布稿 · {record_name(item['kind'])}", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(_FONT, size=18)
    pdf.multi_cell(width, 10, item["title"], align="C", wrapmode=WrapMode.CHAR, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.set_font(_FONT, size=READ_SIZE)
    for sentence in sentences(content):
        for line in unbroken_lines(sentence, width, pdf.get_string_width):
            pdf.cell(width, LINE_H, line, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
    return bytes(pdf.output())
