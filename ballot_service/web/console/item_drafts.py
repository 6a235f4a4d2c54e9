"""An item before its vote opens: the 修改 form, 删除, 上移/下移 in the order of business, and a
preview of its ballot as the deputies will see it (domain/item_drafts.py)."""
from __future__ import annotations

from flask import redirect, render_template, request, url_for

from ballot_service.domain.ballot_sets import item_for_change
from ballot_service.domain.item_drafts import delete_item, edit_item, move_item
from ballot_service.domain.sittings import get_item
from ballot_service.vocab import Role
from ballot_service.web.common import get_db
from ballot_service.web.console.blueprint import bp
from ballot_service.web.console.common import run_action
from ballot_service.web.console.items import item_fields, render_item_page
from ballot_service.web.i18n import t
from ballot_service.web.roles import requires


@bp.post("/console/items/<int:item_id>/edit")
@requires(Role.SECRETARIAT, body="item_id")
def item_edit(item_id: int):
    form = request.form
    back = url_for(".item_page", item_id=item_id)
    return run_action(lambda db: edit_item(db, item_for_change(db, item_id, sitting_wide=True),
                                          **item_fields(form, get_item(db, item_id).key)),
                      t("已修改表决事项。", "The item is changed."), back,
                      on_refusal=lambda db: (render_item_page(db, item_id, edit_form=form), 400))[0]


@bp.post("/console/items/<int:item_id>/delete")
@requires(Role.SECRETARIAT, body="item_id")
def item_delete(item_id: int):
    sitting_id = get_item(get_db(), item_id).sitting_id
    resp, done = run_action(lambda db: delete_item(db, item_for_change(db, item_id)) or True,
                            t("已删除表决事项。", "The item is deleted."), url_for(".item_page", item_id=item_id))
    return redirect(url_for(".sitting_page", sitting_id=sitting_id) + "#items") if done else resp


@bp.post("/console/items/<int:item_id>/move")
@requires(Role.SECRETARIAT, body="item_id")
def item_move(item_id: int):
    sitting_id = get_item(get_db(), item_id).sitting_id
    direction = request.form.get("direction", "")
    return run_action(lambda db: move_item(db, item_for_change(db, item_id, sitting_wide=True), direction), "",
                      url_for(".sitting_page", sitting_id=sitting_id) + "#items")[0]


@bp.get("/console/items/<int:item_id>/preview")
@requires(Role.SECRETARIAT, Role.AUDITOR, body="item_id")
def item_preview(item_id: int):
    """The ballot as a tablet shows it (and a paper ballot lists it), with nothing to press."""
    item = get_item(get_db(), item_id)
    return render_template("console/item_preview.html", item=item, sitting=item.sitting, rnd=item.rounds[-1])
