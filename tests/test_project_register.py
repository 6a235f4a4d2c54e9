"""Issue #19 item 2: a project's life in one place. The register of a congress (shared with its
standing committee) is filled from the secretariat's Excel list (refused whole, naming row and
column, at the first problem), each project's state follows the votes (储备 → 候选 → 入选 /
未入选 → 实施中 → 已测评), next year's evaluation is made from the selected projects in one
step, and the register and the annual results export as .xlsx."""
from __future__ import annotations

import io
import re

from console_support import flashes, post
from helpers_live import OPERATOR, login_client, setup_sitting, vote
from openpyxl import Workbook, load_workbook
from sqlalchemy import func, select
from terminal_support import query

from ballot_service.bundle.export import export_bundle
from ballot_service.bundle.verify import verify_bundle
from ballot_service.models import Item, Project

PROJECTS = [("2026-01", "城区老旧小区改造", "住建局", 2026, 12000), ("2026-02", "农村饮水安全巩固提升", "水利局", 2026, None),
            ("2026-03", "菜市场提升改造", "商务局", 2026, 800)]


def _xlsx(rows, header=("编号", "项目名称", "承办单位", "年度", "投资额（万元）")) -> bytes:
    wb = Workbook()
    ws = wb.active
    ws.append(list(header))
    for r in rows:
        ws.append(list(r))
    out = io.BytesIO()
    wb.save(out)
    return out.getvalue()


def _upload(console, body_id, data, name="项目清单.xlsx"):
    return post(console, f"/console/bodies/{body_id}/projects/import",
                {"file": (io.BytesIO(data), name)}, content_type="multipart/form-data")


def _states(console, body_id) -> dict[str, str]:
    page = console.get(f"/console/bodies/{body_id}/projects").get_data(as_text=True)
    return dict(re.findall(r'data-code="([^"]+)" data-state="([a-z_]+)"', page))


def _count_projects(app) -> int:
    return query(app, select(func.count()).select_from(Project))[0][0]


