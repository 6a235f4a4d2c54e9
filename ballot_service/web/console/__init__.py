"""The secretariat's console (HTML): login, sittings, roster, check-in, items, votes,
records and the audit bundle. Thin: every action calls the same domain functions as the
JSON API, and a refusal is shown as a message on the page it came from."""
from __future__ import annotations

import json
import secrets
import shutil
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path
from urllib.parse import urlparse

from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_file,
    session,
    url_for,
)
from sqlalchemy import func, select

from ballot_service import rules
from ballot_service.crypto import keys
from ballot_service.db import utcnow
from ballot_service.domain import audit, records, sittings, tally, voting
from ballot_service.domain.roster import import_roster, read_roster
from ballot_service.domain.sittings import (
    attendance_state,
    create_body,
    create_body_key,
    create_item,
    create_sitting,
    find_member,
    get_body,
    get_item,
    get_sitting,
    set_attendance,
)
from ballot_service.errors import BallotError, InvalidInput, Unauthorized
from ballot_service.models import (
    Attendance,
    AuditEvent,
    Body,
    Cast,
    Member,
    Record,
    Terminal,
    status_name,
)
from ballot_service.web import roles as auth
from ballot_service.web.common import finish_refusal, get_db
from ballot_service.web.i18n import current_language, t
from ballot_service.web.roles import requires
from ballot_service.web.urls import public_base, public_url_for

bp = Blueprint("console", __name__)

LOGIN_WINDOW_S, LOGIN_MAX_FAILURES = 300, 5
HOME_OF_ROLE = {"secretariat": "/console", "auditor": "/console", "display": "/display"}


@bp.get("/")
@requires("public")
def root():
    role = session.get("role")
    return redirect(HOME_OF_ROLE.get(role) or url_for("console.login_page"))


@bp.get("/login")
@requires("public")
def login_page():
    if session.pop("expired", False):
        flash(t("登录已过期，请重新登录。", "Your login expired; please log in again."), "warn")
    return render_template("console/login.html", next=request.args.get("next", ""))


@bp.post("/login")
@requires("public")
def login_submit():
    username = request.form.get("username", "").strip()
    password = request.form.get("password", "")
    db = get_db()
    try:
        op = login_operator(db, username, password)
    except BallotError as exc:
        finish_refusal(exc)
        flash(exc.text(current_language()), "error")
        return render_template("console/login.html", next=request.form.get("next", ""), username=username), 401
    target = _safe_next(request.form.get("next")) or HOME_OF_ROLE[op.role]
    return redirect(target)


def login_operator(db, username: str, password: str):
    """Check a login and start the session. Failures are audited, and the audit log is also
    the rate limit's memory: it holds across workers and restarts."""
    recent = recent_failed_logins(db, username)
    if recent >= LOGIN_MAX_FAILURES:
        audit.append(db, "login_failed", {"username": username, "reason": "rate_limited"})
        db.commit()
        raise Unauthorized(t(f"{username} 登录失败次数过多，请 {LOGIN_WINDOW_S // 60} 分钟后再试",
                             f"too many failed logins for {username}; wait {LOGIN_WINDOW_S // 60} minutes"),
                           where="username")
    try:
        op = auth.check_login(db, username, password)
    except Unauthorized as exc:
        audit.append(db, "login_failed", {"username": username, "reason": "wrong_password"})
        exc.commit_audit = True
        raise
    session.clear()
    session["username"], session["role"] = op.username, op.role
    session["seen"] = int(time.time())
    session.permanent = True
    audit.append(db, "login", {"username": op.username, "role": op.role})
    db.commit()
    return op


def recent_failed_logins(db, username: str) -> int:
    """Wrong-password failures for `username` within the window, since its last success."""
    since = utcnow() - timedelta(seconds=LOGIN_WINDOW_S)
    events = db.execute(select(AuditEvent.kind, AuditEvent.data).where(
        AuditEvent.kind.in_(("login", "login_failed")), AuditEvent.at >= since).order_by(AuditEvent.seq)).all()
    failures = 0
    for kind, data in events:
        d = json.loads(data)
        if d.get("username") != username:
            continue
        if kind == "login":
            failures = 0
        elif d.get("reason") != "rate_limited":
            failures += 1
    return failures


