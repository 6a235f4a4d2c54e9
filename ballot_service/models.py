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
from ballot_service.vocab import OperatorRole, nominee_label


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


class Project(Base):
    """A livelihood project in a congress's register (项目库), which its standing committee shares.
    Its state (储备 reserve, candidate, selected, in delivery, rated) is never stored here:
    domain/projects.py reads it from the items whose candidate has the project's code and name."""

    __tablename__ = "projects"
    __table_args__ = (UniqueConstraint("body_id", "code"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    body_id: Mapped[int] = mapped_column(ForeignKey("bodies.id"), index=True)  # the congress
    code: Mapped[str] = mapped_column(String(64))  # 编号, the candidate key on every ballot
    name: Mapped[str] = mapped_column(String(500))
    description: Mapped[str | None] = mapped_column(Text)
    department: Mapped[str | None] = mapped_column(String(200))  # 承办单位
    year: Mapped[int] = mapped_column(Integer)  # 年度: the year the project is delivered
    investment: Mapped[int | None] = mapped_column(Integer)  # 投资额, 万元, where known
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)


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


class Meeting(Base):
    """A plenary meeting (全体会议) of a session that has ended: a session spans several, each
    with its own check-in and quorum over the session's one roster. The meeting under way is
    the one after the last of these rows; its check-in is `Attendance`."""

    __tablename__ = "meetings"
    __table_args__ = (UniqueConstraint("sitting_id", "number"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    sitting_id: Mapped[int] = mapped_column(ForeignKey("sittings.id"), index=True)
    number: Mapped[int] = mapped_column(Integer)  # 1 = 第一次全体会议
    started_at: Mapped[dt.datetime] = mapped_column(UTCDateTime)
    ended_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)
    members: Mapped[int] = mapped_column(Integer)  # 应到 when it ended
    present: Mapped[int] = mapped_column(Integer)  # 实到
    leave: Mapped[int] = mapped_column(Integer)  # 请假


class MeetingAttendance(Base):
    """The check-in of an ended meeting, as it stood when the next one began."""

    __tablename__ = "meeting_attendance"
    __table_args__ = (UniqueConstraint("meeting_id", "member_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    meeting_id: Mapped[int] = mapped_column(ForeignKey("meetings.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    status: Mapped[str] = mapped_column(String(16))  # present | leave | absent
    method: Mapped[str] = mapped_column(String(16))


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
    # paper: what counts as a mark (MarkRule): any clear mark, or only the asked-for ○
    mark_rule: Mapped[str] = mapped_column(String(16), default="any", server_default=text("'any'"))
    # evaluation items only (RULES.md §5.5): the options best first, [{"key", "title"}], and
    # how grades are given, {"by": "majority"} or {"by": "rate_thresholds", "steps": [[option, hundredths], …]}.
    options: Mapped[list | None] = mapped_column(JSON)
    grading: Mapped[dict | None] = mapped_column(JSON)
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
    office: Mapped[str | None] = mapped_column(String(200))  # 拟任职务 of a nominee (appointment items)
    position: Mapped[int] = mapped_column(Integer, default=0)

    item: Mapped[Item] = relationship(back_populates="candidates")

    @property
    def label(self) -> str:
        """The name as shown and printed: a nominee with the proposed office."""
        return nominee_label(self.title, self.office)


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
    # A terminal vote opened although some present members had no ready tablet: {"present",
    # "ready", "reason"} with the secretariat's typed reason (also in vote_opened and the record).
    open_override: Mapped[dict | None] = mapped_column(JSON)
    # 重复扫描: paper ballots presented again with the same marks (neither 收回 nor 拒收)
    rescanned: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))

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
    # Seat tablets: first poll with the credential (NULL again after a reset), and the last
    # poll, written at most every 30 s and never during a vote (domain/tablet_setup.py).
    set_up_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
    last_seen_at: Mapped[dt.datetime | None] = mapped_column(UTCDateTime)
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
