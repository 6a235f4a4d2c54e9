"""An election's console step: 另行选举 for the unfilled seats in one step (election_items),
with the candidates typed one per line (a nominee's key, or `编号 | 姓名` newly nominated;
empty: the nominees not elected, in first-round vote order), held in this sitting or, with a
later sitting chosen, saved for it (another_items)."""
from __future__ import annotations

from flask import request, url_for

from ballot_service.domain import another_items, election_items
from ballot_service.domain.ballot_sets import item_for_change
from ballot_service.vocab import Role
from ballot_service.web.console.blueprint import bp
from ballot_service.web.console.common import form_int, run_action
from ballot_service.web.i18n import t
from ballot_service.web.roles import requires


def parse_nominees(text: str) -> list | None:
    out: list = []
    for line in (ln.strip() for ln in text.splitlines()):
        if line:
            parts = [p.strip() for p in line.split("|")]
            out.append(parts[0] if len(parts) == 1 else {"key": parts[0], "title": parts[1]})
    return out or None


@bp.post("/console/items/<int:item_id>/another")
@requires(Role.SECRETARIAT, body="item_id")
def item_another(item_id: int):
    nominees = parse_nominees(request.form.get("candidates", ""))
    later = request.form.get("sitting_id", "").strip()
    if later:  # saved for a later sitting: a new draft election item there
        return run_action(lambda db: another_items.save_another(db, item_for_change(db, item_id),
                                                                form_int(request.form, "sitting_id"), nominees),
                          t("已安排另行选举：已在所选会次新建选举事项。",
                            "The further election is saved: a new election item is in the chosen session."),
                          url_for(".item_page", item_id=item_id))[0]
    return run_action(lambda db: election_items.start_another(db, item_for_change(db, item_id), nominees),
                      t("已发起另行选举，请开始表决。", "A further election is set up; open the vote."),
                      url_for(".item_page", item_id=item_id))[0]
