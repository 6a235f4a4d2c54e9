"""Setting up a sitting: database, bodies, sessions, roster, check-in, state."""
from __future__ import annotations

import json
import sys
from contextlib import contextmanager

import click
from sqlalchemy import select

from ballot_service.config import Settings
from ballot_service.db import make_engine, make_sessionmaker
from ballot_service.domain.roster import import_roster
from ballot_service.domain.sittings import (
    attendance_state,
    close_sitting,
    create_body,
    create_sitting,
    find_member,
    get_body,
    get_sitting,
    set_attendance,
)
from ballot_service.errors import BallotError
from ballot_service.formats.roster import read_roster
from ballot_service.migrate import upgrade
from ballot_service.models import Body
from ballot_service.vocab import BodyKind, Presence, SittingStatus, values


@contextmanager
def db_session():
    """One transaction per command: commit on success, roll back and explain on error."""
    settings = Settings.from_env()
    engine = make_engine(settings.database_url)
    db = make_sessionmaker(engine)()
    try:
        yield db
        db.commit()
    except BallotError as exc:
        db.rollback()
        where = f" ({exc.where})" if exc.where else ""
        click.echo(f"错误 error: {exc.message}{where}", err=True)
        sys.exit(2)
    finally:
        db.close()
        engine.dispose()


@click.command("init-db", help="Create the database tables, or upgrade them to this version.")
def init_db() -> None:
    settings = Settings.from_env()
    upgrade(settings.database_url)
    click.echo(f"database ready: {settings.database_url}")


@click.group("body", help="Bodies: a congress (plenary) or a standing committee.")
def body() -> None:
    pass


@body.command("create", help="Create a body. KIND is congress or standing_committee.")
@click.argument("name")
@click.option("--kind", type=click.Choice(values(BodyKind)), required=True,
              help="congress = 人民代表大会; standing_committee = 常务委员会")
def body_create(name: str, kind: str) -> None:
    with db_session() as db:
        b = create_body(db, name, kind)
    click.echo(f"body {b.id}: {b.name} ({b.kind})")


@click.group("session", help="Sessions (会次) of a body.")
def session() -> None:
    pass


@session.command("create", help="Create a session of BODY_ID, e.g. 第四次会议.")
@click.argument("body_id", type=int)
@click.argument("name")
def sitting_create(body_id: int, name: str) -> None:
    with db_session() as db:
        s = create_sitting(db, get_body(db, body_id), name)
    click.echo(f"session {s.id}: {s.name}")


@session.command("close", help="Close (闭会) SESSION_ID: refused while a vote is open or if already closed. "
                               "Signs a checkpoint of the audit chain head with the body's key "
                               "(needs BALLOT_KEY_PASSPHRASE); after it no check-in, leave, new item or "
                               "vote opening is accepted for the session.")
@click.argument("session_id", type=int)
def sitting_close(session_id: int) -> None:
    settings = Settings.from_env()
    with db_session() as db:
        r = close_sitting(db, settings, get_sitting(db, session_id))
    cp = r["checkpoint"]
    click.echo(f"session {r['id']} {r['name']} closed at {r['closed_at']}; "
               f"audit checkpoint signed at event {cp['seq']} (head {cp['head'][:16]}…, key {cp['key_fingerprint']})")


@click.group("roster", help="The roster of members (代表名册).")
def roster() -> None:
    pass


@roster.command("import", help="Import a roster for BODY_ID from a .csv (UTF-8 or GBK) or .xlsx file "
                               "with columns 代表证号, 姓名, 代表团/小组, 座位号. A bad file imports nothing.")
@click.argument("body_id", type=int)
@click.argument("path", type=click.Path(dir_okay=False))
def roster_import(body_id: int, path: str) -> None:
    with db_session() as db:
        rows = read_roster(path)
        summary = import_roster(db, get_body(db, body_id), rows, source=path)
    click.echo(json.dumps(summary, ensure_ascii=False))


@click.command("checkin", help="Check members in (签到) for SESSION_ID by 代表证号; --leave records 请假.")
@click.argument("session_id", type=int)
@click.argument("member_nos", nargs=-1, required=True)
@click.option("--leave", is_flag=True, help="record leave (请假) instead of presence")
def checkin(session_id: int, member_nos: tuple[str, ...], leave: bool) -> None:
    with db_session() as db:
        sitting = get_sitting(db, session_id)
        for no in member_nos:
            set_attendance(db, sitting, find_member(db, sitting.body_id, no),
                           Presence.LEAVE if leave else Presence.PRESENT, "manual")
        state = attendance_state(db, sitting)
    click.echo(json.dumps(state.as_dict(), ensure_ascii=False))


@click.command("state", help="Show bodies, sessions, attendance (应到/实到/法定人数) and items.")
@click.option("--json", "as_json", is_flag=True, help="print JSON instead of text")
def state(as_json: bool) -> None:
    out = []
    with db_session() as db:
        for b in db.scalars(select(Body).order_by(Body.id)):
            bodies = {"id": b.id, "name": b.name, "kind": b.kind, "sessions": []}
            for s in b.sittings:
                bodies["sessions"].append({
                    "id": s.id, "name": s.name, "status": s.status, "attendance": attendance_state(db, s).as_dict(),
                    "items": [{"id": i.id, "key": i.key, "kind": i.kind, "title": i.title,
                               "status": i.status} for i in s.items]})
            out.append(bodies)
    if as_json:
        click.echo(json.dumps(out, ensure_ascii=False, indent=1))
        return
    for b in out:
        click.echo(f"[{b['id']}] {b['name']} ({b['kind']})")
        for s in b["sessions"]:
            a = s["attendance"]
            q = "符合法定人数" if a["quorum_met"] else "不符合法定人数"
            closed = " [已闭会 closed]" if s["status"] == SittingStatus.CLOSED else ""
            click.echo(f"  session {s['id']} {s['name']}{closed}: 应到{a['members']} 实到{a['present']} "
                       f"请假{a['leave']} 缺席{a['absent']} {q}")
            for i in s["items"]:
                click.echo(f"    item {i['id']} {i['key']} [{i['status']}] {i['title']}")


commands = [init_db, body, session, roster, checkin, state]
