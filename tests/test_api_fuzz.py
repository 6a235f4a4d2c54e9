"""Property-based fuzzing of every operation in ballot_service/openapi.yaml (schemathesis),
against the Flask app itself (WSGI, the cast endpoint's middleware included), as each caller in
turn: the secretariat, the auditor and the display operator on /api/admin, a seat terminal's
credential on /api/terminal, the counting station's on /api/station. No answer may be a
server error (5xx): bad input gets a 4xx naming what is wrong.

Path ids are drawn half the time from the rows that exist (so the fuzzer gets past 404), half
from the documented id range. FUZZ_EXAMPLES sets the examples per operation and caller (the
whole run stays within a few minutes); the share of 2xx answers per operation is printed
(pytest -s), and every operation must have at least one accepted (2xx) answer from a caller
whose role allows it (the roles are read from the app's own routes): so the fuzzer is known
to get past the login and the body check to the code behind them. One accepted case, not a
share, because most operations change state (an item opens once; a second open is a 409),
so a larger share would measure the fixtures' luck rather than the service. Callers are
operators of the one body the fixture makes (their grants hold in it), plus a superuser.
"""
from __future__ import annotations

import os
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import schemathesis  # noqa: E402  (the test extras install it: never skip the fuzzer silently)
import yaml
from console_support import token
from fuzz_seeds import SEEDS, Ctx
from helpers_live import AUDITOR, DISPLAY_OPERATOR, OPERATOR, login_client, setup_sitting
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from ballot_service.domain.operators import create_operator

pytestmark = pytest.mark.fuzz

OPENAPI = Path(__file__).resolve().parent.parent / "ballot_service" / "openapi.yaml"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
# Operations that end what the others need; they run last.
LAST = ("sessionClose", "terminalRevoke", "adminLogout")
SUPERUSER = ("fuzz-admin", "fuzz-admin-password")
LEAVER = ("fuzz-leaver", "fuzz-leaver-password")


def _operations():
    schema = schemathesis.openapi.from_dict(yaml.safe_load(OPENAPI.read_text("utf-8")))
    ops = [r.ok() for r in schema.get_all_operations()]
    last = {op_id: i + 1 for i, op_id in enumerate(LAST)}  # in LAST's order: the logout ends logins
    return sorted(ops, key=lambda o: (last.get(o.definition.raw.get("operationId"), 0), o.path, o.method))


def _operator(app, operator) -> dict:
    """An operator's login cookie and CSRF token (so multipart roster uploads get past CSRF)."""
    client = login_client(app, operator)
    csrf = token(client)
    return {"cookies": {"session": client.get_cookie("session").value}, "headers": {"X-CSRFToken": csrf}}


