"""A vote item: the form adding one (with its candidates typed one per line), its page and
live progress, and the secretariat's actions on it (open, close, tally, record, publish,
record that the quorum failed)."""
from __future__ import annotations

import json
from pathlib import Path

from flask import abort, jsonify, redirect, render_template, request, url_for
from sqlalchemy import func, select

from ballot_service.domain import records, tally, voting
from ballot_service.domain.paper_ballots import paper_counts
from ballot_service.domain.sittings import attendance_state, create_item, get_item, get_sitting
from ballot_service.errors import InvalidInput
from ballot_service.models import Cast, Record
from ballot_service.render import announcement
from ballot_service.web.common import get_db, settings
from ballot_service.web.console.blueprint import bp
from ballot_service.web.console.common import form_int, run_action
from ballot_service.web.console.sittings import render_sitting_page
from ballot_service.web.i18n import t
from ballot_service.web.roles import requires


def parse_candidates(text: str, kind: str) -> list[dict]:
    """One candidate per line: `名称`, `名称 | 说明`, or `编号 | 名称 | 说明` (the 说明 may be
    empty). Two parts are always name and description — never key and name — so a project's
    description is never read as its title; a key not given is generated (P01, P02… / N01…)."""
    if kind == "resolution":
        if text.strip():
            raise InvalidInput(t("决议表决只有一个表决事项（即标题），不填候选项",
                                 "a resolution is voted as a whole (its title): leave the candidates empty"),
                               where="candidates")
        return []
    out = []
    prefix = "P" if kind == "livelihood_projects" else "N"
    for n, line in enumerate((ln.strip() for ln in text.splitlines()), start=1):
        if not line:
            continue
        parts = [p.strip() for p in line.split("|")]
        generated = f"{prefix}{len(out) + 1:02d}"
        if len(parts) == 1 or (len(parts) == 2 and parts[0]):
            c = {"key": generated, "title": parts[0]}
            if len(parts) == 2 and parts[1]:
                c["description"] = parts[1]
        elif len(parts) == 3 and parts[1]:
            c = {"key": parts[0] or generated, "title": parts[1]}
            if parts[2]:
                c["description"] = parts[2]
        else:
            raise InvalidInput(t(f"第 {n} 行格式应为“名称”、“名称 | 说明”或“编号 | 名称 | 说明”",
                                 f"line {n}: write 'name', 'name | description' or 'key | name | description'"),
                               where=f"candidates line {n}")
        out.append(c)
    return out


@bp.post("/console/sessions/<int:sitting_id>/items")
@requires("secretariat")
def item_form(sitting_id: int):
    form = request.form

    def create_from_form(db):
        kind = form.get("kind", "")
        cands = parse_candidates(form.get("candidates", ""), kind) or None
        minutes = form_int(form, "time_limit_min", required=False)
        sitting = get_sitting(db, sitting_id)
        # 编号 is optional on the form: the secretariat names items by their titles.
        key = form.get("key", "").strip() or f"item-{len(sitting.items) + 1:02d}"
        return create_item(db, sitting, key=key, kind=kind,
                           title=form.get("title", "").strip(), candidates=cands,
                           places=form_int(form, "places", required=kind in ("livelihood_projects", "election")),
                           base=form.get("base", "members"), majority=form.get("majority", "half"),
                           secret=form.get("secret", "1") == "1", channel=form.get("channel", "terminal"),
                           time_limit_s=minutes * 60 if minutes else None,
                           office=form.get("office") or None, by_election=form.get("by_election") == "1",
                           # the form always sends base and majority: only a change from art. 25's is a rule
                           rule_given=kind == "election" and (form.get("base", "members"), form.get("majority", "half"))
                           != ("members", "half"))

    # A refusal shows the sitting page again with everything typed kept, the form open.
    resp, item = run_action(create_from_form, t("已添加表决事项。", "Vote item added."), "",
                            on_refusal=lambda db: (render_sitting_page(db, sitting_id, item_form=form), 400))
    return redirect(url_for(".item_page", item_id=item.id)) if item else resp


def item_progress(db, item) -> dict:
    rnd = voting.current_round(item)
    returned = db.scalar(select(func.count()).select_from(Cast).where(Cast.round_id == rnd.id)) or 0
    return {"status": item.status, "round": rnd.number, "round_status": rnd.status,
            "issued": rnd.issued if rnd.issued is not None else voting.issued_count(db, item, rnd),
            "returned": returned, "present": rnd.present, "members": rnd.members,
            "closes_at": rnd.closes_at.isoformat() if rnd.closes_at and rnd.status == "open" else None}


@bp.get("/console/items/<int:item_id>")
@requires("secretariat", "auditor")
def item_page(item_id: int):
    db = get_db()
    item = get_item(db, item_id)
    rec = db.scalar(select(Record).where(Record.item_id == item.id))
    result = tally.results_for_items([item])[0] if any(r.result for r in item.rounds) else None
    content = json.loads(rec.body_json) if rec else None
    paper = None
    if item.channel == "paper":
        paper = paper_counts(db, voting.current_round(item))
        paper["files"] = sorted(p.name for p in Path(settings().ballots_dir).glob(f"item{item.id}-round*.pdf"))
    return render_template("console/item.html", item=item, sitting=item.sitting, progress=item_progress(db, item),
                           result=result, rec=rec, content=content,
                           announcement=announcement.announcement(content) if content else None,
                           titles={c.key: c.title for c in item.candidates}, paper=paper,
                           state=attendance_state(db, item.sitting))


@bp.get("/console/items/<int:item_id>/progress")
@requires("secretariat", "auditor")
def item_progress_json(item_id: int):
    db = get_db()
    return jsonify(item_progress(db, get_item(db, item_id)))


ITEM_ACTIONS = {
    "open": (lambda db, item: voting.open_round(db, settings(), item), ("表决已开始。", "The vote is open.")),
    "close": (lambda db, item: voting.close_round(db, settings(), item), ("表决已结束，票数已冻结。",
                                                                         "The vote is closed; counts frozen.")),
    "tally": (lambda db, item: tally.tally_item(db, item), ("已计票。", "Tallied.")),
    "record": (lambda db, item: records.issue_record(db, settings(), item),
               ("已签发表决结果记录。", "The signed record is issued.")),
    "publish": (lambda db, item: records.publish_record(db, item),
                ("已公布，大屏显示结果。", "Published; the presiding screen shows the result.")),
    "extend": (lambda db, item: voting.extend_round(db, item, form_int(request.form, "minutes")),
               ("已延长表决时间。", "The time is extended.")),
    "quorum-failed": (voting.record_quorum_not_met, ("已记录：不足法定人数，不能表决。",
                                                     "Recorded: no quorum, the item cannot be voted.")),
}


@bp.post("/console/items/<int:item_id>/<action>")
@requires("secretariat")
def item_action(item_id: int, action: str):
    if action not in ITEM_ACTIONS:
        abort(404)
    run, (zh, en) = ITEM_ACTIONS[action]
    return run_action(lambda db: run(db, get_item(db, item_id)), t(zh, en),
                      url_for(".item_page", item_id=item_id))[0]
