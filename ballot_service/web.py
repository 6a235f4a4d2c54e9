"""Web plumbing shared by every blueprint: the request's db session, one commit per
request, and one JSON error shape."""
from __future__ import annotations

from flask import Flask, current_app, g, jsonify, request
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from .errors import BallotError


def get_db() -> Session:
    if "db" not in g:
        g.db = current_app.extensions["ballot_sessionmaker"]()
    return g.db


def error_response(status: int, message: str, error_type: str, where: str | None = None):
    err = {"message": message, "errorType": error_type}
    if where:
        err["where"] = where
    return jsonify({"errors": [err]}), status


def register(app: Flask) -> None:
    @app.errorhandler(BallotError)
    def _ballot_error(exc: BallotError):
        db = g.get("db")
        if db is not None:
            db.rollback()
        return jsonify({"errors": [exc.to_dict()]}), exc.status

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):
        db = g.get("db")
        if db is not None:
            db.rollback()
        if exc.code == 413:
            limit = app.config["MAX_CONTENT_LENGTH"]
            return error_response(413, f"request body is larger than {limit} bytes", "PayloadTooLarge")
        wants_json = request.path.startswith("/api/") or request.is_json
        if not wants_json:
            return exc
        return error_response(exc.code or 500, exc.description or exc.name, exc.name.replace(" ", ""))

    import importlib

    for name in ("terminal", "secretariat", "display", "verify_page"):
        try:
            mod = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{name}":
                raise
            continue
        app.register_blueprint(mod.bp)