def _safe_next(target: str | None) -> str | None:
    """Only a path on this site (no scheme, no host) may be a redirect target after login."""
    if not target:
        return None
    parsed = urlparse(target)
    if parsed.scheme or parsed.netloc or not target.startswith("/") or target.startswith("//"):
        return None
    return target


@bp.post("/logout")
@requires("secretariat", "auditor", "display")
def logout_page():
    session.clear()
    flash(t("已退出。", "Logged out."), "ok")
    return redirect(url_for("console.login_page"))


KIND_LABELS = {"livelihood_projects": ("民生实事项目票决", "livelihood projects vote"),
               "appointment": ("任职票决", "appointment vote"),
               "resolution": ("决议表决", "resolution")}
BODY_KINDS = {"congress": ("人民代表大会", "people's congress"),
              "standing_committee": ("常务委员会", "standing committee")}


def label(table: dict, key: str) -> str:
    zh_en = table.get(key)
    return t(*zh_en) if zh_en else key


bp.app_template_test("has_result")(sittings.has_result)


@bp.app_context_processor
def _labels():
    return {"kind_label": lambda k: label(KIND_LABELS, k), "body_kind_label": lambda k: label(BODY_KINDS, k),
            "status_label": lambda k: t(*status_name(k))}


def act(action, success: str, back: str):
    """Run one console action: commit and flash `success`, or roll back (keeping an audited
    refusal) and show the reason on the page the operator came from."""
    db = get_db()
    try:
        result = action(db)
        db.commit()
    except BallotError as exc:
        finish_refusal(exc)
        where = f" （{exc.where}）" if exc.where else ""
        flash(f"{exc.text(current_language())}{where}", "error")
        return redirect(back), None
    if success:
        flash(success, "ok")
    return redirect(back), result


def _settings():
    return current_app.config["SETTINGS"]


# --- bodies and sittings ---------------------------------------------------------------

@bp.get("/console")
@requires("secretariat", "auditor")
def home():
    db = get_db()
    bodies = db.scalars(select(Body).order_by(Body.id)).all()
    counts = dict(db.execute(select(Member.body_id, func.count()).where(Member.in_office.is_(True))
                             .group_by(Member.body_id)).all())
    fingerprints = {}
    for b in bodies:
        if b.key_name:
            try:
                fingerprints[b.id] = keys.fingerprint(keys.load_public_key(
                    keys.public_path(_settings().keys_dir, b.key_name)))
            except BallotError:
                fingerprints[b.id] = None
    return render_template("console/home.html", bodies=bodies, counts=counts, fingerprints=fingerprints,
                           body_kinds=BODY_KINDS)


@bp.post("/console/bodies")
@requires("secretariat")
def body_create():
    form = request.form
    return act(lambda db: create_body(db, form.get("name", "").strip(), form.get("kind", "")),
               t("已创建机构。", "Body created."), url_for(".home"))[0]


@bp.post("/console/bodies/<int:body_id>/key")
@requires("secretariat")
def body_key(body_id: int):
    def make(db):
        body = get_body(db, body_id)
        s = _settings()
        return create_body_key(db, s.keys_dir, s.key_passphrase, body)

    return act(make, t("已生成签名密钥，请公布其指纹。", "Signing key created; publish its fingerprint."),
               url_for(".home"))[0]


@bp.post("/console/sessions")
@requires("secretariat")
def sitting_create():
    form = request.form
    resp, sitting = act(lambda db: create_sitting(db, get_body(db, _int(form, "body_id")),
                                                  form.get("name", "").strip()),
                        t("已创建会议。", "Sitting created."), url_for(".home"))
    return redirect(url_for(".sitting_page", sitting_id=sitting.id)) if sitting else resp


