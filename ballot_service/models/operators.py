"""Console logins, their grants per body, and the failed-login limits."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    ForeignKey,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ballot_service.db import Base, UTCDateTime, utcnow
from ballot_service.vocab import OperatorRole


class Operator(Base):
    """A console login. Passwords are stored hashed; what it may do is in its grants.
    `session_version` is in every login cookie of this operator: bumping it (logout, disable,
    new password, a grant given or taken) ends every existing login at once."""

    __tablename__ = "operators"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    session_version: Mapped[int] = mapped_column(Integer, default=1)
    disabled_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    grants: Mapped[list["OperatorGrant"]] = relationship(order_by="OperatorGrant.id", cascade="all, delete-orphan")

    @property
    def role(self) -> str:
        """The operator's first role by rank (superuser, secretariat, auditor, display): where a
        login lands, and the word the login audit event keeps."""
        held = {g.role for g in self.grants}
        return next((r.value for r in OperatorRole if r in held), "")


class OperatorGrant(Base):
    """One role of an operator in one body (vocab.OperatorRole). `body_id` NULL: in every body
    (a superuser's grant always; a secretariat, auditor or display login made before bodies had
    their own operators keeps that reach until it is narrowed with `operator revoke`)."""

    __tablename__ = "operator_grants"
    __table_args__ = (UniqueConstraint("operator_id", "body_id", "role"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    operator_id: Mapped[int] = mapped_column(ForeignKey("operators.id"), index=True)
    body_id: Mapped[int | None] = mapped_column(ForeignKey("bodies.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class LoginFailure(Base):
    """A failed console login: the rate limits' memory, outside every audit chain (an
    unauthenticated request must not add to a body's records). The user name is attacker's
    text, kept only escaped and cut short (operators.shown_name); rows older than the window
    are pruned and the table is capped (operators.py)."""

    __tablename__ = "login_failures"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)  # the database's clock
    username: Mapped[str] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(64), index=True)


class LoginLock(Base):
    """A lockout as a deadline on the database's clock: `username` from `source`, or the whole
    `source` when username is NULL, refused until `until`."""

    __tablename__ = "login_locks"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str | None] = mapped_column(String(100))
    source: Mapped[str] = mapped_column(String(64), index=True)
    until: Mapped[dt.datetime] = mapped_column(UTCDateTime, index=True)
