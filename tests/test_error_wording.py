"""Every domain error an operator, presiding officer or auditor can meet on the (Chinese by
default) console carries a Chinese wording: a `zh=` keyword, or a message that is already
bilingual (t("中文", "English"), or a string that starts in Chinese)."""
from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest
from console_support import flashes, post
from helpers_live import OPERATOR, blind_ballot, setup_sitting

from ballot_service import errors
from ballot_service.crypto import tablet
from ballot_service.formats.ballots import REFUSAL_STATUS, BallotRefused
from ballot_service.web.common import PayloadTooLarge

PACKAGE = Path(errors.__file__).resolve().parent
MODULES = ("domain/sittings.py", "domain/voting.py", "domain/issuance.py", "domain/tally.py", "domain/records.py", "domain/roster.py",
           "formats/roster.py",
           "domain/operators.py", "domain/terminals.py", "domain/print_jobs.py",
           "render/paper.py", "render/fonts.py", "crypto/keys.py", "web/roles.py", "web/console/__init__.py",
           "web/console/common.py", "web/console/login.py", "web/console/bodies.py", "web/console/roster.py",
           "web/console/sittings.py", "web/console/terminals.py", "web/console/items.py",
           "web/console/records.py", "web/console/printing.py", "web/console/audit.py",
           # what tellers at the counting station and deputies at their tablets meet, and every
           # JSON client's malformed request (issue #17: a Chinese message for each)
           "domain/paper_ballots.py", "domain/adjudication.py", "domain/tally_sheets.py", "domain/ballot_marks.py",
           "domain/intake.py", "domain/terminal_casts.py", "domain/scanning.py", "web/security.py", "web/common.py",
           "web/station_api.py", "web/station_scan_api.py", "web/cast_endpoint.py", "web/admin_api.py")
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")

# (file, function) -> how many error constructions there are deliberately English-only.
ENGLISH_ONLY = {
    # Terminal API only (unknown or revoked credential); this function is not to be changed here.
    ("domain/terminals.py", "authenticate_terminal"): 2,
    # Terminal API only: a seat terminal's blinded message that is not base64url text of the
    # round key's size (a tablet bug, never an operator's doing). The refusals a member or an
    # operator can meet (already issued, no open vote, not present, replacements) have zh=.
    # Never shown: every caller catches SignatureInvalid (ballots.verify_token refuses the ballot
    # as 'forged'; the verify page shows its own bilingual reason).
    ("crypto/keys.py", "verify_signature"): 2,
}


# Errors whose constructor supplies the Chinese wording itself (checked below).
WORDED_BY_CLASS = {"PayloadTooLarge", "BallotRefused"}


def test_errors_worded_by_their_class_carry_chinese():
    assert CJK.search(PayloadTooLarge(1024).zh)
    for reason in REFUSAL_STATUS:
        err = BallotRefused(reason, "an English detail")
        assert CJK.search(err.zh) and err.to_dict()["message_zh"] == err.zh, reason


def _error_names() -> set[str]:
    for name in MODULES:
        importlib.import_module("ballot_service." + name.removesuffix(".py").removesuffix("/__init__").replace("/", "."))  # defines FontNotFound, SignatureInvalid, …
    names, todo = set(), [errors.BallotError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo.extend(cls.__subclasses__())
    return names


def _is_t_call(node) -> bool:
    return isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "t"


def _starts_bilingual(node) -> bool:
    """The message is t("中文", "English"), or its text starts with Chinese."""
    if _is_t_call(node):
        return True
    if isinstance(node, ast.IfExp):
        return _starts_bilingual(node.body) and _starts_bilingual(node.orelse)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.Add):
        return _starts_bilingual(node.left)
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return bool(CJK.match(node.value.lstrip()))
    if isinstance(node, ast.JoinedStr) and node.values:
        return _starts_bilingual(node.values[0])
    return False


def _has_cjk(node) -> bool:
    return any(isinstance(n, ast.Constant) and isinstance(n.value, str) and CJK.search(n.value)
               for n in ast.walk(node))


def _constructions(tree, names):
    """(function, call) for every call of an error class, with the enclosing function's name."""
    def visit(node, func):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)):
                yield from visit(child, child.name if func is None else f"{func}.{child.name}")
                continue
            if isinstance(child, ast.Call):
                f = child.func
                name = f.id if isinstance(f, ast.Name) else f.attr if isinstance(f, ast.Attribute) else None
                if name in names:
                    yield func or "<module>", child
            yield from visit(child, func)

    yield from visit(tree, None)


def test_every_console_reachable_error_has_a_chinese_wording():
    names = _error_names() - WORDED_BY_CLASS
    english_only: dict[tuple[str, str], list[str]] = {}
    seen = 0
    for module in MODULES:
        path = PACKAGE / module
        for func, call in _constructions(ast.parse(path.read_text(encoding="utf-8")), names):
            seen += 1
            zh = next((k.value for k in call.keywords if k.arg == "zh"), None)
            if zh is not None:
                assert _has_cjk(zh), f"{module}:{call.lineno} zh= has no Chinese"
                continue
            message = call.args[0] if call.args else next((k.value for k in call.keywords if k.arg == "message"),
                                                          None)
            if message is not None and _starts_bilingual(message):
                continue
            english_only.setdefault((module, func), []).append(f"line {call.lineno}")
    assert seen > 80  # the walk found the raises
    found = {k: len(v) for k, v in english_only.items()}
    unexpected = {k: english_only[k] for k in found if found[k] > ENGLISH_ONLY.get(k, 0)}
    assert not unexpected, f"errors without a Chinese wording (add zh=...): {unexpected}"
    stale = {k: n for k, n in ENGLISH_ONLY.items() if found.get(k, 0) != n}
    assert not stale, f"ENGLISH_ONLY is out of date (found {found})"


