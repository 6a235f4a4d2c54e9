"""The project register (民生实事项目库) of a congress, shared with its standing committee:
projects added one by one or imported from the secretariat's Excel list, and each project's
state read from the votes themselves (never typed twice). Only flushes.

A project is tied to a vote by its 编号 and 名称: the candidate of an item with the same key
and title (items made from the register, project_items.py, always are). State, latest first:
rated (an evaluation of it was tallied: grade, rate, counts) › in delivery (selected, and the
session that selected it has closed) › selected (rank and 赞成 votes) › not selected ›
candidate (on a vote not yet tallied) › reserve (储备: on no vote yet).
"""
from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from ballot_service.domain import audit
from ballot_service.errors import Conflict, InvalidInput
from ballot_service.formats import names
from ballot_service.formats.roster import xlsx_rows
from ballot_service.models import Body, Item, Project, Sitting
from ballot_service.rules import tally
from ballot_service.vocab import AuditKind, BodyKind, ItemKind, ItemStatus, RoundStatus, SittingStatus

COMMITTEE_SUFFIX = "常务委员会"
MAX_PROJECTS = 2000  # in one import
HEADERS = {  # column: the names a secretariat's sheet uses for it
    "code": ("编号", "项目编号", "code"),
    "name": ("名称", "项目名称", "name"),
    "description": ("说明", "项目说明", "主要内容", "description"),
    "department": ("承办单位", "责任单位", "牵头单位", "department"),
    "year": ("年度", "实施年度", "year"),
    "investment": ("投资额", "投资额（万元）", "投资额(万元)", "investment"),
}
STATES = ("reserve", "candidate", "not_selected", "selected", "in_delivery", "rated")
STATE_LABELS = {"reserve": ("储备", "reserve"), "candidate": ("候选", "candidate"),
                "not_selected": ("未入选", "not selected"), "selected": ("已票决入选", "selected"),
                "in_delivery": ("实施中", "in delivery"), "rated": ("已测评", "rated")}


def register_body(db: Session, body: Body) -> Body:
    """The congress whose register `body` uses: itself, or for a standing committee the congress
    whose name its own extends (示范市第十七届人民代表大会 + 常务委员会)."""
    if body.kind == BodyKind.STANDING_COMMITTEE and body.name.endswith(COMMITTEE_SUFFIX):
        congress = db.scalar(select(Body).where(Body.kind == BodyKind.CONGRESS,
                                                Body.name == body.name[:-len(COMMITTEE_SUFFIX)]))
        if congress is not None:
            return congress
    return body


def family(db: Session, register: Body) -> list[int]:
    """The bodies sharing `register`: the congress and its standing committee."""
    committee = db.scalar(select(Body.id).where(Body.kind == BodyKind.STANDING_COMMITTEE,
                                                Body.name == register.name + COMMITTEE_SUFFIX))
    return [register.id] + ([committee] if committee is not None and committee != register.id else [])


def open_sittings(db: Session, register: Body) -> list[Sitting]:
    """Open sessions of the congress and its standing committee, where an item made from the
    register can go."""
    return list(db.scalars(select(Sitting).where(Sitting.body_id.in_(family(db, register)),
                                                 Sitting.status == SittingStatus.OPEN).order_by(Sitting.id)))


def clean_project(raw: dict, where: str) -> dict:
    """One project's fields as stored: names clean (formats.names), 年度 a year, 投资额 whole 万元."""
    out = {"code": names.check_name(raw.get("code"), what="编号 code", where=f"{where}code",
                                    max_len=names.CANDIDATE_KEY),
           "name": names.check_name(raw.get("name"), what="名称 name", where=f"{where}name",
                                    max_len=names.CANDIDATE_TITLE),
           "description": names.check_name(raw.get("description"), what="说明 description", required=False,
                                           where=f"{where}description", max_len=names.CANDIDATE_DESCRIPTION,
                                           multiline=True),
           "department": names.check_name(raw.get("department"), what="承办单位 department", required=False,
                                          where=f"{where}department", max_len=200)}
    out["year"] = _whole(raw.get("year"), f"{where}year", "年度 year", 1949, 2200, required=True)
    out["investment"] = _whole(raw.get("investment"), f"{where}investment", "投资额 investment (万元)", 0,
                               10**9, required=False)
    return out


def _whole(v, where: str, what: str, low: int, high: int, *, required: bool) -> int | None:
    if isinstance(v, str):
        v = v.strip().removesuffix("万元").removesuffix("年").strip()
        if not v:
            v = None
        elif v.isdigit():
            v = int(v)
    if v is None and not required:
        return None
    if not isinstance(v, int) or isinstance(v, bool) or not low <= v <= high:
        raise InvalidInput(f"{what} must be a whole number from {low} to {high}", where=where,
                           zh=f"{what.split()[0]}须为 {low} 至 {high} 之间的整数")
    return v


