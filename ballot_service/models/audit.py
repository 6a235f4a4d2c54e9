"""Signed records and the audit chains (one per body, one for the server) with their checkpoints."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    Boolean,
    ForeignKey,
    Integer,
    String,
    Text,
)
from sqlalchemy.orm import Mapped, mapped_column

from ballot_service.db import Base, UTCDateTime, utcnow
from ballot_service.models.ids import random_id


class Record(Base):
    """A signed resolution record (决议记录) for a decided or void item."""

    __tablename__ = "records"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=random_id)
    # One record per item (it covers all the item's rounds): a unique constraint, so concurrent
    # issuing cannot make two.
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), unique=True)
    body_json: Mapped[str] = mapped_column(Text)  # canonical JSON, exactly as signed
    signature: Mapped[str] = mapped_column(String(200))
    key_fingerprint: Mapped[str] = mapped_column(String(64))
    audit_head: Mapped[str] = mapped_column(String(64))
    published: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class AuditEvent(Base):
    """Hash-chained audit log: hash = sha256(prev_hash + canonical event). One chain per body
    (`chain` = the body's id) and the server chain (0) for events of no body."""

    __tablename__ = "audit_events"
    chain: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(64))
    sitting_id: Mapped[int | None] = mapped_column(Integer)
    data: Mapped[str] = mapped_column(Text)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """Each chain's head in one row: appenders lock it (SELECT … FOR UPDATE) so a chain never forks."""

    __tablename__ = "audit_head"
    chain: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)  # body id, 0: server
    seq: Mapped[int] = mapped_column(Integer, default=0)
    hash: Mapped[str] = mapped_column(String(64))


class Checkpoint(Base):
    """A signature over a body's audit chain head, made at every vote close and session close."""

    __tablename__ = "checkpoints"
    id: Mapped[int] = mapped_column(primary_key=True)
    chain: Mapped[int] = mapped_column(Integer, index=True)  # the body's id
    seq: Mapped[int] = mapped_column(Integer)
    head_hash: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(200))
    key_fingerprint: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
