"""The data model. Who-voted and how-voted live in separate tables that share no key.

Secret-ballot rule (RULES.md §7): no table ties a member, seat or terminal to a
ballot serial or choices. `Issuance` counts how many blind signatures each eligible
member received in a round (no serial, no blinded value: RSA blind signatures, RFC 9474,
so the service never sees what it signed); `Cast` holds serials, unblinded signatures and
marks with random ids, no member (unless the vote is named), no terminal and no time of
its own.
"""
from __future__ import annotations

import datetime as dt
import secrets

from sqlalchemy import (
    JSON,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ballot_service.db import Base, UTCDateTime, utcnow


def random_id() -> str:
    return secrets.token_hex(16)


class Body(Base):
    """A congress (plenary) or its standing committee."""

    __tablename__ = "bodies"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(32))
    key_name: Mapped[str | None] = mapped_column(String(100))
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    members: Mapped[list["Member"]] = relationship(back_populates="body", order_by="Member.id")
    sittings: Mapped[list["Sitting"]] = relationship(back_populates="body", order_by="Sitting.id")


class Sitting(Base):
    """One session (会次) of a body, e.g. 第四次会议."""

    __tablename__ = "sittings"
    id: Mapped[int] = mapped_column(primary_key=True)
    body_id: Mapped[int] = mapped_column(ForeignKey("bodies.id"))
    name: Mapped[str] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(16), default="open")  # open | closed
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)

    body: Mapped[Body] = relationship(back_populates="sittings")
    items: Mapped[list["Item"]] = relationship(back_populates="sitting", order_by="Item.position")


