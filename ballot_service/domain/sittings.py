"""Bodies, sittings (会次), check-in (签到), vote items and closing a sitting (闭会): domain
operations that only flush."""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from ballot_service import rules
from ballot_service.crypto import keys
from ballot_service.db import utcnow
from ballot_service.domain import audit, election_items, evaluation_items
from ballot_service.errors import Conflict, InvalidInput, NotFound
from ballot_service.formats import names
from ballot_service.models import Attendance, Body, Candidate, Item, Member, Round, Sitting
from ballot_service.numbers import is_int
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

MAX_TIME_LIMIT_S = 24 * 3600  # a vote's time limit, at most a day


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
    body = db.get(Body, body_id)
    if body is None:
        raise NotFound(f"no body with id {body_id}", where="body_id", zh=f"找不到编号为 {body_id} 的机构")
    return body


def get_sitting(db: Session, sitting_id: int) -> Sitting:
    sitting = db.get(Sitting, sitting_id)
    if sitting is None:
        raise NotFound(f"no session with id {sitting_id}", where="session_id", zh=f"找不到编号为 {sitting_id} 的会议")
    return sitting


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


def require_open(db: Session, sitting: Sitting, doing_zh: str, doing_en: str) -> None:
    """Refuse `doing` in a closed session. Reads the status under a shared row lock
    (PostgreSQL: FOR SHARE; SQLite's write lock is already held), so a change that passes
    this check commits before a concurrent session close, never after it."""
    status, closed_at = db.execute(select(Sitting.status, Sitting.closed_at).where(Sitting.id == sitting.id)
                                   .with_for_update(read=True)).one()
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
    db.refresh(sitting, with_for_update=True)
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
    require_open(db, sitting, "签到或请假", "check-in or leave")
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
    require_open(db, sitting, "新增表决事项", "adding a vote item")
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


def item_event(item: Item, scale_rule: dict, stage: str | None) -> dict:
    """The item as its item_created (and item_edited) event carries it: what the bundle
    verifier checks counts.json against. `scale_rule`: an evaluation's rule words, else {}."""
    return {"session_id": item.sitting_id, "item_id": item.id, "key": item.key, "kind": item.kind,
            "title": item.title, "places": item.places,
            "rule": {"base": item.base, "majority": item.majority, **scale_rule}, "secret": item.secret,
            "channel": item.channel,
            "candidates": [{"key": c.key, "title": c.title, **({"office": c.office} if c.office else {})}
                           for c in item.candidates],
            **({"options": item.options} if item.kind == ItemKind.EVALUATION else {}),
            **({"office": item.office, "by_election": item.by_election, "stage": stage} if stage else {}),
            **({"ballot_set": item.ballot_set} if item.ballot_set else {})}


