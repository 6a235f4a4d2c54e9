"""The package's shape holds: modules import only downwards through the layers, no module
imports itself back through others (a cycle), no function-level import of the project's own
modules hides one, and every module says its one job in an opening docstring. The tests
themselves import at module top too, so a reader sees a test file's dependencies at once.

Layers, bottom to top (DESIGN.md: data flows one way; nothing below imports anything above):
    base     config, errors, vocab, db, models, migrate
    rules    the pure rules core
    formats  canonical JSON, encodings, ballot tokens, scenario files
    crypto   keys, blind signatures
    render   ballots, records, 宣布稿, QR
    domain   one module per state change
    bundle   the auditor's bundle: export, readers, verify
    ops      operating an instance: backup/restore, doctor's checks, the hall's TLS files
    web      blueprints
    app      the package itself (create_app), cli commands and rehearsal beside it
"""
from __future__ import annotations

import ast
from enum import StrEnum
from pathlib import Path

from jinja2 import Environment
from jinja2 import nodes as jinja

import ballot_service
from ballot_service import vocab

PACKAGE = Path(ballot_service.__file__).resolve().parent
LAYERS = {
    "config": 0, "errors": 0, "vocab": 0, "db": 1, "models": 2, "migrate": 2,
    "rules": 1, "numbers": 0, "formats": 3, "crypto": 3, "render": 4, "scan": 4, "domain": 5, "bundle": 6,
    # ops reads base, crypto and render (keys, fonts, schema) beside the domain; only cli uses it.
    "ops": 6,
    "web": 7, "cli": 9, "rehearsal": 9, "": 9, "migrations": 9,
}
# Pure modules: no Flask, no SQL.
PURE = ("rules", "vocab")
PURE_FORBIDDEN = ("flask", "sqlalchemy")


def _modules() -> dict[str, Path]:
    mods = {}
    for path in PACKAGE.rglob("*.py"):
        rel = path.relative_to(PACKAGE).with_suffix("")
        parts = [p for p in rel.parts if p != "__init__"]
        if "versions" in parts:
            continue
        mods[".".join(["ballot_service", *parts])] = path
    return mods


def _layer(module: str) -> int:
    parts = module.split(".")[1:]
    return LAYERS[parts[0] if parts else ""]


def _imports(module: str, path: Path, *, top_level_only: bool) -> list[tuple[str, int]]:
    tree = ast.parse(path.read_text("utf-8"))
    nodes = tree.body if top_level_only else list(ast.walk(tree))
    out = []
    is_pkg = path.name == "__init__.py"
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            if node.level:
                base = module.split(".") if is_pkg else module.split(".")[:-1]
                base = base[: len(base) - (node.level - 1)]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            if target.startswith("ballot_service"):
                for alias in node.names:
                    sub = f"{target}.{alias.name}"
                    out.append((sub if sub in MODULES else target, node.lineno))
        elif isinstance(node, ast.Import):
            out += [(a.name, node.lineno) for a in node.names if a.name.startswith("ballot_service")]
    return [(t, n) for t, n in out if t in MODULES]


MODULES = _modules()


def test_layers_only_import_downwards():
    upward = []
    for mod, path in MODULES.items():
        for target, line in _imports(mod, path, top_level_only=False):
            if _layer(target) > _layer(mod):
                upward.append(f"{mod}:{line} imports {target}")
    assert not upward, "upward imports:\n" + "\n".join(upward)


def test_no_import_cycles():
    graph = {m: {t for t, _ in _imports(m, p, top_level_only=False) if t != m} for m, p in MODULES.items()}
    # Only the package root may import its own submodules without that being a cycle (a
    # subpackage's __init__ importing its modules is fine unless one of them imports it back,
    # which the search below finds).
    state: dict[str, int] = {}
    cycles = []

    def visit(m, stack):
        state[m] = 1
        for t in sorted(graph.get(m, ())):
            if state.get(t) == 1:
                cycles.append(" -> ".join(stack[stack.index(t):] + [t]))
            elif t not in state:
                visit(t, stack + [t])
        state[m] = 2

    for m in sorted(graph):
        if m not in state:
            visit(m, [m])
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_no_function_level_imports_of_the_project():
    hidden = []
    for mod, path in MODULES.items():
        if mod.startswith("ballot_service.migrations"):
            continue  # Alembic's env.py is run by Alembic, not imported
        top = {(t, n) for t, n in _imports(mod, path, top_level_only=True)}
        for target, line in _imports(mod, path, top_level_only=False):
            if (target, line) not in top:
                hidden.append(f"{mod}:{line} imports {target} inside a function")
    assert not hidden, "\n".join(hidden)


