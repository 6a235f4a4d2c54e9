"""Scenario files (shared/scenarios/FORMAT.md): their JSON schema, loading with errors that
name the JSON path at fault, and the checks of meaning the schema cannot express. Running a
scenario is rehearsal.py."""
from __future__ import annotations

import json
from pathlib import Path

import jsonschema

from ballot_service.errors import InvalidInput
from ballot_service.formats import scenario_errors
from ballot_service.formats.ballots import MAX_PAPER_BATCH
from ballot_service.rules.evaluation import RESERVED_KEYS, SATISFACTION_OPTIONS, SATISFACTION_TITLES
from ballot_service.vocab import (
    Base,
    BodyKind,
    Channel,
    ItemKind,
    Majority,
    Mark,
    Office,
    values,
)

DEFAULT_OPTIONS = [{"key": k, "title": SATISFACTION_TITLES[k]} for k in SATISFACTION_OPTIONS]

_present = {"oneOf": [
    {"type": "object", "properties": {"count": {"type": "integer", "minimum": 0}},
     "required": ["count"], "additionalProperties": False},
    {"type": "object", "properties": {"ids": {"type": "array", "items": {"type": "string"}}},
     "required": ["ids"], "additionalProperties": False}]}
_ballot = {"type": "object", "additionalProperties": False, "required": ["marks"], "properties": {
    # for / against / abstain / void, or an evaluation's option keys: checked per kind (_check_ballot)
    "marks": {"type": "object", "additionalProperties": {"type": "string", "minLength": 1}},
    "repeat": {"type": "integer", "minimum": 1}, "forged": {"type": "boolean"},
    "reuse": {"type": "boolean"}, "spare": {"type": "boolean"},
    "write_ins": {"type": "array", "items": {"type": "string", "minLength": 1}}}}
_candidates = {"type": "array", "items": {
    "type": "object", "additionalProperties": False, "required": ["key", "title"],
    "properties": {"key": {"type": "string", "minLength": 1}, "title": {"type": "string"},
                   "description": {"type": "string"}}}}
_counts = {"type": "object", "additionalProperties": False, "required": ["for", "against", "abstain"],
           "properties": {m: {"type": "integer", "minimum": 0} for m in values(Mark)}}
# an evaluation's sheet: a count per option, abstain and void (checked per item, _check_evaluation)
_evaluation_counts = {"type": "object", "additionalProperties": {"type": "integer", "minimum": 0}}
_option = {"type": "object", "additionalProperties": False, "required": ["key", "title"],
           "properties": {"key": {"type": "string", "minLength": 1}, "title": {"type": "string", "minLength": 1}}}
