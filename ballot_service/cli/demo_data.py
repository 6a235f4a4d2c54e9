"""The demo's sample data: 示范市's congress and its standing committee, their rosters (from
sample/), attendance, items, demo logins and signing keys, loaded once by `ballot-service demo`."""
from __future__ import annotations

from pathlib import Path

import click
from sqlalchemy import func, select

from ballot_service.cli.setup import db_session
from ballot_service.crypto.keys import body_passphrase
from ballot_service.domain.operators import create_operator
from ballot_service.domain.roster import import_roster
from ballot_service.domain.sittings import (
    create_body,
    create_body_key,
    create_item,
    create_sitting,
    find_member,
    set_attendance,
)
from ballot_service.errors import BallotError
from ballot_service.formats.roster import read_roster
from ballot_service.models import Body, Operator
from ballot_service.vocab import BodyKind, ItemKind, OperatorRole, Presence

DEMO_CONGRESS = "示范市第十七届人民代表大会"
DEMO_SITTING = "第四次会议"
DEMO_COMMITTEE = "示范市第十七届人民代表大会常务委员会"
DEMO_COMMITTEE_SITTING = "第二十次会议"
DEMO_PROJECTS = [
    "城区老旧小区改造",
    "农村饮水安全巩固提升",
    "中小学校食堂提质改造",
    "社区嵌入式养老服务中心建设",
    "城乡公交一体化提升",
    "背街小巷环境整治",
    "新能源汽车公共充电桩建设",
    "普惠托育机构建设",
    "农贸市场升级改造",
    "城市口袋公园建设",
    "基层医疗卫生机构能力提升",
    "残疾人康复服务扩面提质",
]
DEMO_PLACES = 10
DEMO_NOMINEES = [
    ("n1", "任命刘振华为示范市人民政府副市长"),
    ("n2", "任命陈雅琴为示范市教育局局长"),
    ("n3", "任命吴立新为示范市中级人民法院审判员"),
]
DEMO_PRESENT = 55  # of the 60 on the sample roster; the next 3 are on leave, 2 absent
DEMO_LEAVE = 3
DEMO_COMMITTEE_PRESENT = 32  # of 35; 1 on leave, 2 absent
# Published in the README: for trying the demo only. A real service adds its own
# operators with `ballot-service operator add`.
DEMO_OPERATORS = [
    ("mishu", "mishu-demo-2026", OperatorRole.SECRETARIAT),
    ("daping", "daping-demo-2026", OperatorRole.DISPLAY),
    ("shenji", "shenji-demo-2026", OperatorRole.AUDITOR),
]



def load_demo(sample_dir: Path, settings=None) -> str:
    """Load the sample bodies, rosters, attendance, items and demo logins in one
    transaction, unless the database already has a body; with a key passphrase set
    (settings.key_passphrase), each sample body also gets its signing key. Returns a
    short summary."""
    for name in ("roster.csv", "committee.csv"):
        if not (sample_dir / name).is_file():
            raise click.ClickException(f"sample file {sample_dir / name} is missing")

    with db_session() as db:
        if db.scalar(select(func.count()).select_from(Body)):
            return "sample data not loaded: the database already has bodies (ballot-service state shows them)"

        congress = create_body(db, DEMO_CONGRESS, BodyKind.CONGRESS)
        rows = read_roster(sample_dir / "roster.csv")
        import_roster(db, congress, rows, source="sample/roster.csv")
        sitting = create_sitting(db, congress, DEMO_SITTING)
        for i, row in enumerate(rows[: DEMO_PRESENT + DEMO_LEAVE]):
            status = Presence.PRESENT if i < DEMO_PRESENT else Presence.LEAVE
            set_attendance(db, sitting, find_member(db, congress.id, row.member_no), status, "manual")
        create_item(
            db, sitting, key="minsheng-2027", kind=ItemKind.LIVELIHOOD,
            title="2027年度民生实事项目票决", places=DEMO_PLACES,
            candidates=[{"key": f"p{i:02d}", "title": t} for i, t in enumerate(DEMO_PROJECTS, 1)])
        create_item(
            db, sitting, key="plan-resolution", kind=ItemKind.RESOLUTION,
            title="关于示范市2026年国民经济和社会发展计划执行情况与2027年计划的决议")

        committee = create_body(db, DEMO_COMMITTEE, BodyKind.STANDING_COMMITTEE)
        crows = read_roster(sample_dir / "committee.csv")
        import_roster(db, committee, crows, source="sample/committee.csv")
        csitting = create_sitting(db, committee, DEMO_COMMITTEE_SITTING)
        for i, row in enumerate(crows[: DEMO_COMMITTEE_PRESENT + 1]):
            status = Presence.PRESENT if i < DEMO_COMMITTEE_PRESENT else Presence.LEAVE
            set_attendance(db, csitting, find_member(db, committee.id, row.member_no), status, "manual")
        create_item(
            db, csitting, key="appointments", kind=ItemKind.APPOINTMENT, title="人事任免事项表决",
            candidates=[{"key": k, "title": t} for k, t in DEMO_NOMINEES])

        logins = []
        for username, password, role in DEMO_OPERATORS:
            if db.scalar(select(Operator).where(Operator.username == username)) is None:
                create_operator(db, username, password, role)
                logins.append(f"{username}/{password} ({role})")
        key_notes = [_demo_key(db, settings, body) for body in (congress, committee)]
    return "\n".join([
        f"sample data loaded: {DEMO_CONGRESS}{DEMO_SITTING} ({len(rows)} deputies, "
        f"{DEMO_PRESENT} checked in, 2 items) and {DEMO_COMMITTEE}{DEMO_COMMITTEE_SITTING} "
        f"({len(crows)} members, 1 item)",
        "demo logins 演示登录: " + (", ".join(logins) or "(operators already exist)"),
        *key_notes,
    ])


def _demo_key(db, settings, body) -> str:
    """Give a sample body its signing key, or adopt the one already in the keys folder."""
    try:
        passphrase = body_passphrase(settings, body.id) if settings is not None else None
        if not passphrase:
            return (f"no signing key for {body.name}: set BALLOT_KEY_PASSPHRASE, then "
                    f"`ballot-service keys create {body.id}`")
        key = create_body_key(db, settings.keys_dir, passphrase, body, reuse=True)
    except BallotError as exc:
        return f"no signing key for {body.name}: {exc.message}"
    return f"signing key {key.name} for {body.name} (fingerprint 指纹 {key.fingerprint})"
