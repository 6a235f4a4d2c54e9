"""宣布稿: the words the presiding officer reads aloud, made from a signed record's content
(never from the database), so what is read is what was signed."""
from __future__ import annotations

from ballot_service.render import election_announcement, evaluation_text
from ballot_service.vocab import BodyKind, Channel, ItemKind, ItemStatus, label, nominee_label


def announcement(content: dict) -> str:
    """宣布稿: the text the presiding officer reads, generated from the signed record."""
    if content["item"]["kind"] == ItemKind.ELECTION:
        return election_announcement.announcement(content)
    return "".join(sentences(content))


def channel_split(content: dict) -> str | None:
    """A hybrid vote's first round by channel (the record's rounds[0].by_channel), in words."""
    split = ((content.get("rounds") or [{}])[0] or {}).get("by_channel")
    if not split:
        return None
    i, r = split["issued"], split["returned"]
    return (f"其中电子表决器发出{i['terminal']}张、收回{r['terminal']}张，"
            f"纸质票发出{i['paper']}张、收回{r['paper']}张")


def sentences(content: dict) -> list[str]:
    """The 宣布稿 a sentence at a time (each read in one breath; the page and the large-type
    PDF set each on its own line). An election's is read a paragraph (a round) at a time."""
    if content["item"]["kind"] == ItemKind.ELECTION:
        return election_announcement.announcement(content).split("\n")
    body_kind = content["body"]["kind"]
    who = "代表" if body_kind == BodyKind.CONGRESS else "组成人员"
    r = content["result"]
    item = content["item"]
    titles = {c["key"]: nominee_label(c["title"], c.get("office")) for c in item["candidates"]}
    quorum = "符合法定人数" if r["quorum_met"] else "不符合法定人数"
    evaluation = item["kind"] == ItemKind.EVALUATION
    heading = evaluation_text.heading(item) if evaluation else item["title"]
    lines = [f"本次会议应到{who}{r['members']}名，实到{r['present']}名，{quorum}。"]
    if r["status"] == ItemStatus.QUORUM_NOT_MET:
        lines.append(f"《{item['title']}》不能进行表决。")
        return lines
    if item.get("channel") == Channel.TERMINAL:
        # Seat tablets: nothing is handed out or collected; the hall hears who pressed and who did not.
        counts = (f"{heading}：参加表决{r['returned']}名，未按表决器{r['not_voted']}名")
        if r["invalid"]:
            counts += f"，其中无效{r['invalid']}名"
        if r["refused"]:
            counts += f"；另有{r['refused']}次提交不是有效选票，已拒收"
        lines.append(counts + "。")
        lines += election_announcement.not_issued_sentence(item, r, who)
        if r["status"] == ItemStatus.VOID:
            lines.append("本次表决无效，应当重新表决。")
            return lines
    else:
        ticket = {"livelihood_projects": "票决票", "evaluation": "测评票"}.get(item["kind"], "表决票")
        counts = (f"{heading}：发出{ticket}{r['issued']}张，收回{r['returned']}张，"
                  f"其中有效票{r['valid']}张，无效票{r['invalid']}张")
        if r["refused"]:
            counts += f"，拒收{r['refused']}张"
        lines.append(counts + "。")
        split = channel_split(content)
        if split:
            lines.append(split + "。")
        if r["status"] == ItemStatus.VOID:
            lines.append("收回票数多于发出票数，本次表决无效，应当重新表决。")
            return lines
        lines.append(f"收回票数不多于发出票数，本次{label(item['kind'], enum=ItemKind)}有效。")
    if item["kind"] == ItemKind.RESOLUTION:
        c = r["candidates"][0]
        lines.append(f"赞成{c['for']}票，反对{c['against']}票，弃权{c['abstain']}票，"
                     f"{'通过' if r['passed'] else '未通过'}。")
    elif evaluation:
        lines.append(evaluation_text.results_sentence(content))
    elif item["kind"] == ItemKind.APPOINTMENT:
        for c in r["candidates"]:
            lines.append(f"{titles[c['key']]}：赞成{c['for']}票，反对{c['against']}票，弃权{c['abstain']}票，"
                         f"{'通过' if c['passed'] else '未通过'}。")
    else:
        if r.get("status") == ItemStatus.RUNOFF_PENDING:
            tied = "、".join(titles[k] for k in r.get("tied", []))
            lines.append(f"{tied}得票相等，需再次投票。")
        elif r.get("selected"):
            chosen = "、".join(titles[k] for k in r["selected"])
            lines.append(f"得赞成票超过全体{who}半数、按得票多少确定的民生实事项目为：{chosen}。")
        shortfall = (item.get("places") or 0) - len(r.get("selected", []))
        if r["status"] == ItemStatus.DECIDED and shortfall > 0:
            lines.append(f"通过项目少于应选{item['places']}项，差{shortfall}项。")
    return lines