SCHEMA = {
    "type": "object", "additionalProperties": False,
    "required": ["format", "body", "session", "roster", "present", "items"],
    "properties": {
        "format": {"const": "ballot-scenario/1"},
        "body": {"type": "object", "additionalProperties": False, "required": ["name", "kind"],
                 "properties": {"name": {"type": "string", "minLength": 1},
                                "kind": {"enum": [*values(BodyKind)]}}},
        "session": {"type": "object", "additionalProperties": False, "required": ["name"],
                    "properties": {"name": {"type": "string", "minLength": 1}}},
        "roster": {"oneOf": [
            {"type": "object", "additionalProperties": False, "required": ["size"],
             "properties": {"size": {"type": "integer", "minimum": 1, "maximum": MAX_PAPER_BATCH}}},
            {"type": "object", "additionalProperties": False, "required": ["members"],
             "properties": {"members": {"type": "array", "minItems": 1, "items": {
                 "type": "object", "additionalProperties": False, "required": ["id", "name"],
                 "properties": {"id": {"type": "string", "minLength": 1},
                                "name": {"type": "string", "minLength": 1}}}}}}]},
        "present": _present,
        "items": {"type": "array", "items": {
            "type": "object", "additionalProperties": False, "required": ["key", "kind", "title"],
            "properties": {
                "key": {"type": "string", "minLength": 1},
                "kind": {"enum": [*values(ItemKind)]},
                "title": {"type": "string", "minLength": 1},
                "secret": {"type": "boolean"},
                "channel": {"enum": [*values(Channel)]},
                "places": {"type": "integer", "minimum": 1},
                "candidates": _candidates,
                "options": {"type": "array", "minItems": 2, "items": _option},
                "rule": {"type": "object", "additionalProperties": False, "properties": {
                    "base": {"enum": [*values(Base)]},
                    "majority": {"enum": [*values(Majority)]}}},
                "present": _present,
                "issued": {"type": "integer", "minimum": 0},
                "ballots": {"type": "array", "items": _ballot},
                "sheet": {"type": "object", "additionalProperties": False,
                          "required": ["issued", "returned", "invalid", "counts"],
                          "properties": {"issued": {"type": "integer", "minimum": 0},
                                         "returned": {"type": "integer", "minimum": 0},
                                         "invalid": {"type": "integer", "minimum": 0},
                                         "counts": {"type": "object", "additionalProperties": {
                                             "anyOf": [_counts, _evaluation_counts]}}}},
                "runoff": {"type": "object", "additionalProperties": False, "required": ["ballots"],
                           "properties": {"present": _present, "ballots": {"type": "array", "items": _ballot}}},
                "office": {"enum": [*values(Office)]},
                "by_election": {"type": "boolean"},
                "another": {"type": "object", "additionalProperties": False, "required": ["ballots"],
                            "properties": {"candidates": _candidates, "present": _present,
                                           "ballots": {"type": "array", "items": _ballot},
                                           "runoff": {"type": "object", "additionalProperties": False,
                                                      "required": ["ballots"],
                                                      "properties": {"present": _present, "ballots": {
                                                          "type": "array", "items": _ballot}}}}},
            }}},
    },
}


def json_path(path) -> str:
    out = "$"
    for p in path:
        out += f"[{p}]" if isinstance(p, int) else f".{p}"
    return out


def load_scenario(path: str | Path) -> dict:
    """Read and validate a scenario; refuse it with the JSON path at fault."""
    path = Path(path)
    try:
        data = json.loads(path.read_text("utf-8"))
    except OSError as exc:
        raise InvalidInput(f"cannot read scenario: {exc.strerror}", where=str(path),
                           zh=f"无法读取场景文件：{exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise InvalidInput(f"scenario is not UTF-8 text (byte {exc.start})", where=str(path),
                           zh=f"场景文件不是 UTF-8 文本（第 {exc.start} 字节）") from None
    except json.JSONDecodeError as exc:
        raise InvalidInput(f"not valid JSON: {exc.msg} at line {exc.lineno} column {exc.colno}",
                           where=f"{path}:{exc.lineno}:{exc.colno}",
                           zh=f"不是有效的 JSON：第 {exc.lineno} 行第 {exc.colno} 列（{exc.msg}）") from None
    validator = jsonschema.Draft202012Validator(SCHEMA)
    errors = sorted(validator.iter_errors(data), key=lambda e: (len(e.absolute_path), list(map(str, e.absolute_path))))
    if errors:
        e = errors[0]
        # oneOf failures are vague; report the deepest underlying cause.
        while e.context:
            e = sorted(e.context, key=lambda c: -len(c.absolute_path))[0]
        raise InvalidInput(e.message, where=json_path(e.absolute_path), zh=scenario_errors.schema_zh(e))
    _check_meaning(data)
    return data


