"""Who may call what. Every view declares its role with @requires(...); create_app refuses
to start if one does not (check_every_route_declares_role)."""
from __future__ import annotations

import functools
import hashlib
import secrets

from flask import Flask, g, request, session
from sqlalchemy import bindparam, select
from werkzeug.security import check_password_hash, generate_password_hash

from . import audit
from .db import read_phase, utcnow
from .errors import Conflict, Forbidden, InvalidInput, Unauthorized
from .models import Body, Operator, Sitting, Terminal

ROLES = ("public", "secretariat", "auditor", "display", "terminal", "station")
OPERATOR_ROLES = ("secretariat", "auditor", "display")


def requires(*roles: str):
    """Declare who may call a view. 'public' needs nothing; 'terminal'/'station' need a
    terminal credential (Authorization: Bearer …); the others an operator login."""
    for r in roles:
        if r not in ROLES:
            raise ValueError(f"unknown role {r!r}")

    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            if "public" not in roles:
                _authorise(roles)
            return view(*args, **kwargs)

        wrapper.required_roles = roles
        return wrapper

    return decorate


def _authorise(roles: tuple[str, ...]) -> None:
    from .web import get_db

    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer ") and ({"terminal", "station"} & set(roles)):
        term = authenticate_terminal(get_db(), header[7:].strip())
        kind_role = "station" if term.kind == "counting_station" else "terminal"
        if kind_role not in roles:
            raise Forbidden(f"a {term.kind} credential cannot call this endpoint")
        g.terminal = term
        g.credential = header[7:].strip()
        return
    op_role = session.get("role")
    if op_role and op_role in roles:
        g.operator = session.get("username")
        return
    if op_role:
        raise Forbidden(f"the role {op_role} may not do this; it needs {' or '.join(roles)}")
    raise Unauthorized("login required" if not ({"terminal", "station"} & set(roles))
                       else "a terminal credential is required (Authorization: Bearer …)")


def check_every_route_declares_role(app: Flask) -> None:
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        view = app.view_functions[rule.endpoint]
        if not getattr(view, "required_roles", None):
            missing.append(f"{rule.rule} ({rule.endpoint})")
    if missing:
        raise RuntimeError("routes without a declared role: " + ", ".join(missing))


# --- terminals -------------------------------------------------------------------------

def credential_hash(credential: str) -> str:
    return hashlib.sha256(credential.encode("utf-8")).hexdigest()


def register_terminal(db, sitting, name: str, kind: str, seat: str | None = None) -> tuple[Terminal, str]:
    """Register a seat terminal or counting station; returns it with its one-time credential.
    Only the credential's hash and the public half of its sealing key are stored."""
    from .sealing import credential_keypair

    if kind not in ("seat", "counting_station"):
        raise InvalidInput("kind must be seat or counting_station", where="kind")
    if not name:
        raise InvalidInput("terminal name is empty", where="name")
    if kind == "seat" and seat:
        clash = db.scalar(select(Terminal).where(Terminal.sitting_id == sitting.id, Terminal.seat == seat,
                                                 Terminal.revoked_at.is_(None)))
        if clash:
            raise Conflict(f"seat {seat} already has terminal {clash.name}", where="seat")
    credential = secrets.token_urlsafe(32)
    _, public = credential_keypair(credential)
    term = Terminal(sitting_id=sitting.id, name=name, kind=kind, seat=seat,
                    credential_hash=credential_hash(credential), seal_public_key=public)
    db.add(term)
    db.flush()
    audit.append(db, "terminal_registered", {"terminal_id": term.id, "name": name, "kind": kind, "seat": seat},
                 sitting_id=sitting.id)
    return term, credential


# Built once: runs for every terminal request. Loads the terminal's session and body too.
_TERMINAL_BY_CREDENTIAL = (
    select(Terminal, Sitting, Body).join(Sitting, Sitting.id == Terminal.sitting_id)
    .join(Body, Body.id == Sitting.body_id).where(Terminal.credential_hash == bindparam("h"))
    .execution_options(populate_existing=True))


def authenticate_terminal(db, credential: str) -> Terminal:
    """The live (unrevoked) terminal holding `credential`, else Unauthorized.

    A read phase (db.read_phase): on SQLite this lookup neither takes nor waits for the
    write lock, so a terminal's request is not queued behind the casts being stored. The
    same query loads the terminal's session and body, so the view's get_sitting() and
    sitting.body are answered from the identity map without starting a transaction: a cast
    then takes the write lock only when it stores (intake.accept). Revocation is read from
    the database on every request (no cache), so it takes effect at once in every worker."""
    with read_phase(db):
        row = db.execute(_TERMINAL_BY_CREDENTIAL, {"h": credential_hash(credential)}).first()
    if row is None:
        raise Unauthorized("unknown terminal credential")
    # The session's identity map holds objects weakly: keep the session and body for the
    # request, so get_sitting() finds them there.
    db.info.setdefault("authenticated_terminal", []).append(tuple(row))
    term = row[0]
    if term.revoked_at is not None:
        raise Unauthorized(f"terminal {term.name} was revoked")
    return term


def revoke_terminal(db, term: Terminal) -> None:
    if term.revoked_at is None:
        term.revoked_at = utcnow()
        db.flush()
        audit.append(db, "terminal_revoked", {"terminal_id": term.id, "name": term.name},
                     sitting_id=term.sitting_id)


# --- operators -------------------------------------------------------------------------

def create_operator(db, username: str, password: str, role: str) -> Operator:
    if role not in OPERATOR_ROLES:
        raise InvalidInput(f"role must be one of {', '.join(OPERATOR_ROLES)}", where="role")
    if len(password) < 8:
        raise InvalidInput("password must have at least 8 characters", where="password")
    if db.scalar(select(Operator).where(Operator.username == username)):
        raise Conflict(f"operator {username} exists", where="username")
    op = Operator(username=username, password_hash=generate_password_hash(password), role=role)
    db.add(op)
    db.flush()
    audit.append(db, "operator_created", {"username": username, "role": role})
    return op


def check_login(db, username: str, password: str) -> Operator:
    op = db.scalar(select(Operator).where(Operator.username == username))
    if op is None or not check_password_hash(op.password_hash, password):
        raise Unauthorized("wrong username or password")
    return op
