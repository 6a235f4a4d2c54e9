"""A vote item: the form adding one (with its candidates typed one per line), its page and
live progress, and the secretariat's actions on it (open, close, tally, record, publish,
record that the quorum failed)."""
from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

from flask import Response, abort, get_flashed_messages, jsonify, redirect, render_template, request, url_for
from sqlalchemy import select

from ballot_service import rules, vocab
from ballot_service.domain import (
    another_items,
    ballot_sets,
    cast_staging,
    evaluation_items,
    paper_ballots,
    projects,
    records,
    tablet_setup,
    tally,
    turnout,
    voting,
)
from ballot_service.domain.paper_ballots import paper_counts
from ballot_service.domain.sittings import attendance_state, create_item, get_item, get_sitting
from ballot_service.errors import InvalidInput
from ballot_service.models import Record
from ballot_service.render import announcement
from ballot_service.vocab import Base, Channel, ItemKind, ItemStatus, Majority, MarkRule, Role, RoundStatus
from ballot_service.web.common import get_db, settings
from ballot_service.web.console.blueprint import bp
from ballot_service.web.console.common import form_int, pipe_lines, run_action
from ballot_service.web.console.evaluation_form import parse_grading, parse_options
from ballot_service.web.console.sittings import render_sitting_page
from ballot_service.web.i18n import t
from ballot_service.web.roles import requires


def parse_candidates(text: str, kind: str) -> list[dict]:
    """One candidate per line: `名称`, `名称 | 说明`, or `编号 | 名称 | 说明` (the 说明 may be
    empty). Two parts are always name and description — never key and name — so a project's
    description is never read as its title; a key not given is generated (P01, P02… / N01…)."""
    if kind == ItemKind.RESOLUTION:
        if text.strip():
            raise InvalidInput(t("决议表决只有一个表决事项（即标题），不填候选项",
                                 "a resolution is voted as a whole (its title): leave the candidates empty"),
                               where="candidates")
        return []
    if kind == ItemKind.APPOINTMENT:
        return _parse_nominees(text)
    out = []
    prefix = "P" if kind in (ItemKind.LIVELIHOOD, ItemKind.EVALUATION) else "N"
    for n, parts in pipe_lines(text):
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


def _parse_nominees(text: str) -> list[dict]:
    """Appointment items: one nominee per line, `姓名 | 拟任职务` or `编号 | 姓名 | 拟任职务`; the
    proposed office is required (it is on the screen, the ballot, the record and the 宣布稿)."""
    out = []
    for n, parts in pipe_lines(text):
        if len(parts) == 2 and all(parts):
            out.append({"key": f"N{len(out) + 1:02d}", "title": parts[0], "office": parts[1]})
        elif len(parts) == 3 and all(parts[1:]):
            out.append({"key": parts[0] or f"N{len(out) + 1:02d}", "title": parts[1], "office": parts[2]})
        else:
            raise InvalidInput(t(f"第 {n} 行应为“姓名 | 拟任职务”或“编号 | 姓名 | 拟任职务”（拟任职务必填）",
                                 f"line {n}: write 'name | proposed office' or 'key | name | proposed office' "
                                 f"(the office is required)"), where=f"candidates line {n}")
    return out


def item_fields(form, default_key: str) -> dict:
    """The 添加/修改表决事项 form as create_item's (and edit_item's) keyword arguments."""
    kind = form.get("kind", "")
    minutes = form_int(form, "time_limit_min", required=False)
    return {"key": form.get("key", "").strip() or default_key, "kind": kind,
            "title": form.get("title", "").strip(),
            "candidates": parse_candidates(form.get("candidates", ""), kind) or None,
            "places": form_int(form, "places", required=kind in (ItemKind.LIVELIHOOD, ItemKind.ELECTION)),
            "base": form.get("base", Base.MEMBERS), "majority": form.get("majority", Majority.HALF),
            "secret": form.get("secret", "1") == "1", "channel": form.get("channel", "terminal"),
            "time_limit_s": minutes * 60 if minutes else None, "mark_rule": form.get("mark_rule", MarkRule.ANY),
            **(_evaluation_scale(form) if kind == ItemKind.EVALUATION else {}),
            **(_election_fields(form) if kind == ItemKind.ELECTION else {})}


def _election_fields(form) -> dict:
    """An election's office and 补选 from the form. The form always sends base and majority:
    only a change from art. 25's (all members, more than half) is a rule, which is refused."""
    return {"office": form.get("office") or None, "by_election": form.get("by_election") == "1",
            "ballot_set": form.get("ballot_set", "").strip() or None,
            "rule_given": ((form.get("base", Base.MEMBERS), form.get("majority", Majority.HALF))
                           != (Base.MEMBERS, Majority.HALF))}