def _int(form, name: str, required: bool = True) -> int | None:
    raw = (form.get(name) or "").strip()
    if not raw:
        if required:
            raise InvalidInput(t(f"缺少 {name}", f"{name} is missing"), where=name)
        return None
    if not raw.isdigit():
        raise InvalidInput(t(f"{name} 须为非负整数", f"{name} must be a whole number"), where=name)
    return int(raw)


# --- roster import with preview ----------------------------------------------------------

def _uploads() -> Path:
    path = Path(_settings().instance_path) / "uploads"
    path.mkdir(parents=True, exist_ok=True)
    return path


@bp.get("/console/bodies/<int:body_id>/roster")
@requires("secretariat", "auditor")
def roster_page(body_id: int):
    db = get_db()
    body = get_body(db, body_id)
    members = db.scalars(select(Member).where(Member.body_id == body.id).order_by(Member.member_no)).all()
    return render_template("console/roster.html", body=body, members=members)


@bp.post("/console/bodies/<int:body_id>/roster/preview")
@requires("secretariat")
def roster_preview(body_id: int):
    """Parse the file and show what an import would do, or every error found; nothing is
    changed until the operator confirms."""
    db = get_db()
    body = get_body(db, body_id)
    f = request.files.get("file")
    if f is None or not f.filename:
        flash(t("请选择名册文件（.csv 或 .xlsx）。", "Choose a roster file (.csv or .xlsx)."), "error")
        return redirect(url_for(".roster_page", body_id=body_id))
    data = f.read()
    try:
        rows = read_roster(f.filename, data)
    except BallotError as exc:
        return render_template("console/roster_preview.html", body=body, filename=f.filename, error=exc,
                               rows=None), 400
    token = secrets.token_urlsafe(16)
    (_uploads() / f"{token}.roster").write_bytes(data)
    (_uploads() / f"{token}.json").write_text(json.dumps({"body_id": body_id, "filename": f.filename}))
    current = {m.member_no: m for m in db.scalars(select(Member).where(Member.body_id == body.id))}
    in_file = {r.member_no for r in rows}
    changes = {"added": [r for r in rows if r.member_no not in current],
               "updated": [r for r in rows if r.member_no in current],
               "leaving": [m for no, m in current.items() if no not in in_file and m.in_office]}
    return render_template("console/roster_preview.html", body=body, filename=f.filename, rows=rows,
                           changes=changes, token=token, error=None)


@bp.post("/console/bodies/<int:body_id>/roster/import")
@requires("secretariat")
def roster_import(body_id: int):
    token = request.form.get("token", "")
    if not token.replace("-", "").replace("_", "").isalnum():
        abort(400)
    data_path, meta_path = _uploads() / f"{token}.roster", _uploads() / f"{token}.json"
    if not data_path.exists():
        flash(t("预览已失效，请重新上传。", "The preview has expired; upload the file again."), "error")
        return redirect(url_for(".roster_page", body_id=body_id))
    meta = json.loads(meta_path.read_text())
    if meta["body_id"] != body_id:
        abort(400)

    def run(db):
        rows = read_roster(meta["filename"], data_path.read_bytes())
        return import_roster(db, get_body(db, body_id), rows, source=meta["filename"])

    resp, summary = act(run, "", url_for(".roster_page", body_id=body_id))
    if summary:
        data_path.unlink(missing_ok=True)
        meta_path.unlink(missing_ok=True)
        flash(t(f"已导入名册：新增 {summary['added']}，更新 {summary['updated']}，离任 {summary['left_office']}，"
                f"在任 {summary['in_office']}。",
                f"Roster imported: {summary['added']} added, {summary['updated']} updated, "
                f"{summary['left_office']} left office, {summary['in_office']} in office."), "ok")
    return resp


# --- a sitting: check-in, terminals, items -------------------------------------------------