def add_projects(db: Session, register: Body, rows: list[dict], source: str) -> list[Project]:
    """Add cleaned projects to the register, all or none: a 编号 already there (or twice) is refused."""
    have = set(db.scalars(select(Project.code).where(Project.body_id == register.id)))
    for i, r in enumerate(rows):
        if r["code"] in have:
            raise Conflict(f"project {r['code']} is already in the register", where=r.get("where", f"[{i}].code"),
                           zh=f"项目库中已有编号为 {r['code']} 的项目")
        have.add(r["code"])
    made = [Project(body_id=register.id, **{k: r[k] for k in ("code", "name", "description", "department",
                                                              "year", "investment")}) for r in rows]
    db.add_all(made)
    db.flush()
    audit.append(db, AuditKind.PROJECTS_ADDED, {"body_id": register.id, "source": source,
                                        "projects": [{"code": p.code, "name": p.name, "year": p.year}
                                                     for p in made]})
    return made


def read_projects_xlsx(data: bytes, name: str) -> list[dict]:
    """The secretariat's Excel list: a header row (编号, 名称, 说明, 承办单位, 年度, 投资额), then one
    project per row; refused at the first problem, naming its row and column."""
    table = [(i, r) for i, r in enumerate(xlsx_rows(data, name), start=1) if any(c.strip() for c in r)]
    if not table:
        raise InvalidInput("the file is empty", where=name, zh="文件是空的")
    header_line, header = table[0][0], [c.strip() for c in table[0][1]]
    columns = {f: next((i for i, h in enumerate(header) if h in aliases or h.lower() in aliases), None)
               for f, aliases in HEADERS.items()}
    missing = [HEADERS[f][0] for f in ("code", "name", "year") if columns[f] is None]
    if missing:
        raise InvalidInput(f"missing column {'、'.join(missing)}", where=f"{name}: row {header_line}",
                           zh=f"缺少“{'、'.join(missing)}”列；第一行为：{'，'.join(header[:20]) or '（空）'}")
    if not 1 < len(table) <= MAX_PROJECTS + 1:
        raise InvalidInput(f"a list holds 1 to {MAX_PROJECTS} projects", where=name,
                           zh=f"项目清单须有 1 至 {MAX_PROJECTS} 个项目")
    rows, seen = [], set()
    for line, row in table[1:]:
        raw = {f: (row[i] if i is not None and i < len(row) else None) for f, i in columns.items()}
        where = f"{name}: row {line}, column "
        try:
            r = clean_project(raw, where)
        except InvalidInput as exc:  # name the column as the sheet does
            field = exc.where.rsplit(" ", 1)[-1]
            label = header[columns[field]] if columns.get(field) is not None else field
            raise InvalidInput(exc.message, where=f"{where}{label}", zh=exc.zh) from None
        if r["code"] in seen:
            raise InvalidInput(f"编号 {r['code']} appears twice", where=f"{where}{header[columns['code']]}",
                               zh=f"编号 {r['code']} 重复")
        seen.add(r["code"])
        rows.append({**r, "where": f"{where}{header[columns['code']]}"})
    return rows


def projects_of(db: Session, register: Body) -> list[Project]:
    return list(db.scalars(select(Project).where(Project.body_id == register.id)
                           .order_by(Project.year, Project.code)))


def register_states(db: Session, register: Body) -> list[dict]:
    """Every project of the register with its state, read from the items of the congress and
    its standing committee (a vote's stored, tallied result; never recounted here)."""
    items = list(db.scalars(select(Item).join(Sitting, Sitting.id == Item.sitting_id)
                            .where(Sitting.body_id.in_(family(db, register)))
                            .order_by(Item.created_at, Item.id)))
    out = []
    for p in projects_of(db, register):
        row = {"project": p, "state": "reserve", "selection": None, "rating": None, "items": []}
        for item in items:
            if item.kind not in (ItemKind.LIVELIHOOD, ItemKind.EVALUATION) or not any(
                    c.key == p.code and c.title == p.name for c in item.candidates):
                continue
            row["items"].append(item)
            _apply(row, item, p.code)
        out.append(row)
    return out


def _apply(row: dict, item: Item, code: str) -> None:
    """Move a project's state on by what `item` (which lists it) decided."""
    done = [r.result for r in item.rounds if r.status == RoundStatus.TALLIED and r.result]
    entry = tally.item_result(item.key, item.kind, done) if done else None
    where = {"session": item.sitting.name, "body": item.sitting.body.name, "item_id": item.id,
             "item": item.title}
    if entry is None or entry["status"] not in (ItemStatus.DECIDED,):
        if row["state"] == "reserve":
            row["state"] = "candidate"
        return
    cand = next(c for c in entry["candidates"] if c["key"] == code)
    if item.kind == ItemKind.LIVELIHOOD:
        if code in entry["selected"]:
            row["state"] = "in_delivery" if item.sitting.status == SittingStatus.CLOSED else "selected"
            row["selection"] = {**where, "rank": entry["selected"].index(code) + 1, "for": cand["for"]}
        elif row["state"] in ("reserve", "candidate"):
            row["state"] = "not_selected"
    else:
        titles = {o["key"]: o["title"] for o in item.options or []}
        row["state"] = "rated"
        row["rating"] = {**where, "grade": cand["grade"], "grade_title": titles.get(cand["grade"], cand["grade"]),
                         "rate": cand["rate"], "counts": [(o["title"], cand.get(o["key"], 0))
                                                          for o in item.options or []],
                         "abstain": cand["abstain"]}
