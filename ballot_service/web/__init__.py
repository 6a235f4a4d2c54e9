"""The web layer: thin blueprints by audience that parse a request, call the domain and
render. `register` wires them into the app explicitly (as flaskr does) with one error shape."""
from __future__ import annotations

from flask import Flask, g, jsonify, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException
from werkzeug.routing import IntegerConverter

from ballot_service.config import private_dir
from ballot_service.errors import BallotError
from ballot_service.web import (
    admin_api,
    console,
    display,
    i18n,
    notice_page,
    seat,
    security,
    station_api,
    station_page,
    station_scan_api,
    terminal_api,
    tls_page,
    verify_page,
)
from ballot_service.web.common import MAX_ROW_ID, error_response, finish_refusal, wants_json
from ballot_service.web.roles import check_every_route_declares_role

BLUEPRINTS = (terminal_api.bp, station_api.bp, station_scan_api.bp, station_page.bp, admin_api.bp, console.bp,
              display.bp, seat.bp, verify_page.bp, tls_page.bp, notice_page.bp)


class IdConverter(IntegerConverter):
    """`<int:…>` in every route: a row id, 1 ≤ id ≤ 2^31-1 (common.MAX_ROW_ID; a larger number
    is no row: 404, never an out-of-range error from PostgreSQL's INTEGER)."""

    def __init__(self, map, **kwargs):
        kwargs.setdefault("min", 1)
        kwargs.setdefault("max", MAX_ROW_ID)
        super().__init__(map, **kwargs)


def register(app: Flask) -> None:
    app.url_map.converters["int"] = IdConverter
    private_dir(app.config["SETTINGS"].instance_path)  # uploads, print jobs, the session key: 0700
    i18n.register(app)
    security.register(app)

    @app.errorhandler(BallotError)
    def _ballot_error(exc: BallotError):
        finish_refusal(exc)
        if wants_json():
            problems = getattr(exc, "problems", None) or [exc]  # a file's every error (roster.py)
            return jsonify({"errors": [p.to_dict() for p in problems]}), exc.status
        if exc.status == 401:
            return redirect(url_for("console.login_page", next=request.full_path))
        return render_template("error.html", status=exc.status, error=exc), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        db = g.get("db")
        if db is not None:
            db.rollback()
        if exc.code == 413:
            limit = request.max_content_length
            return error_response(413, f"request body is larger than {limit} bytes", "PayloadTooLarge")
        if not wants_json():
            resp = app.make_response((render_template("error.html", status=exc.code, error=exc), exc.code))
        else:
            resp = app.make_response(error_response(exc.code or 500, exc.description or exc.name,
                                                    exc.name.replace(" ", "")))
        allow = getattr(exc, "valid_methods", None)
        if exc.code == 405 and allow:
            resp.headers["Allow"] = ", ".join(allow)  # RFC 9110: a 405 names the methods there are
        return resp

    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
    check_every_route_declares_role(app)
