"""The 宣布稿 on its own, in large type, for the presiding officer to read from (A4, one
sentence a paragraph). Made from the signed record's content like the record PDF, with the
same line breaking: never inside a number and its unit, never before closing punctuation."""
from __future__ import annotations

from fpdf.enums import WrapMode

from ballot_service.render.announcement import sentences
from ballot_service.render.fonts import FONT, a4_pdf
from ballot_service.render.linebreak import unbroken_lines
from ballot_service.vocab import record_name

MARGIN = 20.0
READ_SIZE = 22  # pt: read at arm's length from a lectern
LINE_H = 12.0  # mm


def render(content: dict) -> bytes:
    """A4 PDF (bytes) of the 宣布稿 of a signed record (`content` from records.record_body)."""
    item = content["item"]
    pdf = a4_pdf(f"宣布稿 {item['title']}", margin=MARGIN, top=18, bottom=18)
    width = pdf.w - 2 * MARGIN
    pdf.add_page()
    pdf.set_font(FONT, size=13)
    pdf.cell(width, 8, f"{content['body']['name']}{content['session']['name']}", align="C",
             new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, size=16)
    pdf.cell(width, 9, f"宣布稿 · {record_name(item['kind'])}", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, size=18)
    pdf.multi_cell(width, 10, item["title"], align="C", wrapmode=WrapMode.CHAR, new_x="LMARGIN", new_y="NEXT")
    pdf.ln(6)
    pdf.set_font(FONT, size=READ_SIZE)
    for sentence in sentences(content):
        for line in unbroken_lines(sentence, width, pdf.get_string_width):
            pdf.cell(width, LINE_H, line, new_x="LMARGIN", new_y="NEXT")
        pdf.ln(4)
    return bytes(pdf.output())