@bp.get("/console/sessions/<int:sitting_id>")
@requires("secretariat", "auditor")
def sitting_page(sitting_id: int):
    db = get_db()
    sitting = get_sitting(db, sitting_id)
    members = db.scalars(select(Member).where(Member.body_id == sitting.body_id, Member.in_office.is_(True))
                         .order_by(Member.group, Member.member_no)).all()
    status = dict(db.execute(select(Attendance.member_id, Attendance.status)
                             .where(Attendance.sitting_id == sitting.id)).all())
    terminals = db.scalars(select(Terminal).where(Terminal.sitting_id == sitting.id).order_by(Terminal.id)).all()
    return render_template("console/sitting.html", sitting=sitting, state=attendance_state(db, sitting),
                           members=members, status=status, terminals=terminals, kinds=KIND_LABELS,
                           bases=rules.BASES, majorities=rules.MAJORITIES,
                           close_available=hasattr(sittings, "close_sitting"))


@bp.post("/console/sessions/<int:sitting_id>/close")
@requires("secretariat")
def sitting_close(sitting_id: int):
    """闭会: refused while a vote is open; signs a checkpoint of the audit chain."""
    def run(db):
        if not hasattr(sittings, "close_sitting"):
            raise InvalidInput(t("本版本尚不支持闭会", "closing a sitting is not available"), where="sitting")
        return sittings.close_sitting(db, _settings(), get_sitting(db, sitting_id))

    return act(run, t("已闭会，审计检查点已签署。", "The sitting is closed; an audit checkpoint is signed."),
               url_for(".sitting_page", sitting_id=sitting_id))[0]


@bp.post("/console/sessions/<int:sitting_id>/screen")
@requires("secretariat")
def screen_form(sitting_id: int):
    """What the presiding screen shows between votes (sittings.set_screen)."""
    show = request.form.get("show", "")

    def run(db):
        item_id = _int(request.form, "item_id", required=False) if show == "result" else None
        return sittings.set_screen(db, get_sitting(db, sitting_id), show, item_id)

    done = {"auto": t("大屏已恢复跟随表决。", "The screen follows the votes again."),
            "title": t("大屏显示会标。", "The screen shows the session banner."),
            "checkin": t("大屏显示签到情况。", "The screen shows the check-in."),
            "result": t("大屏显示所选表决事项的结果。", "The screen shows the chosen result.")}.get(show, "")
    return act(run, done, url_for(".sitting_page", sitting_id=sitting_id))[0]


@bp.post("/console/sessions/<int:sitting_id>/attendance")
@requires("secretariat")
def attendance_form(sitting_id: int):
    """补签到 / 请假 for the ticked members, or for one member number typed in."""
    form = request.form
    status = form.get("status", "present")
    nos = [n for n in form.getlist("member") if n] + [n.strip() for n in form.get("member_no", "").split()
                                                      if n.strip()]

    def run(db):
        if not nos:
            raise InvalidInput(t("请先勾选或输入代表证号", "tick members or type a member number"), where="member")
        sitting = get_sitting(db, sitting_id)
        for no in nos:
            set_attendance(db, sitting, find_member(db, sitting.body_id, no), status, "manual")
        return attendance_state(db, sitting)

    word = {"present": t("补签到", "checked in"), "leave": t("请假", "on leave"),
            "absent": t("取消签到", "marked absent")}.get(status, status)
    return act(run, t(f"已{word}：{len(nos)} 人。", f"{len(nos)} member(s) {word}."),
               url_for(".sitting_page", sitting_id=sitting_id) + "#attendance")[0]


@bp.post("/console/sessions/<int:sitting_id>/terminals")
@requires("secretariat")
def terminals_form(sitting_id: int):
    """Register a terminal for every seat of the roster that has none, and/or counting
    stations. The credentials are shown once, on the page this returns."""
    form = request.form
    db = get_db()
    try:
        sitting = get_sitting(db, sitting_id)
        made = []
        if form.get("all_seats"):
            taken = set(db.scalars(select(Terminal.seat).where(Terminal.sitting_id == sitting.id,
                                                               Terminal.revoked_at.is_(None))))
            for m in db.scalars(select(Member).where(Member.body_id == sitting.body_id,
                                                     Member.in_office.is_(True)).order_by(Member.seat)):
                seat = m.seat or m.member_no
                if seat not in taken:
                    made.append(auth.register_terminal(db, sitting, f"席位 {seat}", "seat", seat))
                    taken.add(seat)
        if form.get("seat", "").strip():
            seat = form["seat"].strip()
            made.append(auth.register_terminal(db, sitting, f"席位 {seat}", "seat", seat))
        for i in range(_int(form, "stations", required=False) or 0):
            made.append(auth.register_terminal(db, sitting, f"计票站 {i + 1}",
                                               "counting_station"))
        db.commit()
    except BallotError as exc:
        finish_refusal(exc)
        flash(exc.text(current_language()), "error")
        return redirect(url_for(".sitting_page", sitting_id=sitting_id) + "#terminals")
    base = public_base()
    return render_template("console/terminals_created.html", sitting=sitting, base=base,
                           made=[(term, cred) for term, cred in made])


