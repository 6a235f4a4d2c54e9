"""Console operators: creating them, and checking a login against the password hash and the
rate limit. The audit log is the rate limit's memory, so it holds across workers and
restarts."""
from __future__ import annotations

import json
from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from ballot_service.db import utcnow
from ballot_service.domain import audit
from ballot_service.errors import Conflict, InvalidInput, Unauthorized
from ballot_service.models import AuditEvent, Operator, OperatorGrant
from ballot_service.vocab import OperatorRole

OPERATOR_ROLES = tuple(OperatorRole)
LOGIN_WINDOW_S, LOGIN_MAX_FAILURES = 300, 5


def create_operator(db: Session, username: str, password: str, role: str, body_id: int | None = None) -> Operator:
    """A login with one grant: `role` in body `body_id` (None: in every body; a superuser's
    grant is always so). grants.grant_role gives it more."""
    if role not in OPERATOR_ROLES:
        raise InvalidInput(f"role must be one of {', '.join(OPERATOR_ROLES)}", where="role",
                           zh=f"角色须为 {'、'.join(OPERATOR_ROLES)} 之一")
    if len(password) < 8:
        raise InvalidInput("password must have at least 8 characters", where="password", zh="密码至少须有 8 个字符")
    if db.scalar(select(Operator).where(Operator.username == username)):
        raise Conflict(f"operator {username} exists", where="username", zh=f"操作员 {username} 已存在")
    if role == OperatorRole.SUPERUSER:
        body_id = None
    op = Operator(username=username, password_hash=generate_password_hash(password))
    op.grants.append(OperatorGrant(role=role, body_id=body_id))
    db.add(op)
    db.flush()
    audit.append(db, "operator_created", {"username": username, "role": role, "body_id": body_id})
    return op


def check_login(db: Session, username: str, password: str) -> Operator:
    op = db.scalar(select(Operator).where(Operator.username == username))
    if op is None or not check_password_hash(op.password_hash, password):
        raise Unauthorized("wrong username or password", zh="用户名或密码错误")
    return op


def login_operator(db: Session, username: str, password: str) -> Operator:
    """The operator whose password this is, with a `login` audit event; else Unauthorized,
    audited as `login_failed` (the refusal carries commit_audit so the caller keeps that
    event). Refused without looking at the password after too many recent failures."""
    if recent_failed_logins(db, username) >= LOGIN_MAX_FAILURES:
        audit.append(db, "login_failed", {"username": username, "reason": "rate_limited"})
        exc = Unauthorized(f"too many failed logins for {username}; wait {LOGIN_WINDOW_S // 60} minutes",
                           where="username",
                           zh=f"{username} 登录失败次数过多，请 {LOGIN_WINDOW_S // 60} 分钟后再试")
        exc.commit_audit = True
        raise exc
    try:
        op = check_login(db, username, password)
    except Unauthorized as exc:
        audit.append(db, "login_failed", {"username": username, "reason": "wrong_password"})
        exc.commit_audit = True
        raise
    audit.append(db, "login", {"username": op.username, "role": op.role})
    return op


def recent_failed_logins(db: Session, username: str) -> int:
    """Wrong-password failures for `username` within the window, since its last success."""
    since = utcnow() - timedelta(seconds=LOGIN_WINDOW_S)
    events = db.execute(select(AuditEvent.kind, AuditEvent.data).where(
        AuditEvent.kind.in_(("login", "login_failed")), AuditEvent.at >= since).order_by(AuditEvent.seq)).all()
    failures = 0
    for kind, data in events:
        d = json.loads(data)
        if d.get("username") != username:
            continue
        if kind == "login":
            failures = 0
        elif d.get("reason") != "rate_limited":
            failures += 1
    return failures
