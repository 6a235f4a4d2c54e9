"""The project register's console pages (民生实事项目库): the projects with their state read from
the votes, adding one, importing the secretariat's Excel list, the .xlsx export, and making in
one step the year's projects vote or next year's evaluation of a vote's selected projects."""
from __future__ import annotations

from flask import Response, flash, redirect, render_template, request, url_for

from ballot_service.domain import project_items, projects
from ballot_service.domain.sittings import get_body, get_item, get_sitting
from ballot_service.errors import Forbidden, InvalidInput
from ballot_service.render import register_xlsx
from ballot_service.vocab import Role
from ballot_service.web.common import get_db
from ballot_service.web.console.blueprint import bp
from ballot_service.web.console.common import form_int, run_action
from ballot_service.web.i18n import t
from ballot_service.web.roles import login_may, requires

MAX_UPLOAD = 5 * 1024 * 1024


@bp.get("/console/bodies/<int:body_id>/projects")
@requires(Role.SECRETARIAT, Role.AUDITOR, body="body_id")
def projects_page(body_id: int):
    db = get_db()
    register = projects.register_body(db, get_body(db, body_id))
    rows = projects.register_states(db, register)
    return render_template("console/projects.html", register=register, rows=rows, sittings=projects.open_sittings(db, register),
                           labels=projects.STATE_LABELS, years=sorted({r["project"].year for r in rows}))


@bp.get("/console/bodies/<int:body_id>/projects.xlsx")
@requires(Role.SECRETARIAT, Role.AUDITOR, body="body_id")
def projects_xlsx(body_id: int):
    db = get_db()
    register = projects.register_body(db, get_body(db, body_id))
    data = register_xlsx.workbook(register.name, projects.register_states(db, register))
    return Response(data, mimetype="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    headers={"Content-Disposition": f"attachment; filename=projects-{register.id}.xlsx"})


@bp.post("/console/bodies/<int:body_id>/projects")
@requires(Role.SECRETARIAT, body="body_id")
def project_add(body_id: int):
    form = request.form

    def add(db):
        register = projects.register_body(db, get_body(db, body_id))
        return projects.add_projects(db, register, [projects.clean_project(form.to_dict(), "")], "console")

    return run_action(add, t("已加入项目库。", "Added to the register."),
                      url_for(".projects_page", body_id=body_id))[0]


@bp.post("/console/bodies/<int:body_id>/projects/import")
@requires(Role.SECRETARIAT, body="body_id")
def projects_import(body_id: int):
    f = request.files.get("file")
    back = url_for(".projects_page", body_id=body_id)
    if f is None or not f.filename:
        flash(t("请选择项目清单（.xlsx）。", "Choose the project list (.xlsx)."), "error")
        return redirect(back)
    data = f.read(MAX_UPLOAD + 1)

    def load(db):
        if len(data) > MAX_UPLOAD:
            raise InvalidInput(t("文件过大（最多 5 MB）", "the file is larger than 5 MB"), where=f.filename)
        register = projects.register_body(db, get_body(db, body_id))
        return projects.add_projects(db, register, projects.read_projects_xlsx(data, f.filename), f.filename)

    resp, made = run_action(load, "", back)
    if made:
        flash(t(f"已导入 {len(made)} 个项目。", f"{len(made)} projects imported."), "ok")
    return resp


def _create_item(make, done: str, back: str):
    """Make an item in the session the form names (`make(db, sitting)`); open its page, or say
    why not. The session is the form's: it must be one this login's secretariat serves."""
    def in_named_sitting(db):
        sitting = get_sitting(db, form_int(request.form, "sitting_id"))
        if not login_may((Role.SECRETARIAT,), sitting.body_id):
            raise Forbidden("that session belongs to a body your login does not serve as secretariat",
                            where="sitting_id", zh="该会议所属机构不在您的秘书处权限之内")
        return make(db, sitting)
    resp, item = run_action(in_named_sitting, done, back)
    return redirect(url_for(".item_page", item_id=item.id)) if item else resp


@bp.post("/console/bodies/<int:body_id>/projects/selection-item")
@requires(Role.SECRETARIAT, body="body_id")
def projects_selection_item(body_id: int):
    """The year's projects vote from the register's reserve of that year, in a chosen session."""
    form = request.form
    return _create_item(lambda db, sitting: project_items.selection_item(
        db, sitting, form_int(form, "year"), form_int(form, "places")),
        t("已根据项目库新建票决事项。", "Projects vote created from the register."),
        url_for(".projects_page", body_id=body_id))


@bp.post("/console/items/<int:item_id>/evaluation-item")
@requires(Role.SECRETARIAT, body="item_id")
def evaluation_from_selection(item_id: int):
    """下一年度满意度测评: the selected projects of this decided vote, in a chosen session."""
    return _create_item(lambda db, sitting: project_items.evaluation_from_selection(db, sitting, get_item(db, item_id)),
                        t("已根据入选项目新建满意度测评。", "Evaluation created from the selected projects."),
                        url_for(".item_page", item_id=item_id))
