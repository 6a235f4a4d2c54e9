"""Who may call what, and in which body. Every view declares its roles and how its body is
found with @requires(..., body=…); create_app refuses to start if one does not
(check_every_route_declares_role).

`body` is a URL argument the body is read from ("body_id", "sitting_id", "item_id",
"terminal_id", "record_id", "job_id"), or one of:
- SERVICE: the service's own administration, in no body (a superuser, or a grant without a body);
- OWN: the view lists only the bodies the login reaches (visible_bodies());
- IN_FORM / IN_JSON: the body is the `body_id` field of the posted form / JSON object (a
  missing or malformed one is left to the view, which refuses it);
- CREDENTIAL: a terminal or station credential, which belongs to one sitting.

An operator's login is checked on every request against the database (load_operator): a
deleted or disabled operator, or a cookie of an older session version, is logged out."""
from __future__ import annotations

import functools
import json

from flask import Flask, current_app, g, request, session
from sqlalchemy import select, true
from sqlalchemy.orm import Session

from ballot_service.domain import print_jobs
from ballot_service.domain.grants import EVERY_BODY, may, reach
from ballot_service.domain.sittings import get_sitting
from ballot_service.domain.terminals import authenticate_terminal
from ballot_service.errors import Forbidden, NotFound, Unauthorized
from ballot_service.models import Item, Operator, Record, Sitting, Terminal
from ballot_service.numbers import MAX_ROW_ID
from ballot_service.vocab import OperatorRole, Role, TerminalKind, values
from ballot_service.web.common import get_db, json_body

ROLES = values(Role)
OPERATOR_ROLES = values(OperatorRole)
SERVICE, OWN, IN_FORM, IN_JSON, CREDENTIAL = "service", "own", "form:body_id", "json:body_id", "credential"


def _body_of_job(db, kw):
    state = print_jobs.read_job(db, kw["job_id"])
    item_id = json.loads(state).get("item_id") if state else None
    return _body_of_item(db, {"item_id": item_id}) if isinstance(item_id, int) else None


def _body_of_item(db, kw):
    return db.scalar(select(Sitting.body_id).join(Item, Item.sitting_id == Sitting.id)
                     .where(Item.id == kw["item_id"]))


# How each URL argument leads to its body (None: no such row).
BODY_FROM = {
    "body_id": lambda db, kw: kw["body_id"],
    "sitting_id": lambda db, kw: db.scalar(select(Sitting.body_id).where(Sitting.id == kw["sitting_id"])),
    "item_id": _body_of_item,
    "terminal_id": lambda db, kw: db.scalar(select(Sitting.body_id).join(Terminal, Terminal.sitting_id == Sitting.id)
                                            .where(Terminal.id == kw["terminal_id"])),
    "record_id": lambda db, kw: db.scalar(
        select(Sitting.body_id).join(Item, Item.sitting_id == Sitting.id).join(Record, Record.item_id == Item.id)
        .where(Record.id == kw["record_id"][:64])),
    "job_id": _body_of_job,
}
BODY_MODES = (SERVICE, OWN, IN_FORM, IN_JSON, CREDENTIAL, *BODY_FROM)


def requires(*roles: str, body: str | None = None):
    """Declare who may call a view, and how its body is found (module docstring). 'public'
    needs nothing; 'terminal'/'station' need a terminal credential (Authorization: Bearer …);
    the others an operator login with a grant in that body."""
    for r in roles:
        if r not in ROLES:
            raise ValueError(f"unknown role {r!r}")
    if body is not None and body not in BODY_MODES:
        raise ValueError(f"unknown body source {body!r}")

    def decorate(view):
        @functools.wraps(view)
        def wrapper(*args, **kwargs):
            if Role.PUBLIC not in roles:
                _authorise(roles, body, kwargs)
            return view(*args, **kwargs)

        wrapper.required_roles = roles
        wrapper.body_source = body
        return wrapper

    return decorate


def visible_bodies() -> set[int] | None:
    """The bodies this request's login reaches for the route's roles (None: every body)."""
    return g.get("reach", set())


def login_may(roles, body_id: int | None) -> bool:
    """May this request's login act in one of `roles` in body `body_id` (None: the service
    itself)? For what a page offers; the routes check for themselves."""
    return any(role in roles and (granted is None or granted == body_id) for role, granted in g.get("grants", ()))


def in_reach(body_column):
    """A WHERE clause keeping the rows of the bodies this request's login reaches."""
    bodies = visible_bodies()
    return true() if bodies is EVERY_BODY else body_column.in_(sorted(bodies))


