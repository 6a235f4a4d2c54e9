"""The console login's rate limits, kept in the database (login_failures, login_locks) so they
hold across workers, app nodes and restarts, and timed by the database's clock.

Policy (README, "Logging in"): an attacker on the hall network must not be able to lock the
secretariat out, so a lockout applies to the source address that failed, never to a login
everywhere:

- PER_LOGIN wrong passwords for one user name from one source within WINDOW_S lock that
  name from that source for WINDOW_S; the right password from another source still works.
- PER_SOURCE failures from one source (whatever the names) lock that source for WINDOW_S.
- OVERALL failures from all sources within WINDOW_S (many addresses guessing): a source
  with a failure in the window is refused until it ages out, so each address has one guess
  per window, while a source that has not failed (the secretariat's PC) logs in at once.

A failure stores its time, source and the user name escaped and cut short (shown_name): the
attacker chooses that text. Rows older than the window are pruned at each failure and the
table never holds more than MAX_ROWS.
"""
from __future__ import annotations

import datetime as dt
import unicodedata

from sqlalchemy import delete, func, or_, select
from sqlalchemy.orm import Session

from ballot_service.formats.names import REFUSED_CATEGORIES
from ballot_service.models import LoginFailure, LoginLock

WINDOW_S = 300
PER_LOGIN, PER_SOURCE, OVERALL = 5, 20, 100
MAX_ROWS = 5000
SHOWN_CHARS, STORED_CHARS = 64, 100  # of the user name: read, and stored once escaped (the column)
SOURCE_CHARS = 64
_ESCAPED = REFUSED_CATEGORIES | {"Zs", "Cn"}


def shown_name(username: str) -> str:
    """The user name as stored: its first SHOWN_CHARS characters with controls, invisible,
    direction and space characters (but the plain space) and backslashes escaped, cut to the
    column's STORED_CHARS."""
    out = []
    for ch in username[:SHOWN_CHARS]:
        if ch == "\\":
            out.append("\\\\")
        elif ch != " " and unicodedata.category(ch) in _ESCAPED:
            out.append(f"\\u{ord(ch):04x}" if ord(ch) <= 0xFFFF else f"\\U{ord(ch):08x}")
        else:
            out.append(ch)
    return "".join(out)[:STORED_CHARS]


def source_of(address: str | None) -> str:
    """The source address as stored (the WSGI REMOTE_ADDR, after web/proxies.py)."""
    return (address or "unknown")[:SOURCE_CHARS]


def refusal(db: Session, username: str, source: str, now: dt.datetime) -> str | None:
    """Why a login attempt is refused before its password is looked at: "login" (this name is
    locked from this source), "source" (this source is locked), "busy" (over the overall limit
    and this source failed within the window); None when it may try."""
    locks = db.execute(select(LoginLock.username).where(
        LoginLock.source == source, LoginLock.until > now,
        or_(LoginLock.username.is_(None), LoginLock.username == shown_name(username)))).scalars().all()
    if locks:
        return "source" if None in locks else "login"
    since = now - dt.timedelta(seconds=WINDOW_S)
    overall = db.scalar(select(func.count()).select_from(LoginFailure).where(LoginFailure.at >= since))
    if overall >= OVERALL and db.scalar(select(LoginFailure.id).where(
            LoginFailure.source == source, LoginFailure.at >= since).limit(1)) is not None:
        return "busy"
    return None


def record_failure(db: Session, username: str, source: str, now: dt.datetime) -> None:
    """Store a wrong password (pruning what has aged out) and lock what reached its limit."""
    name, since = shown_name(username), now - dt.timedelta(seconds=WINDOW_S)
    db.execute(delete(LoginFailure).where(LoginFailure.at < since))
    db.execute(delete(LoginLock).where(LoginLock.until <= now))
    db.add(LoginFailure(at=now, username=name, source=source))
    db.flush()
    of_source = select(func.count()).select_from(LoginFailure).where(
        LoginFailure.source == source, LoginFailure.at >= since)
    until = now + dt.timedelta(seconds=WINDOW_S)
    if db.scalar(of_source.where(LoginFailure.username == name)) >= PER_LOGIN:
        db.add(LoginLock(username=name, source=source, until=until))
    if db.scalar(of_source) >= PER_SOURCE:
        db.add(LoginLock(username=None, source=source, until=until))
    excess = db.scalar(select(func.count()).select_from(LoginFailure)) - MAX_ROWS
    if excess > 0:
        oldest = select(LoginFailure.id).order_by(LoginFailure.at, LoginFailure.id).limit(excess)
        db.execute(delete(LoginFailure).where(LoginFailure.id.in_(oldest.scalar_subquery())))
    db.flush()


def forget_failures(db: Session, username: str, source: str) -> None:
    """After a good password: this name's failures from this source no longer count."""
    db.execute(delete(LoginFailure).where(LoginFailure.username == shown_name(username),
                                          LoginFailure.source == source))


def failures_since(db: Session, username: str, since: dt.datetime, source: str | None = None) -> int:
    q = select(func.count()).select_from(LoginFailure).where(
        LoginFailure.username == shown_name(username), LoginFailure.at >= since)
    if source is not None:
        q = q.where(LoginFailure.source == source)
    return db.scalar(q)


def unlock_login(db: Session, username: str) -> int:
    """Lift every lockout of `username` (from any source) and forget its failures; the
    number of lockouts lifted. For `ballot-service operator unlock`."""
    name = shown_name(username)
    lifted = db.execute(delete(LoginLock).where(LoginLock.username == name)).rowcount
    db.execute(delete(LoginFailure).where(LoginFailure.username == name))
    return lifted


def unlock_source(db: Session, address: str) -> int:
    """Lift every lockout of a source address (of the whole source and of names from it) and
    forget its failures; the number of lockouts lifted."""
    source = source_of(address)
    lifted = db.execute(delete(LoginLock).where(LoginLock.source == source)).rowcount
    db.execute(delete(LoginFailure).where(LoginFailure.source == source))
    return lifted
