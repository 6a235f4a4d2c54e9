"""Printable A4 PDF of a signed resolution record (表决结果记录).

`render(content, signature, verify_url)` draws what `records.record_body` produced (the
signed content dict) and its signature: the item, the rule applied in words, attendance
and ballot counts, the candidates' results per round, the selection in rank order, the
times in Beijing time, the audit head and key fingerprint it was signed at, the
announcement text (宣布稿) and a QR code for verification (扫码核验).

Nothing is recounted here: every figure comes from `content`. The Chinese font is found
by `fonts.find_font` (Debian: `apt-get install fonts-wqy-zenhei`).
"""
from __future__ import annotations

import logging

from fpdf import FPDF
from fpdf.enums import WrapMode
from fpdf.fonts import FontFace

from ballot_service.render import election_pdf, evaluation_text, qr
from ballot_service.render.announcement import announcement, channel_split
from ballot_service.render.fonts import FONT, a4_pdf
from ballot_service.render.linebreak import unbroken_lines
from ballot_service.render.record_text import beijing_time, pass_text, quorum_text, titles_of
from ballot_service.vocab import Channel, ItemKind, ItemStatus, label, record_name

_MONO = "Courier"
MARGIN = 18.0
QR_SIZE = 34.0

STATUS_TEXT = {
    "decided": "表决有效，结果如下",
    "void": "本次表决无效（收回票数多于发出票数），应当重新表决",
    "quorum_not_met": "不符合法定人数，未进行表决",
    "runoff_pending": "得票相等跨越应选名额，需再次投票",
}
GREY = (235, 235, 235)
ALERT = (253, 226, 226)


class _RecordPDF(FPDF):
    footer_text = ""

    def footer(self) -> None:
        self.set_y(-12)
        self.set_font(FONT, size=8)
        self.set_text_color(90)
        self.cell(0, 5, f"{self.footer_text}    第 {self.page_no()} 页 共 {{nb}} 页", align="C")
        self.set_text_color(0)


