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

from ballot_service import errors

PACKAGE = Path(errors.__file__).resolve().parent
MODULES = ("domain/sittings.py", "domain/voting.py", "domain/issuance.py", "domain/tally.py", "domain/records.py", "domain/roster.py",
           "formats/roster.py",
           "domain/operators.py", "domain/terminals.py", "domain/print_jobs.py",
           "render/paper.py", "render/fonts.py", "crypto/keys.py", "web/roles.py", "web/console/__init__.py",
           "web/console/common.py", "web/console/login.py", "web/console/bodies.py", "web/console/roster.py",
           "web/console/sittings.py", "web/console/terminals.py", "web/console/items.py",
           "web/console/records.py", "web/console/printing.py", "web/console/audit.py")
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")

# (file, function) -> how many error constructions there are deliberately English-only.
ENGLISH_ONLY = {
    # Terminal API only (unknown or revoked credential); this function is not to be changed here.
    ("domain/terminals.py", "authenticate_terminal"): 2,
    # Terminal API only: a seat terminal's blinded message that is not base64url text of the
    # round key's size (a tablet bug, never an operator's doing). The refusals a member or an
    # operator can meet (already issued, no open vote, not present, replacements) have zh=.
    ("domain/issuance.py", "blind_sign_for_terminal"): 4,
    # Never shown: every caller catches SignatureInvalid (ballots.verify_token refuses the ballot
    # as 'forged'; the verify page shows its own bilingual reason).
    ("crypto/keys.py", "verify_signature"): 2,
}


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
    names = _error_names()
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
