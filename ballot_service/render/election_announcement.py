"""宣布稿 of an election (选举): the form a presiding officer reads, one paragraph per round
(第一次投票, 再次投票, 另行选举), made from the signed record's content only.

"本次选举应到代表…人，实到…人，发出选票…张，收回…张，其中有效票…张，无效票…张。收回选票数
等于（少于）发出选票数，选举有效。…当选为…"
"""
from __future__ import annotations

from ballot_service import rules
from ballot_service.vocab import BodyKind, ElectionStage, ItemStatus, label

WRITE_IN = "write_in:"


def person_name(key: str, titles: dict[str, str]) -> str:
    """A candidate's name, or a written-in person's: a deputy written in by number is named."""
    return titles.get(key) or (key[len(WRITE_IN):] if key.startswith(WRITE_IN) else key)


def names_of(item: dict) -> dict[str, str]:
    """Key → name for the record's candidates and the deputies written in by 代表证号."""
    return {**{c["key"]: c["title"] for c in item["candidates"]},
            **{WRITE_IN + no: f"{name}（{no}）" for no, name in (item.get("written_in") or {}).items()}}


def not_issued_sentence(item: dict, r: dict, who: str) -> list[str]:
    """The present members whose tablet took no ballot (P − I), a sentence of their own (for the
    宣布稿 of every kind): they are in neither 收回 nor 未按 (I − R, RULES.md §1)."""
    n = rules.not_issued(item.get("channel"), r.get("present"), r.get("issued"))
    return [f"实到{who}中未领取选票{n}名。"] if n and n > 0 else []


def office_of(title: str) -> str:
    """What the elected become: the item title without a leading 选举/补选 (选举县人大常委会委员 → 县人大常委会委员)."""
    for verb in ("选举", "补选"):
        if title.startswith(verb) and len(title) > len(verb):
            return title[len(verb):]
    return title


def unfilled_sentence(item: dict, unfilled: int) -> str:
    """What becomes of the seats left unfilled: a 另行选举 in this sitting, or saved for a later one."""
    later = item.get("another_next")
    if later:
        return f"尚缺{unfilled}名，另行选举于{later['session']['name']}进行。"
    return f"尚缺{unfilled}名，另行选举。"


def another_of_sentence(item: dict) -> str:
    """A 另行选举 saved from an earlier sitting names the election whose seats it fills."""
    of = item.get("another_of")
    return f"本项为{of['session']['name']}《{of['title']}》尚缺名额的另行选举。" if of else ""


def announcement(content: dict) -> str:
    item, final = content["item"], content["result"]
    who = "代表" if content["body"]["kind"] == BodyKind.CONGRESS else "组成人员"
    titles = names_of(item)
    office = office_of(item["title"])
    paragraphs = [another_of_sentence(item)] if item.get("another_of") else []
    for rnd in content["rounds"]:
        # each round its own paragraph
        paragraphs.append(_round(rnd["result"], who, titles, office, not_issued_sentence(item, rnd["result"], who)))
    places = item.get("places") or 0
    if final["status"] == ItemStatus.DECIDED and final.get("unfilled"):
        paragraphs.append(f"本次选举应选{places}名，已选出{places - final['unfilled']}名，"
                          + unfilled_sentence(item, final["unfilled"]))
    return "\n".join(paragraphs)


def _short_of_majority(p: dict, r: dict) -> bool:
    """Not elected for want of more than half of all deputies (art. 25): a listed candidate's
    `passed` says so; a written-in person has none, so the round's threshold decides."""
    if p.get("passed") is not None:
        return p["passed"] is False
    return r.get("threshold_votes") is not None and not rules.meets_majority(p["for"], r["members"])


def _round(r: dict, who: str, titles: dict[str, str], office: str, apart: list[str]) -> str:
    stage = r.get("stage") or ElectionStage.FIRST
    head = "本次选举" if stage == ElectionStage.FIRST else f"{label(stage, enum=ElectionStage)}："
    text = f"{head}应到{who}{r['members']}人，实到{r['present']}人"
    if r["status"] == ItemStatus.QUORUM_NOT_MET:
        return text + "，不足法定人数，不能进行选举。"
    text += (f"，发出选票{r['issued']}张，收回{r['returned']}张，其中有效票{r['valid']}张，"
             f"无效票{r['invalid']}张。") + "".join(apart)
    if r["status"] == ItemStatus.VOID:
        return text + "收回选票数多于发出选票数，选举无效，应当重新进行选举。"
    text += f"收回选票数{'等于' if r['returned'] == r['issued'] else '少于'}发出选票数，选举有效。"
    people = [*r["candidates"], *({"key": WRITE_IN + w["name"], **w} for w in r.get("write_ins", []))]
    for p in sorted(people, key=lambda p: -p["for"]):
        name = person_name(p["key"], titles)
        written = "（另选他人）" if p["key"].startswith(WRITE_IN) else ""
        if p["elected"]:
            text += f"{name}{written}得票{p['for']}票，当选。"
        elif p["key"] in r.get("tied", []):
            text += f"{name}{written}得票{p['for']}票。"
        else:
            if _short_of_majority(p, r):
                why = f"未获得全体{who}过半数选票，"
            elif r.get("threshold_votes") is not None:  # more than half, but more votes filled the seats
                why = "得票过半数但未进入应选名额，"
            else:
                why = ""
            text += f"{name}{written}得票{p['for']}票，{why}未当选。"
    if r["status"] == ItemStatus.RUNOFF_PENDING:
        tied = "、".join(person_name(k, titles) for k in r["tied"])
        text += f"{tied}得票相等，就{r['runoff_places']}个名额再次投票，以得票多的当选。"
    if r["elected"]:
        text += f"{'、'.join(person_name(k, titles) for k in r['elected'])}当选为{office}。"
    return text
