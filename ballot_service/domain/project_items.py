"""Vote items made from the project register in one step: the year's projects vote
(民生实事项目票决) from the register's reserve of that year, and next year's evaluation
(满意度测评) of the projects a decided vote selected, in rank order. Each subject is the
project's 编号 and 名称, so the register follows both votes (projects.py). Only flushes."""
from __future__ import annotations

import re

from sqlalchemy.orm import Session

from ballot_service.domain import projects
from ballot_service.domain.sittings import create_item
from ballot_service.errors import Conflict, InvalidInput
from ballot_service.models import Item, Project, Sitting
from ballot_service.rules import tally
from ballot_service.vocab import ItemKind, ItemStatus, RoundStatus

_YEAR = re.compile(r"(\d{4})\s*年")


def selection_item(db: Session, sitting: Sitting, year: int, places: int, **options) -> Item:
    """The projects vote of `year` with every project of that year still in reserve (储备)."""
    register = projects.register_body(db, sitting.body)
    reserve = [r["project"] for r in projects.register_states(db, register)
               if r["project"].year == year and r["state"] == "reserve"]
    if not reserve:
        raise Conflict(f"the register has no project of {year} in reserve", where="year",
                       zh=f"项目库中没有 {year} 年度的储备项目")
    return create_item(db, sitting, key=options.pop("key", f"ms{year}"), kind=ItemKind.LIVELIHOOD,
                       title=options.pop("title", f"{year}年度民生实事项目票决"),
                       candidates=[_candidate(p) for p in reserve], places=places, **options)


def evaluation_from_selection(db: Session, sitting: Sitting, source: Item, **options) -> Item:
    """Next year's 满意度测评 of the projects `source` (a decided projects vote) selected, in rank
    order; each subject's description names the session and item that selected it (RULES.md §5.5)."""
    if source.kind != ItemKind.LIVELIHOOD:
        raise InvalidInput("an evaluation is made from a livelihood projects vote", where="source_item_id",
                           zh="只能根据民生实事项目票决结果新建满意度测评")
    done = [r.result for r in source.rounds if r.status == RoundStatus.TALLIED and r.result]
    entry = tally.item_result(source.key, source.kind, done) if done else None
    if entry is None or entry["status"] != ItemStatus.DECIDED or not entry["selected"]:
        raise Conflict(f"{source.title} has no decided selection yet", where="source_item_id",
                       zh=f"《{source.title}》尚无票决入选的项目")
    if projects.register_body(db, source.sitting.body).id != projects.register_body(db, sitting.body).id:
        raise InvalidInput("the vote belongs to another congress's register", where="source_item_id",
                           zh="该票决事项不属于本届人大的项目库")
    cands = {c.key: c for c in source.candidates}
    by_for = {c["key"]: c["for"] for c in entry["candidates"]}
    subjects = [{"key": k, "title": cands[k].title,
                 "description": f"{source.sitting.name}《{source.title}》票决入选，第{rank}名，赞成{by_for[k]}票"}
                for rank, k in enumerate(entry["selected"], 1)]
    year = _year(db, source, entry["selected"])
    return create_item(db, sitting, key=options.pop("key", f"cp{year}" if year else f"cp-{source.key}"),
                       kind=ItemKind.EVALUATION,
                       title=options.pop("title", f"{year}年度民生实事项目实施情况满意度测评" if year
                                         else f"{source.title}实施情况满意度测评"),
                       candidates=subjects, **options)


def _candidate(p: Project) -> dict:
    c = {"key": p.code, "title": p.name}
    if p.description:
        c["description"] = p.description
    return c


def _year(db: Session, source: Item, keys: list[str]) -> int | None:
    """The projects' 年度 in the register, else the year in the vote's title (2026年度…)."""
    register = projects.register_body(db, source.sitting.body)
    years = {p.year for p in projects.projects_of(db, register) if p.code in keys}
    if len(years) == 1:
        return years.pop()
    m = _YEAR.search(source.title)
    return int(m.group(1)) if m else None