def _check_meaning(s: dict) -> None:
    roster = roster_of(s)
    ids = [m["id"] for m in roster]
    if len(set(ids)) != len(ids):
        raise InvalidInput("duplicate member id in roster", where="$.roster.members", zh="名册中代表编号重复")
    known = set(ids)
    _check_present(s["present"], known, "$.present", len(ids))
    keys = set()
    for i, item in enumerate(s["items"]):
        at = f"$.items[{i}]"
        if item["key"] in keys:
            raise InvalidInput(f"duplicate item key {item['key']!r}", where=f"{at}.key",
                               zh=f"表决事项编号 {item['key']!r} 重复")
        keys.add(item["key"])
        if item["kind"] == ItemKind.RESOLUTION:
            if "candidates" in item:
                raise InvalidInput("a resolution has no candidates (its one candidate is 'motion')",
                                   where=f"{at}.candidates", zh="决议类事项没有候选人（唯一的表决对象是 motion）")
            cands = ["motion"]
        else:
            if not item.get("candidates"):
                raise InvalidInput("candidates are required", where=f"{at}.candidates", zh="缺少候选人（项目）")
            cands = [c["key"] for c in item["candidates"]]
        with_places = (ItemKind.LIVELIHOOD, ItemKind.ELECTION)
        if item["kind"] in with_places and "places" not in item:
            raise InvalidInput(f"places is required for {item['kind']}", where=f"{at}.places",
                               zh=f"{item['kind']} 事项须填写应选名额 places")
        if item["kind"] not in with_places and "places" in item:
            raise InvalidInput("places is only for livelihood_projects and election", where=f"{at}.places",
                               zh="只有民生实事项目（livelihood_projects）和选举（election）有应选名额 places")
        _check_election_fields(item, at)
        channel = item.get("channel", Channel.TERMINAL)
        marks = _marks_of(item, at)
        if channel == Channel.TALLY_SHEET:
            if "sheet" not in item:
                raise InvalidInput("a tally_sheet item needs a sheet", where=f"{at}.sheet", zh="计票单（tally_sheet）事项须有 sheet")
            if "ballots" in item:
                raise InvalidInput("a tally_sheet item has a sheet, not ballots", where=f"{at}.ballots",
                                   zh="计票单事项只有 sheet，不能有 ballots")
            for k, c in item["sheet"]["counts"].items():
                if k not in cands:
                    raise InvalidInput(f"{k!r} is not a candidate", where=f"{at}.sheet.counts.{k}",
                                       zh=f"{k!r} 不是本事项的候选人")
                for m in c:
                    if m not in (marks if item["kind"] == ItemKind.EVALUATION else values(Mark)):
                        raise InvalidInput(f"{m!r} is not a count of this item", where=f"{at}.sheet.counts.{k}.{m}",
                                           zh=f"{m!r} 不是本事项的计票栏目")
        elif "sheet" in item:
            raise InvalidInput("only tally_sheet items have a sheet", where=f"{at}.sheet", zh="只有计票单事项有 sheet")
        if "issued" in item and channel != Channel.PAPER:
            raise InvalidInput("issued is for paper items only", where=f"{at}.issued", zh="只有纸质票事项有 issued（发出票数）")
        if "present" in item:
            _check_present(item["present"], known, f"{at}.present", len(ids))
        for field in ("ballots",):
            for j, b in enumerate(item.get(field, [])):
                _check_ballot(b, cands, channel, f"{at}.ballots[{j}]", marks)
        if "another" in item:
            another = item["another"]
            if "present" in another:
                _check_present(another["present"], known, f"{at}.another.present", len(ids))
            keys_after = cands + [c["key"] for c in another.get("candidates", [])]
            for part, ballots_at in ((another, "another"), (another.get("runoff", {}), "another.runoff")):
                for j, b in enumerate(part.get("ballots", [])):
                    _check_ballot(b, keys_after, channel, f"{at}.{ballots_at}.ballots[{j}]", marks)
        if "runoff" in item:
            if item["kind"] not in (ItemKind.LIVELIHOOD, ItemKind.ELECTION):
                raise InvalidInput("only livelihood_projects have runoffs", where=f"{at}.runoff",
                                   zh="只有民生实事项目和选举有再次投票 runoff")
            if "present" in item["runoff"]:
                _check_present(item["runoff"]["present"], known, f"{at}.runoff.present", len(ids))
            for j, b in enumerate(item["runoff"]["ballots"]):
                _check_ballot(b, cands, channel, f"{at}.runoff.ballots[{j}]", marks)