def load_operator(db) -> Operator | None:
    """The operator this request's cookie logged in, if its session is still current: the
    operator exists, is not disabled, and the cookie's session version is the operator's."""
    username, version = session.get("username"), session.get("version")
    if not username:
        return None
    op = db.scalar(select(Operator).where(Operator.username == username))
    if op is None or op.disabled_at is not None or op.session_version != version:
        session.clear()
        return None
    return op


def _authorise(roles: tuple[str, ...], body: str | None, kwargs: dict) -> None:
    header = request.headers.get("Authorization", "")
    if header.startswith("Bearer ") and ({Role.TERMINAL, Role.STATION} & set(roles)):
        term = authenticate_terminal(get_db(), header[7:].strip())
        kind_role = Role.STATION if term.kind == TerminalKind.COUNTING_STATION else Role.TERMINAL
        if kind_role not in roles:
            raise Forbidden(f"a {term.kind} credential cannot call this endpoint", zh="此终端凭据无权调用该接口")
        g.terminal = term
        g.credential = header[7:].strip()
        return
    wanted = [r for r in roles if r in OPERATOR_ROLES]
    # The login is read in a read-only session of its own (no SQLite write lock), so the
    # view's transaction starts clean.
    with Session(bind=current_app.extensions["ballot_read_engine"]) as db:
        op = load_operator(db) if wanted else None
        if op is None:
            raise Unauthorized("login required" if wanted
                               else "a terminal credential is required (Authorization: Bearer …)",
                               zh="请先登录" if wanted else "需要终端凭据（Authorization: Bearer …）")
        bodies = reach(op, wanted)
        if bodies is not EVERY_BODY and not bodies:
            raise Forbidden(f"this login may not do this; it needs {' or '.join(wanted)}",
                            zh=f"此登录无权进行此操作，需要 {' 或 '.join(wanted)} 角色")
        if body == SERVICE and not may(op, wanted, None):
            raise Forbidden("only the service's administrator may do this", zh="仅系统管理员可进行此操作")
        if body in BODY_FROM:
            body_id = BODY_FROM[body](db, kwargs)
            if body_id is None:
                raise NotFound(f"no such {body.removesuffix('_id')}", where=body, zh="找不到该对象")
            if not may(op, wanted, body_id):
                raise _other_body()
        elif body in (IN_FORM, IN_JSON):
            body_id = _posted_body_id(body)
            if body_id is not None and not may(op, wanted, body_id):
                raise _other_body()
        g.login, g.operator, g.reach = op.username, op.username, bodies
        g.grants = [(gr.role, gr.body_id) for gr in op.grants]


def _posted_body_id(source: str) -> int | None:
    """The posted `body_id`, when it is a row id; else None (the view refuses it)."""
    if source == IN_FORM:
        raw = request.form.get("body_id", "").strip()
        value = int(raw) if raw.isascii() and raw.isdigit() and len(raw) <= 10 else None
    else:
        # Kept for the view: a body without Content-Length can be read from the stream only once.
        g.posted_json = json_body()
        value = g.posted_json.get("body_id")
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= MAX_ROW_ID:
        return None
    return value


def _other_body() -> Forbidden:
    return Forbidden("this belongs to a body your login does not serve", where="body",
                     zh="此内容属于您的登录无权访问的机构")


def check_every_route_declares_role(app: Flask) -> None:
    """Every route declares its roles, and every non-public one how its body is found."""
    missing = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static":
            continue
        view = app.view_functions[rule.endpoint]
        roles = getattr(view, "required_roles", None)
        if not roles:
            missing.append(f"{rule.rule} ({rule.endpoint}): no role")
        elif Role.PUBLIC not in roles and getattr(view, "body_source", None) is None:
            missing.append(f"{rule.rule} ({rule.endpoint}): no body")
        elif getattr(view, "body_source", None) in BODY_FROM and view.body_source not in rule.arguments:
            missing.append(f"{rule.rule} ({rule.endpoint}): body from {view.body_source}, not in the URL")
    if missing:
        raise RuntimeError("routes without a declared role or body: " + ", ".join(missing))


def credential_sitting(db: Session | None = None) -> Sitting:
    """The sitting of the tablet or station whose credential called (set by requires)."""
    return get_sitting(db if db is not None else get_db(), g.terminal.sitting_id)


def credential_call() -> tuple[dict, Session, Sitting]:
    """A tablet's or station's POST: its JSON body (read first, so a bad body is refused
    before the database is touched), the session and the credential's sitting."""
    data = json_body()
    db = get_db()
    return data, db, credential_sitting(db)
