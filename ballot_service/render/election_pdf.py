"""The election parts of a record PDF (选举结果): the rule in words, the office and seats, each
round's table (得票 / 当选 / 未当选, 另选他人 rows) under its own heading (第一次投票, 再次投票,
另行选举), and the conclusion. record_pdf.py draws the rest; nothing is recounted here."""
from __future__ import annotations

from ballot_service.render.election_announcement import (
    WRITE_IN,
    another_of_sentence,
    person_name,
    unfilled_sentence,
)
from ballot_service.vocab import ElectionStage, ItemStatus, Office, label


def pass_text(who: str) -> str:
    return (f"获得全体{who}过半数的选票始得当选（2×得票 > 全体{who}数，组织法第二十五条）；过半数的多于应选名额时"
            f"以得票多的当选，得票相等不能确定当选人的，就得票相等的再次投票，以得票多的当选（第二十九条）；"
            f"未选足名额的另行选举")


def info_rows(item: dict) -> list[list[str]]:
    office = label(item.get("office") or "", enum=Office) + ("（补选）" if item.get("by_election") else "")
    return [["职务类别", office or "—", "应选名额", f"{item.get('places')}名"],
            ["候选人", f"{len(item.get('candidates', []))}名（按姓氏笔画排列）", "另选他人", "可以（计入应选名额）"]]


def round_heading(rnd: dict) -> str:
    res = rnd.get("result") or {}
    stage = res.get("stage") or ElectionStage.FIRST
    return f"第{rnd.get('number')}轮 {label(stage, enum=ElectionStage)}，应选{rnd.get('places')}名"


def stage_note(stage: str) -> str:
    return f"（{label(stage, enum=ElectionStage)}）"


def round_of(content: dict, cands: list[dict]) -> dict:
    """The round result whose candidate list this is (an election's table also shows its
    write-ins); the item's final list stands for round 1's."""
    rounds = content.get("rounds") or []
    first = (rounds[0].get("result") if rounds else None) or content["result"]
    return next((r["result"] for r in rounds if (r.get("result") or {}).get("candidates") is cands), first)


def candidate_rows(res: dict, titles: dict[str, str]) -> tuple[list[list[str]], tuple, tuple]:
    status = res.get("status")
    counted = status != ItemStatus.QUORUM_NOT_MET
    rows = [["序号", "候选人", "得票", "反对", "弃权", "无效", "过半数", "结果"]]
    tied = set(res.get("tied") or [])
    people = list(res.get("candidates", [])) + [
        {"key": WRITE_IN + w["name"], "for": w["for"], "against": None, "abstain": None, "void": None,
         "passed": None, "elected": w["elected"]} for w in res.get("write_ins", [])]
    for i, p in enumerate(people, 1):
        name = person_name(p["key"], titles) + ("（另选他人）" if p["key"].startswith(WRITE_IN) else "")
        nums = [("—" if p.get(f) is None else str(p[f])) if counted else "—"
                for f in ("for", "against", "abstain", "void")]
        half = {True: "是", False: "否", None: "—"}[p.get("passed")]
        if status in (ItemStatus.VOID, ItemStatus.QUORUM_NOT_MET):
            outcome = "无效" if status == ItemStatus.VOID else "未表决"
        elif p["key"] in tied:
            outcome = "待再次投票"
        else:
            outcome = "当选" if p.get("elected") else "未当选"
        rows.append([str(i), name, *nums, half, outcome])
    return rows, (10, 70, 16, 16, 16, 14, 16, 16), ("CENTER", "LEFT") + ("CENTER",) * 6


def conclusion(result: dict, item: dict, titles: dict[str, str]) -> list[str]:
    lines = []
    if result["elected"]:
        lines.append("当选（按当选顺序）：" + "、".join(person_name(k, titles) for k in result["elected"]))
    if result["status"] == ItemStatus.RUNOFF_PENDING:
        lines.append("得票相等、需再次投票：" + "、".join(person_name(k, titles) for k in result.get("tied", [])))
    if result["status"] == ItemStatus.DECIDED and result.get("unfilled"):
        lines.append(f"应选{item.get('places')}名，" + (unfilled_sentence(item, result["unfilled"])
                                                      if item.get("another_next") else
                                                      f"尚缺{result['unfilled']}名，应当另行选举。"))
    lines = lines or ["无人当选。"]
    return [another_of_sentence(item), *lines] if item.get("another_of") else lines
