"""An item's JSON, as POST /api/admin/sessions/ID/items and PUT /api/admin/items/ID take it,
checked for types and sizes and turned into create_item's (and edit_item's) keyword arguments."""
from __future__ import annotations

from ballot_service.errors import InvalidInput
from ballot_service.vocab import Majority, MarkRule
from ballot_service.web.common import field

MAX_CANDIDATES = 1000


def item_spec(data: dict) -> dict:
    """An item's JSON (as POST …/items takes it) as create_item's and edit_item's keyword arguments."""
    rule = field(data, "rule", dict, required=False, default={})
    cands = field(data, "candidates", list, required=False, default=None)
    if cands is not None:
        if len(cands) > MAX_CANDIDATES:
            raise InvalidInput(f"at most {MAX_CANDIDATES} candidates", where="candidates", zh=f"候选人（项目）最多 {MAX_CANDIDATES} 个")
        for i, c in enumerate(cands):
            if not isinstance(c, dict):
                raise InvalidInput("each candidate must be an object", where=f"candidates[{i}]", zh="每个候选人（项目）须为一个对象")
            for name in ("key", "title", "description"):
                field(c, name, str, required=name == "title", where=f"candidates[{i}].{name}")
    return dict(key=field(data, "key", str), kind=field(data, "kind", str), title=field(data, "title", str),
                candidates=cands,
                places=field(data, "places", int, required=False, minimum=1, maximum=MAX_CANDIDATES),
                base=field(rule, "base", str, required=False, default="members", where="rule.base"),
                majority=field(rule, "majority", str, required=False, default=Majority.HALF, where="rule.majority"),
                secret=field(data, "secret", bool, required=False, default=True),
                channel=field(data, "channel", str, required=False, default="terminal"),
                time_limit_s=field(data, "time_limit_s", int, required=False),
                mark_rule=field(data, "mark_rule", str, required=False, default=MarkRule.ANY),
                options=field(data, "options", list, required=False, default=None),
                grading=field(data, "grading", dict, required=False, default=None),
                office=field(data, "office", str, required=False),
                by_election=field(data, "by_election", bool, required=False, default=False),
                ballot_set=field(data, "ballot_set", str, required=False), rule_given="rule" in data)
