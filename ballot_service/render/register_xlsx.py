"""The project register and the annual results as an .xlsx workbook (openpyxl): sheet 项目库
(编号, 名称, 说明, 承办单位, 年度, 投资额, 状态, 票决, 测评) and sheet 测评结果 (each rated
project's counts, rate and grade). Made from projects.register_states' rows; no SQL here."""
from __future__ import annotations

import io

from openpyxl import Workbook
from openpyxl.styles import Font

STATE_ZH = {"reserve": "储备", "candidate": "候选", "not_selected": "未入选", "selected": "已票决入选",
            "in_delivery": "实施中", "rated": "已测评"}


def workbook(register_name: str, rows: list[dict]) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.title = "项目库"
    ws.append([f"{register_name} 民生实事项目库"])
    ws.append(["编号", "名称", "说明", "承办单位", "年度", "投资额（万元）", "状态", "票决", "测评"])
    for r in rows:
        p, sel, rat = r["project"], r["selection"], r["rating"]
        ws.append([p.code, p.name, p.description or "", p.department or "", p.year, p.investment,
                   STATE_ZH.get(r["state"], r["state"]),
                   f"{sel['session']}《{sel['item']}》第{sel['rank']}名，赞成{sel['for']}票" if sel else "",
                   f"{rat['grade_title']}，{rat['rate']}%" if rat and rat["rate"] is not None else
                   (rat["grade_title"] if rat else "")])
    results = wb.create_sheet("测评结果")
    rated = [r for r in rows if r["rating"]]
    titles = [t for t, _ in rated[0]["rating"]["counts"]] if rated else ["满意", "基本满意", "不满意"]
    results.append(["年度", "编号", "名称", "测评会议", "测评事项", *titles, "弃权", "比率（%）", "等次"])
    for r in rated:
        p, rat = r["project"], r["rating"]
        results.append([p.year, p.code, p.name, rat["session"], rat["item"], *(n for _, n in rat["counts"]),
                        rat["abstain"], rat["rate"], rat["grade_title"]])
    for sheet in (ws, results):
        for cell in sheet[2 if sheet is ws else 1]:
            cell.font = Font(bold=True)
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()