class Member(Base):
    """A roster member (代表 / 组成人员). member_no is the 代表证号 the secretariat uses."""

    __tablename__ = "members"
    __table_args__ = (UniqueConstraint("body_id", "member_no"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    body_id: Mapped[int] = mapped_column(ForeignKey("bodies.id"), index=True)
    member_no: Mapped[str] = mapped_column(String(64))
    name: Mapped[str] = mapped_column(String(100))
    group: Mapped[str | None] = mapped_column(String(100))
    seat: Mapped[str | None] = mapped_column(String(32))
    card_code: Mapped[str | None] = mapped_column(String(64))
    in_office: Mapped[bool] = mapped_column(Boolean, default=True)

    body: Mapped[Body] = relationship(back_populates="members")


class Attendance(Base):
    """Check-in state of a member for a sitting: present (签到) or on leave (请假)."""

    __tablename__ = "attendance"
    __table_args__ = (UniqueConstraint("sitting_id", "member_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    sitting_id: Mapped[int] = mapped_column(ForeignKey("sittings.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    status: Mapped[str] = mapped_column(String(16))  # present | leave
    method: Mapped[str] = mapped_column(String(16))  # terminal | manual | import
    terminal_id: Mapped[int | None] = mapped_column(ForeignKey("terminals.id"))
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    member: Mapped[Member] = relationship()


class Item(Base):
    """A vote item (表决事项): livelihood projects, appointments, or a resolution."""

    __tablename__ = "items"
    # At most one open vote per sitting, enforced by the database: a partial unique index
    # (SQLite and PostgreSQL both have them), so two concurrent openings cannot both commit.
    __table_args__ = (UniqueConstraint("sitting_id", "key"),
                      Index("uq_items_one_open_per_sitting", "sitting_id", unique=True,
                            sqlite_where=text("status = 'open'"), postgresql_where=text("status = 'open'")))
    id: Mapped[int] = mapped_column(primary_key=True)
    sitting_id: Mapped[int] = mapped_column(ForeignKey("sittings.id"), index=True)
    key: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(500))
    places: Mapped[int | None] = mapped_column(Integer)
    base: Mapped[str] = mapped_column(String(16), default="members")
    majority: Mapped[str] = mapped_column(String(16), default="half")
    secret: Mapped[bool] = mapped_column(Boolean, default=True)
    channel: Mapped[str] = mapped_column(String(16), default="terminal")
    # draft | open | closed | decided | void | runoff_pending | quorum_not_met
    status: Mapped[str] = mapped_column(String(32), default="draft")
    position: Mapped[int] = mapped_column(Integer, default=0)
    time_limit_s: Mapped[int | None] = mapped_column(Integer)
    # Elections only (vocab.Office; 补选): what the seats are, which fixes the 差额 (RULES.md §5.4).
    office: Mapped[str | None] = mapped_column(String(32))
    by_election: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    sitting: Mapped[Sitting] = relationship(back_populates="items")
    candidates: Mapped[list["Candidate"]] = relationship(
        back_populates="item", order_by="Candidate.position", cascade="all, delete-orphan"
    )
    rounds: Mapped[list["Round"]] = relationship(back_populates="item", order_by="Round.number")


class Candidate(Base):
    """A project, a nominee, or the motion itself (key 'motion')."""

    __tablename__ = "candidates"
    __table_args__ = (UniqueConstraint("item_id", "key"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    key: Mapped[str] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text)
    position: Mapped[int] = mapped_column(Integer, default=0)

    item: Mapped[Item] = relationship(back_populates="candidates")


class Round(Base):
    """One round of voting on an item. A runoff is round 2, 3, …; earlier rounds stay."""

    __tablename__ = "rounds"
    __table_args__ = (UniqueConstraint("item_id", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)
    places: Mapped[int | None] = mapped_column(Integer)
    candidate_keys: Mapped[list] = mapped_column(JSON)
    stage: Mapped[str | None] = mapped_column(String(16))  # elections: vocab.ElectionStage
    # vocab.RoundStatus: pending | open | closed | tallied
    status: Mapped[str] = mapped_column(String(16), default="pending")
    members: Mapped[int | None] = mapped_column(Integer)  # N, frozen at opening
    present: Mapped[int | None] = mapped_column(Integer)  # P, frozen at opening
    quorum_met: Mapped[bool | None] = mapped_column(Boolean)
    issued: Mapped[int | None] = mapped_column(Integer)  # I, frozen at closing
    opened_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closes_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    closed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    result: Mapped[dict | None] = mapped_column(JSON)
    # Terminal rounds: the round's own RSA-2048 blind-signing key (crypto.blind_rsa), made at
    # opening and announced in the audit chain (round_key_announced) before any issuance.
    blind_public_key: Mapped[bytes | None] = mapped_column(LargeBinary)  # SubjectPublicKeyInfo DER
    blind_key_fingerprint: Mapped[str | None] = mapped_column(String(96))  # SHA-384 hex of the DER
    # PKCS#8 DER of the private half, only while the round is open: close_round sets it to
    # NULL in the closing transaction (domain/voting.py says why it lives in this row).
    blind_private_key: Mapped[bytes | None] = mapped_column(LargeBinary)
    replacements: Mapped[int] = mapped_column(Integer, default=0)  # further issuances allowed (I+1)

    item: Mapped[Item] = relationship(back_populates="rounds")

    @property
    def ref(self) -> str:
        """The round's public reference, named in every ballot message: "r<round id>"."""
        return f"r{self.id}"


class Issuance(Base):
    """A present member's eligibility for one electronic ballot in a round, made at opening.

    `issued` counts the blind signatures this member received (0 or 1, more only after a
    replacement, `allowed` = 1 + replacements). Nothing here names a serial: the service
    signs a blinded message it cannot read and keeps neither the blinded value nor the
    signature. `terminal_id` is the seat terminal the member's ballot is requested from.
    """

    __tablename__ = "issuances"
    __table_args__ = {"sqlite_with_rowid": False}
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    terminal_id: Mapped[int | None] = mapped_column(ForeignKey("terminals.id"))
    issued: Mapped[int] = mapped_column(Integer, default=0)
    allowed: Mapped[int] = mapped_column(Integer, default=1)


class PaperBallot(Base):
    """A printed paper ballot. `handed_out` is set by the distribution desk (no identity)."""

    __tablename__ = "paper_ballots"
    __table_args__ = {"sqlite_with_rowid": False}
    serial: Mapped[str] = mapped_column(String(64), primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), index=True)
    handed_out: Mapped[bool] = mapped_column(Boolean, default=False)


class Cast(Base):
    """An accepted ballot: serial, signature and marks. Random id, no time of its own.

    Terminal ballots: `serial` is the tablet's random 16-byte serial (hex), `signature` the
    unblinded RSA-PSS signature (base64url) over msg_prefix || ballot_message(round_ref,
    serial), `msg_prefix` the 32-byte prefix (base64url), `retry_hash` sha256 of the tablet's
    retry id (a retry with it gets the same receipt). Paper ballots: the Ed25519 token's
    serial and signature; no prefix, no retry hash."""

    __tablename__ = "casts"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=random_id)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), index=True)
    serial: Mapped[str] = mapped_column(String(64), unique=True)
    signature: Mapped[str] = mapped_column(String(400))
    msg_prefix: Mapped[str | None] = mapped_column(String(64))
    retry_hash: Mapped[str | None] = mapped_column(String(64))
    marks: Mapped[dict] = mapped_column(JSON)
    channel: Mapped[str] = mapped_column(String(16))
    receipt: Mapped[str] = mapped_column(String(64))
    submission_digest: Mapped[str] = mapped_column(String(64))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))  # named votes only
    __table_args__ = (UniqueConstraint("round_id", "member_id"), {"sqlite_with_rowid": False})


