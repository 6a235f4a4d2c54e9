"""Bodies, their sittings, members, check-in and meetings; the items voted on, their
candidates and rounds; the terminals of a sitting."""
from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    JSON,
    Boolean,
    CheckConstraint,
    ForeignKey,
    ForeignKeyConstraint,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ballot_service.db import Base, UTCDateTime, utcnow
from ballot_service.vocab import ItemStatus, Majority, MarkRule, RoundStatus, SittingStatus, nominee_label


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
    status: Mapped[str] = mapped_column(String(16), default=SittingStatus.OPEN)  # open | closed
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
    # At most one open vote per sitting — one item, or one ballot set of items printed on one
    # ballot — enforced by the database: an open item names what is open (`open_ballot`), and
    # that must be the sitting's one row in open_ballots (whose key is the sitting), so two
    # concurrent openings cannot both commit and two different things are never open at once.
    __table_args__ = (UniqueConstraint("sitting_id", "key"),
                      ForeignKeyConstraint(["sitting_id", "open_ballot"],
                                           ["open_ballots.sitting_id", "open_ballots.ballot"],
                                           name="fk_items_open_ballot"),
                      CheckConstraint("status <> 'open' OR open_ballot IS NOT NULL", name="open_ballot"))
    id: Mapped[int] = mapped_column(primary_key=True)
    sitting_id: Mapped[int] = mapped_column(ForeignKey("sittings.id"), index=True)
    key: Mapped[str] = mapped_column(String(64))
    kind: Mapped[str] = mapped_column(String(32))
    title: Mapped[str] = mapped_column(String(500))
    places: Mapped[int | None] = mapped_column(Integer)
    base: Mapped[str] = mapped_column(String(16), default="members")
    majority: Mapped[str] = mapped_column(String(16), default=Majority.HALF)
    secret: Mapped[bool] = mapped_column(Boolean, default=True)
    channel: Mapped[str] = mapped_column(String(16), default="terminal")
    # draft | open | closed | decided | void | runoff_pending | quorum_not_met
    status: Mapped[str] = mapped_column(String(32), default=ItemStatus.DRAFT)
    position: Mapped[int] = mapped_column(Integer, default=0)
    time_limit_s: Mapped[int | None] = mapped_column(Integer)
    # paper: what counts as a mark (MarkRule): any clear mark, or only the asked-for ○
    mark_rule: Mapped[str] = mapped_column(String(16), default=MarkRule.ANY, server_default=text(f"'{MarkRule.ANY}'"))
    # evaluation items only (RULES.md §5.5): the options best first, [{"key", "title"}], and
    # how grades are given, {"by": "majority"} or {"by": "rate_thresholds", "steps": [[option, hundredths], …]}.
    options: Mapped[list | None] = mapped_column(JSON)
    grading: Mapped[dict | None] = mapped_column(JSON)
    # Elections only (vocab.Office; 补选): what the seats are, which fixes the 差额 (RULES.md §5.4).
    office: Mapped[str | None] = mapped_column(String(32))
    by_election: Mapped[bool] = mapped_column(Boolean, default=False)
    # Elections printed on one ballot paper (主任, 副主任, 委员) share a ballot set's name and
    # open, close and are tallied together (domain/ballot_sets.py); None: a ballot of its own.
    ballot_set: Mapped[str | None] = mapped_column(String(64))
    # While open: what is open in the sitting ("item:<id>" or "set:<name>"), see OpenBallot.
    open_ballot: Mapped[str | None] = mapped_column(String(80))
    # A 另行选举 saved for a later sitting: the election whose unfilled seats this item fills
    # (unique: two concurrent saves for one election cannot both commit).
    another_of: Mapped[int | None] = mapped_column(ForeignKey("items.id"), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(UTCDateTime, default=utcnow)

    sitting: Mapped[Sitting] = relationship(back_populates="items")
    candidates: Mapped[list["Candidate"]] = relationship(
        back_populates="item", order_by="Candidate.position", cascade="all, delete-orphan"
    )
    rounds: Mapped[list["Round"]] = relationship(back_populates="item", order_by="Round.number")


class OpenBallot(Base):
    """The one vote open in a sitting (at most one row per sitting: its key is the sitting):
    "item:<id>" for an item alone, "set:<name>" for a ballot set. Every open item points at it
    (Item.open_ballot), so only one item or one set can be open, even under concurrency."""

    __tablename__ = "open_ballots"
    __table_args__ = (UniqueConstraint("sitting_id", "ballot", name="uq_open_ballots_ballot"),)
    sitting_id: Mapped[int] = mapped_column(ForeignKey("sittings.id"), primary_key=True)
    ballot: Mapped[str] = mapped_column(String(80))


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
    status: Mapped[str] = mapped_column(String(16), default=RoundStatus.PENDING)
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
    # hybrid: paper ballots the secretariat allowed, each for a named member with a reason, and
    # printed then signed with the round's key (further_ballots.allow_paper): I counts them
    paper_allowed: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
    # hybrid: how many of the round's casts came on paper, a count only: no cast row says which
    # (intake; the record's by_channel)
    paper_returned: Mapped[int] = mapped_column(Integer, default=0, server_default=text("0"))
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
