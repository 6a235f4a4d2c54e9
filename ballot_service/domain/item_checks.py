"""A vote item's fields checked before it is created or edited (sittings.create_item,
item_drafts.edit_item), and the item as its item_created / item_edited event carries it."""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ballot_service import rules
from ballot_service.domain import evaluation_items
from ballot_service.errors import Conflict, InvalidInput
from ballot_service.formats import names
from ballot_service.models import Item, Sitting
from ballot_service.numbers import is_int
from ballot_service.rules.evaluation_tally import scale_of
from ballot_service.vocab import Channel, ItemKind, MarkRule, values

MAX_TIME_LIMIT_S = 24 * 3600  # a vote's time limit, at most a day


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
        scale = (options, grading, scale_of(options, grading))
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
