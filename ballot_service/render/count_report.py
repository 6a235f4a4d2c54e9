"""The 计票结果报告单 (count report) as an A4 PDF: what the tellers sign when counting ends.

`render(content)` draws what `station_board.count_report` put together: the session, the
time it was made (Beijing time), per item the figures of the reconciliation (发出 / 收回 /
有效 / 无效 / 拒收 / 重复扫描, or the confirmed tally sheet's), and the tellers registered with
the session's counting stations, with a line for each to sign. Nothing is counted here.
"""
from __future__ import annotations

from fpdf.enums import WrapMode
from fpdf.fonts import FontFace

from ballot_service.render.fonts import FONT, a4_pdf
from ballot_service.render.record_text import beijing_time

MARGIN = 18.0
GREY = (235, 235, 235)
COLS = ("表决事项", "发出", "收回", "有效", "无效", "拒收", "重复扫描", "待裁定")
KEYS = ("issued", "returned", "valid", "invalid", "refused", "rescanned", "pending")
ROLES = {"counter": "计票人", "scrutineer": "监票人", "chief": "总监票人"}


def render(content: dict) -> bytes:
    pdf = a4_pdf(f"计票结果报告单 {content['session']}", margin=MARGIN, top=16, bottom=20)  # fpdf's own 2 cm
    pdf.add_page()
    w = pdf.w - 2 * MARGIN
    pdf.set_font(FONT, size=18)
    pdf.cell(w, 12, "计票结果报告单", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font(FONT, size=11)
    pdf.cell(w, 7, f"{content['body']}{content['session']}", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(w, 7, f"报告时间：{beijing_time(content['made_at'])}", align="C", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)
    pdf.set_font(FONT, size=10)
    style = FontFace(emphasis="", fill_color=GREY)
    with pdf.table(col_widths=(58, 16, 16, 16, 16, 16, 20, 16), width=w, line_height=6, headings_style=style,
                   text_align=("LEFT",) + ("RIGHT",) * 7, wrapmode=WrapMode.CHAR, padding=(1, 1.2)) as t:
        head = t.row()
        for c in COLS:
            head.cell(c)
        for it in content["items"]:
            row = t.row()
            row.cell(f"{it['title']}" + (f"（第{it['round']}轮）" if it["round"] > 1 else ""))
            for k in KEYS:
                row.cell("—" if it.get(k) is None else str(it[k]))
    pdf.ln(3)
    for it in content["items"]:
        if it.get("candidates_count"):
            pdf.set_font(FONT, size=10)
            pdf.multi_cell(w, 6, f"{it['title']}：" + "；".join(
                f"{c['title']} " + " ".join(f"{title}{n}" for title, n in c["counts"])
                for c in it["candidates_count"]), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(8)
    pdf.set_font(FONT, size=12)
    for role, names in content["tellers"].items():
        for name in names or ["　　　　"]:
            pdf.cell(w, 12, f"{ROLES.get(role, role)}：{name}　　　签名：________________________",
                     new_x="LMARGIN", new_y="NEXT")
    return bytes(pdf.output())
