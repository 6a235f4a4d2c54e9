"""Console operators: creating them, and checking a login: its size, its rate limits
(login_limits.py, in the database so they hold across workers and restarts) and the password
hash, in the same time whether the login exists or not."""
from __future__ import annotations

import datetime as dt
import functools
import re

from sqlalchemy import select
from sqlalchemy.orm import Session
from werkzeug.security import check_password_hash, generate_password_hash

from ballot_service.db import database_now, read_phase
from ballot_service.domain import audit, login_limits
from ballot_service.errors import Conflict, InvalidInput, TooManyRequests, Unauthorized
from ballot_service.models import Operator, OperatorGrant
from ballot_service.vocab import AuditKind, OperatorRole

OPERATOR_ROLES = tuple(OperatorRole)
MAX_USERNAME_CHARS = 64  # the column's length
MIN_PASSWORD_CHARS, MAX_PASSWORD_CHARS = 8, 256
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
LOGIN_WINDOW_S, LOGIN_MAX_FAILURES = login_limits.WINDOW_S, login_limits.PER_LOGIN


def create_operator(db: Session, username: str, password: str, role: str, body_id: int | None = None) -> Operator:
    """A login with one grant: `role` in body `body_id` (None: in every body; a superuser's
    grant is always so). grants.grant_role gives it more."""
    if role not in OPERATOR_ROLES:
        raise InvalidInput(f"role must be one of {', '.join(OPERATOR_ROLES)}", where="role",
                           zh=f"角色须为 {'、'.join(OPERATOR_ROLES)} 之一")
    check_sizes(username, password)
    check_new_password(password)
    if db.scalar(select(Operator).where(Operator.username == username)):
        raise Conflict(f"operator {username} exists", where="username", zh=f"操作员 {username} 已存在")
    if role == OperatorRole.SUPERUSER:
        body_id = None
    op = Operator(username=username, password_hash=generate_password_hash(password))
    op.grants.append(OperatorGrant(role=role, body_id=body_id))
    db.add(op)
    db.flush()
    audit.append(db, AuditKind.OPERATOR_CREATED, {"username": username, "role": role, "body_id": body_id})
    return op


def check_sizes(username: str, password: str) -> None:
    """Refuse a user name or password too long to be one, or holding what no database stores
    and no hash reads (NUL, a lone surrogate), before it is stored, looked up or hashed."""
    if not username or len(username) > MAX_USERNAME_CHARS:
        raise InvalidInput(f"username must have 1 to {MAX_USERNAME_CHARS} characters", where="username",
                           zh=f"用户名须为 1 至 {MAX_USERNAME_CHARS} 个字符")
    if len(password) > MAX_PASSWORD_CHARS:
        raise InvalidInput(f"password must have at most {MAX_PASSWORD_CHARS} characters", where="password",
                           zh=f"密码不得超过 {MAX_PASSWORD_CHARS} 个字符")
    for where, text in (("username", username), ("password", password)):
        if _UNSTORABLE.search(text):
            raise InvalidInput(f"the {where} holds NUL (U+0000) or a lone surrogate", where=where,
                               zh=f"{'用户名' if where == 'username' else '密码'}含有空字符（U+0000）或孤立代理码位")


def check_new_password(password: str) -> None:
    """A password to be set (a new operator's, or `operator passwd`): long enough, and no
    longer or stranger than a login would accept (check_sizes)."""
    check_sizes("-", password)
    if len(password) < MIN_PASSWORD_CHARS:
        raise InvalidInput(f"password must have at least {MIN_PASSWORD_CHARS} characters", where="password",
                           zh=f"密码至少须有 {MIN_PASSWORD_CHARS} 个字符")


@functools.cache
def _dummy_hash() -> str:
    """A hash of no one's password, checked for an unknown login so it costs what a known one
    does (the answer's time does not tell which logins exist)."""
    return generate_password_hash("no such operator: a dummy password")


def check_login(db: Session, username: str, password: str) -> Operator:
    op = db.scalar(select(Operator).where(Operator.username == username))
    good = check_password_hash(op.password_hash if op is not None else _dummy_hash(), password)
    if op is None or not good:
        raise Unauthorized("wrong username or password", zh="用户名或密码错误")
    return op


def login_operator(db: Session, username: str, password: str, source: str | None) -> Operator:
    """The operator whose password this is, with a `login` audit event. Else: InvalidInput
    for a name or password too long (nothing stored), TooManyRequests while a rate limit of
    login_limits refuses this name or `source` (the client's address; the password is not
    looked at), Unauthorized for a wrong password, whose failure is stored in login_failures
    (never in an audit chain: the refusal carries commit_audit so the caller keeps it)."""
    check_sizes(username, password)
    source = login_limits.source_of(source)
    # Reads and the password hash outside SQLite's write lock: casts do not wait for them.
    with read_phase(db):
        now = database_now(db)
        refused = login_limits.refusal(db, username, source, now)
        if refused is None:
            try:
                op = check_login(db, username, password)
            except Unauthorized as exc:
                failed = exc
            else:
                failed = None
    if refused is not None:
        raise _too_many(refused, username)
    if failed is not None:
        login_limits.record_failure(db, username, source, database_now(db))
        failed.commit_audit = True
        raise failed
    login_limits.forget_failures(db, username, source)
    audit.append(db, AuditKind.LOGIN, {"username": op.username, "role": op.role})
    return op


def _too_many(refused: str, username: str) -> TooManyRequests:
    minutes = LOGIN_WINDOW_S // 60
    if refused == "login":
        shown = login_limits.shown_name(username)
        return TooManyRequests(
            f"too many failed logins for {shown} from this computer; wait {minutes} minutes, log in from "
            f"another computer, or ask the administrator to run `ballot-service operator unlock`",
            where="username", zh=f"{shown} 在本机登录失败次数过多：请 {minutes} 分钟后再试，或换一台电脑登录，"
                                 f"或请管理员解除锁定（ballot-service operator unlock）")
    return TooManyRequests(
        f"too many failed logins from this address; wait {minutes} minutes or log in from another computer",
        where="source", zh=f"本机地址登录失败次数过多：请 {minutes} 分钟后再试，或换一台电脑登录")


def recent_failed_logins(db: Session, username: str, source: str | None = None) -> int:
    """Wrong passwords for `username` (from `source`, or from anywhere) within the window,
    since its last success from there, on the database's clock."""
    since = database_now(db) - dt.timedelta(seconds=LOGIN_WINDOW_S)
    return login_limits.failures_since(db, username, since, login_limits.source_of(source) if source else None)
