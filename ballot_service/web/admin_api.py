"""Blueprint for the secretariat: the JSON API behind the console (and `rehearse`)."""
from __future__ import annotations

from flask import Blueprint, jsonify, request

from ballot_service.crypto import keys
from ballot_service.domain import (
    another_items,
    ballot_sets,
    election_items,
    operators,
    paper_ballots,
    records,
    set_sheets,
    tally,
    voting,
)
from ballot_service.domain.item_drafts import edit_item
from ballot_service.domain.roster import import_roster
from ballot_service.domain.screen_choice import set_screen
from ballot_service.domain.sittings import (
    attendance_state,
    close_sitting,
    create_body,
    create_body_key,
    create_item,
    create_sitting,
    find_member,
    get_body,
    get_sitting,
    set_attendance,
)
from ballot_service.domain.terminals import get_terminal, register_terminal, release_terminal, revoke_terminal
from ballot_service.errors import InvalidInput
from ballot_service.formats import ballots, names
from ballot_service.formats.ballots import MAX_PAPER_BATCH
from ballot_service.formats.encoding import b64url_encode
from ballot_service.formats.roster import read_members_json, read_roster
from ballot_service.vocab import PAPER_CHANNELS, Channel, Presence, Role, TerminalKind
from ballot_service.web.common import (
    BIG_BODY_BYTES,
    commit,
    end_operator_session,
    field,
    get_db,
    id_field,
    json_body,
    settings,
    start_operator_session,
)
from ballot_service.web.item_spec import item_spec
from ballot_service.web.roles import IN_JSON, OWN, SERVICE, requires

bp = Blueprint("secretariat", __name__, url_prefix="/api/admin")


@bp.post("/login")
@requires(Role.PUBLIC)
def login():
    data = json_body()
    db = get_db()
    op = operators.login_operator(db, field(data, "username", str), field(data, "password", str),
                                  request.remote_addr)
    start_operator_session(op)
    db.commit()
    return jsonify({"username": op.username, "role": op.role})


@bp.post("/logout")
@requires(Role.SUPERUSER, Role.SECRETARIAT, Role.AUDITOR, Role.DISPLAY, body=OWN)
def logout():
    end_operator_session(get_db())
    return jsonify({"ok": True})


@bp.post("/bodies")
@requires(Role.SUPERUSER, Role.SECRETARIAT, body=SERVICE)
def bodies_create():
    data = json_body()
    body = create_body(get_db(), field(data, "name", str), field(data, "kind", str))
    commit()
    return jsonify({"id": body.id, "name": body.name, "kind": body.kind}), 201


@bp.post("/bodies/<int:body_id>/key")
@requires(Role.SUPERUSER, Role.SECRETARIAT, body="body_id")
def body_key_create(body_id: int):
    db = get_db()
    body = get_body(db, body_id)
    s = settings()
    key = create_body_key(db, s.keys_dir, keys.body_passphrase(s, body.id), body)
    commit()
    return jsonify({"name": key.name, "fingerprint": key.fingerprint}), 201


@bp.post("/bodies/<int:body_id>/roster")
@requires(Role.SECRETARIAT, body="body_id")
def roster_upload(body_id: int):
    """Multipart file upload (field 'file'), or JSON {"members": [{"id", "name", "group", "seat"}]}."""
    db = get_db()
    body = get_body(db, body_id)
    if "file" in request.files:
        f = request.files["file"]
        rows = read_roster(f.filename or "roster.csv", f.read())
        source = f.filename or "upload"
    else:
        rows = read_members_json(field(json_body(BIG_BODY_BYTES), "members", list))
        source = "api"
    summary = import_roster(db, body, rows, source=source)
    commit()
    return jsonify(summary), 201


@bp.post("/sessions")
@requires(Role.SECRETARIAT, body=IN_JSON)
def sittings_create():
    data = json_body()
    db = get_db()
    sitting = create_sitting(db, get_body(db, id_field(data, "body_id")), field(data, "name", str))
    commit()
    return jsonify({"id": sitting.id, "name": sitting.name}), 201


@bp.post("/sessions/<int:sitting_id>/close")
@requires(Role.SECRETARIAT, body="sitting_id")
def sitting_close(sitting_id: int):
    """闭会: refused (409) while a vote is open or when already closed. Signs a checkpoint of
    the audit chain head; answers with the checkpoint."""
    db = get_db()
    result = close_sitting(db, settings(), get_sitting(db, sitting_id))
    commit()
    return jsonify(result)