@bp.post("/console/terminals/<int:terminal_id>/revoke")
@requires("secretariat")
def terminal_revoke(terminal_id: int):
    db = get_db()
    term = db.get(Terminal, terminal_id)
    if term is None:
        abort(404)
    back = url_for(".sitting_page", sitting_id=term.sitting_id) + "#terminals"
    return act(lambda db: auth.revoke_terminal(db, term), t(f"已吊销终端 {term.name}。", f"Terminal {term.name} revoked."),
               back)[0]


def parse_candidates(text: str, kind: str) -> list[dict]:
    """One candidate per line: `title`, or `key | title`, or `key | title | description`."""
    out = []
    prefix = "P" if kind == "livelihood_projects" else "N"
    for n, line in enumerate((ln.strip() for ln in text.splitlines()), start=1):
        if not line:
            continue
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 1:
            out.append({"key": f"{prefix}{len(out) + 1:02d}", "title": parts[0]})
        elif len(parts) in (2, 3) and parts[0] and parts[1]:
            c = {"key": parts[0], "title": parts[1]}
            if len(parts) == 3 and parts[2]:
                c["description"] = parts[2]
            out.append(c)
        else:
            raise InvalidInput(t(f"第 {n} 行格式应为“名称”或“编号 | 名称 | 说明”",
                                 f"line {n}: write 'title' or 'key | title | description'"),
                               where=f"candidates line {n}")
    return out


@bp.post("/console/sessions/<int:sitting_id>/items")
@requires("secretariat")
def item_form(sitting_id: int):
    form = request.form

    def run(db):
        kind = form.get("kind", "")
        cands = parse_candidates(form.get("candidates", ""), kind) if kind != "resolution" else None
        minutes = _int(form, "time_limit_min", required=False)
        return create_item(db, get_sitting(db, sitting_id), key=form.get("key", "").strip(), kind=kind,
                           title=form.get("title", "").strip(), candidates=cands,
                           places=_int(form, "places", required=kind == "livelihood_projects"),
                           base=form.get("base", "members"), majority=form.get("majority", "half"),
                           secret=form.get("secret", "1") == "1", channel=form.get("channel", "terminal"),
                           time_limit_s=minutes * 60 if minutes else None)

    resp, item = act(run, t("已添加表决事项。", "Vote item added."),
                     url_for(".sitting_page", sitting_id=sitting_id) + "#items")
    return redirect(url_for(".item_page", item_id=item.id)) if item else resp


# --- an item: open, close, tally, record, publish ------------------------------------------

def item_progress(db, item) -> dict:
    rnd = voting.current_round(item)
    returned = db.scalar(select(func.count()).select_from(Cast).where(Cast.round_id == rnd.id)) or 0
    return {"status": item.status, "round": rnd.number, "round_status": rnd.status,
            "issued": rnd.issued if rnd.issued is not None else voting.issued_count(db, item, rnd),
            "returned": returned, "present": rnd.present, "members": rnd.members,
            "closes_at": rnd.closes_at.isoformat() if rnd.closes_at else None}


