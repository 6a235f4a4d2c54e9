"""Election items (选举) in the service: the checks when an election is saved (seats, office,
差额 of 组织法 art. 27/29/30 in the integers of RULES.md §5.4), the rounds that follow a tally
(再次投票 among the tied, the official list after a 预选), the 另行选举 the console starts in
one step, and who may be written in. The counting itself is rules/election_tally.py."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ballot_service.domain import audit
from ballot_service.errors import Conflict, Forbidden, InvalidInput
from ballot_service.formats import names
from ballot_service.models import Candidate, Item, Member, Record, Round, Terminal
from ballot_service.numbers import is_int
from ballot_service.rules import RuleError
from ballot_service.rules import election as er
from ballot_service.rules.election_tally import WRITE_IN, item_result
from ballot_service.vocab import (
    AuditKind,
    ElectionStage,
    ItemKind,
    ItemStatus,
    Office,
    RoundStatus,
    label,
    values,
)


def is_election(item: Item) -> bool:
    return item.kind == ItemKind.ELECTION


def check_new_election(office, by_election, places, nominees: int, rule_given: bool,
                       secret: bool = True) -> tuple[str, int]:
    """(stage, seats) of round 1 of a new election, or InvalidInput naming the article.
    Too many nominees is not refused: round 1 is then a 预选 that ranks them into the
    official list of the most candidates allowed."""
    if not secret:
        raise InvalidInput("an election is a secret ballot (组织法 art. 28)", where="secret",
                           zh="选举采用无记名投票（组织法第二十八条），不能记名")
    if rule_given:
        raise InvalidInput("an election has no base or majority options: 组织法 art. 25 fixes them "
                           "(more than half of all deputies)", where="rule",
                           zh="选举不设通过基数和多数选项：组织法第二十五条规定须获得全体代表的过半数选票")
    if office not in values(Office):
        raise InvalidInput(f"office must be one of {', '.join(values(Office))}, not {office!r}", where="office",
                           zh=f"职务类别须为 {'、'.join(label(o, enum=Office) for o in Office)} 之一")
    if not isinstance(by_election, bool):
        raise InvalidInput("by_election must be true or false", where="by_election", zh="是否补选须为 true 或 false")
    if not is_int(places) or places < 1:
        raise InvalidInput("places (the seats to fill) must be a whole number >= 1", where="places",
                           zh="应选名额须为不小于 1 的整数")
    slate = _slate(office, places, nominees, by_election=by_election, another=False)
    if slate.status == "preliminary":
        return ElectionStage.PRELIMINARY, slate.max_candidates
    return ElectionStage.FIRST, places


def _slate(office: str, seats: int, nominees: int, *, by_election: bool, another: bool) -> er.SlateCheck:
    try:
        slate = er.check_slate(office, seats, nominees, by_election=by_election, another=another)
    except RuleError as exc:
        raise InvalidInput(str(exc), where="candidates") from None
    if slate.status == "refused":
        hi = "" if slate.max_candidates is None else f"至{slate.max_candidates}"
        span = f"{slate.min_candidates}{hi if slate.max_candidates != slate.min_candidates else ''}"
        raise InvalidInput(slate.message, where="candidates",
                           zh=f"{slate.article}：{label(office, enum=Office)}应选{seats}名，候选人须为{span}名，"
                              f"现为{nominees}名")
    return slate


def after_tally(item: Item, rnd: Round, result: dict) -> None:
    """The round a tally leads to: a re-vote among the tied (they alone are on it, written-in
    persons included), or round 1 on the official list a 预选 produced."""
    if result["status"] == ItemStatus.RUNOFF_PENDING:
        known = {c.key for c in item.candidates}
        for k in result["tied"]:
            if k not in known:  # a written-in person tied at the last seat is printed by name
                item.candidates.append(Candidate(key=k, title=k[len(WRITE_IN):], position=len(item.candidates)))
        item.rounds.append(Round(number=rnd.number + 1, places=result["runoff_places"], stage=ElectionStage.REVOTE,
                                 candidate_keys=list(result["tied"]), status=RoundStatus.PENDING))
    elif result["status"] == ItemStatus.DECIDED and _preliminary_phase(item, rnd):
        # the official list: those the 预选 placed, then those its re-votes placed
        phase = _preliminary_phase(item, rnd)
        official = [k for r in phase for k in r.result["elected"]]
        item.rounds.append(Round(number=rnd.number + 1, places=item.places, stage=ElectionStage.FIRST,
                                 candidate_keys=official, status=RoundStatus.PENDING))
        item.status = ItemStatus.DRAFT


def _preliminary_phase(item: Item, rnd: Round) -> list[Round]:
    """The 预选 and its re-votes up to `rnd`, when `rnd` belongs to a 预选; else []."""
    upto = [r for r in item.rounds if r.number <= rnd.number]
    starts = [i for i, r in enumerate(upto) if r.stage != ElectionStage.REVOTE]
    if not starts or upto[starts[-1]].stage != ElectionStage.PRELIMINARY:
        return []
    return [r for r in upto[starts[-1]:] if r.result is not None or r is rnd]


def start_another(db: Session, item: Item, candidates: list | None) -> Round:
    """另行选举 in one step: a new round for the seats left unfilled, on `candidates` (keys of
    the item's nominees, or {key, title} newly nominated), by default the nominees not
    elected in first-round vote order, as many as the 差额 allows."""
    seats, keys, new, slate = another_slate(db, item, candidates)
    item.candidates.extend(Candidate(key=k, title=t, position=len(item.candidates) + i) for i, (k, t) in enumerate(new))
    rnd = Round(number=item.rounds[-1].number + 1, places=seats, stage=ElectionStage.ANOTHER,
                candidate_keys=keys, status=RoundStatus.PENDING)
    item.rounds.append(rnd)
    item.status = ItemStatus.DRAFT
    db.flush()
    audit.append(db, AuditKind.ELECTION_ANOTHER_CREATED, {"item_id": item.id, "round": rnd.number, "places": seats,
                                                  "candidates": keys, "article": slate.article},
                 sitting_id=item.sitting_id)
    return rnd


def another_slate(db: Session, item: Item, candidates: list | None) -> tuple[int, list[str], list, er.SlateCheck]:
    """(unfilled seats, candidate keys, newly nominated (key, title), 差额 check) of a 另行选举
    of `item`, in this sitting or saved for a later one; refused when there is none to hold."""
    if not is_election(item):
        raise InvalidInput(f"item {item.key} is not an election", where="item", zh=f"表决事项 {item.key} 不是选举")
    tallied = [r for r in item.rounds if r.status == RoundStatus.TALLIED and r.result]
    if item.status != ItemStatus.DECIDED or not tallied or any(r.status != RoundStatus.TALLIED for r in item.rounds):
        raise Conflict(f"item {item.key} has no decided round with unfilled seats", where="item",
                       zh=f"选举 {item.key} 尚无已计票且有空缺名额的结果，不能另行选举")
    if db.scalar(select(Record.id).where(Record.item_id == item.id)) is not None:
        raise Conflict(f"the record of {item.key} is signed: a 另行选举 is started before it is signed", where="item",
                       zh=f"选举 {item.key} 的结果记录已签发：另行选举须在签发前发起")
    later = db.scalar(select(Item).where(Item.another_of == item.id))
    if later is not None:
        raise Conflict(f"the 另行选举 of {item.key} is already saved for session {later.sitting.name}", where="item",
                       zh=f"选举 {item.key} 的另行选举已安排于{later.sitting.name}进行，不能再次发起")
    outcome = item_result(item.key, [r.result for r in tallied])
    seats = outcome["unfilled"]
    if seats < 1:
        raise Conflict(f"every seat of {item.key} is filled", where="item", zh=f"选举 {item.key} 的名额已全部选出")
    elected = set(outcome["elected"])
    if candidates is None:
        # the election proper: round 1 after any 预选, or a saved 另行选举's own round 1
        first = next(r.result for r in tallied if r.result.get("stage") in (ElectionStage.FIRST, ElectionStage.ANOTHER))
        ranked = sorted((c for c in first["candidates"] if c["key"] not in elected), key=lambda c: -c["for"])
        _, most, _ = er.candidate_range(item.office, seats, by_election=item.by_election)
        candidates = [c["key"] for c in ranked[:most or len(ranked)]]
    if not isinstance(candidates, list):
        raise InvalidInput("candidates must be a list of keys or {key, title}", where="candidates",
                           zh="候选人须为编号或 {key, title} 的列表")
    known = {c.key: c.title for c in item.candidates}
    picked = [_nominee(known, c, i, elected) for i, c in enumerate(candidates)]
    keys = [k for k, _ in picked]
    if len(set(keys)) != len(keys):
        raise InvalidInput("a candidate is listed twice", where="candidates", zh="候选人重复")
    slate = _slate(item.office, seats, len(keys), by_election=item.by_election, another=True)
    if slate.status == "preliminary":
        raise InvalidInput(slate.message, where="candidates",
                           zh=f"{slate.article}：另行选举{seats}名，候选人至多{slate.max_candidates}名")
    return seats, keys, [(k, t) for k, t in picked if k not in known], slate


def _nominee(known: dict[str, str], c, i: int, elected: set[str]) -> tuple[str, str]:
    """(key, name) of one 另行选举 candidate: a nominee of the election, or newly nominated."""
    key = c.get("key") if isinstance(c, dict) else c
    if not isinstance(key, str) or not key:
        raise InvalidInput("each candidate needs a key", where=f"candidates[{i}]", zh="每名候选人须有编号")
    if key in elected:
        raise InvalidInput(f"{key} is already elected", where=f"candidates[{i}]", zh=f"{key} 已当选")
    if key in known:
        return key, known[key]
    if not isinstance(c, dict) or not c.get("title"):
        raise InvalidInput(f"{key!r} is not a nominee of this election; a new nominee needs a title",
                           where=f"candidates[{i}]", zh=f"“{key}”不是本次选举的候选人；新提名的候选人须填写姓名")
    key = names.check_name(key, what="candidate key", where=f"candidates[{i}].key", max_len=names.CANDIDATE_KEY)
    title = names.check_name(c["title"], what="candidate title", where=f"candidates[{i}].title",
                             max_len=names.CANDIDATE_TITLE)
    return key, title


def refuse_candidate_teller(db: Session, item: Item | None, terminal_id: int) -> None:
    """计票人 and 监票人 may not be candidates in the election they count: a station credential
    whose holder is on the election's list (any round's) is refused."""
    if item is None or not is_election(item):
        return
    holder = db.scalar(select(Terminal.holder).where(Terminal.id == terminal_id))
    if not holder:
        return
    on_list = {er.normalise_name(c.title) for c in item.candidates}
    if er.normalise_name(holder) in on_list:
        raise Forbidden(f"{holder} is a candidate in {item.title} and may not count it (teller credential refused)",
                        where="credential", zh=f"{holder}是《{item.title}》的候选人，不得担任该选举的计票人、监票人")


def write_in_policy(item: Item, rnd: Round) -> dict:
    """What the tablet offers for 另选他人 in this round: nothing in a re-vote or 预选; the
    roster of deputies only for 常委会组成人员 (art. 47); else the roster or a typed name."""
    allowed = rnd.stage in (ElectionStage.FIRST, ElectionStage.ANOTHER)
    return {"allowed": allowed, "roster_only": item.office == Office.COMMITTEE_MEMBER}


MAX_SEARCH_RESULTS = 20


def search_roster(db: Session, item: Item | None, q: str) -> list[dict]:
    """Deputies matching `q` by name or 代表证号, for a write-in in the open election: not the
    round's listed candidates. Empty without an open election or a query."""
    q = er.normalise_name(q)[:50] if isinstance(q, str) else ""
    if item is None or not is_election(item) or not q:
        return []
    listed = {er.normalise_name(n) for n in listed_names(item, item.rounds[-1])}
    rows = db.execute(select(Member.member_no, Member.name).where(
        Member.body_id == item.sitting.body_id, Member.in_office.is_(True),
        (Member.name.contains(q, autoescape=True)) | (Member.member_no.contains(q, autoescape=True)))
        .order_by(Member.member_no).limit(MAX_SEARCH_RESULTS + len(listed))).all()
    return [{"member_no": no, "name": name} for no, name in rows if name not in listed][:MAX_SEARCH_RESULTS]


