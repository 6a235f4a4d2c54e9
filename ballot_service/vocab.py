"""The service's vocabulary: every kind, channel, status and rule option as a `str` enum, and
what each is called on screens, ballots and records in both languages.

Values are the words stored in the database, in scenario files and on the wire; a member
compares equal to its value ("open" == Status.OPEN), so stored rows need no conversion.
Labels live here only: templates, records and messages all ask `label()`.
Pure: no Flask, no SQL (the rules core imports this).
"""
from __future__ import annotations

from enum import StrEnum


class BodyKind(StrEnum):
    CONGRESS = "congress"                      # 人民代表大会 (plenary)
    STANDING_COMMITTEE = "standing_committee"  # 常务委员会


class ItemKind(StrEnum):
    LIVELIHOOD = "livelihood_projects"  # 民生实事项目票决
    APPOINTMENT = "appointment"         # 任职票决
    RESOLUTION = "resolution"           # 决议表决
    EVALUATION = "evaluation"           # 满意度测评 / 工作评议 / 述职评议 (RULES.md §5.5)
    ELECTION = "election"               # 选举 (RULES.md §5.4)


class Office(StrEnum):
    """What an election fills (组织法 art. 27; 选举法 for 上一级人大代表)."""

    PRINCIPAL = "principal"                # 正职
    VICE = "vice"                          # 副职
    COMMITTEE_MEMBER = "committee_member"  # 常委会委员 (must be deputies, art. 47)
    DEPUTY_HIGHER = "deputy_higher"        # 上一级人大代表


class ElectionStage(StrEnum):
    """What a round of an election is (Round.stage; None for the other kinds)."""

    FIRST = "first"              # 第一次投票
    REVOTE = "revote"            # 再次投票 among the tied at the last seat
    ANOTHER = "another"          # 另行选举 for seats left unfilled
    PRELIMINARY = "preliminary"  # 预选: ranks the nominees into the official list


class Channel(StrEnum):
    TERMINAL = "terminal"        # seat tablets
    PAPER = "paper"              # printed ballots, counted at the station
    TALLY_SHEET = "tally_sheet"  # paper counted by hand, the tellers enter the sheet
    HYBRID = "hybrid"            # seat tablets, and paper for a member whose tablet fails (a replacement)


# Channels whose rounds have a blind-signing key (tablet ballots), and those that take printed ballots.
BLIND_CHANNELS = (Channel.TERMINAL, Channel.HYBRID)
PAPER_CHANNELS = (Channel.PAPER, Channel.HYBRID)


class SittingStatus(StrEnum):
    OPEN = "open"
    CLOSED = "closed"  # 闭会: a signed checkpoint ends the chain for this sitting


class ItemStatus(StrEnum):
    DRAFT = "draft"
    OPEN = "open"
    CLOSED = "closed"  # its round's vote closed, not yet tallied
    RUNOFF_PENDING = "runoff_pending"
    DECIDED = "decided"
    VOID = "void"
    QUORUM_NOT_MET = "quorum_not_met"


class RoundStatus(StrEnum):
    PENDING = "pending"
    OPEN = "open"
    CLOSED = "closed"
    TALLIED = "tallied"


class Presence(StrEnum):
    """A member's attendance at a sitting (签到)."""

    PRESENT = "present"
    LEAVE = "leave"    # 请假
    ABSENT = "absent"


class TellerRole(StrEnum):
    """Who holds a counting-station credential that enters tally sheets: one enters, the
    other (the other role, another credential) confirms."""

    COUNTER = "counter"        # 计票人
    SCRUTINEER = "scrutineer"  # 监票人
    CHIEF = "chief"            # 总监票人: decides a scanned ballot the two tellers disagree on


class MarkRule(StrEnum):
    """Per paper item (选举办法): what the mark reader counts as a mark in a box."""

    ANY = "any"        # any clear mark: ○, √, ×, a filled box
    CIRCLE = "circle"  # only the asked-for 划○; other symbols go to the tellers