@bp.get("/console/items/<int:item_id>")
@requires("secretariat", "auditor")
def item_page(item_id: int):
    db = get_db()
    item = get_item(db, item_id)
    rec = db.scalar(select(Record).where(Record.item_id == item.id))
    result = tally.results_for_items([item])[0] if any(r.result for r in item.rounds) else None
    content = json.loads(rec.body_json) if rec else None
    paper = None
    if item.channel == "paper":
        from ballot_service.formats.ballots import paper_counts

        paper = paper_counts(db, voting.current_round(item))
        paper["files"] = sorted(p.name for p in Path(_settings().ballots_dir).glob(f"item{item.id}-round*.pdf"))
    return render_template("console/item.html", item=item, sitting=item.sitting, progress=item_progress(db, item),
                           result=result, rec=rec, content=content,
                           announcement=records.announcement(content) if content else None,
                           titles={c.key: c.title for c in item.candidates}, paper=paper,
                           state=attendance_state(db, item.sitting))


@bp.get("/console/items/<int:item_id>/progress")
@requires("secretariat", "auditor")
def item_progress_json(item_id: int):
    db = get_db()
    return jsonify(item_progress(db, get_item(db, item_id)))


ITEM_ACTIONS = {
    "open": (lambda db, item: voting.open_round(db, _settings(), item), ("表决已开始。", "The vote is open.")),
    "close": (lambda db, item: voting.close_round(db, _settings(), item), ("表决已结束，票数已冻结。",
                                                                          "The vote is closed; counts frozen.")),
    "tally": (lambda db, item: tally.tally_item(db, item), ("已计票。", "Tallied.")),
    "record": (lambda db, item: records.issue_record(db, _settings(), item),
               ("已签发表决结果记录。", "The signed record is issued.")),
    "publish": (lambda db, item: records.publish_record(db, item),
                ("已公布，大屏显示结果。", "Published; the presiding screen shows the result.")),
    "quorum-failed": (lambda db, item: _quorum_failed(db, item), ("已记录：不足法定人数，不能表决。",
                                                                  "Recorded: no quorum, the item cannot be voted.")),
}


def _quorum_failed(db, item):
    from ballot_service.errors import Conflict

    rnd = voting.current_round(item)
    if rnd.status != "pending":
        raise Conflict(t("只有尚未开始的表决才能记录为不足法定人数", "only a vote that has not opened can be recorded as "
                         "quorum not met"), where="item")
    state = attendance_state(db, item.sitting)
    if state.quorum_met:
        raise Conflict(t("已达到法定人数，请开始表决", "quorum is met; open the vote instead"), where="item")
    return tally.record_quorum_failure(db, item, rnd, state.members, state.present)


@bp.post("/console/items/<int:item_id>/<action>")
@requires("secretariat")
def item_action(item_id: int, action: str):
    if action not in ITEM_ACTIONS:
        abort(404)
    run, (zh, en) = ITEM_ACTIONS[action]
    return act(lambda db: run(db, get_item(db, item_id)), t(zh, en), url_for(".item_page", item_id=item_id))[0]


# --- records --------------------------------------------------------------------------------

def _record(record_id: str) -> Record:
    rec = get_db().get(Record, record_id) if len(record_id) <= 64 else None
    if rec is None:
        abort(404)
    return rec


@bp.get("/console/records/<record_id>.json")
@requires("secretariat", "auditor")
def record_json(record_id: str):
    rec = _record(record_id)
    doc = {"signed": rec.body_json, "signature": rec.signature, "key_fingerprint": rec.key_fingerprint}
    resp = current_app.response_class(json.dumps(doc, ensure_ascii=False, indent=2), mimetype="application/json")
    resp.headers["Content-Disposition"] = f"attachment; filename=record-{rec.id}.json"
    return resp


@bp.get("/console/records/<record_id>.pdf")
@requires("secretariat", "auditor")
def record_pdf_file(record_id: str):
    from ballot_service.render import record_pdf

    rec = _record(record_id)
    url = public_url_for("verify_page.verify_record", record_id=rec.id)
    pdf = record_pdf.render(json.loads(rec.body_json), rec.signature, verify_url=url)
    resp = current_app.response_class(pdf, mimetype="application/pdf")
    resp.headers["Content-Disposition"] = f"inline; filename=record-{rec.id}.pdf"
    return resp


