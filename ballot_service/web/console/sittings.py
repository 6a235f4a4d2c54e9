"""A sitting's page: creating a sitting, check-in by the secretariat (补签到, 请假), what the
presiding screen shows between votes, and closing the sitting (闭会)."""
from __future__ import annotations

import re

from flask import redirect, render_template, request, url_for

from ballot_service import rules, vocab
from ballot_service.db import utcnow
from ballot_service.domain import meetings, roster, tablet_setup
from ballot_service.domain.screen_choice import set_screen
from ballot_service.domain.sittings import (
    attendance_state,
    close_sitting,
    create_sitting,
    find_member,
    get_body,
    get_sitting,
    set_attendance,
)
from ballot_service.domain.terminals import terminal_list
from ballot_service.errors import InvalidInput
from ballot_service.vocab import Presence, Role, ScreenChoice
from ballot_service.web.common import get_db, settings
from ballot_service.web.console.blueprint import bp
from ballot_service.web.console.common import form_int, run_action
from ballot_service.web.i18n import t
from ballot_service.web.roles import IN_FORM, requires
from ballot_service.web.urls import public_base, unreachable_public_base


@bp.post("/console/sessions")
@requires(Role.SECRETARIAT, body=IN_FORM)
def sitting_create():
    form = request.form
    resp, sitting = run_action(lambda db: create_sitting(db, get_body(db, form_int(form, "body_id")),
                                                         form.get("name", "").strip()),
                               t("已创建会议。", "Sitting created."), url_for(".home"))
    return redirect(url_for(".sitting_page", sitting_id=sitting.id)) if sitting else resp


@bp.get("/console/sessions/<int:sitting_id>")
@requires(Role.SECRETARIAT, Role.AUDITOR, body="sitting_id")
def sitting_page(sitting_id: int):
    return render_sitting_page(get_db(), sitting_id)


def render_sitting_page(db, sitting_id: int, item_form=None):
    """The sitting page; `item_form`: what was typed into a refused 添加表决事项 form, shown again."""
    sitting = get_sitting(db, sitting_id)
    members = roster.members_of(db, sitting.body, in_office_only=True, by_group=True)
    status = meetings.attendance_by_member(db, sitting)
    terminals, checked_in = terminal_list(db, sitting)
    return render_template("console/sitting.html", sitting=sitting, state=attendance_state(db, sitting),
                           members=members, status=status, terminals=terminals, checked_in=checked_in,
                           now=utcnow(), online_s=tablet_setup.ONLINE_S,
                           reset_code=tablet_setup.reset_code(settings().secret_key, sitting.id),
                           base=public_base(), unreachable=unreachable_public_base(),
                           meeting=meetings.meeting_name(meetings.current_number(db, sitting)),
                           next_meeting=meetings.meeting_name(meetings.current_number(db, sitting) + 1),
                           ended_meetings=[(meetings.meeting_name(m.number), m)
                                           for m in meetings.ended_meetings(db, sitting)],
                           kinds=vocab.labels_of(vocab.ItemKind), offices=vocab.labels_of(vocab.Office),
                           bases=rules.BASES, majorities=rules.MAJORITIES,
                           item_form=item_form or {})


@bp.post("/console/sessions/<int:sitting_id>/close")
@requires(Role.SECRETARIAT, body="sitting_id")
def sitting_close(sitting_id: int):
    """闭会: refused while a vote is open; signs a checkpoint of the audit chain."""
    return run_action(lambda db: close_sitting(db, settings(), get_sitting(db, sitting_id)),
                      t("已闭会，审计检查点已签署。", "The sitting is closed; an audit checkpoint is signed."),
                      url_for(".sitting_page", sitting_id=sitting_id))[0]


@bp.post("/console/sessions/<int:sitting_id>/screen")
@requires(Role.SECRETARIAT, body="sitting_id")
def screen_form(sitting_id: int):
    """What the presiding screen shows between votes (screen_choice.set_screen)."""
    show = request.form.get("show", "")

    def choose_screen(db):
        item_id = form_int(request.form, "item_id", required=False) if show == ScreenChoice.RESULT else None
        return set_screen(db, get_sitting(db, sitting_id), show, item_id)

    done = {ScreenChoice.AUTO: t("大屏已恢复跟随表决。", "The screen follows the votes again."),
            ScreenChoice.TITLE: t("大屏显示会标。", "The screen shows the session banner."),
            ScreenChoice.CHECKIN: t("大屏显示签到情况。", "The screen shows the check-in."),
            ScreenChoice.RESULT: t("大屏显示所选表决事项的结果。", "The screen shows the chosen result.")}.get(show, "")
    return run_action(choose_screen, done, url_for(".sitting_page", sitting_id=sitting_id))[0]


@bp.post("/console/sessions/<int:sitting_id>/meetings/next")
@requires(Role.SECRETARIAT, body="sitting_id")
def next_meeting_form(sitting_id: int):
    """Start the next plenary meeting (全体会议): everyone checks in again (meetings.py)."""
    return run_action(lambda db: meetings.start_next_meeting(db, get_sitting(db, sitting_id)),
                      t("已开始下一次全体会议，请代表重新签到。", "The next plenary meeting has started: members check in again."),
                      url_for(".sitting_page", sitting_id=sitting_id) + "#attendance")[0]


MEMBER_NO_SEPARATORS = re.compile(r"[\s,，、;；]+")


@bp.post("/console/sessions/<int:sitting_id>/attendance")
@requires(Role.SECRETARIAT, body="sitting_id")
def attendance_form(sitting_id: int):
    """补签到 / 请假 for the ticked members, or for one member number typed in."""
    form = request.form
    status = form.get("status", Presence.PRESENT)
    # Typed numbers may be separated as a secretariat types them: spaces, commas, 、 or ；.
    nos = [n for n in form.getlist("member") if n] + [n for n in MEMBER_NO_SEPARATORS.split(form.get("member_no", ""))
                                                      if n]

    def mark_attendance(db):
        if not nos:
            raise InvalidInput(t("请先勾选或输入代表证号", "tick members or type a member number"), where="member")
        sitting = get_sitting(db, sitting_id)
        for no in nos:
            set_attendance(db, sitting, find_member(db, sitting.body_id, no), status, "manual")
        return attendance_state(db, sitting)

    word = {"present": t("补签到", "checked in"), "leave": t("请假", "on leave"),
            "absent": t("取消签到", "marked absent")}.get(status, status)
    return run_action(mark_attendance, t(f"已{word}：{len(nos)} 人。", f"{len(nos)} member(s) {word}."),
                      url_for(".sitting_page", sitting_id=sitting_id) + "#attendance")[0]
