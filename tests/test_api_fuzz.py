"""Property-based fuzzing of every operation in ballot_service/openapi.yaml (schemathesis),
against the Flask app itself (WSGI, the cast endpoint's middleware included), as each caller in
turn: the secretariat, the auditor and the display operator on /api/admin, a seat terminal's
credential on /api/terminal, the counting station's on /api/station. No answer may be a
server error (5xx): bad input gets a 4xx naming what is wrong.

Path ids are drawn half the time from the rows that exist (so the fuzzer gets past 404), half
from the documented id range. FUZZ_EXAMPLES sets the examples per operation and caller (the
whole run stays within a few minutes); the share of 2xx answers per operation is printed
(pytest -s) for a look at how deep the fuzzer got.
"""
from __future__ import annotations

import os
from collections import Counter, defaultdict
from pathlib import Path

import pytest
import schemathesis  # noqa: E402  (the test extras install it: never skip the fuzzer silently)
import yaml
from console_support import token
from helpers_live import AUDITOR, DISPLAY_OPERATOR, OPERATOR, login_client, setup_session
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytestmark = pytest.mark.fuzz

OPENAPI = Path(__file__).resolve().parent.parent / "ballot_service" / "openapi.yaml"
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "20"))
# Operations that end what the others need; they run last.
LAST = ("sessionClose", "terminalRevoke", "adminLogout")


def _operations():
    schema = schemathesis.openapi.from_dict(yaml.safe_load(OPENAPI.read_text("utf-8")))
    ops = [r.ok() for r in schema.get_all_operations()]
    return sorted(ops, key=lambda o: (o.definition.raw.get("operationId") in LAST, o.path, o.method))


def _operator(app, operator) -> dict:
    """An operator's login cookie and CSRF token (so multipart roster uploads get past CSRF)."""
    client = login_client(app, operator)
    csrf = token(client)
    return {"cookies": {"session": client.get_cookie("session").value}, "headers": {"X-CSRFToken": csrf}}


def test_no_operation_answers_a_server_error(app, api, staff, capsys):
    s = setup_session(api, members=6, present=4, open_vote=False)
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
    callers = {
        "secretariat": _operator(app, OPERATOR),
        "auditor": _operator(app, AUDITOR),
        "display": _operator(app, DISPLAY_OPERATOR),
        "terminal": {"headers": {"Authorization": f"Bearer {s.creds[s.present[0]]}"}},
        "station": {"headers": {"Authorization": f"Bearer {s.station}"}},
    }
    statuses: dict[str, Counter] = defaultdict(Counter)
    failures: list[str] = []
    for op in _operations():
        path = op.path
        who = (("terminal",) if path.startswith("/api/terminal/") else ("station",)
               if path.startswith("/api/station/") else ("secretariat", "auditor", "display"))
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
                if r.status_code >= 500:
                    failures.append(f"{label} as {caller}: {r.status_code} {r.text[:300]}\n    {case.as_curl_command()}")

            run()
    with capsys.disabled():
        print("\nfuzzed operations: 2xx share (answers)")
        for label, c in sorted(statuses.items()):
            total = sum(c.values())
            ok = sum(n for code, n in c.items() if 200 <= code < 300)
            print(f"  {label:55s} {ok / total:5.0%} of {total:4d}  {dict(sorted(c.items()))}")
    assert not failures, "server errors:\n" + "\n".join(failures[:20])
