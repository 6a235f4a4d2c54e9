"""Web plumbing shared by every blueprint: the request's db session, one commit per
request, and one JSON error shape."""
from __future__ import annotations

import json

from flask import Flask, current_app, g, jsonify, redirect, render_template, request, url_for
from sqlalchemy.orm import Session
from werkzeug.exceptions import HTTPException

from .errors import BallotError


def get_db() -> Session:
    if "db" not in g:
        g.db = current_app.extensions["ballot_sessionmaker"]()
    return g.db


def json_body(max_keys: int = 100) -> dict:
    """The request's JSON object, or a clear 400 saying what is wrong with it."""
    return parse_json_object(request.get_data())


def parse_json_object(raw: bytes) -> dict:
    """A request body that must be one JSON object (cast_endpoint.py reads its body itself)."""
    from .errors import InvalidInput

    if not raw:
        raise InvalidInput("request body is empty; send a JSON object", where="body")
    try:
        data = json.loads(raw)
    except ValueError:  # UnicodeDecodeError included
        raise InvalidInput("request body is not valid JSON", where="body") from None
    if not isinstance(data, dict):
        raise InvalidInput(f"request body must be a JSON object, not {type(data).__name__}", where="body")
    return data


def field(data: dict, name: str, kind: type | tuple, required: bool = True, default=None):
    """Read one field with its type checked (bool is not accepted as int)."""
    from .errors import InvalidInput

    if name not in data or data[name] is None:
        if required:
            raise InvalidInput(f"missing field {name!r}", where=name)
        return default
    value = data[name]
    kinds = kind if isinstance(kind, tuple) else (kind,)
    if (isinstance(value, bool) and bool not in kinds) or not isinstance(value, kinds):
        names = " or ".join(k.__name__ for k in kinds)
        raise InvalidInput(f"field {name!r} must be {names}, not {type(value).__name__}", where=name)
    return value


def commit() -> None:
    get_db().commit()


def error_body(message: str, error_type: str, where: str | None = None) -> dict:
    """The one error shape, for an error that is not a BallotError (see BallotError.to_dict)."""
    err = {"message": message, "errorType": error_type}
    if where:
        err["where"] = where
    return {"errors": [err]}


def error_response(status: int, message: str, error_type: str, where: str | None = None):
    return jsonify(error_body(message, error_type, where)), status


def wants_json() -> bool:
    return request.path.startswith("/api/") or request.is_json


def finish_refusal(exc: BallotError, db: Session | None = None) -> None:
    """End the request's transaction (`db`, else the request's session) after a refusal: it
    keeps its audit event and refusal count when the domain asked for that (commit_audit),
    and nothing else."""
    db = db if db is not None else g.get("db")
    if db is not None:
        if getattr(exc, "commit_audit", False):
            db.commit()
        else:
            db.rollback()


def register(app: Flask) -> None:
    from . import i18n, security

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

    import importlib

    for name in ("terminal", "secretariat", "console", "display", "seat", "verify_page"):
        try:
            mod = importlib.import_module(f"{__package__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__package__}.{name}":
                raise
            continue
        app.register_blueprint(mod.bp)

    from .auth import check_every_route_declares_role

    check_every_route_declares_role(app)