def listed_names(item: Item, rnd: Round) -> list[str]:
    """Every name a listed candidate of the round goes by: a write-in of one is no vote."""
    titles = {c.key: c.title for c in item.candidates}
    return [titles[k] for k in rnd.candidate_keys if k in titles]


def bundle_facts(db: Session, item: Item) -> dict | None:
    """An election's facts in the auditor's bundle, so a recount reads write-ins as the tally did."""
    if not is_election(item):
        return None
    return {"office": item.office, "by_election": item.by_election,
            "titles": {c.key: c.title for c in item.candidates}, "eligible": eligible_names(db, item)}


def written_in_deputies(item: Item) -> dict[str, str]:
    """{代表证号: name} of the deputies written in by their number in any tallied round, so the
    record and the 宣布稿 can name them."""
    written = {w["name"] for r in item.rounds if r.result for w in r.result.get("write_ins", [])}
    return {m.member_no: m.name for m in item.sitting.body.members if m.member_no in written}


def eligible_names(db: Session, item: Item) -> list[str] | None:
    """Who may be written in: for 常委会组成人员 only deputies (组织法 art. 47), by 代表证号 or
    name; None (anyone) for the other offices."""
    if item.office != Office.COMMITTEE_MEMBER:
        return None
    rows = db.execute(select(Member.member_no, Member.name).where(
        Member.body_id == item.sitting.body_id, Member.in_office.is_(True))).all()
    return [x for row in rows for x in row]