class Refusal(Base):
    """How many submissions were refused at intake, by reason (拒收). No identities."""

    __tablename__ = "refusals"
    __table_args__ = (UniqueConstraint("round_id", "reason"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), index=True)
    reason: Mapped[str] = mapped_column(String(32))
    count: Mapped[int] = mapped_column(Integer, default=0)


class TallySheet(Base):
    """Hand-count totals for a round (fallback), entered by one teller, confirmed by another."""

    __tablename__ = "tally_sheets"
    id: Mapped[int] = mapped_column(primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), unique=True)
    data: Mapped[dict] = mapped_column(JSON)
    # The tellers: names as registered with their counting-station credentials (never
    # request text), and the credentials (terminals) they entered and confirmed with.
    entered_by: Mapped[str] = mapped_column(String(100))
    confirmed_by: Mapped[str | None] = mapped_column(String(100))
    entered_terminal_id: Mapped[int | None] = mapped_column(ForeignKey("terminals.id"))
    confirmed_terminal_id: Mapped[int | None] = mapped_column(ForeignKey("terminals.id"))
    entered_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)


class Terminal(Base):
    """A seat terminal or counting station. Only a hash of its credential is kept."""

    __tablename__ = "terminals"
    id: Mapped[int] = mapped_column(primary_key=True)
    sitting_id: Mapped[int] = mapped_column(ForeignKey("sittings.id"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    kind: Mapped[str] = mapped_column(String(32))  # seat | counting_station
    seat: Mapped[str | None] = mapped_column(String(32))
    # Counting stations held by a teller: the holder's name and role (vocab.TellerRole).
    holder: Mapped[str | None] = mapped_column(String(100))
    teller_role: Mapped[str | None] = mapped_column(String(16))
    # A seat tablet whose seat no roster member has: the member it checked in, until released.
    bound_member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    credential_hash: Mapped[str] = mapped_column(String(64), unique=True)
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


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
    """Hash-chained audit log: hash = sha256(prev_hash + canonical event)."""

    __tablename__ = "audit_events"
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    kind: Mapped[str] = mapped_column(String(64))
    sitting_id: Mapped[int | None] = mapped_column(Integer)
    data: Mapped[str] = mapped_column(Text)  # canonical JSON
    prev_hash: Mapped[str] = mapped_column(String(64))
    hash: Mapped[str] = mapped_column(String(64), unique=True)


class AuditHead(Base):
    """The chain head in one row: appenders lock it (SELECT … FOR UPDATE) so the chain never forks."""

    __tablename__ = "audit_head"
    id: Mapped[int] = mapped_column(primary_key=True)  # always 1
    seq: Mapped[int] = mapped_column(Integer, default=0)
    hash: Mapped[str] = mapped_column(String(64))


class Checkpoint(Base):
    """A signature over the audit chain head, made at every vote close and session close."""

    __tablename__ = "checkpoints"
    id: Mapped[int] = mapped_column(primary_key=True)
    seq: Mapped[int] = mapped_column(Integer)
    head_hash: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(64))
    signature: Mapped[str] = mapped_column(String(200))
    key_fingerprint: Mapped[str] = mapped_column(String(64))
    at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


class Operator(Base):
    """A console user: secretariat, auditor or display. Passwords are stored hashed."""

    __tablename__ = "operators"
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))  # secretariat | auditor | display
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
