"""A ballot's marks as sent: checked against its round (candidates, the marks allowed on its
channel, an evaluation's options, an election's write-ins) and digested for storage."""
from __future__ import annotations

import functools
from typing import Mapping, Sequence

from ballot_service import rules
from ballot_service.domain import evaluation_items
from ballot_service.domain.round_facts import RoundFacts
from ballot_service.errors import InvalidInput
from ballot_service.formats import names
from ballot_service.formats.canonical import canonical_json, sha256_hex
from ballot_service.rules.election_tally import WRITE_IN, WRITE_IN_STAGES
from ballot_service.vocab import Channel


def parse_marks(raw, candidate_keys: Sequence[str], allow_void: bool, stage: str | None = None) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise InvalidInput("marks must be an object {candidate key: mark}", where="marks", zh="划票内容格式不正确")
    allowed = rules.MARKS if allow_void else rules.ELECTRONIC_MARKS
    written = take_write_ins(raw, stage)  # 另选他人: election rounds only
    if written:
        raw = {k: v for k, v in raw.items() if not k.startswith(WRITE_IN)}
    on_ballot = _key_set(tuple(candidate_keys))
    for k, v in raw.items():
        if k not in on_ballot:
            raise InvalidInput(f"{k!r} is not a candidate on this ballot", where=f"marks.{k}", zh="选票上没有这个候选人（项目）")
        if v not in allowed:
            raise InvalidInput(f"mark {v!r} is not one of {', '.join(allowed)}", where=f"marks.{k}", zh="划票符号不正确")
    return {**rules.normalise_marks(raw, candidate_keys), **written}


@functools.lru_cache(maxsize=256)
def _key_set(candidate_keys: tuple) -> frozenset:
    """A round's candidate keys as a set (every cast of the round checks its marks against it)."""
    return frozenset(candidate_keys)


def take_write_ins(raw: Mapping, stage: str | None) -> dict[str, str]:
    """The 另选他人 lines of submitted marks, {"write_in:<clean name>": "for"}; refused with
    the reason outside the first round and a 另行选举 of an election."""
    out: dict[str, str] = {}
    for k, v in raw.items():
        if not (isinstance(k, str) and k.startswith(WRITE_IN)):
            continue
        if stage not in WRITE_IN_STAGES:
            raise InvalidInput("another person (另选他人) can be written in only in the first vote or a "
                               "further election (RULES.md §5.4)", where=f"marks.{k}",
                               zh="只有在选举的第一次投票和另行选举中可以另选他人")
        if v != "for":
            raise InvalidInput("a written-in person is a 'for' vote", where=f"marks.{k}", zh="另选他人即为赞成票")
        name = names.check_name(k[len(WRITE_IN):], what="written-in name", where=f"marks.{k}",
                                max_len=names.MEMBER_NAME)
        out[WRITE_IN + name] = "for"
    return out


def marks_outcome(raw_marks, facts: RoundFacts, token_text: str, channel: str):
    """(marks, digest) or the InvalidInput to raise (later, in the order of the checks)."""
    try:
        if facts.options is not None:
            marks = evaluation_items.parse_marks(raw_marks, list(facts.candidate_keys), list(facts.options),
                                                 paper=channel == Channel.PAPER)
        else:
            marks = parse_marks(raw_marks, facts.candidate_keys, allow_void=channel == Channel.PAPER,
                                stage=facts.stage)
    except InvalidInput as exc:
        return exc
    return marks, sha256_hex(canonical_json({"ballot": token_text, "marks": marks}))
