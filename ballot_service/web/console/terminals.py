"""Registering a sitting's seat terminals and counting stations (credentials shown once,
a teller's station with its holder and role), revoking one, and releasing a spare tablet
from the member it checked in."""
from __future__ import annotations

from flask import abort, flash, redirect, render_template, request, url_for

from ballot_service.domain.sittings import get_sitting
from ballot_service.domain.terminals import (
    register_every_seat,
    register_terminal,
    release_terminal,
    revoke_terminal,
)
from ballot_service.errors import BallotError, InvalidInput
from ballot_service.models import Terminal
from ballot_service.render import qr
from ballot_service.vocab import Role, TellerRole, TerminalKind, label_pair
from ballot_service.web.common import finish_refusal, get_db
from ballot_service.web.console.blueprint import bp
from ballot_service.web.console.common import form_int, run_action
from ballot_service.web.i18n import current_language, t
from ballot_service.web.roles import requires
from ballot_service.web.urls import public_base, unreachable_public_base


@bp.post("/console/sessions/<int:sitting_id>/terminals")
@requires(Role.SECRETARIAT, body="sitting_id")
def terminals_form(sitting_id: int):
    """Register a terminal for every seat of the roster that has none, and/or counting
    stations, and/or one teller's station (holder's name and role: counter 计票人 or
    scrutineer 监票人). The credentials are shown once, on the page this returns."""
    form = request.form
    db = get_db()
    try:
        sitting = get_sitting(db, sitting_id)
        made = []
        if form.get("all_seats"):
            made += register_every_seat(db, sitting)
        if form.get("seat", "").strip():
            seat = form["seat"].strip()
            made.append(register_terminal(db, sitting, f"席位 {seat}", TerminalKind.SEAT, seat))
        for i in range(form_int(form, "stations", required=False) or 0):
            made.append(register_terminal(db, sitting, f"计票站 {i + 1}", TerminalKind.COUNTING_STATION))
        holder = form.get("holder", "").strip()
        if holder or form.get("teller_role"):
            # A teller's own station credential: the tally sheet names its holder.
            role = form.get("teller_role", "")
            made.append(register_terminal(db, sitting, f"计票站 {label_pair(role, TellerRole)[0]} {holder}",
                                          TerminalKind.COUNTING_STATION, holder=holder, teller_role=role))
        if not made:
            # Nothing ticked or typed: an empty credentials page would look like a success.
            raise InvalidInput("nothing to register: tick the roster seats, type a seat, a number of "
                               "counting stations or a teller", where="terminals",
                               zh="没有要登记的终端：请勾选名册座位，或填写单个座位、计票站数量或计票人员")
        db.commit()
    except BallotError as exc:
        finish_refusal(exc)
        flash(exc.text(current_language()), "error")
        return redirect(url_for(".sitting_page", sitting_id=sitting_id) + "#terminals")
    base = public_base()
    # One QR code per seat tablet: the tablet's camera opens its own set-up link (no typing).
    qrs = {term.id: qr.qr_svg(f"{base}/seat#credential={cred}") for term, cred in made if term.kind == TerminalKind.SEAT}
    return render_template("console/terminals_created.html", sitting=sitting, base=base, made=made, qrs=qrs,
                           unreachable=unreachable_public_base())


@bp.post("/console/terminals/<int:terminal_id>/revoke")
@requires(Role.SECRETARIAT, body="terminal_id")
def terminal_revoke(terminal_id: int):
    return _on_terminal(terminal_id, revoke_terminal, "已吊销终端 {}。", "Terminal {} revoked.")


@bp.post("/console/terminals/<int:terminal_id>/release")
@requires(Role.SECRETARIAT, body="terminal_id")
def terminal_release(terminal_id: int):
    """Release a spare seat tablet from the member it checked in."""
    return _on_terminal(terminal_id, release_terminal, "已解除表决器 {} 的绑定。", "Tablet {} released.")


def _on_terminal(terminal_id: int, change, done_zh: str, done_en: str):
    """Apply `change(db, terminal)` and go back to the sitting's terminal list (404: no such terminal)."""
    term = get_db().get(Terminal, terminal_id)
    if term is None:
        abort(404)
    back = url_for(".sitting_page", sitting_id=term.sitting_id) + "#terminals"
    return run_action(lambda db: change(db, term), t(done_zh.format(term.name), done_en.format(term.name)),
                      back)[0]
