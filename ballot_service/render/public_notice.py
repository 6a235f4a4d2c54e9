"""公告: the published results of one item in the form a 人大 publishes them — the selected
projects in rank order with their 赞成 votes, each rated subject with its counts, rate and
grade, each nominee with the outcome — as lines (for the public page) and an A4 PDF carrying
the record's key fingerprint and the QR of its verification page. Made from the signed
record's content only, so what is published is what was signed."""
from __future__ import annotations

import datetime as dt
import logging

from fpdf.enums import WrapMode

from ballot_service.render import evaluation_text, qr
from ballot_service.render.fonts import FONT, a4_pdf
from ballot_service.render.linebreak import unbroken_lines
from ballot_service.vocab import ItemKind, ItemStatus

MARGIN = 22.0
QR_SIZE = 30.0
BEIJING = dt.timezone(dt.timedelta(hours=8))


def _date(content: dict) -> str:
    closed = [r.get("closed_at") for r in content.get("rounds") or [] if r.get("closed_at")]
    if not closed:
        return ""
    t = dt.datetime.fromisoformat(closed[-1])
    t = t.replace(tzinfo=dt.timezone.utc) if t.tzinfo is None else t
    t = t.astimezone(BEIJING)
    return f"{t.year}年{t.month}月{t.day}日"


def notice(content: dict) -> dict:
    """{"title", "intro", "lines", "closing", "date"}: the 公告's words."""
    body, item, r = content["body"], content["item"], content["result"]
    titles = {c["key"]: c["title"] for c in item["candidates"]}
    kind, date = item["kind"], _date(content)
    act = "测评" if kind == ItemKind.EVALUATION else "表决"
    intro = (f"{body['name']}{content['session']['name']}{('于' + date) if date else ''}对"
             f"《{item['title']}》进行了{'无记名投票' if item.get('secret', True) else '记名投票'}{act}。"
             f"应到{r['members']}名，实到{r['present']}名。现将结果公告如下：")
    lines: list[str] = []
    if r["status"] == ItemStatus.QUORUM_NOT_MET:
        lines.append("出席人数不符合法定人数，未进行表决。")
    elif r["status"] == ItemStatus.VOID:
        lines.append("收回票数多于发出票数，本次表决无效，将重新表决。")
    elif kind == ItemKind.LIVELIHOOD:
        by_for = {c["key"]: c["for"] for c in r["candidates"]}
        lines.append(f"票决产生民生实事项目{len(r['selected'])}项（按得票多少排序）：")
        lines += [f"{i}. {titles[k]}（赞成{by_for[k]}票）" for i, k in enumerate(r["selected"], 1)]
    elif kind == ItemKind.EVALUATION:
        descs = {c["key"]: c.get("description") for c in item["candidates"]}
        rate = evaluation_text.rate_name(item)
        for i, c in enumerate(r["candidates"], 1):
            line = f"{i}. {titles[c['key']]}：{evaluation_text.subject_counts(item, c)}，" \
                   f"{rate}{c['rate'] + '%' if c.get('rate') is not None else '无'}，" \
                   f"测评等次为{evaluation_text.option_title(item, c.get('grade'))}。"
            lines.append(line + (f"（{descs[c['key']]}）" if descs.get(c["key"]) else ""))
    elif kind == ItemKind.APPOINTMENT:
        lines += [f"{i}. {titles[c['key']]}：赞成{c['for']}票，反对{c['against']}票，弃权{c['abstain']}票，"
                  f"{'通过' if c['passed'] else '未通过'}。" for i, c in enumerate(r["candidates"], 1)]
    else:
        c = r["candidates"][0]
        lines.append(f"赞成{c['for']}票，反对{c['against']}票，弃权{c['abstain']}票，"
                     f"{'通过' if r.get('passed') else '未通过'}。")
    return {"title": f"{body['name']}公告", "intro": intro, "lines": lines,
            "closing": "特此公告。", "issuer": body["name"], "date": date}


def render(content: dict, verify_url: str) -> bytes:
    """The A4 PDF of the 公告, with the key fingerprint and the QR of /verify/<record id>."""
    n = notice(content)
    pdf = a4_pdf(n["title"], margin=MARGIN, top=20, bottom=18)
    pdf.add_page()
    w = pdf.w - 2 * MARGIN
    pdf.set_font(FONT, size=20)
    pdf.set_text_color(183, 28, 28)
    pdf.multi_cell(w, 11, n["title"], align="C", wrapmode=WrapMode.CHAR, new_x="LMARGIN", new_y="NEXT")
    pdf.set_draw_color(183, 28, 28)
    pdf.set_line_width(0.6)
    pdf.line(MARGIN, pdf.get_y() + 2, MARGIN + w, pdf.get_y() + 2)
    pdf.set_text_color(0)
    pdf.ln(7)

    def para(text: str, size: float = 12, h: float = 7.2, indent: bool = True) -> None:
        pdf.set_font(FONT, size=size)
        for line in unbroken_lines(("　　" if indent else "") + text, w, pdf.get_string_width):
            pdf.cell(w, h, line, new_x="LMARGIN", new_y="NEXT")

    para(n["intro"])
    pdf.ln(1)
    for line in n["lines"]:
        para(line)
    para(n["closing"])
    pdf.ln(8)
    pdf.set_font(FONT, size=12)
    pdf.cell(w, 7, n["issuer"], align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.cell(w, 7, n["date"], align="R", new_x="LMARGIN", new_y="NEXT")
    if pdf.will_page_break(QR_SIZE + 14):
        pdf.add_page()
    top = pdf.get_y() + 8
    pdf.set_draw_color(180)
    pdf.set_line_width(0.2)
    pdf.line(MARGIN, top - 3, MARGIN + w, top - 3)
    pdf.set_xy(MARGIN, top)
    pdf.set_font(FONT, size=9)
    text_w = w - QR_SIZE - 6
    pdf.multi_cell(text_w, 5, "本公告依据经本机构签名的表决结果记录生成。扫描右侧二维码或访问下列网址，可核验记录的签名与内容。",
                   wrapmode=WrapMode.CHAR, new_x="LMARGIN", new_y="NEXT")
    pdf.set_x(MARGIN)
    pdf.multi_cell(text_w, 5, f"签名密钥指纹：{content.get('key_fingerprint', '—')}", wrapmode=WrapMode.CHAR,
                   new_x="LMARGIN", new_y="NEXT")
    pdf.set_x(MARGIN)
    pdf.set_font("Courier", size=7.5)
    pdf.multi_cell(text_w, 4, verify_url, wrapmode=WrapMode.CHAR, new_x="LMARGIN", new_y="NEXT")
    pdf._out(qr.pdf_ops(pdf, qr.qr_matrix(verify_url, border=2), MARGIN + w - QR_SIZE, top, QR_SIZE))
    logging.getLogger("fontTools").setLevel(logging.ERROR)
    return bytes(pdf.output())