def test_no_operation_answers_a_server_error(app, api, staff, capsys):
    s = setup_sitting(api, members=6, present=4, open_vote=False)
    api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items",
             {"key": "proj", "kind": "livelihood_projects", "title": "民生实事", "places": 1,
              "candidates": [{"key": "a", "title": "甲"}, {"key": "b", "title": "乙"}]})
    # a page in the counting station's adjudication queue (a paper ballot read by eye)
    _, paper = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items",
                        {"key": "paper", "kind": "resolution", "title": "纸质票决议", "channel": "paper"})
    _, printed = api.call("POST", f"/api/admin/items/{paper['id']}/paper-ballots", {"count": 1})
    _, page = api.call("POST", "/api/station/by-eye", {"ballot": printed["ballots"][0], "marks": {"motion": "for"}},
                       credential=s.counter)
    known = {"body_id": [s.body_id], "sitting_id": [s.sitting_id], "item_id": [s.item_id],
             "terminal_id": list(s.terminal_ids.values()), "page_id": [page["id"]]}
    db = app.extensions["ballot_sessionmaker"]()
    create_operator(db, SUPERUSER[0], SUPERUSER[1], "superuser")
    create_operator(db, LEAVER[0], LEAVER[1], "secretariat")  # logs out in the logout's seed
    db.commit()
    db.close()
    ctx = Ctx(api, OPERATOR, app)
    callers = {
        "superuser": _operator(app, SUPERUSER),
        "secretariat": _operator(app, OPERATOR),
        "auditor": _operator(app, AUDITOR),
        "display": _operator(app, DISPLAY_OPERATOR),
        "terminal": {"headers": {"Authorization": f"Bearer {s.creds[s.present[0]]}"}},
        "station": {"headers": {"Authorization": f"Bearer {s.station}"}},
        "leaver": _operator(app, LEAVER),
        "public": {},
    }
    statuses: dict[str, Counter] = defaultdict(Counter)
    accepted: Counter = Counter()
    failures: list[str] = []
    for op in _operations():
        path = op.path
        who = (("terminal",) if path.startswith("/api/terminal/") else ("station",)
               if path.startswith("/api/station/") else ("superuser", "secretariat", "auditor", "display"))
        label = f"{op.method.upper()} {path}"
        for caller in who:
            auth = callers[caller]

            @settings(max_examples=EXAMPLES if caller in ("secretariat", "terminal", "station") else 5,
                      deadline=None, database=None, derandomize=True,
                      suppress_health_check=list(HealthCheck))
            @given(case=op.as_strategy(), pick=st.data())
            def run(case, pick):
                if case.path_parameters and pick.draw(st.booleans()):
                    case.path_parameters = {k: pick.draw(st.sampled_from(known[k])) for k in case.path_parameters}
                r = case.call(app=app, headers=auth.get("headers"), cookies=auth.get("cookies"))
                statuses[label][r.status_code] += 1
                if 200 <= r.status_code < 300 and _allowed(app, op.method, path, caller):
                    accepted[label] += 1
                if r.status_code >= 500:
                    failures.append(f"{label} as {caller}: {r.status_code} {r.text[:300]}\n    {case.as_curl_command()}")

            run()
        op_id = op.definition.raw.get("operationId")
        assert op_id in SEEDS, f"{label}: add its valid request to tests/fuzz_seeds.py"
        caller, path_parameters, body, *media = SEEDS[op_id](ctx)
        auth = ({"headers": {"Authorization": f"Bearer {caller[1]}"}} if isinstance(caller, tuple)
                else callers[caller])
        case = op.Case(path_parameters=path_parameters,
                       **({"body": body, "media_type": media[0] if media else "application/json"}
                          if body is not None else {}))
        r = case.call(app=app, headers=auth.get("headers"), cookies=auth.get("cookies"))
        statuses[label][r.status_code] += 1
        if 200 <= r.status_code < 300:
            accepted[label] += 1
        elif r.status_code >= 500:
            failures.append(f"{label} (seed): {r.status_code} {r.text[:300]}")
    with capsys.disabled():
        print("\nfuzzed operations: 2xx share (answers)")
        for label, c in sorted(statuses.items()):
            total = sum(c.values())
            ok = sum(n for code, n in c.items() if 200 <= code < 300)
            print(f"  {label:55s} {ok / total:5.0%} of {total:4d}  {dict(sorted(c.items()))}")
    assert not failures, "server errors:\n" + "\n".join(failures[:20])
    never = sorted(label for label in statuses if not accepted[label])
    assert not never, f"no accepted (2xx) answer from a caller with the role: {never}"


def _allowed(app, method: str, path: str, caller: str) -> bool:
    """Does the route behind this operation name `caller`'s role (or is it public)?"""
    if caller in ("terminal", "station"):
        return True
    url = path.replace("{", "").replace("}", "")
    for arg in ("body_id", "sitting_id", "item_id", "terminal_id"):
        url = url.replace(arg, "1")
    try:
        endpoint, _ = app.url_map.bind("localhost").match(url, method=method.upper())
    except Exception:  # the cast endpoint is served in front of Flask: public
        return True
    roles = app.view_functions[endpoint].required_roles
    return "public" in roles or caller in roles