class OperatorRole(StrEnum):
    """What a console login may do, granted per body (OperatorGrant). A superuser administers
    the service itself (bodies, operators) and sees no body's votes."""

    SUPERUSER = "superuser"
    SECRETARIAT = "secretariat"  # 秘书处
    AUDITOR = "auditor"          # 审计
    DISPLAY = "display"          # 大屏


class Role(StrEnum):
    """Who may call a route (web/roles.py): the public, an operator (OperatorRole's words), a
    seat tablet's credential or a counting station's."""

    PUBLIC = "public"
    SUPERUSER = OperatorRole.SUPERUSER.value
    SECRETARIAT = OperatorRole.SECRETARIAT.value
    AUDITOR = OperatorRole.AUDITOR.value
    DISPLAY = OperatorRole.DISPLAY.value
    TERMINAL = "terminal"
    STATION = "station"


class TerminalKind(StrEnum):
    """What a registered terminal is (Terminal.kind)."""

    SEAT = "seat"                          # 席位终端: a member's tablet
    COUNTING_STATION = "counting_station"  # 计票站: tellers enter sheets and scan paper


class ScreenChoice(StrEnum):
    """What the presiding screen shows between votes (大屏, Sitting.screen)."""

    AUTO = "auto"        # follow the votes
    TITLE = "title"      # the body and the sitting
    CHECKIN = "checkin"  # 应到 / 实到 / 请假 / 缺席
    RESULT = "result"    # a tallied item's result


class AuditKind(StrEnum):
    """What an audit event records (AuditEvent.kind). The values are signed into the chain and read
    by the bundle's verifier, so they never change: a sitting's events keep the published word
    "session". Attendance is recorded as "attendance_" + a Presence word (ATTENDANCE_PREFIX)."""

    ADJUDICATION_DECIDED = "adjudication_decided"
    BALLOT_REPLACEMENT = "ballot_replacement"
    BODY_CREATED = "body_created"
    CAST_ACCEPTED = "cast_accepted"  # older chains only: casts are now recorded per group (casts_accepted)
    CAST_REFUSED = "cast_refused"
    CASTS_ACCEPTED = "casts_accepted"
    COUNT_REPORT_MADE = "count_report_made"
    ELECTION_ANOTHER_CREATED = "election_another_created"
    ITEM_CREATED = "item_created"
    ITEM_DELETED = "item_deleted"
    ITEM_EDITED = "item_edited"
    ITEM_MOVED = "item_moved"
    LOGIN = "login"
    LOGIN_UNLOCKED = "login_unlocked"
    MEETING_STARTED = "meeting_started"
    OPERATOR_CREATED = "operator_created"
    OPERATOR_ENABLED = "operator_enabled"
    OPERATOR_GRANTED = "operator_granted"
    OPERATOR_LOGINS_ENDED = "operator_logins_ended"
    OPERATOR_REVOKED = "operator_revoked"
    PAGE_SCANNED = "page_scanned"
    PAPER_BALLOTS_HANDED_OUT = "paper_ballots_handed_out"
    PAPER_BALLOTS_PRINTED = "paper_ballots_printed"
    PAPER_RESCANNED = "paper_rescanned"
    PROJECTS_ADDED = "projects_added"
    RECORD_ISSUED = "record_issued"
    RECORD_PUBLISHED = "record_published"
    ROSTER_IMPORTED = "roster_imported"
    ROUND_KEY_ANNOUNCED = "round_key_announced"
    SCANNED_IMAGES_DISCARDED = "scanned_images_discarded"
    SCREEN_SET = "screen_set"
    SITTING_CLOSED = "session_closed"
    SITTING_CREATED = "session_created"
    TALLIED = "tallied"
    TALLY_SHEET_CONFIRMED = "tally_sheet_confirmed"
    TALLY_SHEET_ENTERED = "tally_sheet_entered"
    TERMINAL_BOUND = "terminal_bound"
    TERMINAL_REGISTERED = "terminal_registered"
    TERMINAL_RELEASED = "terminal_released"
    TERMINAL_RESET = "terminal_reset"
    TERMINAL_REVOKED = "terminal_revoked"
    VOTE_CLOSED = "vote_closed"
    VOTE_OPEN_REFUSED = "vote_open_refused"
    VOTE_OPENED = "vote_opened"
    VOTE_TIME_EXTENDED = "vote_time_extended"


