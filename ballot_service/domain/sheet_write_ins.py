"""The written-in persons (另选他人) of an election's hand-count tally sheet: each row a name and
its 赞成 votes, the name checked and normalised as a ballot's 另选 line is (domain.ballot_marks,
rules.election.write_in_refusal), and the sheet held to the seats a valid ballot can fill."""
from __future__ import annotations

from typing import Callable

from ballot_service.errors import InvalidInput
from ballot_service.formats import names
from ballot_service.rules import election as er
from ballot_service.rules import normalise_name

# why a row is refused, by rules.election.write_in_refusal's reason ("blank" is check_name's)
_REFUSED = {
    "listed_candidate": ("is a listed candidate: count their votes in their own row",
                         "是本次选举的候选人，其票数应填在候选人一栏"),
    "not_eligible": ("is not a deputy of the roster: a member of the standing committee must be a deputy "
                     "(组织法 art. 47); give their 代表证号",
                     "不是本级人大代表：常务委员会组成人员须从代表中选出（组织法第四十七条），请填写代表证号"),
    "repeated": ("is written twice: one row per person", "重复填写：每人只填一行"),
}


def take(raw, candidate_keys: list[str], election: dict, whole: Callable) -> list[dict]:
    """The rows as stored, [{name (normalised), for}] in name order and without a row of no
    votes (so two tellers' entries compare equal whatever order they wrote them in, as the
    count sees them); refused with the reason and where."""
    if not isinstance(raw, list):
        raise InvalidInput("write_ins must be a list of {name, for}", where="sheet.write_ins",
                           zh="另选他人须为列表，每行填写姓名和赞成票数")
    listed_n = {normalise_name(x) for x in (*candidate_keys, *election["listed"])}
    eligible = election["eligible"]
    eligible_n = None if eligible is None else {normalise_name(x) for x in eligible}
    votes: dict[str, int] = {}
    for i, row in enumerate(raw):
        where = f"sheet.write_ins.{i}"
        if not isinstance(row, dict) or not set(row) <= {"name", "for"}:
            raise InvalidInput("each written-in person is {name, for}", where=where,
                               zh="每一位另选他人须填写姓名和赞成票数")
        name = normalise_name(names.check_name(row.get("name"), what="written-in name", where=f"{where}.name",
                                               max_len=names.MEMBER_NAME))
        why = er.write_in_refusal(name, listed_n, eligible_n, votes)
        if why:
            en, zh = _REFUSED[why]
            raise InvalidInput(f"{name} {en}", where=f"{where}.name", zh=f"另选他人“{name}”{zh}")
        votes[name] = whole(row.get("for"), f"{where}.for")
    return [{"name": n, "for": votes[n]} for n in sorted(votes) if votes[n]]


def check_seats(counts: dict, written: list[dict], places: int, valid: int) -> None:
    """A valid ballot's 赞成 + 另选 is at most the seats (RULES.md §5.4: more makes it invalid),
    so the sheet's 赞成 (listed and written-in) is at most seats × valid ballots."""
    listed = sum(row["for"] for row in counts.values())
    total = listed + sum(w["for"] for w in written)
    if total > places * valid:
        raise InvalidInput(
            f"赞成 votes ({listed} for listed candidates + {total - listed} written-in = {total}) exceed "
            f"{places} seats × {valid} valid ballots ({places * valid}): a ballot choosing more persons than "
            f"seats is invalid", where="sheet.write_ins" if written else "sheet.counts",
            zh=f"赞成票合计（候选人 {listed} 票 + 另选他人 {total - listed} 票 = {total}）超过应选名额 {places} × 有效票 "
               f"{valid} 张（{places * valid}）：所选人数多于应选名额的选票无效")