def _evaluation_scale(form) -> dict:
    """An evaluation's options (best first) and grading, from the form's 测评 fields."""
    options = parse_options(form.get("options", ""))
    return {"options": options, "grading": parse_grading(form.get("grading", ""), form.get("steps", ""), options,
                                                         list(evaluation_items.DEFAULT_OPTIONS))}


@bp.post("/console/sessions/<int:sitting_id>/items")
@requires(Role.SECRETARIAT, body="sitting_id")
def item_form(sitting_id: int):
    form = request.form

    def create_from_form(db):
        sitting = get_sitting(db, sitting_id)
        # 编号 is optional on the form: the secretariat names items by their titles.
        return create_item(db, sitting, **item_fields(form, f"item-{len(sitting.items) + 1:02d}"))

    # A refusal shows the sitting page again with everything typed kept, the form open.
    resp, item = run_action(create_from_form, t("已添加表决事项。", "Vote item added."), "",
                            on_refusal=lambda db: (render_sitting_page(db, sitting_id, item_form=form), 400))
    return redirect(url_for(".item_page", item_id=item.id)) if item else resp


def item_progress(db, item) -> dict:
    progress = _round_progress(db, item)
    if item.ballot_set:  # the set's elections on the same ballot, each with its own counts
        progress["ballot_set"] = [{"item_id": m.id, "title": m.title, "round": p["round"], "returned": p["returned"],
                                   "issued": p["issued"], "round_status": p["round_status"]}
                                  for m in ballot_sets.voted_with(db, item) for p in [_round_progress(db, m)]]
    return progress


def _round_progress(db, item) -> dict:
    rnd = voting.current_round(item)
    returned = cast_staging.returned(db, rnd.id)
    missing = turnout.not_voted(db, item, rnd)
    issued = rnd.issued if rnd.issued is not None else voting.issued_count(db, item, rnd)
    return {"status": item.status, "round": rnd.number, "round_status": rnd.status,
            "not_voted": missing["count"], "not_voted_names": missing["names"],
            # of those, present members whose tablet took no ballot (P − I), as the screen shows them
            "not_issued": rules.not_issued(item.channel, rnd.present, issued),
            "issued": issued,
            "returned": returned, "present": rnd.present, "members": rnd.members,
            "closes_at": rnd.closes_at.isoformat() if rnd.closes_at and rnd.status == RoundStatus.OPEN else None}


@bp.get("/console/items/<int:item_id>")
@requires(Role.SECRETARIAT, Role.AUDITOR, body="item_id")
def item_page(item_id: int):
    return render_item_page(get_db(), item_id)


def render_item_page(db, item_id: int, edit_form=None):
    """The item page; `edit_form`: what was typed into a refused 修改 form, shown again."""
    item = get_item(db, item_id)
    rec = db.scalar(select(Record).where(Record.item_id == item.id))
    result = tally.results_for_items([item])[0] if any(r.result for r in item.rounds) else None
    content = json.loads(rec.body_json) if rec else None
    paper = None
    if item.channel in vocab.PAPER_CHANNELS:
        paper = paper_counts(db, voting.current_round(item))
        paper["files"] = sorted(p.name for p in Path(settings().ballots_dir).glob(f"item{item.id}-round*.pdf"))
    return render_template("console/item.html", item=item, sitting=item.sitting, progress=item_progress(db, item),
                           result=result, rec=rec, content=content,
                           announcement=announcement.announcement(content) if content else None,
                           titles={c.key: c.label for c in item.candidates}, paper=paper,
                           not_issued=rules.not_issued,
                           state=attendance_state(db, item.sitting),
                           ready=tablet_setup.readiness(db, item.sitting)
                           if item.channel == Channel.TERMINAL and item.status == ItemStatus.DRAFT else None,
                           edit_form=edit_form or draft_form(item), kinds=vocab.labels_of(vocab.ItemKind),
                           offices=vocab.labels_of(vocab.Office),
                           bases=rules.BASES, majorities=rules.MAJORITIES,
                           open_sittings=projects.open_sittings(db, projects.register_body(db, item.sitting.body))
                           if item.kind == ItemKind.LIVELIHOOD else [],
                           **({"later_sittings": another_items.later_sittings(db, item),
                               "another_links": another_items.another_links(db, item)}
                              if item.kind == ItemKind.ELECTION else {}))