@bp.post("/sessions/<int:sitting_id>/screen")
@requires(Role.SECRETARIAT, body="sitting_id")
def screen_set(sitting_id: int):
    """What the presiding screen shows between votes: {"show": "auto"|"title"|"checkin"|"result",
    "item_id": N (with "result")}. 409 while a vote is open."""
    data = json_body()
    db = get_db()
    chosen = set_screen(db, get_sitting(db, sitting_id), field(data, "show", str),
                        id_field(data, "item_id", required=False))
    commit()
    return jsonify(chosen)


@bp.get("/sessions/<int:sitting_id>/attendance")
@requires(Role.SECRETARIAT, Role.DISPLAY, Role.AUDITOR, body="sitting_id")
def attendance_get(sitting_id: int):
    db = get_db()
    return jsonify(attendance_state(db, get_sitting(db, sitting_id)).as_dict())


@bp.post("/sessions/<int:sitting_id>/attendance")
@requires(Role.SECRETARIAT, body="sitting_id")
def attendance_set(sitting_id: int):
    """补签到 / 请假 by the secretariat: {"members": ["1001", …], "status": "present"|"leave"}."""
    data = json_body()
    db = get_db()
    sitting = get_sitting(db, sitting_id)
    status = field(data, "status", str, required=False, default=Presence.PRESENT)
    members = field(data, "members", list)
    for i, no in enumerate(members):
        if not isinstance(no, str) or not no or len(no) > names.MEMBER_NO:
            raise InvalidInput(f"member numbers must be strings of 1 to {names.MEMBER_NO} characters",
                               where=f"members[{i}]", zh=f"代表证号须为 1 至 {names.MEMBER_NO} 个字符的文本")
    for no in members:
        set_attendance(db, sitting, find_member(db, sitting.body_id, no), status, "manual")
    state = attendance_state(db, sitting).as_dict()
    commit()
    return jsonify(state)


@bp.post("/sessions/<int:sitting_id>/terminals")
@requires(Role.SECRETARIAT, body="sitting_id")
def terminals_create(sitting_id: int):
    """Register terminals: {"terminals": [{"name", "kind": "seat"|"counting_station", "seat",
    "holder", "teller_role"}]}; holder and teller_role ("counter" 计票人 | "scrutineer" 监票人) name
    the teller holding a counting station that enters tally sheets. The credentials are shown
    once, here."""
    data = json_body(BIG_BODY_BYTES)
    db = get_db()
    sitting = get_sitting(db, sitting_id)
    out = []
    specs = field(data, "terminals", list)
    if len(specs) > 5000:
        raise InvalidInput("at most 5000 terminals per request", where="terminals", zh="每次最多登记 5000 台终端")
    for i, t in enumerate(specs):
        if not isinstance(t, dict):
            raise InvalidInput("must be an object", where=f"terminals[{i}]", zh="每台终端须为一个对象")
        name = names.check_name(field(t, "name", str, where=f"terminals[{i}].name"), what="terminal name",
                                where=f"terminals[{i}].name", max_len=names.TERMINAL_NAME)
        seat = names.check_name(field(t, "seat", str, required=False, where=f"terminals[{i}].seat"),
                                what="seat", where=f"terminals[{i}].seat", max_len=names.SEAT, required=False)
        holder = names.check_name(field(t, "holder", str, required=False, where=f"terminals[{i}].holder"),
                                  what="holder", where=f"terminals[{i}].holder", max_len=names.MEMBER_NAME,
                                  required=False)
        term, credential = register_terminal(db, sitting, name,
                                             field(t, "kind", str, required=False, default=TerminalKind.SEAT,
                                                   where=f"terminals[{i}].kind"), seat,
                                             holder=holder,
                                             teller_role=field(t, "teller_role", str, required=False,
                                                               where=f"terminals[{i}].teller_role"))
        row = {"id": term.id, "name": term.name, "seat": term.seat, "kind": term.kind, "credential": credential}
        if term.holder:
            row.update(holder=term.holder, teller_role=term.teller_role)
        out.append(row)
    commit()
    return jsonify({"terminals": out}), 201


