"""A ballot's marks as sent: checked against its round (candidates, the marks allowed on its
channel, an evaluation's options, an election's write-ins) and digested for storage."""
from __future__ import annotations

from ballot_service import rules
from ballot_service.domain import election_tally, evaluation_items
from ballot_service.domain.round_facts import RoundFacts
from ballot_service.errors import InvalidInput
from ballot_service.formats.canonical import canonical_json, sha256_hex
from ballot_service.vocab import Channel


def parse_marks(raw, candidate_keys: list[str], allow_void: bool, stage: str | None = None) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise InvalidInput("marks must be an object {candidate key: mark}", where="marks", zh="划票内容格式不正确")
    allowed = rules.MARKS if allow_void else rules.ELECTRONIC_MARKS
    written = election_tally.take_write_ins(raw, stage)  # 另选他人: election rounds only
    raw = {k: v for k, v in raw.items() if not k.startswith(election_tally.WRITE_IN)}
    for k, v in raw.items():
        if k not in candidate_keys:
            raise InvalidInput(f"{k!r} is not a candidate on this ballot", where=f"marks.{k}", zh="选票上没有这个候选人（项目）")
        if v not in allowed:
            raise InvalidInput(f"mark {v!r} is not one of {', '.join(allowed)}", where=f"marks.{k}", zh="划票符号不正确")
    return {**rules.normalise_marks(raw, candidate_keys), **written}


def marks_outcome(raw_marks, facts: RoundFacts, token_text: str, channel: str):
    """(marks, digest) or the InvalidInput to raise (later, in the order of the checks)."""
    try:
        if facts.options is not None:
            marks = evaluation_items.parse_marks(raw_marks, list(facts.candidate_keys), list(facts.options),
                                                 paper=channel == Channel.PAPER)
        else:
            marks = parse_marks(raw_marks, list(facts.candidate_keys), allow_void=channel == Channel.PAPER,
                                stage=facts.stage)
    except InvalidInput as exc:
        return exc
    return marks, sha256_hex(canonical_json({"ballot": token_text, "marks": marks}))