def test_a_projects_life_from_the_excel_list_to_its_rating(app, api, tmp_path):
    s = setup_sitting(api, members=6, open_vote=False)
    console = login_client(app, OPERATOR)
    # A bad list changes nothing and says where: row 3, the year column.
    bad = _upload(console, s.body_id, _xlsx([PROJECTS[0], ("2026-02", "农村饮水", "水利局", "明年", None)]))
    assert any("row 3" in m or "第 3 行" in m or "年度" in m for _, m in flashes(console.get(bad.headers["Location"])))
    assert _count_projects(app) == 0
    assert _upload(console, s.body_id, _xlsx(PROJECTS)).status_code == 302
    assert _count_projects(app) == 3
    assert set(_states(console, s.body_id).values()) == {"reserve"}
    # The same list again is refused whole (编号 already there).
    _upload(console, s.body_id, _xlsx(PROJECTS))
    assert _count_projects(app) == 3

    # The year's projects vote from the reserve, in one step.
    r = post(console, f"/console/bodies/{s.body_id}/projects/selection-item",
             {"sitting_id": s.sitting_id, "year": "2026", "places": "2"})
    assert r.status_code == 302 and "/console/items/" in r.headers["Location"], flashes(r)
    db = app.extensions["ballot_sessionmaker"]()
    ms = db.scalar(select(Item).where(Item.key == "ms2026"))
    ms_id = ms.id
    assert [c.key for c in ms.candidates] == ["2026-01", "2026-02", "2026-03"]
    db.close()
    assert set(_states(console, s.body_id).values()) == {"candidate"}
    api.call("POST", f"/api/admin/items/{ms_id}/open")
    for no in s.present:
        vote(api, s.creds[no], {"2026-01": "for", "2026-02": "for", "2026-03": "against"})
    api.call("POST", f"/api/admin/items/{ms_id}/close")
    api.call("POST", f"/api/admin/items/{ms_id}/tally")
    assert _states(console, s.body_id) == {"2026-01": "selected", "2026-02": "selected", "2026-03": "not_selected"}

    # Next year: a new session; 闭会 of the first puts the selected projects in delivery.
    _, s2 = api.call("POST", "/api/admin/sessions", {"body_id": s.body_id, "name": "第二次会议"})
    api.call("POST", f"/api/admin/sessions/{s.sitting_id}/close")
    assert _states(console, s.body_id)["2026-01"] == "in_delivery"
    r = post(console, f"/console/items/{ms_id}/evaluation-item", {"sitting_id": s2["id"]})
    assert r.status_code == 302, flashes(r)
    db = app.extensions["ballot_sessionmaker"]()
    cp = db.scalar(select(Item).where(Item.kind == "evaluation"))
    assert (cp.key, cp.title) == ("cp2026", "2026年度民生实事项目实施情况满意度测评")
    assert [c.key for c in cp.candidates] == ["2026-01", "2026-02"]
    assert cp.candidates[0].description.startswith("第一次会议《2026年度民生实事项目票决》票决入选，第1名")
    cp_id, sid2 = cp.id, s2["id"]
    db.close()
    # Members check in to the new session at their seats (same terminals would be the old session's).
    _, terms = api.call("POST", f"/api/admin/sessions/{sid2}/terminals", {"terminals": [
        {"name": f"席位{no}", "kind": "seat", "seat": no} for no in s.members]})
    creds = {t["seat"]: t["credential"] for t in terms["terminals"]}
    for no in s.members:
        api.call("POST", "/api/terminal/checkin", {"member": no}, credential=creds[no])
    api.call("POST", f"/api/admin/items/{cp_id}/open")
    for no in s.members:
        vote(api, creds[no], {"2026-01": "satisfied", "2026-02": "basically_satisfied"})
    api.call("POST", f"/api/admin/items/{cp_id}/close")
    api.call("POST", f"/api/admin/items/{cp_id}/tally")
    states = _states(console, s.body_id)
    assert states == {"2026-01": "rated", "2026-02": "rated", "2026-03": "not_selected"}
    page = console.get(f"/console/bodies/{s.body_id}/projects").get_data(as_text=True)
    assert "满意</strong></a> 100.00%" in page

    wb = load_workbook(io.BytesIO(console.get(f"/console/bodies/{s.body_id}/projects.xlsx").data))
    reg = [[c.value for c in row] for row in wb["项目库"].iter_rows(min_row=3)]
    assert [(r[0], r[6]) for r in reg] == [("2026-01", "已测评"), ("2026-02", "已测评"), ("2026-03", "未入选")]
    results = [[c.value for c in row] for row in wb["测评结果"].iter_rows(min_row=2)]
    assert [(r[1], r[5], r[6], r[7], r[9], r[10]) for r in results] == [
        ("2026-01", 6, 0, 0, "100.00", "满意"), ("2026-02", 0, 6, 0, "100.00", "基本满意")]
    # The register's imports are in the audit chain, and the auditor's bundle still verifies.
    db = app.extensions["ballot_sessionmaker"]()
    export_bundle(db, app.config["SETTINGS"], tmp_path / "audit")
    db.close()
    assert verify_bundle(tmp_path / "audit")["rounds_recounted"] == 2


def test_the_standing_committee_shares_the_congress_register(app, api):
    s = setup_sitting(api, members=3, open_vote=False)
    _, committee = api.call("POST", "/api/admin/bodies", {"name": "测试市人民代表大会常务委员会",
                                                          "kind": "standing_committee"})
    console = login_client(app, OPERATOR)
    post(console, f"/console/bodies/{committee['id']}/projects",
         {"code": "2026-09", "name": "公共厕所新建改建", "year": "2026", "investment": "300"})
    assert _states(console, s.body_id) == {"2026-09": "reserve"}  # the congress's page shows it
    bad = post(console, f"/console/bodies/{s.body_id}/projects", {"code": "2026-10", "name": "x", "year": "26"})
    assert bad.status_code == 302 and _count_projects(app) == 1