# --- paper ballots: printing runs in the background, its progress in a file ------------------

def _job_path(job_id: str) -> Path:
    path = Path(_settings().instance_path) / "jobs"
    path.mkdir(parents=True, exist_ok=True)
    return path / f"{job_id}.json"


def _write_job(path: Path, **state) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, ensure_ascii=False))
    tmp.replace(path)  # readers in other workers never see half a file


@bp.post("/console/items/<int:item_id>/print")
@requires("secretariat")
def print_ballots(item_id: int):
    """Start printing paper ballots; the item page shows the job's progress."""
    from contextlib import contextmanager

    from ballot_service.render.paper import print_batch

    try:
        count = _int(request.form, "count")
        if not 1 <= count <= 20000:
            raise InvalidInput(t("张数须在 1 到 20000 之间", "count must be between 1 and 20000"), where="count")
        item = get_item(get_db(), item_id)
        if item.channel != "paper":
            raise InvalidInput(t("该事项不使用纸质选票", "this item is not voted on paper"), where="item")
    except BallotError as exc:
        flash(exc.text(current_language()), "error")
        return redirect(url_for(".item_page", item_id=item_id))
    job_id = secrets.token_hex(8)
    path = _job_path(job_id)
    _write_job(path, state="running", done=0, total=count, item_id=item_id)
    settings, maker = _settings(), current_app.extensions["ballot_sessionmaker"]

    @contextmanager
    def open_db():
        db = maker()
        try:
            yield db
            db.commit()
        except BaseException:
            db.rollback()
            raise
        finally:
            db.close()

    lang = current_language()  # the job's thread has no request to ask

    def work():
        done = 0

        def progress(n):
            nonlocal done
            done += n
            _write_job(path, state="running", done=done, total=count, item_id=item_id)

        try:
            out = print_batch(open_db, settings, item_id, count, Path(settings.ballots_dir), progress=progress)
            _write_job(path, state="done", done=count, total=count, item_id=item_id,
                       files=[p.name for p in out["paths"]], fingerprint=out["fingerprint"])
        except Exception as exc:  # shown to the operator on the item page
            message = exc.text(lang) if isinstance(exc, BallotError) else f"{type(exc).__name__}: {exc}"
            _write_job(path, state="failed", done=done, total=count, item_id=item_id, error=message)

    threading.Thread(target=work, name=f"print-{job_id}", daemon=True).start()
    return redirect(url_for(".item_page", item_id=item_id, job=job_id))


@bp.get("/console/jobs/<job_id>")
@requires("secretariat")
def job_state(job_id: str):
    if not job_id.isalnum():
        abort(404)
    path = _job_path(job_id)
    if not path.exists():
        abort(404)
    return current_app.response_class(path.read_text(), mimetype="application/json")


@bp.get("/console/items/<int:item_id>/ballots/<name>")
@requires("secretariat")
def ballot_file(item_id: int, name: str):
    if not (name.startswith(f"item{item_id}-round") and name.endswith(".pdf")) or "/" in name or ".." in name:
        abort(404)
    path = Path(_settings().ballots_dir) / name
    if not path.is_file():
        abort(404)
    return send_file(path, mimetype="application/pdf", as_attachment=True, download_name=name)


# --- audit bundle -----------------------------------------------------------------------------

@bp.get("/console/audit-bundle.zip")
@requires("secretariat", "auditor")
def audit_bundle_zip():
    """The auditor's bundle (same as `ballot-service audit export`), as one zip file."""
    from ballot_service.bundle.export import export_bundle

    work = Path(tempfile.mkdtemp(prefix="bundle-"))
    try:
        export_bundle(get_db(), _settings(), work / "audit")
        archive = shutil.make_archive(str(work / "audit-bundle"), "zip", root_dir=work, base_dir="audit")
        data = Path(archive).read_bytes()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    audit_name = f"audit-bundle-{time.strftime('%Y%m%d-%H%M%S')}.zip"
    resp = current_app.response_class(data, mimetype="application/zip")
    resp.headers["Content-Disposition"] = f"attachment; filename={audit_name}"
    return resp
