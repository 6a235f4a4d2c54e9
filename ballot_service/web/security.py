"""Browser-session safety: CSRF protection and session expiry.

- HTML forms carry Flask-WTF's CSRF token (`{{ csrf_token() }}`); CSRFProtect checks it.
- Terminals and stations authenticate with a bearer credential, not a cookie, so CSRF does
  not apply to them, and their requests (/api/terminal/, /api/station/) get no cookie
  session at all.
- The secretariat's JSON API (/api/admin) is called with the login cookie: an unsafe request
  must be `Content-Type: application/json` (a cross-site form cannot send that without a
  CORS preflight, which we never grant), have no body and no Content-Type at all (an
  action such as "close the vote"), or carry a valid X-CSRFToken header. The cookie is
  also SameSite=Lax, so browsers do not send it on cross-site POSTs in the first place.
- A login lasts at most BALLOT_SESSION_HOURS (default 12) and ends after
  BALLOT_SESSION_IDLE_MINUTES (default 60) without a request.
"""
from __future__ import annotations

import time
from datetime import timedelta

from flask import Flask, current_app, request, session
from flask.sessions import SecureCookieSessionInterface
from flask_wtf.csrf import CSRFError, CSRFProtect, validate_csrf

from ballot_service.errors import Forbidden

csrf = CSRFProtect()
UNSAFE = ("POST", "PUT", "PATCH", "DELETE")
BEARER_PATHS = ("/api/terminal/", "/api/station/")  # terminals and stations: bearer credential only


class _SessionInterface(SecureCookieSessionInterface):
    """The login cookie's session, except on the terminal and station API: those requests
    authenticate with a bearer credential, so no cookie is read or written for them (a null
    session: reading it finds nothing, writing it fails)."""

    def open_session(self, app, request):
        if request.path.startswith(BEARER_PATHS):
            return self.make_null_session(app)
        return super().open_session(app, request)


def register(app: Flask) -> None:
    hours = app.config["SETTINGS"].session_hours
    app.config.update(
        PERMANENT_SESSION_LIFETIME=timedelta(hours=hours),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        WTF_CSRF_TIME_LIMIT=hours * 3600,
        # The API below checks its own way; forms are checked by csrf.protect() in _guard.
        WTF_CSRF_CHECK_DEFAULT=False,
    )
    csrf.init_app(app)

    app.session_interface = _SessionInterface()

    @app.before_request
    def _guard():
        path = request.path
        if path.startswith(BEARER_PATHS):
            return None  # bearer credential, no cookie (no session either: _SessionInterface)
        _expire_idle_session()
        if request.method not in UNSAFE:
            return None
        if path.startswith("/api/"):
            if not session.get("username"):
                return None  # not logged in: the view's role check answers 401
            if request.mimetype == "application/json":
                return None
            if not request.mimetype and not request.content_length:
                return None  # no body at all: a browser form always sends a Content-Type
            try:
                validate_csrf(request.headers.get("X-CSRFToken", ""))
            except Exception:
                raise Forbidden("send JSON (Content-Type: application/json) or a valid X-CSRFToken header",
                                where="headers") from None
            return None
        try:
            csrf.protect()
        except CSRFError as exc:
            raise Forbidden(f"the form has expired or was not sent from this site ({exc.description}); "
                            "reload the page and try again", where="csrf_token") from None
        return None


def _expire_idle_session() -> None:
    if not session.get("username"):
        return
    idle_minutes = current_app.config["SETTINGS"].session_idle_minutes
    now = int(time.time())
    seen = session.get("seen")
    if seen is not None and now - seen > idle_minutes * 60:
        session.clear()
        session["expired"] = True
        return
    if seen is None or now - seen >= 30:  # don't rewrite the cookie on every request
        session["seen"] = now