class _Writer:
    def __init__(self, content: dict, signature: str, verify_url: str | None):
        self.c, self.sig, self.url = content, signature, verify_url
        self.r = content["result"]
        self.titles = titles_of(content)
        name = record_name(content["item"]["kind"])
        pdf = a4_pdf(f"{name} {content['item']['title']}", margin=MARGIN, top=14, bottom=16, pdf_class=_RecordPDF)
        pdf.footer_text = f"{content['body']['name']}{content['session']['name']} · {name}"
        pdf.alias_nb_pages()
        self.pdf = pdf
        self.w = pdf.w - 2 * MARGIN

    # helpers
    def heading(self, text: str) -> None:
        pdf = self.pdf
        if pdf.will_page_break(20):
            pdf.add_page()
        pdf.ln(2.5)
        pdf.set_font(FONT, size=11.5)
        pdf.set_fill_color(*GREY)
        pdf.cell(self.w, 7, text, fill=True, new_x="LMARGIN", new_y="NEXT")
        pdf.set_fill_color(255)  # fpdf2 fills multi-line table cells with the current fill colour
        pdf.ln(1.5)

    def table(self, rows: list[list[str]], widths: tuple[float, ...], aligns: tuple[str, ...],
              size: float = 9.5, headings: bool = True, head_cols: int = 0) -> None:
        pdf = self.pdf
        pdf.set_font(FONT, size=size)
        style = FontFace(emphasis="", fill_color=GREY)
        with pdf.table(col_widths=widths, width=self.w, text_align=aligns, line_height=5.2,
                       first_row_as_headings=headings, headings_style=style, wrapmode=WrapMode.CHAR,
                       padding=(1, 1.2), align="LEFT") as t:
            for row in rows:
                tr = t.row()
                for i, cell in enumerate(row):
                    tr.cell(cell, style=style if i < head_cols else None)
        pdf.ln(1.5)

    def para(self, text: str, size: float = 9.5, h: float = 5.2) -> None:
        """A paragraph read aloud: lines never break inside a number and its unit (33张, 98.15%)
        nor before closing punctuation (Chinese typesetting's 避头点)."""
        self.pdf.set_font(FONT, size=size)
        for line in unbroken_lines(text, self.w, self.pdf.get_string_width):
            self.pdf.cell(self.w, h, line, new_x="LMARGIN", new_y="NEXT")

    # sections
    def build(self) -> bytes:
        c, pdf = self.c, self.pdf
        item = c["item"]
        pdf.add_page()
        pdf.set_font(FONT, size=12)
        pdf.cell(self.w, 7, f"{c['body']['name']}{c['session']['name']}", align="C",
                 new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FONT, size=18)
        pdf.cell(self.w, 10, record_name(item["kind"]), align="C", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FONT, size=13.5)
        pdf.multi_cell(self.w, 7, item["title"], align="C", wrapmode=WrapMode.CHAR,
                       new_x="LMARGIN", new_y="NEXT")
        pdf.ln(1)
        self.banner()
        self.info()
        self.counts()
        self.results()
        self.conclusion()
        self.heading("宣布稿")
        self.para(announcement(c), size=10, h=5.8)
        self.signature_block()
        logging.getLogger("fontTools").setLevel(logging.ERROR)
        return bytes(pdf.output())

    def banner(self) -> None:
        r, pdf = self.r, self.pdf
        text = STATUS_TEXT.get(r["status"], r["status"])
        if r["status"] == ItemStatus.RUNOFF_PENDING:
            text += "：" + "、".join(self.titles.get(k, k) for k in r.get("tied", []))
        alert = r["status"] != ItemStatus.DECIDED
        pdf.set_font(FONT, size=12 if alert else 10.5)
        pdf.set_fill_color(*(ALERT if alert else GREY))
        pdf.set_draw_color(180, 40, 40) if alert else pdf.set_draw_color(0)
        pdf.multi_cell(self.w, 8 if alert else 6.5, text, border=1 if alert else 0, fill=True, align="C",
                       wrapmode=WrapMode.CHAR, new_x="LMARGIN", new_y="NEXT")
        pdf.set_draw_color(0)
        pdf.set_fill_color(255)

    def info(self) -> None:
        c, item = self.c, self.c["item"]
        self.heading("一、表决事项")
        way = ("无记名投票" if item.get("secret", True) else "记名投票") + "，" + label(item.get("channel") or "",
                                                                               enum=Channel)
        rows = [["表决机关", c["body"]["name"], "会议", c["session"]["name"]],
                ["表决类型", label(item["kind"], enum=ItemKind), "表决方式", way]]
        if item["kind"] == ItemKind.LIVELIHOOD:
            rows.append(["候选项目", f"{len(item.get('candidates', []))}项", "应选项目", f"{item.get('places')}项"])
        elif item["kind"] == ItemKind.ELECTION:
            rows += election_pdf.info_rows(item)
        elif item["kind"] == ItemKind.APPOINTMENT:
            rows.append(["人选", f"{len(item.get('candidates', []))}名", "表决办法", "逐人分别计票"])
        elif item["kind"] == ItemKind.EVALUATION:
            rows.append(["测评对象", f"{len(item.get('candidates', []))}项", "测评选项",
                         "、".join(o["title"] for o in evaluation_text.options_of(item))])
        split = channel_split(c)
        if split:
            rows.append(["发出收回", split.removeprefix("其中"), "", ""])
        rows.append(["法定人数", quorum_text(c), "", ""])
        rows.append(["通过标准", pass_text(c), "", ""])
        pdf = self.pdf
        pdf.set_font(FONT, size=9.5)
        style = FontFace(emphasis="", fill_color=GREY)
        with pdf.table(col_widths=(22, 65, 22, 65), width=self.w, text_align=("CENTER", "LEFT", "CENTER", "LEFT"),
                       line_height=5.2, first_row_as_headings=False, wrapmode=WrapMode.CHAR,
                       padding=(1, 1.2), align="LEFT") as t:
            for row in rows:
                tr = t.row()
                tr.cell(row[0], style=style)
                if row[2]:
                    tr.cell(row[1])
                    tr.cell(row[2], style=style)
                    tr.cell(row[3])
                else:
                    tr.cell(row[1], colspan=3)
        pdf.ln(1.5)

    def _count_rows(self, res: dict) -> list[list[str]]:
        quorum = "符合" if res.get("quorum_met") else "不符合"
        return [["应到", "实到", "是否符合法定人数", "发出", "收回", "有效", "无效", "拒收", "未按"],
                [str(res.get("members", "—")), str(res.get("present", "—")), quorum,
                 *(str(res.get(k, 0)) for k in ("issued", "returned", "valid", "invalid", "refused", "not_voted"))]]

    def _round_notes(self, rnd: dict) -> None:
        """计票人 and 监票人 of a round counted by hand (tally sheet), as the record names them; and
        a tablet vote opened although some present members had no ready tablet, with the reason."""
        tellers = rnd.get("tellers")
        if tellers:
            self.para(f"计票单录入与确认：计票人 {tellers.get('counter', '—')}　监票人 {tellers.get('scrutineer', '—')}",
                      size=9)
        over = rnd.get("tablets_override")
        if over:
            self.para(f"开始表决时实到 {over.get('present')} 人，其中 {over.get('ready')} 人的表决器已设置并在线；"
                      f"会务工作人员仍决定开始表决，原因：{over.get('reason')}", size=9)

    def counts(self) -> None:
        self.heading("二、出席与计票" + ("（第1轮）" if len(self.c.get("rounds") or []) > 1 else ""))
        self.table(self._count_rows(self.r), (18, 18, 30, 18, 18, 18, 18, 18, 18), ("CENTER",) * 9)
        self._round_notes((self.c.get("rounds") or [{}])[0])
        if self.r.get("rescanned"):  # 重复扫描: shown apart, in neither 收回 nor 拒收
            self.para(f"另有重复扫描{self.r['rescanned']}张（同一张选票再次读入、划票相同），未重复计入收回，也不计入拒收。",
                      size=9)
        self.pdf.set_font(FONT, size=8)
        self.pdf.set_text_color(90)
        self.para("应到：在任人数；实到：表决开始时签到人数；发出/收回：发出和收回的票数，有效、无效为收回票中的"
                  "分类；拒收：伪造、重复、非本事项或逾期提交而被拒收的票；未按：实到而未投票的人数。", size=8, h=4.2)
        self.pdf.set_text_color(0)

    def _candidate_rows(self, cands: list[dict], status: str) -> tuple[list[list[str]], tuple, tuple]:
        kind = self.c["item"]["kind"]
        if kind == ItemKind.ELECTION:
            return election_pdf.candidate_rows(election_pdf.round_of(self.c, cands), self.titles)
        selected = list(self.r.get("selected") or [])
        tied = set(self.r.get("tied") or [])
        counted = status not in (ItemStatus.QUORUM_NOT_MET,)
        decided = status in (ItemStatus.DECIDED, ItemStatus.RUNOFF_PENDING)
        name = {"livelihood_projects": "项目名称", "appointment": "人选", "resolution": "表决事项"}.get(kind, "名称")
        if kind == ItemKind.LIVELIHOOD:
            rows = [["序号", name, "赞成", "反对", "弃权", "无效", "结果", "是否入选", "名次"]]
            widths, aligns = (10, 61, 13, 13, 13, 13, 16, 20, 15), ("CENTER", "LEFT") + ("CENTER",) * 7
        else:
            rows = [["序号", name, "赞成", "反对", "弃权", "无效", "结果"]]
            widths, aligns = (10, 86, 15, 15, 15, 15, 18), ("CENTER", "LEFT") + ("CENTER",) * 5
        for i, cand in enumerate(cands, 1):
            k = cand["key"]
            nums = [str(cand.get(f, 0)) if counted else "—" for f in ("for", "against", "abstain", "void")]
            if not decided:
                outcome = "未表决" if status == ItemStatus.QUORUM_NOT_MET else "无效"
            else:
                outcome = "通过" if cand.get("passed") else "未通过"
            row = [str(i), self.titles.get(k, k), *nums, outcome]
            if kind == ItemKind.LIVELIHOOD:
                if not decided:
                    row += ["—", "—"]
                elif k in selected:
                    row += ["入选", str(selected.index(k) + 1)]
                elif k in tied:
                    row += ["待再次投票", "—"]
                else:
                    row += ["未入选", "—"]
            rows.append(row)
        return rows, widths, aligns

    def results(self) -> None:
        rounds = self.c.get("rounds") or []
        status = self.r["status"]
        many = len(rounds) > 1
        self.heading(("三、选举结果" if self.c["item"]["kind"] == ItemKind.ELECTION else "三、表决结果")
                     + ("（第1轮）" if many else ""))
        rows, widths, aligns = evaluation_text.table_rows(self.c, self.r["candidates"], status) \
            if self.c["item"]["kind"] == ItemKind.EVALUATION else self._candidate_rows(self.r["candidates"], status)
        self.table(rows, widths, aligns)
        if self.c["item"]["kind"] == ItemKind.LIVELIHOOD and many:
            self.para("注：“是否入选”“名次”为包括再次投票在内的最终结果。", size=8, h=4.2)
        for rnd in rounds[1:]:
            res = rnd.get("result") or {}
            n = rnd.get("number")
            places = rnd.get("places")
            extra = f"，应选{places}项" if places else ""
            self.heading(election_pdf.round_heading(rnd) if self.c["item"]["kind"] == ItemKind.ELECTION
                         else f"第{n}轮 再次投票{extra}")
            self.para("候选：" + "、".join(self.titles.get(k, k) for k in rnd.get("candidates", [])), size=9)
            self.para(f"开始 {beijing_time(rnd.get('opened_at'))}    结束 {beijing_time(rnd.get('closed_at'))}",
                      size=9)
            self.pdf.ln(1)
            self.table(self._count_rows(res), (18, 18, 30, 18, 18, 18, 18, 18, 18), ("CENTER",) * 9)
            self._round_notes(rnd)
            rows, widths, aligns = self._candidate_rows(res.get("candidates", []), res.get("status", status))
            self.table(rows, widths, aligns)

    def conclusion(self) -> None:
        c, r = self.c, self.r
        kind, status = c["item"]["kind"], r["status"]
        self.heading("四、结论")
        if status in (ItemStatus.VOID, ItemStatus.QUORUM_NOT_MET):
            self.para(("本次表决无效。收回票数多于发出票数，应当重新表决。" if status == ItemStatus.VOID
                       else "不符合法定人数，未进行表决。"), size=10.5, h=6)
            return
        if kind == ItemKind.ELECTION:
            for line in election_pdf.conclusion(r, c["item"], self.titles):
                self.para(line, size=10.5, h=6)
        elif kind == ItemKind.LIVELIHOOD:
            sel = r.get("selected") or []
            if sel:
                self.para("入选项目（按名次）：", size=10)
                for i, k in enumerate(sel, 1):
                    self.para(f"    {i}. {self.titles.get(k, k)}", size=10, h=5.6)
            if status == ItemStatus.RUNOFF_PENDING:
                self.para("得票相等、需再次投票的项目：" + "、".join(self.titles.get(k, k) for k in r.get("tied", [])),
                          size=10)
            shortfall = (c["item"].get("places") or 0) - len(sel)
            if status == ItemStatus.DECIDED and shortfall > 0:
                self.para(f"通过项目少于应选{c['item']['places']}项，差{shortfall}项。", size=10)
        elif kind == ItemKind.EVALUATION:
            for line in evaluation_text.conclusion_lines(c):
                self.para(line, size=10, h=5.8)
        elif kind == ItemKind.APPOINTMENT:
            for i, cand in enumerate(r["candidates"], 1):
                self.para(f"{i}. {self.titles.get(cand['key'], cand['key'])}："
                          f"{'通过' if cand.get('passed') else '未通过'}", size=10, h=5.8)
        else:
            self.para(f"《{c['item']['title']}》{'通过' if r.get('passed') else '未通过'}。", size=10.5, h=6)

    def signature_block(self) -> None:
        c, pdf = self.c, self.pdf
        rounds = c.get("rounds") or []
        need = 12 + 6 * max(1, len(rounds)) + QR_SIZE + 18
        if pdf.will_page_break(need):
            pdf.add_page()
        self.heading("五、时间、审计与签名")
        rows = [["轮次", "开始表决", "结束表决"]]
        for rnd in rounds:
            stage = (rnd.get("result") or {}).get("stage")
            label = f"第{rnd.get('number')}轮" + (election_pdf.stage_note(stage) if stage else
                                                  "（再次投票）" if (rnd.get("number") or 1) > 1 else "")
            rows.append([label, beijing_time(rnd.get("opened_at")), beijing_time(rnd.get("closed_at"))])
        if len(rows) == 1:
            rows.append(["—", "—", "—"])
        self.table(rows, (34, 70, 70), ("CENTER", "CENTER", "CENTER"), size=9)
        top = pdf.get_y() + 1
        text_w = self.w - QR_SIZE - 8
        audit = c.get("audit") or {}
        pdf.set_xy(MARGIN, top)
        pdf.set_font(FONT, size=9.5)
        for label, value in (("签署时审计链序号", str(audit.get("seq", "—"))),
                             ("签名密钥指纹", c.get("key_fingerprint") or "—"),
                             ("记录格式", c.get("format", ""))):
            pdf.cell(34, 5.5, label + "：")
            pdf.cell(text_w - 34, 5.5, value, new_x="LMARGIN", new_y="NEXT")
        pdf.cell(text_w, 5.5, "签署时审计链哈希：", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(_MONO, size=8)
        pdf.multi_cell(text_w, 4, str(audit.get("head", "—")), wrapmode=WrapMode.CHAR,
                       new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(FONT, size=9.5)
        pdf.cell(text_w, 5.5, "签名（Ed25519，base64url，对记录内容的规范JSON签署）：", new_x="LMARGIN", new_y="NEXT")
        pdf.set_font(_MONO, size=8)
        pdf.multi_cell(text_w, 4, self.sig, wrapmode=WrapMode.CHAR, new_x="LMARGIN", new_y="NEXT")
        bottom = pdf.get_y()
        # QR code on the right
        qx = MARGIN + self.w - QR_SIZE
        pdf._out(qr.pdf_ops(pdf, qr.qr_matrix(self.url or self.sig, border=2), qx, top, QR_SIZE))
        pdf.set_xy(qx - 4, top + QR_SIZE + 1)
        pdf.set_font(FONT, size=10)
        pdf.cell(QR_SIZE + 8, 5, "扫码核验", align="C", new_x="LEFT", new_y="NEXT")
        qr_bottom = pdf.get_y()
        if self.url:
            pdf.set_x(qx - 4)
            pdf.set_font(_MONO, size=6.5)
            pdf.multi_cell(QR_SIZE + 8, 3, self.url, align="C", wrapmode=WrapMode.CHAR, new_x="LMARGIN",
                           new_y="NEXT")
            qr_bottom = pdf.get_y()
        pdf.set_xy(MARGIN, max(bottom, qr_bottom) + 2)


def render(content: dict, signature: str, verify_url: str | None = None) -> bytes:
    """A4 PDF (bytes) of a signed record: `content` as made by records.record_body."""
    return _Writer(content, signature, verify_url).build()
