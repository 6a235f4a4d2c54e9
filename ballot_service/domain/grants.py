"""What an operator may do, and where: roles granted per body (OperatorGrant), and the
changes that end every login of an operator at once (a grant given or taken, a new password,
disabling, logging out) by bumping its session version.

`reach(op, roles)` is the one answer every route's check and every filtered list asks: the
bodies in which the operator holds one of `roles`, or EVERY_BODY."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import generate_password_hash

from ballot_service.db import utcnow
from ballot_service.domain import audit, login_limits, operators
from ballot_service.domain.sittings import get_body
from ballot_service.errors import InvalidInput, NotFound
from ballot_service.models import Operator, OperatorGrant
from ballot_service.vocab import AuditKind, OperatorRole

EVERY_BODY = None  # reach() of a grant without a body


def get_operator(db: Session, username: str) -> Operator:
    op = db.scalar(select(Operator).where(Operator.username == username))
    if op is None:
        raise NotFound(f"no operator {username}", where="username", zh=f"找不到操作员 {username}")
    return op


def reach(op: Operator, roles) -> set[int] | None:
    """Ids of the bodies where `op` holds one of `roles`; EVERY_BODY (None) if a grant without
    a body holds one. A disabled operator reaches nothing."""
    if op.disabled_at is not None:
        return set()
    grants = [g for g in op.grants if g.role in roles]
    if any(g.body_id is None for g in grants):
        return EVERY_BODY
    return {g.body_id for g in grants}


def may(op: Operator, roles, body_id: int | None) -> bool:
    """May `op` act in one of `roles` in body `body_id` (None: the service itself, no body)?"""
    bodies = reach(op, roles)
    return bodies is EVERY_BODY or (body_id is not None and body_id in bodies)


def end_logins(db: Session, op: Operator, why: str) -> None:
    """End every existing login of `op` (their cookies carry the old version)."""
    op.session_version = (op.session_version or 0) + 1
    audit.append(db, AuditKind.OPERATOR_LOGINS_ENDED, {"username": op.username, "why": why})


def _role(role: str) -> str:
    if role not in tuple(OperatorRole):
        raise InvalidInput(f"role must be one of {', '.join(OperatorRole)}", where="role",
                           zh=f"角色须为 {'、'.join(OperatorRole)} 之一")
    return role


def grant_role(db: Session, op: Operator, role: str, body_id: int | None) -> OperatorGrant:
    """Give `op` the role `role` in body `body_id` (None: every body). Idempotent."""
    if _role(role) == OperatorRole.SUPERUSER:
        body_id = None
    elif body_id is not None:
        get_body(db, body_id)
    for g in op.grants:
        if g.role == role and g.body_id == body_id:
            return g
    grant = OperatorGrant(role=role, body_id=body_id)
    op.grants.append(grant)
    db.flush()
    audit.append(db, AuditKind.OPERATOR_GRANTED, {"username": op.username, "role": role, "body_id": body_id})
    end_logins(db, op, "grant")
    return grant


def revoke_role(db: Session, op: Operator, role: str, body_id: int | None) -> int:
    """Take the role `role` in body `body_id` (None: the every-body grant) from `op`; the number
    of grants taken (0 or 1)."""
    _role(role)
    gone = [g for g in op.grants if g.role == role and g.body_id == body_id]
    for g in gone:
        op.grants.remove(g)
    if gone:
        db.flush()
        audit.append(db, AuditKind.OPERATOR_REVOKED, {"username": op.username, "role": role, "body_id": body_id})
        end_logins(db, op, "revoke")
    return len(gone)


def set_disabled(db: Session, op: Operator, disabled: bool) -> None:
    if disabled and op.disabled_at is None:
        op.disabled_at = utcnow()
        end_logins(db, op, "disabled")
    elif not disabled and op.disabled_at is not None:
        op.disabled_at = None
        audit.append(db, AuditKind.OPERATOR_ENABLED, {"username": op.username})


def set_password(db: Session, op: Operator, password: str) -> None:
    operators.check_new_password(password)
    op.password_hash = generate_password_hash(password)
    end_logins(db, op, "password")


def describe(op: Operator, body_names: dict[int, str]) -> list[str]:
    """The operator's grants as `role@body` words (`role@*` for every body)."""
    return [f"{g.role}@{'*' if g.body_id is None else body_names.get(g.body_id, g.body_id)}" for g in op.grants]


def serves_only(op: Operator, body_id: int) -> bool:
    """Is every grant of `op` in body `body_id` (a login of that body alone)?"""
    return bool(op.grants) and all(g.body_id == body_id for g in op.grants)


def unlock_login(db: Session, username: str) -> int:
    """Let a login locked out after failed attempts (login_limits) try again at once, from
    every address; the number of lockouts lifted. Recorded on the server's chain."""
    get_operator(db, username)
    lifted = login_limits.unlock_login(db, username)
    audit.append(db, AuditKind.LOGIN_UNLOCKED, {"username": username, "lockouts": lifted})
    return lifted