@bp.post("/terminals/<int:terminal_id>/revoke")
@requires(Role.SECRETARIAT, body="terminal_id")
def terminal_revoke(terminal_id: int):
    db = get_db()
    revoke_terminal(db, get_terminal(db, terminal_id))
    commit()
    return jsonify({"revoked": True})


@bp.post("/terminals/<int:terminal_id>/release")
@requires(Role.SECRETARIAT, body="terminal_id")
def terminal_release(terminal_id: int):
    """Release a spare seat tablet from the member it checked in (another may then check in)."""
    db = get_db()
    release_terminal(db, get_terminal(db, terminal_id))
    commit()
    return jsonify({"released": True})


@bp.post("/sessions/<int:sitting_id>/items")
@requires(Role.SECRETARIAT, body="sitting_id")
def items_create(sitting_id: int):
    db = get_db()
    item = create_item(db, get_sitting(db, sitting_id), **item_spec(json_body()))
    commit()
    return jsonify({"id": item.id, "key": item.key}), 201


@bp.put("/items/<int:item_id>")
@requires(Role.SECRETARIAT, body="item_id")
def item_edit(item_id: int):
    """Replace a draft item (before its vote opens and before paper ballots are printed)."""
    item = _change_item(item_id, lambda db, item: edit_item(db, item, **item_spec(json_body())), sitting_wide=True)
    return jsonify({"id": item.id, "key": item.key, "stage": item.rounds[0].stage})


def _change_item(item_id: int, change, sitting_wide: bool = False):
    """An item action: load the item (404 first; ballot_sets.item_for_change: one step on it at
    a time), apply `change(db, item)`, commit; its result."""
    db = get_db()
    result = change(db, ballot_sets.item_for_change(db, item_id, sitting_wide))
    commit()
    return result


@bp.post("/items/<int:item_id>/open")
@requires(Role.SECRETARIAT, body="item_id")
def item_open(item_id: int):
    """Open the vote; {"override_reason": "…"} opens a tablet vote although some present
    members have no set-up, online tablet (voting.open_round)."""
    data = json_body() if request.content_length else {}
    rnd, *others = _change_item(item_id, lambda db, item: ballot_sets.open_set(
        db, settings(), item, field(data, "override_reason", str, required=False)))
    return jsonify({"round": rnd.number, "members": rnd.members, "present": rnd.present,
                    **({"ballot_set": [r.item_id for r in others]} if others else {})})


@bp.post("/items/<int:item_id>/close")
@requires(Role.SECRETARIAT, body="item_id")
def item_close(item_id: int):
    rnd, *others = _change_item(item_id, lambda db, item: ballot_sets.close_set(db, settings(), item))
    return jsonify({"round": rnd.number, "issued": rnd.issued,
                    **({"ballot_set": [r.item_id for r in others]} if others else {})})


@bp.post("/items/<int:item_id>/replacement")
@requires(Role.SECRETARIAT, body="item_id")
def item_replacement(item_id: int):
    """Allow one more blind-signed ballot for a member (a further issuance, I+1), with a reason;
    in a hybrid vote `channel: paper` allows a paper ballot for the member instead."""
    data = json_body()
    channel = field(data, "channel", str, required=False, default=Channel.TERMINAL)
    if channel not in (Channel.TERMINAL, Channel.PAPER):
        raise InvalidInput(f"channel must be terminal or paper, not {channel!r}", where="channel",
                           zh="渠道须为 terminal（表决器）或 paper（纸质票）")
    result = _change_item(item_id, lambda db, item: ballot_sets.replace_set(
        db, settings(), item, field(data, "member", str), field(data, "reason", str),
        paper=channel == Channel.PAPER))
    if channel == Channel.PAPER:  # printed now, once: the PDF is in this answer only (no print job, no file)
        result["pdf"] = b64url_encode(paper_ballots.paper_ballot_pdf(get_db(), result["ballots"]))
    return jsonify(result)


@bp.post("/items/<int:item_id>/quorum-failed")
@requires(Role.SECRETARIAT, body="item_id")
def item_quorum_failed(item_id: int):
    """Record that the item could not be voted for lack of quorum (status quorum_not_met)."""
    result = _change_item(item_id, lambda db, item: ballot_sets.quorum_failed_set(db, item))
    return jsonify(result)


