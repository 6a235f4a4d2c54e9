"""Web plumbing shared by every blueprint: the request's db session, one commit per
request, one JSON error shape, and the operator's login session."""
from __future__ import annotations

import json
import time

from flask import current_app, g, jsonify, request, session
from sqlalchemy.orm import Session

from ballot_service.errors import BallotError, InvalidInput


def get_db() -> Session:
    if "db" not in g:
        g.db = current_app.extensions["ballot_sessionmaker"]()
    return g.db


def settings():
    """The app's Settings (config.py)."""
    return current_app.config["SETTINGS"]


def json_body() -> dict:
    """The request's JSON object, or a clear 400 saying what is wrong with it."""
    return parse_json_object(request.get_data())


def parse_json_object(raw: bytes) -> dict:
    """A request body that must be one JSON object (cast_endpoint.py reads its body itself)."""
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


def start_operator_session(op) -> None:
    """Log `op` in: a fresh session cookie holding the operator's name and role
    (security.py ends it after the idle time)."""
    session.clear()
    session["username"], session["role"] = op.username, op.role
    session["seen"] = int(time.time())
    session.permanent = True
