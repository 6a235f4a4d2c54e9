"""The record's words: who voted (应到 by body kind), times in Beijing time, the quorum and the
rule applied in a sentence, and each candidate's title as printed."""
from __future__ import annotations

import datetime as dt

from ballot_service.render import election_announcement, election_pdf, evaluation_text
from ballot_service.vocab import BodyKind, ItemKind, Majority, nominee_label

BEIJING = dt.timezone(dt.timedelta(hours=8), "UTC+8")


def who_of(content: dict) -> str:
    return "代表" if content["body"]["kind"] == BodyKind.CONGRESS else "组成人员"


def beijing_time(value: str | None) -> str:
    """ISO timestamp (naive = UTC) → '2027-01-15 09:30:05 北京时间（UTC+8）'."""
    if not value:
        return "—"
    t = dt.datetime.fromisoformat(value)
    if t.tzinfo is None:
        t = t.replace(tzinfo=dt.timezone.utc)
    return t.astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S") + " 北京时间（UTC+8）"


def quorum_text(content: dict) -> str:
    who = who_of(content)
    if content["rule"]["quorum"].replace(" ", "") == "3*P>=2*N":
        return f"三分之二以上的{who}出席（3×实到 ≥ 2×应到）"
    return f"全体{who}过半数出席（2×实到 > 应到）"


def pass_text(content: dict) -> str:
    who, rule, kind = who_of(content), content["rule"], content["item"]["kind"]
    if kind == ItemKind.EVALUATION:
        return evaluation_text.rule_text(content, who)
    if kind == ItemKind.ELECTION:
        return election_pdf.pass_text(who)
    base = {"members": f"全体{who}", "present": f"出席{who}（实到）", "valid": "有效票"}.get(rule.get("base"),
                                                                                    f"全体{who}")
    if rule.get("majority") == Majority.TWO_THIRDS:
        text = f"赞成票达到{base}的三分之二以上（3×赞成 ≥ 2×基数）"
    else:
        text = f"赞成票超过{base}的半数（2×赞成 > 基数）"
    first = (content.get("rounds") or [{}])[0].get("result") or {}
    if first.get("threshold_base") is not None and first.get("threshold_votes") is not None:
        text += f"，基数{first['threshold_base']}，至少{first['threshold_votes']}票"
    if kind == ItemKind.LIVELIHOOD:
        text += "；通过的项目按赞成票多少确定入选，得票相等跨越应选名额的再次投票"
    elif kind == ItemKind.APPOINTMENT:
        text += "；每名人选分别表决、分别计票"
    return text


def titles_of(content: dict) -> dict[str, str]:
    item = content["item"]
    titles = election_announcement.names_of({"candidates": [], **item}) if item.get("office") else \
        {c["key"]: nominee_label(c["title"], c.get("office")) for c in item.get("candidates", [])}
    titles.setdefault("motion", item["title"])
    return titles


# --- PDF -----------------------------------------------------------------------------------
