"""Logging in and out of the console, and where each role lands afterwards."""
from __future__ import annotations

from urllib.parse import urlparse

from flask import flash, redirect, render_template, request, session, url_for

from ballot_service.domain import operators
from ballot_service.errors import BallotError
from ballot_service.vocab import Role
from ballot_service.web.common import end_operator_session, finish_refusal, get_db, start_operator_session
from ballot_service.web.console.blueprint import bp
from ballot_service.web.i18n import current_language, t
from ballot_service.web.roles import OWN, requires

HOME_OF_ROLE = {"superuser": "/console", "secretariat": "/console", "auditor": "/console", "display": "/display"}


@bp.get("/")
@requires(Role.PUBLIC)
def root():
    role = session.get("role")
    return redirect(HOME_OF_ROLE.get(role) or url_for("console.login_page"))


@bp.get("/login")
@requires(Role.PUBLIC)
def login_page():
    if session.pop("expired", False):
        flash(t("登录已过期，请重新登录。", "Your login expired; please log in again."), "warn")
    return render_template("console/login.html", next=request.args.get("next", ""))


@bp.post("/login")
@requires(Role.PUBLIC)
def login_submit():
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    db = get_db()
    try:
        op = operators.login_operator(db, username, password, request.remote_addr)
        start_operator_session(op)  # refuses a disabled login, or one without a role
    except BallotError as exc:
        finish_refusal(exc)
        flash(exc.text(current_language()), "error")
        return render_template("console/login.html", next=request.form.get("next", ""),
                               username=username[:operators.MAX_USERNAME_CHARS]), exc.status
    db.commit()
    target = _safe_next(request.form.get("next")) or HOME_OF_ROLE[op.role]
    return redirect(target)


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site (no scheme, no host) may be a redirect target after login."""
    if not target:
        return None
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


@bp.post("/logout")
@requires(Role.SUPERUSER, Role.SECRETARIAT, Role.AUDITOR, Role.DISPLAY, body=OWN)
def logout_page():
    end_operator_session(get_db())
    flash(t("已退出。", "Logged out."), "ok")
    return redirect(url_for("console.login_page"))
