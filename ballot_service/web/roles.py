"""Who may call what. Every view declares its role with @requires(...); create_app refuses
to start if one does not (check_every_route_declares_role)."""
from __future__ import annotations

import functools
import hashlib
import secrets
from typing import NamedTuple

from flask import Flask, g, request, session
from sqlalchemy import bindparam, select
from werkzeug.security import check_password_hash, generate_password_hash

from ballot_service.db import read_phase, utcnow
from ballot_service.domain import audit
from ballot_service.errors import Conflict, Forbidden, InvalidInput, Unauthorized
from ballot_service.models import Operator, Sitting, Terminal

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
    from ballot_service.web.common import get_db

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
        raise Forbidden(f"the role {op_role} may not do this; it needs {' or '.join(roles)}",
                        zh=f"{op_role} 角色无权进行此操作，需要 {' 或 '.join(roles)} 角色")
    raise Unauthorized("login required" if not ({"terminal", "station"} & set(roles))
                       else "a terminal credential is required (Authorization: Bearer …)",
                       zh="请先登录" if not ({"terminal", "station"} & set(roles))
                       else "需要终端凭据（Authorization: Bearer …）")


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
    from ballot_service.crypto.sealing import credential_keypair
    from ballot_service.domain.sittings import (
        require_open,  # sittings → audit → …: imported here, not at the top
    )

    require_open(db, sitting, "登记终端", "registering a terminal")
    if kind not in ("seat", "counting_station"):
        raise InvalidInput("kind must be seat or counting_station", where="kind",
                           zh="终端类型须为 seat（表决器）或 counting_station（计票站）")
    if not name:
        raise InvalidInput("terminal name is empty", where="name", zh="终端名称不能为空")
    if kind == "seat" and seat:
        clash = db.scalar(select(Terminal).where(Terminal.sitting_id == sitting.id, Terminal.seat == seat,
                                                 Terminal.revoked_at.is_(None)))
        if clash:
            raise Conflict(f"seat {seat} already has terminal {clash.name}", where="seat",
                           zh=f"座位 {seat} 已登记终端 {clash.name}")
    credential = secrets.token_urlsafe(32)
    _, public = credential_keypair(credential)
    term = Terminal(sitting_id=sitting.id, name=name, kind=kind, seat=seat,
                    credential_hash=credential_hash(credential), seal_public_key=public)
    db.add(term)
    db.flush()
    audit.append(db, "terminal_registered", {"terminal_id": term.id, "name": name, "kind": kind, "seat": seat},
                 sitting_id=sitting.id)
    return term, credential


class TerminalIdentity(NamedTuple):
    """Who a terminal request comes from: the terminal's plain facts and its session's body."""

    id: int
    sitting_id: int
    body_id: int
    kind: str
    name: str
    seat: str | None
    revoked_at: object


# Built once: runs for every terminal request. Plain columns, no ORM objects.
_TERMINAL_BY_CREDENTIAL = (
    select(Terminal.id, Terminal.sitting_id, Sitting.body_id, Terminal.kind, Terminal.name, Terminal.seat,
           Terminal.revoked_at)
    .join(Sitting, Sitting.id == Terminal.sitting_id).where(Terminal.credential_hash == bindparam("h")))
_terminal_sql: dict = {}  # SQLite dialect -> the statement above as SQL text


def authenticate_terminal(db, credential: str) -> TerminalIdentity:
    """The live (unrevoked) terminal holding `credential`, else Unauthorized.

    Revocation is read from the database on every request (no cache), so it takes effect at
    once in every worker. SQLite: one plain SELECT on a pooled connection outside any
    transaction (WAL: it sees the last commit and neither takes nor waits for the write
    lock); the request's session is not touched. Elsewhere: a read phase of the session."""
    h = credential_hash(credential)
    engine = db.get_bind()
    if engine.dialect.name == "sqlite":
        sql = _terminal_sql.get(engine.dialect)
        if sql is None:
            sql = _terminal_sql[engine.dialect] = str(_TERMINAL_BY_CREDENTIAL.compile(dialect=engine.dialect))
        raw = engine.raw_connection()
        try:
            found = raw.driver_connection.execute(sql, (h,)).fetchone()
        finally:
            raw.close()
    else:
        with read_phase(db):
            found = db.execute(_TERMINAL_BY_CREDENTIAL, {"h": h}).first()
    if found is None:
        raise Unauthorized("unknown terminal credential")
    term = TerminalIdentity(*found)
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
        raise InvalidInput(f"role must be one of {', '.join(OPERATOR_ROLES)}", where="role",
                           zh=f"角色须为 {'、'.join(OPERATOR_ROLES)} 之一")
    if len(password) < 8:
        raise InvalidInput("password must have at least 8 characters", where="password", zh="密码至少须有 8 个字符")
    if db.scalar(select(Operator).where(Operator.username == username)):
        raise Conflict(f"operator {username} exists", where="username", zh=f"操作员 {username} 已存在")
    op = Operator(username=username, password_hash=generate_password_hash(password), role=role)
    db.add(op)
    db.flush()
    audit.append(db, "operator_created", {"username": username, "role": role})
    return op


def check_login(db, username: str, password: str) -> Operator:
    op = db.scalar(select(Operator).where(Operator.username == username))
    if op is None or not check_password_hash(op.password_hash, password):
        raise Unauthorized("wrong username or password", zh="用户名或密码错误")
    return op
