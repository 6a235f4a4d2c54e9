"""Bodies, sittings (会次), check-in (签到), vote items and closing a sitting (闭会): domain
operations that only flush."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ballot_service import rules
from ballot_service.crypto import keys
from ballot_service.db import get_or_not_found, utcnow
from ballot_service.domain import audit, election_items
from ballot_service.domain.item_checks import check_item, item_event
from ballot_service.errors import Conflict, InvalidInput, NotFound
from ballot_service.formats import names
from ballot_service.models import Attendance, Body, Candidate, Item, Member, Round, Sitting
from ballot_service.vocab import (
    ATTENDANCE_PREFIX,
    AuditKind,
    Base,
    Channel,
    ItemKind,
    ItemStatus,
    Majority,
    MarkRule,
    Presence,
    RoundStatus,
    SittingStatus,
    values,
)


def create_body(db: Session, name: str, kind: str) -> Body:
    if kind not in rules.BODY_KINDS:
        raise InvalidInput(f"body kind must be one of {', '.join(rules.BODY_KINDS)}, not {kind!r}", where="kind",
                           zh=f"机构类型须为 {'、'.join(rules.BODY_KINDS)} 之一，不能是 {kind!r}")
    name = names.check_name(name, what="body name", where="name", max_len=names.BODY_NAME)
    body = Body(name=name, kind=kind)
    db.add(body)
    db.flush()
    audit.append(db, AuditKind.BODY_CREATED, {"body_id": body.id, "name": body.name, "kind": kind}, body_id=body.id)
    return body


def create_body_key(db: Session, keys_dir, passphrase: str | None, body: Body, *, reuse: bool = False):
    """Give `body` its Ed25519 signing key (keys.create_key, never overwriting) and audit
    its fingerprint. With reuse=True an existing key file is opened with the passphrase
    and adopted instead (the demo: a database reset keeps the keys folder)."""
    if not passphrase:
        var = keys.passphrase_variable(keys.body_key_name(body.id))
        raise InvalidInput(f"no key passphrase for body {body.id} on the server: set {var} or BALLOT_KEY_PASSPHRASE",
                           where="BALLOT_KEY_PASSPHRASE",
                           zh=f"服务器未设置机构 {body.id} 的签名密钥口令：请设置 {var} 或 BALLOT_KEY_PASSPHRASE")
    name = keys.body_key_name(body.id)
    if not reuse and (body.key_name or keys.private_path(keys_dir, name).exists()):
        raise Conflict(f"body {body.id} already has its signing key {name}; refusing to overwrite it "
                       f"(a signing key is never replaced here)",
                       where="body_id", zh=f"机构 {body.id} 已有签名密钥 {name}，不能在此更换")
    if reuse and keys.private_path(keys_dir, name).exists():
        key, event = keys.load_key(keys_dir, name, passphrase), "key_reused"
    else:
        key, event = keys.create_key(keys_dir, name, passphrase), "key_created"
    body.key_name = key.name
    audit.append(db, event, {"body_id": body.id, "name": key.name, "fingerprint": key.fingerprint,
                             "public_pem": key.public_pem.decode("ascii")}, body_id=body.id)
    return key


def create_sitting(db: Session, body: Body, name: str) -> Sitting:
    name = names.check_name(name, what="session name", where="name", max_len=names.SITTING_NAME)
    sitting = Sitting(body_id=body.id, name=name)
    db.add(sitting)
    db.flush()
    audit.append(db, AuditKind.SITTING_CREATED, {"body_id": body.id, "session_id": sitting.id, "name": sitting.name},
                 sitting_id=sitting.id)
    return sitting


def get_body(db: Session, body_id: int) -> Body:
    return get_or_not_found(db, Body, body_id, where="body_id", en=f"no body with id {body_id}",
                            zh=f"找不到编号为 {body_id} 的机构")


def get_sitting(db: Session, sitting_id: int) -> Sitting:
    return get_or_not_found(db, Sitting, sitting_id, where="session_id", en=f"no session with id {sitting_id}",
                            zh=f"找不到编号为 {sitting_id} 的会议")


def find_member(db: Session, body_id: int, member_no: str) -> Member:
    """Find by 代表证号 or card code; a number typed in lower case (x18002) finds X18002.
    What no roster can hold is refused first, with a short message that does not repeat it."""
    if not isinstance(member_no, str) or not member_no or len(member_no) > max(names.MEMBER_NO, names.CARD_CODE) \
            or names.bad_character(member_no):
        raise InvalidInput(f"a 代表证号 or card code is 1 to {names.MEMBER_NO} visible characters", where="member",
                           zh=f"代表证号或卡号格式不正确：应为 1–{names.MEMBER_NO} 个可见字符")
    m = db.scalar(select(Member).where(Member.body_id == body_id, Member.member_no == member_no))
    if m is None:
        m = db.scalar(select(Member).where(Member.body_id == body_id, Member.card_code == member_no))
    if m is None and member_no != member_no.upper():
        m = db.scalar(select(Member).where(Member.body_id == body_id, Member.member_no == member_no.upper()))
    if m is None:
        raise NotFound(f"no member with 代表证号 or card {member_no!r} on this roster", where="member",
                       zh=f"名册中没有代表证号或卡号为 {member_no} 的代表")
    if not m.in_office:
        raise Conflict(f"member {member_no} no longer holds office", where="member",
                       zh=f"代表证号 {member_no} 的代表已不在任")
    return m


def require_open(db: Session, sitting: Sitting, doing_zh: str, doing_en: str, take_turns: bool = False) -> None:
    """Refuse `doing` in a closed session. Reads the status under a shared row lock
    (PostgreSQL: FOR SHARE; SQLite's write lock is already held), so a change that passes
    this check commits before a concurrent session close, never after it. `take_turns`: FOR NO
    KEY UPDATE, the first lock of a check-in or leave, and of a new item after its ballot set's
    elections (lock_for_new_item): such changes of one sitting take turns and wait for (or hold off)
    a vote being opened (FOR SHARE here), before either writes a row or the chain. Otherwise a
    补签到 list holding the chain's head after its first member and a tablet's 签到 of its second
    member each waited for the other, and a leave read "no vote open" while one was being
    opened with that member counted present."""
    status, closed_at = db.execute(select(Sitting.status, Sitting.closed_at).where(Sitting.id == sitting.id)
                                   .with_for_update(**({"key_share": True} if take_turns else {"read": True}))).one()
    if status != SittingStatus.OPEN:
        when = f" at {closed_at.isoformat(timespec='seconds')}" if closed_at else ""
        raise Conflict(f"会次已闭会，不能{doing_zh}。Session {sitting.name} was closed{when}: "
                       f"{doing_en} is no longer possible.", where="session")


def close_sitting(db: Session, settings, sitting: Sitting) -> dict:
    """Close a session (闭会): no check-in, leave, new item or vote opening after this.
    Refused while a vote of the session is open, and refused a second time. Appends a
    `session_closed` event and signs a checkpoint of the chain head (reason
    `session_closed:<id>`) with the body's key, in the same transaction."""
    # Lock the row: a concurrent open, check-in or item creation commits first or sees it closed.
    # FOR NO KEY UPDATE (open_item_locked says why).
    db.refresh(sitting, with_for_update={"key_share": True})
    if sitting.status != SittingStatus.OPEN:
        when = f" at {sitting.closed_at.isoformat(timespec='seconds')}" if sitting.closed_at else ""
        raise Conflict(f"会次已经闭会。Session {sitting.name} was already closed{when}; "
                       f"closing it again changes nothing.", where="session")
    items = list(db.scalars(select(Item).where(Item.sitting_id == sitting.id).order_by(Item.position)))
    still_open = [f"《{i.title}》" for i in items if i.status == ItemStatus.OPEN]
    if still_open:
        raise Conflict(f"表决仍在进行，不能闭会：{'、'.join(still_open)}。"
                       f"Vote on {', '.join(still_open)} is still open; close it before closing the session.",
                       where="items")
    key = keys.body_signing_key(settings, sitting.body_id)  # fails clearly (no key, wrong passphrase) before any change
    by_status = dict(Counter(i.status for i in items))
    sitting.status, sitting.closed_at = SittingStatus.CLOSED, utcnow()
    db.flush()
    ev = audit.append(db, AuditKind.SITTING_CLOSED, {"session_id": sitting.id, "body_id": sitting.body_id,
                                             "name": sitting.name, "items": by_status},
                      sitting_id=sitting.id)
    cp = audit.checkpoint(db, key, f"session_closed:{sitting.id}", sitting.body_id)
    return {"id": sitting.id, "name": sitting.name, "status": sitting.status,
            "closed_at": sitting.closed_at.isoformat(timespec="seconds"), "items": by_status,
            "checkpoint": {"seq": cp.seq, "head": cp.head_hash, "reason": cp.reason,
                           "key_fingerprint": cp.key_fingerprint, "event_seq": ev.seq}}


def set_attendance(db: Session, sitting: Sitting, member: Member, status: str, method: str,
                   terminal_id: int | None = None) -> Attendance:
    """Check a member in (status 'present') or record leave ('leave', 请假)."""
    if status not in values(Presence):
        raise InvalidInput("status must be present, leave or absent", where="status",
                           zh="状态须为 present（签到）、leave（请假）或 absent（缺席）")
    require_open(db, sitting, "签到或请假", "check-in or leave", take_turns=True)
    if member.body_id != sitting.body_id:
        raise InvalidInput("member is not on this body's roster", where="member", zh="该代表不在本机构的名册中")
    att = db.scalar(select(Attendance).where(Attendance.sitting_id == sitting.id,
                                             Attendance.member_id == member.id))
    if att is not None and att.status == status and (terminal_id is None or att.terminal_id == terminal_id):
        # Nothing changes (a tablet checking in again after a reload): write nothing, so no
        # event with a member's name lands in the audit chain between the casts.
        return att
    open_secret = db.scalar(select(Item).where(Item.sitting_id == sitting.id, Item.status == ItemStatus.OPEN,
                                               Item.secret.is_(True)))
    if open_secret is not None and att is not None and att.status == Presence.PRESENT:
        if status == Presence.PRESENT:
            return att  # checked in already (by hand, or at another terminal): the ballot went out at opening
        # A ballot holder's leave event in the chain right after a cast would point at that
        # cast. The round's 实到 is fixed at opening anyway, so nothing is lost by waiting.
        # (A late arrival holds no ballot in this round: their check-in is recorded at once.)
        raise Conflict(f"a secret vote ({open_secret.title}) is open: a present member's leave or "
                       f"cancellation is recorded after it closes", where="attendance",
                       zh=f"无记名表决（{open_secret.title}）进行中：已签到代表的请假或取消签到须在本项表决结束后办理")
    if att is None:
        att = Attendance(sitting_id=sitting.id, member_id=member.id, status=status, method=method,
                         terminal_id=terminal_id)
        db.add(att)
    else:
        att.status, att.method, att.updated_at = status, method, utcnow()
        if terminal_id is not None:
            att.terminal_id = terminal_id
    db.flush()
    audit.append(db, ATTENDANCE_PREFIX + status,
                 {"session_id": sitting.id, "member_no": member.member_no, "method": method},
                 sitting_id=sitting.id)
    return att


@dataclass(frozen=True)
class AttendanceState:
    members: int  # 应到 N
    present: int  # 实到 P
    leave: int  # 请假
    absent: int  # 缺席
    quorum_met: bool
    quorum_rule: str
    quorum_needed: int  # the fewest present that make the quorum
    quorum_words: tuple[str, str]  # (zh, en): 应到 40 人，三分之二为 27 人，实到 35 人，符合法定人数

    def as_dict(self) -> dict:
        return {"members": self.members, "present": self.present, "leave": self.leave,
                "absent": self.absent, "quorum_met": self.quorum_met, "quorum_rule": self.quorum_rule,
                "quorum_needed": self.quorum_needed, "quorum_words": list(self.quorum_words)}


def attendance_state(db: Session, sitting: Sitting) -> AttendanceState:
    body = sitting.body
    n = db.scalar(select(func.count()).select_from(Member)
                  .where(Member.body_id == body.id, Member.in_office.is_(True))) or 0
    rows = dict(db.execute(
        select(Attendance.status, func.count()).join(Member, Member.id == Attendance.member_id)
        .where(Attendance.sitting_id == sitting.id, Member.in_office.is_(True))
        .group_by(Attendance.status)).all())
    p, leave = rows.get("present", 0), rows.get("leave", 0)
    return AttendanceState(n, p, leave, n - p - leave, rules.quorum_met(body.kind, n, p),
                           rules.quorum_rule_text(body.kind), rules.quorum_minimum(body.kind, n),
                           rules.quorum_sentence(body.kind, n, p))


def present_member_ids(db: Session, sitting: Sitting) -> list[int]:
    return list(db.scalars(
        select(Attendance.member_id).join(Member, Member.id == Attendance.member_id)
        .where(Attendance.sitting_id == sitting.id, Attendance.status == Presence.PRESENT,
               Member.in_office.is_(True)).order_by(Member.id)))


def lock_for_new_item(db: Session, sitting: Sitting, ballot_set, doing_zh: str, doing_en: str) -> None:
    """Before an item is added to `sitting` (into the ballot set named `ballot_set`, if any):
    PostgreSQL: the set's elections FOR UPDATE in id order, as an opening or an edit takes them
    first, then require_open(take_turns): the sitting's row FOR NO KEY UPDATE, so additions take
    turns and the second sees the first's key, place and set (two elections starting one new
    set with different channels both passed its check, and took one place). An election that
    joined the set while this waited is taken too: from a savepoint rolled back (which lets go
    of this pass's locks), in the same order, never the sitting's row before an item."""
    name = names.normalise_name(ballot_set) if isinstance(ballot_set, str) else None  # as check_ballot_set stores it
    if db.get_bind().dialect.name == "sqlite" or not name:
        require_open(db, sitting, doing_zh, doing_en, take_turns=True)
        return
    in_set = select(Item.id).where(Item.sitting_id == sitting.id, Item.ballot_set == name)
    while True:
        attempt = db.begin_nested()
        held = set(db.scalars(in_set.order_by(Item.id).with_for_update()))
        require_open(db, sitting, doing_zh, doing_en, take_turns=True)
        if set(db.scalars(in_set)) <= held:
            attempt.commit()
            return
        attempt.rollback()


def create_item(db: Session, sitting: Sitting, *, key: str, kind: str, title: str,
                candidates: list[dict] | None = None, places: int | None = None,
                base: str = Base.MEMBERS, majority: str = Majority.HALF, secret: bool = True,
                channel: str = Channel.TERMINAL, time_limit_s: int | None = None, mark_rule: str = MarkRule.ANY,
                options: list[dict] | None = None, grading: dict | None = None,
                office: str | None = None, by_election: bool = False, rule_given: bool = False,
                ballot_set: str | None = None) -> Item:
    """Create a vote item. Validates everything a tally will later rely on. `options` and
    `grading` are for an evaluation only (evaluation_items.clean_options / clean_grading);
    `office`, `by_election` and `rule_given` (a rule was sent) for an election only."""
    lock_for_new_item(db, sitting, ballot_set, "新增表决事项", "adding a vote item")
    key, title, candidates, places, keys, (options, grading, scale_rule) = check_item(
        db, sitting, key=key, kind=kind, title=title, candidates=candidates, places=places, base=base,
        majority=majority, secret=secret, channel=channel, time_limit_s=time_limit_s, mark_rule=mark_rule,
        options=options, grading=grading)
    stage, round_places = None, places
    if kind == ItemKind.ELECTION:  # 差额 and the fixed rule (election_items); rule_given: options were sent
        stage, round_places = election_items.check_new_election(office, by_election, places, len(candidates),
                                                                rule_given, secret)
    else:
        office, by_election = None, False
    ballot_set = election_items.check_ballot_set(db, sitting.id, ballot_set, kind, channel)
    position = (db.scalar(select(func.max(Item.position)).where(Item.sitting_id == sitting.id)) or 0) + 1
    item = Item(sitting_id=sitting.id, key=key, kind=kind, title=title, places=places, base=base,
                majority=majority, secret=secret, channel=channel, position=position,
                time_limit_s=time_limit_s, mark_rule=mark_rule, options=options, grading=grading,
                office=office, by_election=by_election, ballot_set=ballot_set)
    item.candidates = [Candidate(key=c["key"], title=c["title"], description=c.get("description"),
                                 office=c.get("office"), position=i) for i, c in enumerate(candidates)]
    # Round 1 exists from the start so paper ballots can be printed before the vote opens.
    item.rounds = [Round(number=1, places=round_places, candidate_keys=keys, status=RoundStatus.PENDING, stage=stage)]
    db.add(item)
    db.flush()
    audit.append(db, AuditKind.ITEM_CREATED, item_event(item, scale_rule, stage), sitting_id=sitting.id)
    return item


def has_result(item: Item) -> bool:
    """A round of the item has been tallied (or found without quorum): there is a result to show."""
    return any(r.status == RoundStatus.TALLIED and r.result for r in item.rounds)


def open_item(db: Session, sitting: Sitting) -> Item | None:
    """The sitting's open vote (the first of an open ballot set), if any."""
    return db.scalar(select(Item).where(Item.sitting_id == sitting.id, Item.status == ItemStatus.OPEN)
                     .order_by(Item.position))


def open_item_locked(db: Session, sitting: Sitting) -> Item | None:
    """The sitting's open vote, read under a lock of the sitting's row for a change refused
    while a vote is open. PostgreSQL: FOR NO KEY UPDATE waits for (and then sees) a vote being
    opened, which holds the row FOR SHARE, so no such change lands inside a vote's window; not
    FOR UPDATE, which also stops every row that refers to the sitting from being inserted (a
    foreign key's FOR KEY SHARE): a counting station's page stored meanwhile, holding the
    chain's head, waited for it while this step waited for the head. (SQLite: the write lock.)"""
    db.execute(select(Sitting.id).where(Sitting.id == sitting.id).with_for_update(key_share=True))
    return open_item(db, sitting)


def get_item(db: Session, item_id: int) -> Item:
    return get_or_not_found(db, Item, item_id, where="item_id", en=f"no vote item with id {item_id}",
                            zh=f"找不到编号为 {item_id} 的表决事项")