TESTS = Path(__file__).resolve().parent
# (file under tests/, module imported inside a function): why it cannot be imported at the
# module's top. The import's own line (or the line above it) says so in a comment too.
LATE_IMPORTS: dict[tuple[str, str], str] = {}


def _function_level_imports(source: str) -> list[tuple[int, str]]:
    """(line, module) of every import statement inside a function or method."""
    found = set()
    for fn in ast.walk(ast.parse(source)):
        if isinstance(fn, (ast.FunctionDef, ast.AsyncFunctionDef)):
            for node in ast.walk(fn):
                if isinstance(node, ast.Import):
                    found |= {(node.lineno, a.name) for a in node.names}
                elif isinstance(node, ast.ImportFrom):
                    found.add((node.lineno, "." * node.level + (node.module or "")))
    return sorted(found)


def _says_why(lines: list[str], lineno: int) -> bool:
    return "#" in lines[lineno - 1] or lines[lineno - 2].strip().startswith("#")


def test_tests_import_at_module_top():
    found, unexplained, used = [], [], set()
    for path in sorted(TESTS.rglob("*.py")):
        rel = path.relative_to(TESTS).as_posix()
        source = path.read_text("utf-8")
        for line, module in _function_level_imports(source):
            if (rel, module) not in LATE_IMPORTS:
                found.append(f"tests/{rel}:{line} imports {module} inside a function")
                continue
            used.add((rel, module))
            if not LATE_IMPORTS[(rel, module)].strip() or not _says_why(source.splitlines(), line):
                unexplained.append(f"tests/{rel}:{line} {module}: say why in LATE_IMPORTS and a comment")
    assert not found, "import these at the module's top:\n" + "\n".join(found)
    assert not unexplained, "\n".join(unexplained)
    assert used == set(LATE_IMPORTS), f"stale LATE_IMPORTS entries: {sorted(set(LATE_IMPORTS) - used)}"


def test_the_test_import_scan_finds_a_late_import():
    """The scan is not vacuous: an import in a function or a method is found, one at the top not."""
    source = "import os\n\ndef f():\n    from a.b import c\n\nclass K:\n    def m(self):\n        import d\n"
    assert _function_level_imports(source) == [(4, "a.b"), (8, "d")]


def test_pure_modules_use_neither_flask_nor_sql():
    for mod, path in MODULES.items():
        if mod.split(".")[1:2] not in [[p] for p in PURE]:
            continue
        tree = ast.parse(path.read_text("utf-8"))
        for node in ast.walk(tree):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else \
                [node.module or ""] if isinstance(node, ast.ImportFrom) else []
            assert not any(n.split(".")[0] in PURE_FORBIDDEN for n in names), f"{mod} imports {names}"


def test_every_module_says_its_job():
    missing = [m for m, p in MODULES.items()
               if not ast.get_docstring(ast.parse(p.read_text("utf-8"))) and p.stat().st_size > 0]
    assert not missing, f"modules without an opening docstring: {missing}"


def test_no_module_is_over_400_lines():
    long = {m: n for m, p in MODULES.items() if (n := len(p.read_text("utf-8").splitlines())) >= 400
            and not m.startswith("ballot_service.migrations")}
    assert not long, f"split these: {long}"


# The vocabulary test: a word of vocab's enums is written as its enum member, not as a string.
# Words that are also the published field and count names of records, ballots and the JSON API
# ("present": a count of members present; "for": a count of 赞成; "seat": a member's seat) are
# left out: a literal of theirs is almost always that field name, not the vocabulary word.
FIELD_NAMES = {"present", "members", "valid", "for", "against", "abstain", "void", "title", "result",
               "seat", "terminal", "login", "pending"}
# (module, word): why that module spells a vocabulary word.
SPELLED = {
    ("ballot_service.formats.scenario", "another"): "the scenario file's key for a further election",
    ("ballot_service.rehearsal", "another"): "reads the scenario file's key for a further election",
    ("ballot_service.domain.election_items", "preliminary"): "a slate's status (预选 list), not a round's stage",
    ("ballot_service.bundle.layout", "election"): "the bundle's published item file key",
    ("ballot_service.cli.setup", "checkin"): "the published CLI command name",
    ("ballot_service.db.postgres", "checkin"): "SQLAlchemy's pool event (a connection returned), not 签到",
    ("ballot_service.domain.adjudication", "first"): "an adjudication step (first teller), not a round's stage",
    ("ballot_service.domain.voting", "quorum_not_met"): "the signed vote_open_refused event's published reason",
}


def _vocabulary_words() -> set[str]:
    enums = [e for e in vars(vocab).values() if isinstance(e, type) and issubclass(e, StrEnum) and e is not StrEnum]
    return {m.value for e in enums for m in e} - FIELD_NAMES