def check_item(db: Session, sitting: Sitting, *, key, kind, title, candidates, places, base, majority, secret,
               channel, time_limit_s, mark_rule: str = MarkRule.ANY, options=None, grading=None,
               item_id: int | None = None) -> tuple:
    """Everything create_item checks (also for an edit before opening, item_drafts.edit_item):
    the cleaned (key, title, candidates, places, candidate keys, (options, grading, the
    evaluation's rule words)). `item_id`: the item being edited, whose own key is no clash."""
    if kind not in rules.ITEM_KINDS:
        raise InvalidInput(f"kind must be one of {', '.join(rules.ITEM_KINDS)}, not {kind!r}", where="kind",
                           zh=f"表决事项类型须为 {'、'.join(rules.ITEM_KINDS)} 之一，不能是 {kind!r}")
    if channel not in (Channel.TERMINAL, Channel.PAPER, Channel.TALLY_SHEET, Channel.HYBRID):
        raise InvalidInput(f"channel must be terminal, paper, tally_sheet or hybrid, not {channel!r}",
                           where="channel", zh=f"渠道须为 terminal（表决器）、paper（纸质票）、tally_sheet（计票单）"
                                               f"或 hybrid（表决器与纸质票），不能是 {channel!r}")
    if channel == Channel.HYBRID and not secret:
        # a paper ballot names no member: a named (记名) vote is cast from the member's own tablet
        raise InvalidInput("a hybrid (tablets and paper) vote must be secret", where="channel",
                           zh="表决器与纸质票混合表决只能是无记名投票")
    rule = rules.Rule(base, majority) if base in rules.BASES and majority in rules.MAJORITIES else None
    if rule is None:
        raise InvalidInput(f"rule base must be one of {rules.BASES} and majority one of {rules.MAJORITIES}",
                           where="rule",
                           zh=f"通过基数须为 {'、'.join(rules.BASES)} 之一，多数须为 {'、'.join(rules.MAJORITIES)} 之一")
    if not key or not title:
        raise InvalidInput("an item needs a key and a title", where="key" if not key else "title",
                           zh="表决事项须填写编号和标题")
    key = names.check_name(key, what="item key", where="key", max_len=names.ITEM_KEY)
    title = names.check_name(title, what="item title", where="title", max_len=names.ITEM_TITLE)
    if time_limit_s is not None and (not isinstance(time_limit_s, int) or isinstance(time_limit_s, bool)
                                     or not 1 <= time_limit_s <= MAX_TIME_LIMIT_S):
        raise InvalidInput(f"time_limit_s must be a whole number of seconds from 1 to {MAX_TIME_LIMIT_S}",
                           where="time_limit_s", zh=f"表决限时须为 1 至 {MAX_TIME_LIMIT_S} 秒之间的整数")
    if mark_rule not in values(MarkRule):
        raise InvalidInput(f"mark_rule must be one of {', '.join(values(MarkRule))}, not {mark_rule!r}",
                           where="mark_rule", zh="计票符号规则须为 any（任何清楚的符号）或 circle（只认划○）")
    if db.scalar(select(Item).where(Item.sitting_id == sitting.id, Item.key == key, Item.id != (item_id or 0))):
        raise Conflict(f"an item with key {key!r} already exists in this session", where="key",
                       zh=f"本次会议已有编号为“{key}”的表决事项")
    if kind == ItemKind.RESOLUTION:
        if candidates:
            raise InvalidInput("a resolution has no candidates: its one candidate is the motion",
                               where="candidates", zh="决议表决不设候选项：表决对象就是决议本身")
        candidates = [{"key": rules.MOTION, "title": title}]
        places = None
    else:
        if not candidates:
            raise InvalidInput(f"a {kind} item needs candidates", where="candidates",
                               zh={"livelihood_projects": "民生实事项目票决须填写候选项目",
                                   "evaluation": "满意度测评须填写测评对象",
                                   "election": "选举须填写候选人"}.get(kind, "任职票决须填写被提名人"))
    candidates = [_clean_candidate(c, i, kind) for i, c in enumerate(candidates)]
    keys = [c.get("key") for c in candidates]
    for i, c in enumerate(candidates):
        if keys.count(c["key"]) > 1:
            raise InvalidInput(f"candidate key {c['key']!r} appears twice", where=f"candidates[{i}].key",
                               zh=f"候选编号“{c['key']}”重复")
    if kind == ItemKind.LIVELIHOOD:
        if not is_int(places) or places < 1:
            raise InvalidInput("places (k) must be a whole number >= 1", where="places",
                               zh="应选数 k 须为不小于 1 的整数")
        if places > len(candidates):
            raise InvalidInput(f"places ({places}) exceeds the number of candidates ({len(candidates)})",
                               where="places", zh=f"应选数（{places}）超过候选项目数（{len(candidates)}）")
    elif kind == ItemKind.APPOINTMENT:
        places = None
    scale = (None, None, {})
    if kind == ItemKind.EVALUATION:
        if places is not None:
            raise InvalidInput("an evaluation rates every subject: it has no places", where="places",
                               zh="满意度测评对每个对象分别测评，不设应选数")
        evaluation_items.check_rule(base, majority)
        options = evaluation_items.clean_options(options)
        grading = evaluation_items.clean_grading(grading, [o["key"] for o in options])
        scale = (options, grading, evaluation_items.scale_of(options, grading))
    elif options is not None or grading is not None:
        raise InvalidInput("options and grading are for an evaluation item only", where="options",
                           zh="测评选项和等次评定方式只用于满意度测评")
    return key, title, candidates, places, keys, scale


def _clean_candidate(c, i: int, kind: str) -> dict:
    """A candidate {key, title, description?, office?} with every text a clean name
    (formats.names); office (拟任职务) only for a nominee of an appointment item."""
    if not isinstance(c, dict):
        raise InvalidInput("each candidate must be an object {key, title, description}", where=f"candidates[{i}]",
                           zh="每个候选项须为对象 {key, title, description}")
    if not c.get("key") or not c.get("title"):
        raise InvalidInput("each candidate needs a key and a title", where=f"candidates[{i}]",
                           zh="每个候选项目或被提名人都须有编号和名称")
    out = {"key": names.check_name(c["key"], what="candidate key", where=f"candidates[{i}].key",
                                   max_len=names.CANDIDATE_KEY),
           "title": names.check_name(c["title"], what="candidate title", where=f"candidates[{i}].title",
                                     max_len=names.CANDIDATE_TITLE)}
    description = names.check_name(c.get("description"), what="candidate description", required=False,
                                   where=f"candidates[{i}].description", max_len=names.CANDIDATE_DESCRIPTION,
                                   multiline=True)
    if description:
        out["description"] = description
    office = names.check_name(c.get("office"), what="proposed office", required=False,
                              where=f"candidates[{i}].office", max_len=names.CANDIDATE_OFFICE)
    if office and kind != ItemKind.APPOINTMENT:
        raise InvalidInput("only a nominee of an appointment item has a proposed office", where=f"candidates[{i}].office",
                           zh="只有任职票决的被提名人才填写拟任职务")
    if office:
        out["office"] = office
    return out


def has_result(item: Item) -> bool:
    """A round of the item has been tallied (or found without quorum): there is a result to show."""
    return any(r.status == RoundStatus.TALLIED and r.result for r in item.rounds)


def open_item(db: Session, sitting: Sitting) -> Item | None:
    """The sitting's open vote (the first of an open ballot set), if any."""
    return db.scalar(select(Item).where(Item.sitting_id == sitting.id, Item.status == ItemStatus.OPEN)
                     .order_by(Item.position))


def get_item(db: Session, item_id: int) -> Item:
    item = db.get(Item, item_id)
    if item is None:
        raise NotFound(f"no vote item with id {item_id}", where="item_id", zh=f"找不到编号为 {item_id} 的表决事项")
    return item