@bp.post("/items/<int:item_id>/tally")
@requires(Role.SECRETARIAT, body="item_id")
def item_tally(item_id: int):
    result = _change_item(item_id, lambda db, item: ballot_sets.tally_set(db, item))
    return jsonify(result)


@bp.post("/items/<int:item_id>/another")
@requires(Role.SECRETARIAT, body="item_id")
def item_another(item_id: int):
    """另行选举 in one step: a new round of an election for its unfilled seats, or with
    {"sitting_id": n} a new draft election item in a later sitting of the body (another_items)."""
    data = json_body()
    candidates, sitting_id = field(data, "candidates", list, required=False), field(data, "sitting_id", int,
                                                                                    required=False)
    if sitting_id is not None:
        later = _change_item(item_id, lambda db, item: another_items.save_another(db, item, sitting_id, candidates))
        return jsonify({"item_id": later.id, "sitting_id": later.sitting_id, "key": later.key,
                        "places": later.places, "candidates": later.rounds[0].candidate_keys}), 201
    rnd = _change_item(item_id, lambda db, item: election_items.start_another(db, item, candidates))
    return jsonify({"round": rnd.number, "places": rnd.places, "candidates": rnd.candidate_keys}), 201


@bp.post("/items/<int:item_id>/record")
@requires(Role.SECRETARIAT, body="item_id")
def item_record(item_id: int):
    rec = _change_item(item_id, lambda db, item: records.issue_record(db, settings(), item))
    return jsonify({"id": rec.id, "fingerprint": rec.key_fingerprint, "audit_head": rec.audit_head}), 201


@bp.post("/items/<int:item_id>/extend")
@requires(Role.SECRETARIAT, body="item_id")
def item_extend(item_id: int):
    """延长表决时间: {"minutes": n} more for the open vote."""
    data = json_body()
    rnd, *_ = _change_item(item_id, lambda db, item: ballot_sets.extend_set(db, item, field(data, "minutes", int)))
    return jsonify({"round": rnd.number, "closes_at": rnd.closes_at.isoformat()})


@bp.post("/items/<int:item_id>/publish")
@requires(Role.SECRETARIAT, body="item_id")
def item_publish(item_id: int):
    """公布: the signed record's result goes up on the presiding screen."""
    rec = _change_item(item_id, lambda db, item: records.publish_record(db, item))
    return jsonify({"id": rec.id, "published": True})


@bp.post("/items/<int:item_id>/paper-ballots")
@requires(Role.SECRETARIAT, body="item_id")
def item_paper_ballots(item_id: int):
    """Create `count` signed paper ballots for the item's current round; returns their QR texts
    (to print). Printing to PDF is `ballot-service ballots print`. An election of a ballot set:
    `count` sheets of the set (set_sheets.create_sheets)."""
    data = json_body()
    db = get_db()
    item = ballot_sets.item_for_change(db, item_id, with_rounds=False)  # an edit waits, then is refused
    count = field(data, "count", int)
    if not 1 <= count <= MAX_PAPER_BATCH:
        raise InvalidInput(f"count must be between 1 and {MAX_PAPER_BATCH}", where="count", zh=f"印制张数须为 1 至 {MAX_PAPER_BATCH}")
    if item.channel not in PAPER_CHANNELS:
        raise InvalidInput(f"{item.title} is voted by {item.channel}, not paper", where="item_id", zh=f"《{item.title}》不使用纸质选票")
    key = keys.body_signing_key(settings(), item.sitting.body_id)
    if item.ballot_set:
        sheets = set_sheets.create_sheets(db, key, item, count)
        commit()
        return jsonify(sheets), 201
    tokens = paper_ballots.create_paper_ballots(db, key, item, voting.current_round(item), count)
    commit()
    return jsonify({"ballots": [ballots.token_to_text(t) for t in tokens]}), 201


@bp.get("/sessions/<int:sitting_id>/results")
@requires(Role.SECRETARIAT, Role.AUDITOR, Role.DISPLAY, body="sitting_id")
def sitting_results(sitting_id: int):
    db = get_db()
    sitting = get_sitting(db, sitting_id)
    return jsonify({"format": "ballot-results/1", "items": tally.results_for_items(sitting.items)})