def _names_not_words(node, parent) -> bool:
    """Literals that are names in a published format or of a Flask object, not vocabulary."""
    if isinstance(parent, ast.Dict) and any(k is node for k in parent.keys):
        return True  # a JSON key
    if isinstance(parent, ast.Subscript) and parent.slice is node:
        return True  # reading a JSON key
    if isinstance(parent, ast.Call):
        func = parent.func
        name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
        if name in ("get", "pop", "setdefault") and parent.args and parent.args[0] is node:
            return True
        if name == "Blueprint":
            return True
    return isinstance(parent, ast.keyword) and parent.arg in ("where", "what")


def test_vocabulary_words_are_spelled_only_in_vocab():
    words = _vocabulary_words()
    found = []
    for mod, path in MODULES.items():
        if mod in ("ballot_service.vocab",) or mod.startswith("ballot_service.migrations"):
            continue
        tree = ast.parse(path.read_text("utf-8"))
        docs = {id(n.body[0].value) for n in ast.walk(tree)
                if isinstance(n, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
                and n.body and isinstance(n.body[0], ast.Expr)}
        parents = {id(c): n for n in ast.walk(tree) for c in ast.iter_child_nodes(n)}
        for node in ast.walk(tree):
            if (isinstance(node, ast.Constant) and isinstance(node.value, str) and node.value in words
                    and id(node) not in docs and not _names_not_words(node, parents.get(id(node)))
                    and (mod, node.value) not in SPELLED):
                found.append(f"{path.relative_to(PACKAGE.parent)}:{node.lineno} {node.value!r}")
    assert not found, "write these as vocab enum members (vocab.ItemKind.ELECTION …):\n" + "\n".join(found)


def test_the_vocabulary_test_finds_a_spelled_word():
    """The scan above is not vacuous: a kind compared as a string is a vocabulary word."""
    tree = ast.parse('if item.kind == "election":\n    pass\n')
    node = tree.body[0].test.comparators[0]
    assert node.value in _vocabulary_words() and not _names_not_words(node, tree.body[0].test)


# Templates too: a status, kind, channel or role is compared as `vocab.X.MEMBER` (the context
# has `vocab`), never as a quoted word. The text of t(zh, en), url_for's endpoint, a dict key
# or .get() key, and the name of a console action (action='open', the `action` macro) are
# names, not vocabulary.
TEMPLATES = PACKAGE.parent / "templates"


def _template_names_not_words(node, parent) -> bool:
    if isinstance(parent, jinja.Pair) and parent.key is node:
        return True
    if isinstance(parent, jinja.Getitem) and parent.arg is node:
        return True
    if isinstance(parent, jinja.Keyword) and parent.key == "action":
        return True
    if isinstance(parent, jinja.Call):
        func = parent.node
        name = func.attr if isinstance(func, jinja.Getattr) else getattr(func, "name", "")
        if name in ("get", "pop", "setdefault") and parent.args and parent.args[0] is node:
            return True
        return name in ("t", "url_for", "action") and any(a is node for a in parent.args)
    return False


def _spelled_in_template(source: str) -> list[tuple[int, str]]:
    words = _vocabulary_words()
    tree = Environment().parse(source)
    parents = {id(c): n for n in [tree, *tree.find_all(jinja.Node)] for c in n.iter_child_nodes()}
    return [(n.lineno, n.value) for n in tree.find_all(jinja.Const)
            if isinstance(n.value, str) and n.value in words
            and not _template_names_not_words(n, parents.get(id(n)))]


def test_vocabulary_words_are_not_spelled_in_templates():
    paths = sorted(TEMPLATES.rglob("*.html"))
    assert paths, f"no templates under {TEMPLATES}"
    found = [f"{p.relative_to(TEMPLATES.parent)}:{line} {word!r}"
             for p in paths for line, word in _spelled_in_template(p.read_text("utf-8"))]
    assert not found, "compare with vocab members in templates (vocab.ItemKind.ELECTION …):\n" + "\n".join(found)


def test_the_template_scan_finds_a_spelled_word():
    """The template scan is not vacuous: a kind compared as a quoted word is found; the
    same word as display text, an enum member or an action name is not."""
    assert _spelled_in_template('{% if item.kind == "election" %}x{% endif %}') == [(1, "election")]
    assert _spelled_in_template("{% if rnd.status in ('pending', 'open') %}x{% endif %}") == [(1, "open")]
    assert _spelled_in_template('{% if item.kind == vocab.ItemKind.ELECTION %}{{ t("选举", "election") }}'
                                "{{ action('open', t('开始', 'Open')) }}{% endif %}") == []
