"""The words of an evaluation's result (满意度测评 / 工作评议 / 述职评议, RULES.md §5.5): the
宣布稿 sentence, the rule in words and the rows of the record's table, made from a signed
record's content (or a result in the same shape) and never from the database."""
from __future__ import annotations

from ballot_service.rules.evaluation import GRADE_BY_RATE, SATISFACTION_OPTIONS, SATISFACTION_TITLES
from ballot_service.vocab import ItemStatus

# An item titled "…满意度测评" is read "对…进行满意度测评" (宁国, 镇海 wording).
_ACTS = ("满意度测评", "工作评议", "述职评议", "测评", "评议")


def options_of(item: dict) -> list[dict]:
    """The item's options, best first ({key, title}); the default scale when none are recorded."""
    return item.get("options") or [{"key": k, "title": SATISFACTION_TITLES[k]} for k in SATISFACTION_OPTIONS]


def option_title(item: dict, key: str | None) -> str:
    return next((o["title"] for o in options_of(item) if o["key"] == key), key or "—")


def rate_name(item: dict) -> str:
    """满意率 for 满意/基本满意/不满意, 称职率 for 优秀/称职/基本称职/不称职: the second-worst
    option without its 基本, the last option the rate leaves out."""
    opts = options_of(item)
    word = opts[-2]["title"]
    return (word[2:] if word.startswith("基本") and len(word) > 2 else word) + "率"


def heading(item: dict) -> str:
    """对2026年度民生实事项目实施情况进行满意度测评 from the title …满意度测评; else the title."""
    title = item["title"]
    for act in _ACTS:
        if title.endswith(act) and len(title) > len(act):
            return f"对{title[:-len(act)]}进行{act}"
    return title


def subject_counts(item: dict, cand: dict) -> str:
    """满意50票，基本满意3票，不满意1票(，弃权2票)"""
    parts = [f"{o['title']}{cand.get(o['key'], 0)}票" for o in options_of(item)]
    if cand.get("abstain"):
        parts.append(f"弃权{cand['abstain']}票")
    if cand.get("void"):
        parts.append(f"无效{cand['void']}票")
    return "，".join(parts)


def results_sentence(content: dict) -> str:
    """测评结果：城区老旧小区改造，满意50票，基本满意3票，不满意1票，满意率98.15%，测评等次为满意；…。"""
    item, r = content["item"], content["result"]
    titles = {c["key"]: c["title"] for c in item["candidates"]}
    rate = rate_name(item)
    parts = []
    for c in r["candidates"]:
        text = f"{titles.get(c['key'], c['key'])}，{subject_counts(item, c)}"
        text += f"，{rate}{c['rate']}%" if c.get("rate") is not None else f"，{rate}无"
        parts.append(text + f"，测评等次为{option_title(item, c.get('grade'))}")
    return "测评结果：" + "；".join(parts) + "。"


def rule_text(content: dict, who: str) -> str:
    """How grades and the rate are given, in words, for the record."""
    item, rule = content["item"], content["rule"]
    opts = [o["title"] for o in options_of(item)]
    rate = rate_name(item)
    rate_words = (f"{rate} =（{'+'.join(opts[:-1])}）÷ 有效票，以百分数保留两位小数、四舍五入"
                  f"（整数运算）")
    grading = item.get("grading") or {}
    if grading.get("by") == GRADE_BY_RATE:
        steps = "；".join(f"{rate} ≥ {m // 100}.{m % 100:02d}% 为{option_title(item, o)}" for o, m in grading["steps"])
        return f"等次按{rate}确定：{steps}；其余为{opts[-1]}。{rate_words}"
    base = {"members": f"全体{who}", "present": f"出席{who}（实到）", "valid": "有效票"}.get(rule.get("base"),
                                                                                    f"全体{who}")
    first = (content.get("rounds") or [{}])[0].get("result") or {}
    n = f"（基数{first['threshold_base']}）" if first.get("threshold_base") is not None else ""
    steps, acc = [], []
    for o in opts[:-1]:
        acc.append(o)
        steps.append(f"{'+'.join(acc)}超过{base}半数{n if not steps else ''}为{o}")
    return f"等次按累计票数确定：{'；否则'.join(steps)}；否则为{opts[-1]}。{rate_words}"


def table_rows(content: dict, cands: list[dict], status: str) -> tuple[list[list[str]], tuple, tuple]:
    """The record's table: 序号, 测评对象, a count per option, 弃权, 无效, rate, 等次."""
    item = content["item"]
    titles = {c["key"]: c["title"] for c in item["candidates"]}
    opts = options_of(item)
    counted = status != ItemStatus.QUORUM_NOT_MET
    rows = [["序号", "测评对象", *(o["title"] for o in opts), "弃权", "无效", rate_name(item), "等次"]]
    for i, c in enumerate(cands, 1):
        nums = [str(c.get(k, 0)) if counted else "—" for k in (*(o["key"] for o in opts), "abstain", "void")]
        rate = f"{c['rate']}%" if c.get("rate") is not None else "—"
        rows.append([str(i), titles.get(c["key"], c["key"]), *nums, rate, option_title(item, c.get("grade"))
                     if c.get("grade") else "—"])
    n = len(opts) + 2
    count_w = min(14.0, 76.0 / n)
    widths = (10, 174 - 10 - count_w * n - 36, *([count_w] * n), 18, 18)
    return rows, widths, ("CENTER", "LEFT") + ("CENTER",) * (n + 2)


def conclusion_lines(content: dict) -> list[str]:
    """Each subject's grade and rate, one line each."""
    item = content["item"]
    titles = {c["key"]: c["title"] for c in item["candidates"]}
    rate = rate_name(item)
    return [f"{i}. {titles.get(c['key'], c['key'])}：测评等次为{option_title(item, c.get('grade'))}，"
            f"{rate}{c['rate'] + '%' if c.get('rate') is not None else '无'}"
            for i, c in enumerate(content["result"]["candidates"], 1)]
