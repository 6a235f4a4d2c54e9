"""Who may call what. Every view declares its role with @requires(...); create_app refuses
to start if one does not (check_every_route_declares_role)."""
from __future__ import annotations

import functools

from flask import Flask, g, request, session

from ballot_service.domain.terminals import authenticate_terminal
from ballot_service.errors import Forbidden, Unauthorized
from ballot_service.web.common import get_db

ROLES = ("public", "secretariat", "auditor", "display", "terminal", "station")


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