def draft_form(item) -> dict:
    """An item as the 修改 form shows it (the fields of item_fields, candidates one per line)."""
    if item.kind == ItemKind.RESOLUTION:
        lines = []
    elif item.kind == ItemKind.APPOINTMENT:
        lines = [f"{c.key} | {c.title} | {c.office or ''}" for c in item.candidates]
    else:
        lines = [f"{c.key} | {c.title} | {c.description or ''}" for c in item.candidates]
    return {"kind": item.kind, "key": item.key, "title": item.title, "places": item.places or "",
            "candidates": "\n".join(lines), "base": item.base, "majority": item.majority,
            "secret": "1" if item.secret else "0", "channel": item.channel,
            "time_limit_min": item.time_limit_s // 60 if item.time_limit_s else "", "mark_rule": item.mark_rule,
            **(_evaluation_form(item) if item.kind == ItemKind.EVALUATION else {}),
            **({"office": item.office or "", "by_election": "1" if item.by_election else "",
                "ballot_set": item.ballot_set or ""} if item.kind == ItemKind.ELECTION else {})}


def _evaluation_form(item) -> dict:
    """An evaluation's options and grading as its form's 测评 fields show them."""
    grading = item.grading or {}
    # stored as [option, hundredths] pairs (evaluation_items.clean_grading)
    steps = [f"{option} | {hundredths // 100}" + (f".{hundredths % 100:02d}" if hundredths % 100 else "")
             for option, hundredths in grading.get("steps", [])]
    return {"options": "\n".join(f"{o['key']} | {o['title']}" for o in item.options or []),
            "grading": grading.get("by", "majority"), "steps": "\n".join(steps)}


@bp.get("/console/items/<int:item_id>/progress")
@requires(Role.SECRETARIAT, Role.AUDITOR, body="item_id")
def item_progress_json(item_id: int):
    db = get_db()
    return jsonify(item_progress(db, get_item(db, item_id)))


ITEM_ACTIONS = {
    # in a ballot set, its other elections open, close and are tallied with it (ballot_sets)
    "open": (lambda db, item: ballot_sets.open_set(db, settings(), item, request.form.get("override_reason")),
             ("表决已开始。", "The vote is open.")),
    "close": (lambda db, item: ballot_sets.close_set(db, settings(), item), ("表决已结束，票数已冻结。",
                                                                            "The vote is closed; counts frozen.")),
    "tally": (lambda db, item: ballot_sets.tally_set(db, item), ("已计票。", "Tallied.")),
    "record": (lambda db, item: records.issue_record(db, settings(), item),
               ("已签发表决结果记录。", "The signed record is issued.")),
    "publish": (lambda db, item: records.publish_record(db, item),
                ("已公布，大屏显示结果。", "Published; the presiding screen shows the result.")),
    "extend": (lambda db, item: ballot_sets.extend_set(db, item, form_int(request.form, "minutes")),
               ("已延长表决时间。", "The time is extended.")),
    "replacement": (lambda db, item: ballot_sets.replace_set(db, settings(), item,
                                                             request.form.get("member", "").strip(),
                                                             request.form.get("reason", ""),
                                                             paper=request.form.get("channel") == Channel.PAPER),
                    ("已补发选票，理由已记入审计链。", "Replacement allowed; the reason is in the audit chain.")),
    "quorum-failed": (ballot_sets.quorum_failed_set, ("已记录：不足法定人数，不能表决。",
                                                     "Recorded: no quorum, the item cannot be voted.")),
}


@bp.post("/console/items/<int:item_id>/<action>")
@requires(Role.SECRETARIAT, body="item_id")
def item_action(item_id: int, action: str):
    if action not in ITEM_ACTIONS:
        abort(404)
    run, (zh, en) = ITEM_ACTIONS[action]
    answer, result = run_action(lambda db: run(db, ballot_sets.item_for_change(db, item_id)), t(zh, en),
                                url_for(".item_page", item_id=item_id))
    if isinstance(result, dict) and "ballots" in result:  # a hybrid vote's paper ballot: printed now, once
        pdf = paper_ballots.paper_ballot_pdf(get_db(), result["ballots"])
        # The page stays (the answer is a download), so its script shows what was printed: a
        # flash would wait for the next page, and the page's polling can write the session over it.
        get_flashed_messages()
        n, member = len(result["ballots"]), request.form.get("member", "").strip()
        said = t(f"已印制纸质选票 {n} 张（代表 {member}），PDF 已下载：请立即打印交给该代表。这份 PDF 不保存，不能再次下载。",
                 f"{n} paper ballot{'s' if n > 1 else ''} printed for member {member} (PDF downloaded): print "
                 f"{'them' if n > 1 else 'it'} and hand {'them' if n > 1 else 'it'} over now. The PDF is kept "
                 f"nowhere and cannot be downloaded again.")
        return Response(pdf, mimetype="application/pdf", headers={
            "Content-Disposition": f'attachment; filename="item{item_id}-paper-ballot.pdf"',
            "Cache-Control": "no-store", "X-Ballots-Printed": str(n),
            "X-Paper-Allowed": str(result["paper_allowed"]), "X-Console-Message": quote(said)})
    return answer
