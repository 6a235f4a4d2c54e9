"""What a vote leaves: issuance counts (who received a ballot, no serial), paper ballots and
their print jobs, casts (serials and marks, no member; sealed while a secret round is open),
scanned pages, refusals and tally
sheets."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column

from ballot_service.db import Base, UTCDateTime, utcnow
from ballot_service.models.ids import random_id


class Issuance(Base):
    """A present member's eligibility for one electronic ballot in a round, made at opening.

    `issued` counts the blind signatures this member received (0 or 1, more only after a
    replacement, `allowed` = 1 + replacements). Nothing here names a serial: the service
    signs a blinded message it cannot read and keeps no signature. `terminal_id` is the seat terminal the member's ballot is requested from.

    `blinded_sha256`: SHA-256 of the blinded message last signed for the member, while the
    round is open (cleared at the close), so that a tablet whose answer was lost (a node died
    after the count's COMMIT, the network dropped it) gets the same signature again by sending
    the same blinded message: no second ballot, as RSA signing is deterministic. It says
    nothing of the ballot: a blinded message is uniformly random whatever it blinds (RFC 9474,
    blindness holds even against the holder of the private key).
    """

    __tablename__ = "issuances"
    # A tablet's blind-signature request finds its row by terminal (a whole hall at once).
    __table_args__ = (Index("ix_issuances_terminal_round", "terminal_id", "round_id"), {"sqlite_with_rowid": False})
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    terminal_id: Mapped[int | None] = mapped_column(ForeignKey("terminals.id"))
    issued: Mapped[int] = mapped_column(Integer, default=0)
    allowed: Mapped[int] = mapped_column(Integer, default=1)
    blinded_sha256: Mapped[bytes | None] = mapped_column(LargeBinary(32))


class PaperBallot(Base):
    """A printed paper ballot. `handed_out` is set by the distribution desk (no identity)."""

    __tablename__ = "paper_ballots"
    __table_args__ = {"sqlite_with_rowid": False}
    serial: Mapped[str] = mapped_column(String(64), primary_key=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), index=True)
    handed_out: Mapped[bool] = mapped_column(Boolean, default=False)


class PrintJob(Base):
    """A console print job's progress (domain/print_jobs.py). In the database, not a file of
    the node running it, so the console's poll may reach any app node. `updated_at` is the
    database's clock: a running job not updated for a while was on a node that stopped."""

    __tablename__ = "print_jobs"
    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    item_id: Mapped[int] = mapped_column(ForeignKey("items.id"), index=True)
    state: Mapped[str] = mapped_column(String(16))  # running, done, failed
    done: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer)
    files: Mapped[list | None] = mapped_column(JSON)
    fingerprint: Mapped[str | None] = mapped_column(String(128))
    error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)


class Cast(Base):
    """An accepted ballot: serial, signature and marks. Random id, no time of its own.

    Terminal ballots: `serial` is the tablet's random 16-byte serial (hex), `signature` the
    unblinded RSA-PSS signature (base64url) over msg_prefix || ballot_message(round_ref,
    serial), `msg_prefix` the 32-byte prefix (base64url), `retry_hash` sha256 of the tablet's
    retry id (a retry with it gets the same receipt). Paper ballots: the Ed25519 token's
    serial and signature; no prefix, no retry hash. A hybrid round's paper ballots are signed
    with the round's key and stored as a tablet's (a random retry hash), and `channel` is
    "hybrid" on every cast of a hybrid round: which came on paper is only a count
    (Round.paper_returned)."""

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


class StagedCast(Base):
    """An accepted cast of a secret round still open, sealed (domain/cast_staging.py): the
    whole Cast row as AES-256-GCM ciphertext, one length per round and channel, under a key
    derived from the body's signing key. `tag`: HMAC of the serial under another derived key
    (refuses a repeat; says nothing without the key). Written as Cast rows, in key order, at
    the close, and deleted: so a database copy taken during the vote holds no serial, receipt
    or marks in clear, and the arrival order of the rows here links nothing without the key.
    `id`: random (SQLite: the rowid, so the table's order is random, and a row of ~1 KiB stays
    on its page, where a table without rowid would spill it to an overflow page)."""

    __tablename__ = "staged_casts"
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True,
                                    autoincrement=False)
    tag: Mapped[str] = mapped_column(String(64), unique=True)
    round_id: Mapped[int] = mapped_column(ForeignKey("rounds.id"), index=True)
    sealed: Mapped[bytes] = mapped_column(LargeBinary)


class ScannedPage(Base):
    """A scanned page at the counting station, kept for recounts until discarded (`image`
    NULL). Random id and no time: the order pages were scanned in is not kept. `status`:
    counted | refused (intake refused it) | rescanned | queued (waits for two tellers) |
    waiting (the tellers disagreed: the 总监票人 decides) | rejected (not a ballot).
    `boxes`: [[candidate, mark, state]] as read; `crops`: {"candidate|mark": PNG base64url}
    of the unclear boxes; `decisions`: [{"teller", "teller_role", "decision"}]."""

    __tablename__ = "scanned_pages"
    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=random_id)
    sitting_id: Mapped[int] = mapped_column(ForeignKey("sittings.id"), index=True)
    round_id: Mapped[int | None] = mapped_column(ForeignKey("rounds.id"), index=True)
    sha256: Mapped[str] = mapped_column(String(64))
    image: Mapped[bytes | None] = mapped_column(LargeBinary)  # PNG, greyscale
    status: Mapped[str] = mapped_column(String(16))
    reasons: Mapped[list] = mapped_column(JSON)
    qr_text: Mapped[str | None] = mapped_column(Text)
    boxes: Mapped[list] = mapped_column(JSON)
    crops: Mapped[dict] = mapped_column(JSON)
    decisions: Mapped[list] = mapped_column(JSON)
    outcome: Mapped[str | None] = mapped_column(String(200))  # intake's answer, for the tellers


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