@pytest.fixture
def console(console):
    """conftest's logged-in console, with a body and its first sitting."""
    post(console, "/console/bodies", {"name": "示范市人民代表大会", "kind": "congress"})
    post(console, "/console/sessions", {"body_id": "1", "name": "第一次会议"})
    return console


def test_a_refused_action_is_flashed_in_the_screen_language(console):
    untitled = {"kind": "resolution", "key": "r1", "title": "", "secret": "1", "channel": "terminal"}
    r = post(console, "/console/sessions/1/items", untitled, follow_redirects=True)
    assert ("error", "表决事项须填写编号和标题") in flashes(r)
    r = post(console, "/console/sessions/1/items?lang=en", untitled, follow_redirects=True)
    assert ("error", "an item needs a key and a title") in flashes(r)
    r = post(console, "/console/sessions/1/items", untitled, follow_redirects=True)  # the lang cookie holds
    assert ("error", "an item needs a key and a title") in flashes(r)


def test_no_message_shows_a_stored_status_word():
    """Statuses reach a message through vocab.status_name ('表决中'), never as stored ('open',
    'runoff_pending'): an f-string in an error's message or zh= may not format `x.status`."""
    names = _error_names()
    leaks = []
    for path in sorted(PACKAGE.rglob("*.py")):
        for func, call in _constructions(ast.parse(path.read_text(encoding="utf-8")), names):
            texts = list(call.args[:1]) + [k.value for k in call.keywords if k.arg in ("zh", "message")]
            for node in (n for text in texts for n in ast.walk(text)):
                if isinstance(node, ast.FormattedValue) and isinstance(node.value, ast.Attribute) \
                        and node.value.attr == "status":
                    leaks.append(f"{path.name}:{call.lineno} ({func})")
    assert not leaks, f"format status_name(x.status) instead: {leaks}"


def test_a_status_in_a_refusal_is_named_in_the_screen_language(console):
    item = {"kind": "resolution", "key": "r1", "title": "关于某事的决议", "secret": "1", "channel": "terminal"}
    post(console, "/console/sessions/1/items", item)
    # A record for a vote that has not started: the item is 'draft'.
    r = post(console, "/console/items/1/record", follow_redirects=True)
    (kind, text), = [f for f in flashes(r) if f[0] == "error"]
    assert "《关于某事的决议》当前为“未开始”" in text and "draft" not in text
    r = post(console, "/console/items/1/record?lang=en", follow_redirects=True)
    (kind, text), = [f for f in flashes(r) if f[0] == "error"]
    assert "关于某事的决议 is not started; a record is issued once the item is tallied, void or without quorum" in text
    assert "draft" not in text


def _zh(data) -> str:
    err = data["errors"][0]
    assert CJK.search(err.get("message_zh", "")), err
    return err["message_zh"]


def test_representative_refusals_reach_people_in_chinese(app, api):
    """A walk through refusals a deputy, a teller or a secretariat actually meets (issue #17):
    each answer carries a Chinese message (message_zh; the console shows it in its language)."""
    s = setup_sitting(api, members=3)  # a secret resolution on the tablets, open
    # a tablet's request missing its field
    status, data = api.call("POST", "/api/terminal/checkin", {}, credential=s.creds["M0001"], expect=None)
    assert status == 400 and "缺少字段" in _zh(data)
    # the same ballot sent twice: the second is refused as already counted
    ballot = {**blind_ballot(api, s.creds["M0001"]), "marks": {"motion": "for"}}
    api.call("POST", "/api/terminal/cast", {**ballot, "retry_id": tablet.new_retry_id()})
    status, data = api.call("POST", "/api/terminal/cast", {**ballot, "retry_id": tablet.new_retry_id()},
                            expect=None)
    assert status == 409 and "已经计入" in _zh(data)
    # a teller enters a tally sheet for an item voted on the tablets
    status, data = api.call("POST", "/api/station/tally-sheet", {"item_id": s.item_id, "sheet": {}},
                            credential=s.counter, expect=None)
    assert status == 400 and "不以计票单计票" in _zh(data)
    # the hand-out desk sends an empty stack
    status, data = api.call("POST", "/api/station/hand-out", {"ballots": []}, credential=s.station, expect=None)
    assert status == 400 and _zh(data)
    # a console form sent without its CSRF token (an expired page): the page says it in Chinese
    console = app.test_client()
    post(console, "/login", {"username": OPERATOR[0], "password": OPERATOR[1]})
    r = console.post(f"/console/sessions/{s.sitting_id}/attendance", data={"member": "M0001"})
    assert r.status_code == 403 and "表单已过期" in r.get_data(as_text=True)
