"""The secretariat's console (HTML): login, sittings, roster, check-in, items, votes,
records and the audit bundle. Thin: every action calls the same domain functions as the
JSON API, and a refusal is shown as a message on the page it came from."""
from __future__ import annotations

import time
from urllib.parse import urlparse

from flask import Blueprint, flash, redirect, render_template, request, session, url_for

from . import audit, auth
from .auth import requires
from .errors import BallotError, Unauthorized
from .i18n import t
from .web import finish_refusal, get_db

bp = Blueprint("console", __name__)

_failed_logins: dict[str, list[float]] = {}
LOGIN_WINDOW_S, LOGIN_MAX_FAILURES = 300, 5
HOME_OF_ROLE = {"secretariat": "console.home", "auditor": "console.home", "display": "display.index"}


@bp.get("/")
@requires("public")
def root():
    role = session.get("role")
    return redirect(url_for(HOME_OF_ROLE[role]) if role in HOME_OF_ROLE else url_for("console.login_page"))


@bp.get("/login")
@requires("public")
def login_page():
    if session.pop("expired", False):
        flash(t("登录已过期，请重新登录。", "Your login expired; please log in again."), "warn")
    return render_template("console/login.html", next=request.args.get("next", ""))


@bp.post("/login")
@requires("public")
def login_submit():
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    db = get_db()
    try:
        op = login_operator(db, username, password)
    except BallotError as exc:
        finish_refusal(exc)
        flash(exc.message, "error")
        return render_template("console/login.html", next=request.form.get("next", ""), username=username), 401
    target = _safe_next(request.form.get("next")) or url_for(HOME_OF_ROLE[op.role])
    return redirect(target)


def login_operator(db, username: str, password: str):
    """Check a login, rate-limited per username; failures are audited; starts the session."""
    now = time.monotonic()
    recent = [t_ for t_ in _failed_logins.get(username, []) if now - t_ < LOGIN_WINDOW_S]
    if len(recent) >= LOGIN_MAX_FAILURES:
        raise Unauthorized(t(f"{username} 登录失败次数过多，请 {LOGIN_WINDOW_S // 60} 分钟后再试",
                             f"too many failed logins for {username}; wait {LOGIN_WINDOW_S // 60} minutes"),
                           where="username")
    try:
        op = auth.check_login(db, username, password)
    except Unauthorized as exc:
        _failed_logins[username] = recent + [now]
        audit.append(db, "login_failed", {"username": username})
        exc.commit_audit = True
        exc.message = t("用户名或密码错误", "wrong username or password")
        raise
    _failed_logins.pop(username, None)
    session.clear()
    session["username"], session["role"] = op.username, op.role
    session["seen"] = int(time.time())
    session.permanent = True
    audit.append(db, "login", {"username": op.username, "role": op.role})
    db.commit()
    return op


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site (no scheme, no host) may be a redirect target after login."""
    if not target:
        return None
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


@bp.post("/logout")
@requires("secretariat", "auditor", "display")
def logout_page():
    session.clear()
    flash(t("已退出。", "Logged out."), "ok")
    return redirect(url_for("console.login_page"))


@bp.get("/console")
@requires("secretariat", "auditor")
def home():
    return render_template("console/home.html")
