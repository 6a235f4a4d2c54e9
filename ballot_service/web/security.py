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
- Every state-changing request that carries the session cookie (a form or an API call, with a
  body or without) must come from this site: its Origin header, or its Referer when there is
  no Origin, must name the host the request was sent to or BALLOT_PUBLIC_URL. A request
  naming another site, or `Origin: null`, is refused (403) before anything changes. (A
  client that sends neither header is not a browser on a web page; the cookie's SameSite
  and the rules above still hold for it.) Requests without a cookie (terminal and station
  credentials) are not affected.
- Answers: every HTML page has a Content-Security-Policy (scripts and styles only from
  /static, no framing) and X-Frame-Options DENY; every /api/ answer and every HTML page is
  `Cache-Control: no-store` (terminal credentials are shown on a console page; operator
  pages and API answers hold names and votes).
- A login lasts at most BALLOT_SESSION_HOURS (default 12) and ends after
  BALLOT_SESSION_IDLE_MINUTES (default 60) without a request.
"""
from __future__ import annotations

import time
from datetime import timedelta
from urllib.parse import urlsplit

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
    app.after_request(secure_headers)

    @app.before_request
    def _guard():
        path = request.path
        if path.startswith(BEARER_PATHS):
            return None  # bearer credential, no cookie (no session either: _SessionInterface)
        _expire_idle_session()
        if request.method not in UNSAFE:
            return None
        if app.config["SESSION_COOKIE_NAME"] in request.cookies:
            _check_origin()
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
                                where="headers", zh="请求须为 JSON（Content-Type: application/json）或带有效的 X-CSRFToken 头") from None
            return None
        try:
            csrf.protect()
        except CSRFError as exc:
            raise Forbidden(f"the form has expired or was not sent from this site ({exc.description}); "
                            "reload the page and try again", where="csrf_token", zh="表单已过期或不是从本站提交的，请刷新页面后重试") from None
        return None


CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; "
       "frame-ancestors 'none'")


def secure_headers(response):
    """The answer headers described in the module docstring (an after_request hook)."""
    html = response.mimetype == "text/html"
    if html:
        response.headers.setdefault("Content-Security-Policy", CSP)
        response.headers.setdefault("X-Frame-Options", "DENY")
    if html or request.path.startswith("/api/"):
        response.headers["Cache-Control"] = "no-store"
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    return response


def _host_of(url: str) -> tuple[str, int | None] | None:
    """(host, port as written) of an http(s) URL, or None when it is not one. The scheme is
    left out: behind a proxy that ends TLS the browser says https and the server sees http."""
    try:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            return None
        return parts.hostname.lower(), parts.port
    except ValueError:  # a port that is not a number
        return None


def _check_origin() -> None:
    """Refuse a cookie-carrying unsafe request whose Origin (else Referer) is another site."""
    origin = request.headers.get("Origin")
    header = "Origin"
    if origin is None:
        origin, header = request.referrer, "Referer"
        if origin is None:
            return
    allowed = {_host_of(request.host_url), _host_of(current_app.config["SETTINGS"].public_url or "")} - {None}
    if _host_of(origin) not in allowed:
        raise Forbidden(f"this request came from another site ({header}: {origin[:200]}); "
                        f"it must come from {request.host_url.rstrip('/')}", where=header,
                        zh=f"该请求来自其他网站（{header}: {origin[:200]}），已拒绝")


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
