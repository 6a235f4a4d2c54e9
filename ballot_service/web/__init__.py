"""The web layer: thin blueprints by audience that parse a request, call the domain and
render. `register` wires them into the app explicitly (as flaskr does) with one error shape."""
from __future__ import annotations

from flask import Flask, g, jsonify, redirect, render_template, request, url_for
from werkzeug.exceptions import HTTPException

from ballot_service.errors import BallotError
from ballot_service.web import (
    admin_api,
    console,
    display,
    i18n,
    seat,
    security,
    station_api,
    terminal_api,
    tls_page,
    verify_page,
)
from ballot_service.web.common import error_response, finish_refusal, wants_json
from ballot_service.web.roles import check_every_route_declares_role

BLUEPRINTS = (terminal_api.bp, station_api.bp, admin_api.bp, console.bp, display.bp, seat.bp, verify_page.bp,
              tls_page.bp)


def register(app: Flask) -> None:
    i18n.register(app)
    security.register(app)

    @app.errorhandler(BallotError)
    def _ballot_error(exc: BallotError):
        finish_refusal(exc)
        if wants_json():
            return jsonify({"errors": [exc.to_dict()]}), exc.status
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
            return render_template("error.html", status=exc.code, error=exc), exc.code
        return error_response(exc.code or 500, exc.description or exc.name, exc.name.replace(" ", ""))

    for bp in BLUEPRINTS:
        app.register_blueprint(bp)
    check_every_route_declares_role(app)