def check_ballot_set(db: Session, sitting_id: int, name, kind: str, channel: str,
                     item_id: int | None = None) -> str | None:
    """The cleaned set name for an item being saved, or None; refused with the reason."""
    if name is None or name == "":
        return None
    name = names.check_name(name, what="ballot set", where="ballot_set", max_len=names.ITEM_KEY)
    if kind != ItemKind.ELECTION:
        raise InvalidInput("only elections are printed together as a ballot set", where="ballot_set",
                           zh="只有选举事项可以合印一张选票（选举票组）")
    # Locked and read again (PostgreSQL): a set being opened (ballot_sets.item_for_change holds
    # its items) is then seen open, and an opening waits for this item to join first.
    others = [i for i in db.scalars(select(Item).where(Item.sitting_id == sitting_id, Item.ballot_set == name)
                                    .order_by(Item.id).with_for_update().execution_options(populate_existing=True))
              if i.id != item_id]
    if any(i.channel != channel for i in others):
        raise InvalidInput(f"the elections of ballot set {name!r} are voted by {others[0].channel}", where="channel",
                           zh=f"选举票组“{name}”中的选举须采用同一表决渠道")
    if any(i.status != ItemStatus.DRAFT or len(i.rounds) != 1 for i in others):
        raise Conflict(f"ballot set {name!r} has been voted on: an election cannot join it now", where="ballot_set",
                       zh=f"选举票组“{name}”已开始表决，不能再加入选举")
    return name