ATTENDANCE_PREFIX = "attendance_"


class Mark(StrEnum):
    FOR = "for"
    AGAINST = "against"
    ABSTAIN = "abstain"
    VOID = "void"  # paper only: a mark the tellers could not read as one choice


ELECTRONIC_MARKS = (Mark.FOR, Mark.AGAINST, Mark.ABSTAIN)


class Base(StrEnum):
    """What a majority is counted against (RULES.md §5.1)."""

    MEMBERS = "members"
    PRESENT = "present"
    VALID = "valid"


class Majority(StrEnum):
    HALF = "half"
    TWO_THIRDS = "two_thirds"


# (zh, en) per value. Statuses are read as "第1轮{zh}" / "round 1 is {en}".
LABELS: dict[StrEnum, tuple[str, str]] = {
    BodyKind.CONGRESS: ("人民代表大会", "people's congress"),
    BodyKind.STANDING_COMMITTEE: ("常务委员会", "standing committee"),
    ItemKind.LIVELIHOOD: ("民生实事项目票决", "livelihood projects vote"),
    ItemKind.APPOINTMENT: ("任职票决", "appointment vote"),
    ItemKind.RESOLUTION: ("决议表决", "resolution"),
    ItemKind.EVALUATION: ("满意度测评", "evaluation"),
    ItemKind.ELECTION: ("选举", "election"),
    Office.PRINCIPAL: ("正职", "principal office"),
    Office.VICE: ("副职", "deputy office"),
    Office.COMMITTEE_MEMBER: ("常委会委员", "standing committee member"),
    Office.DEPUTY_HIGHER: ("上一级人大代表", "deputy to the higher congress"),
    ElectionStage.FIRST: ("第一次投票", "first vote"),
    ElectionStage.REVOTE: ("再次投票", "re-vote among the tied"),
    ElectionStage.ANOTHER: ("另行选举", "further election"),
    ElectionStage.PRELIMINARY: ("预选", "preliminary vote"),
    Channel.TERMINAL: ("电子表决器", "seat tablets"),
    Channel.PAPER: ("纸质票", "paper ballots"),
    Channel.TALLY_SHEET: ("纸质票（计票单录入）", "paper ballots (tally sheet)"),
    Channel.HYBRID: ("电子表决器与纸质票", "seat tablets and paper ballots"),
    ItemStatus.DRAFT: ("未开始", "not started"),
    ItemStatus.OPEN: ("表决中", "open"),
    ItemStatus.CLOSED: ("已结束", "closed"),
    ItemStatus.RUNOFF_PENDING: ("待再次投票", "awaiting a runoff"),
    ItemStatus.DECIDED: ("已计票", "tallied"),
    ItemStatus.VOID: ("表决无效", "void"),
    ItemStatus.QUORUM_NOT_MET: ("不足法定人数", "without quorum"),
    RoundStatus.PENDING: ("未开始", "not started"),
    RoundStatus.CLOSED: ("已结束", "closed"),
    RoundStatus.TALLIED: ("已计票", "tallied"),
    Presence.PRESENT: ("已签到", "present"),
    Presence.LEAVE: ("请假", "on leave"),
    Presence.ABSENT: ("缺席", "absent"),
    TellerRole.COUNTER: ("计票人", "counter"),
    TellerRole.SCRUTINEER: ("监票人", "scrutineer"),
    OperatorRole.SUPERUSER: ("系统管理员", "superuser"),
    OperatorRole.SECRETARIAT: ("秘书处", "secretariat"),
    OperatorRole.AUDITOR: ("审计", "auditor"),
    OperatorRole.DISPLAY: ("大屏", "presiding screen"),
    TellerRole.CHIEF: ("总监票人", "chief scrutineer"),
    TerminalKind.SEAT: ("表决器", "seat tablet"),
    TerminalKind.COUNTING_STATION: ("计票站", "counting station"),
    MarkRule.ANY: ("任何清楚的符号", "any clear mark"),
    MarkRule.CIRCLE: ("只认划○", "only the asked-for ○"),
    Mark.FOR: ("赞成", "for"),
    Mark.AGAINST: ("反对", "against"),
    Mark.ABSTAIN: ("弃权", "abstain"),
    Mark.VOID: ("无效", "void"),
    Base.MEMBERS: ("全体组成人员", "all members"),
    Base.PRESENT: ("出席人员", "members present"),
    Base.VALID: ("有效票", "valid ballots"),
    Majority.HALF: ("过半数", "more than half"),
    Majority.TWO_THIRDS: ("三分之二以上", "two thirds or more"),
}