def _marks_of(item: dict, at: str) -> tuple[str, ...]:
    """The marks a ballot of this item may carry: an evaluation's option keys (FORMAT.md), else 赞成/反对."""
    if item["kind"] != ItemKind.EVALUATION:
        if "options" in item:
            raise InvalidInput("options are for evaluation items only", where=f"{at}.options", zh="只有测评事项有 options")
        return values(Mark)
    keys = [o["key"] for o in item.get("options", DEFAULT_OPTIONS)]
    for j, k in enumerate(keys):
        if k in RESERVED_KEYS or keys.count(k) > 1:
            raise InvalidInput(f"option key {k!r} is reserved or repeated", where=f"{at}.options[{j}].key",
                               zh=f"选项编号 {k!r} 是保留字或重复")
    if item.get("rule", {}).get("majority", Majority.HALF) != Majority.HALF:
        raise InvalidInput("an evaluation grades by more than half", where=f"{at}.rule.majority",
                           zh="测评按过半数评定，不能另设多数规则")
    return (*keys, Mark.ABSTAIN, Mark.VOID)


def _check_election_fields(item: dict, at: str) -> None:
    election = item["kind"] == ItemKind.ELECTION
    for name in ("office", "by_election", "another"):
        if name in item and not election:
            raise InvalidInput(f"{name} is for election items only", where=f"{at}.{name}", zh=f"只有选举事项有 {name}")
    if election and "office" not in item:
        raise InvalidInput("an election needs its office", where=f"{at}.office", zh="选举事项须填写职务 office")
    if election and "rule" in item:
        raise InvalidInput("an election has no rule: art. 25 fixes the base and majority", where=f"{at}.rule",
                           zh="选举事项不设 rule：计票基数和多数由组织法第二十五条规定")
    if not election:
        for j, b in enumerate(item.get("ballots", [])):
            if "write_ins" in b:
                raise InvalidInput("write-ins are for election items only", where=f"{at}.ballots[{j}].write_ins",
                                   zh="只有选举事项可以另选他人 write_ins")



def _check_ballot(b: dict, cands: list[str], channel: str, at: str, allowed: tuple[str, ...]) -> None:
    for k, v in b["marks"].items():
        if k not in cands:
            raise InvalidInput(f"{k!r} is not a candidate of this item", where=f"{at}.marks.{k}",
                               zh=f"{k!r} 不是本事项的候选人")
        if v not in allowed:
            raise InvalidInput(f"{v!r} is not one of {', '.join(allowed)}", where=f"{at}.marks.{k}",
                               zh=f"划票 {v!r} 须为 {'、'.join(allowed)} 之一")
        if v == Mark.VOID and channel != Channel.PAPER:
            raise InvalidInput("'void' marks exist only on paper", where=f"{at}.marks.{k}", zh="只有纸质票有无效（void）划票")
    if b.get("spare") and channel != Channel.PAPER:
        raise InvalidInput("spare ballots exist only on paper", where=f"{at}.spare", zh="只有纸质票有未发出的空白票 spare")
    if sum(bool(b.get(f)) for f in ("forged", "reuse", "spare")) > 1:
        raise InvalidInput("a ballot is at most one of forged, reuse, spare", where=at,
                           zh="一张选票至多是 forged、reuse、spare 中的一种")


def _check_present(spec: dict, known: set[str], at: str, size: int) -> None:
    if "count" in spec and spec["count"] > size:
        raise InvalidInput(f"present count {spec['count']} exceeds the roster ({size})", where=f"{at}.count",
                           zh=f"实到人数 {spec['count']} 超过名册人数（{size}）")
    for j, i in enumerate(spec.get("ids", [])):
        if i not in known:
            raise InvalidInput(f"{i!r} is not on the roster", where=f"{at}.ids[{j}]", zh=f"{i!r} 不在名册中")


def roster_of(s: dict) -> list[dict]:
    r = s["roster"]
    if "size" in r:
        width = max(4, len(str(r["size"])))
        return [{"id": f"M{n:0{width}d}", "name": f"代表{n:0{width}d}"} for n in range(1, r["size"] + 1)]
    return r["members"]


def present_ids(spec: dict, roster: list[dict]) -> list[str]:
    if "count" in spec:
        return [m["id"] for m in roster[:spec["count"]]]
    wanted = set(spec["ids"])
    return [m["id"] for m in roster if m["id"] in wanted]