# What a signed record of each kind is called on its PDF, the verify page and the console.
RECORD_NAMES: dict[ItemKind, tuple[str, str]] = {
    ItemKind.LIVELIHOOD: ("票决结果", "Result of the projects vote"),
    ItemKind.APPOINTMENT: ("任免表决结果", "Result of the appointment vote"),
    ItemKind.RESOLUTION: ("表决结果记录", "Record of the vote"),
    ItemKind.EVALUATION: ("测评结果", "Result of the evaluation"),
    ItemKind.ELECTION: ("选举结果", "Result of the election"),
}


def nominee_label(name: str, office: str | None) -> str:
    """A nominee as every surface names them: 张三（拟任副县长）, or the name alone."""
    return f"{name}（拟任{office}）" if office else name


def record_name(kind: str, lang: str = "zh") -> str:
    zh, en = RECORD_NAMES.get(kind, ("表决结果记录", "Record of the vote"))
    return en if lang == "en" else zh


# Paper ballots: (title printed at the top, column header for the candidates), per item kind.
BALLOT_HEADINGS: dict[ItemKind, tuple[str, str]] = {
    ItemKind.LIVELIHOOD: ("票 决 票", "项目"),
    ItemKind.APPOINTMENT: ("表 决 票", "人选"),
    ItemKind.RESOLUTION: ("表 决 票", "表决事项"),
    ItemKind.EVALUATION: ("测 评 票", "测评对象"),
    ItemKind.ELECTION: ("选 举 票", "候选人"),
}

_BY_VALUE: dict[tuple[type, str], tuple[str, str]] = {(type(k), k.value): v for k, v in LABELS.items()}


def label_pair(value: str, enum: type[StrEnum] | None = None) -> tuple[str, str]:
    """(zh, en) for a stored word; `enum` picks the table when a word is used by several
    (RoundStatus.OPEN and ItemStatus.OPEN are both 'open' and read the same). An unknown
    word is shown as stored rather than hidden."""
    if enum is not None:
        return _BY_VALUE.get((enum, str(value)), (str(value), str(value)))
    for (_, v), pair in _BY_VALUE.items():
        if v == str(value):
            return pair
    return (str(value), str(value))


def label(value: str, lang: str = "zh", enum: type[StrEnum] | None = None) -> str:
    zh, en = label_pair(value, enum)
    return en if lang == "en" else zh


def labels_of(enum: type[StrEnum]) -> dict[str, tuple[str, str]]:
    """{stored word: (zh, en)} for every member of `enum`, in declaration order (for choices)."""
    return {m.value: label_pair(m.value, enum) for m in enum}


def status_name(status: str) -> tuple[str, str]:
    """(zh, en) name of an item or round status."""
    pair = _BY_VALUE.get((ItemStatus, str(status))) or _BY_VALUE.get((RoundStatus, str(status)))
    return pair or (str(status), str(status))


def values(enum: type[StrEnum]) -> tuple[str, ...]:
    """The stored words of an enum, in declaration order (for messages and choices)."""
    return tuple(m.value for m in enum)
