"""Validation at the edge of POST /api/terminal/cast (Flask test client): malformed JSON, wrong
shapes, unknown candidates or marks, a body over the size limit (also chunked) are refused with a
4xx in the API's error shape, store nothing and do not burn the ballot; the cast endpoint served
in front of Flask (cast_endpoint.py) answers its edge cases and a 500 the same way as Flask."""
from __future__ import annotations

import io
import json

import pytest
from helpers_live import setup_sitting
from terminal_support import assert_error_shape, cast, get_ballot, n_casts

from ballot_service.web import cast_endpoint

R = "retry-id-of-the-validation-test"


def _body(t, **fields):
    """A cast body: the ballot's fields, a retry id and `fields` (None removes one)."""
    body = {**t, "retry_id": R, **fields}
    return {k: v for k, v in body.items() if v is not None}


BAD_BODIES = {
    "not_json": (b"{not json", 400),
    "json_array": (b'[1, 2]', 400),
    "json_string": (b'"ballot"', 400),
    "empty": (b"", 400),
    "missing_marks": (lambda t: _body(t), 400),
    "missing_ballot": (lambda t: {"marks": {"motion": "for"}, "retry_id": R}, 400),
    "round_ref_not_string": (lambda t: _body(t, round_ref=12345, marks={"motion": "for"}), 400),
    "serial_not_string": (lambda t: _body(t, serial=12345, marks={"motion": "for"}), 400),
    "missing_retry_id": (lambda t: _body(t, retry_id=None, marks={"motion": "for"}), 400),
    "retry_id_too_short": (lambda t: _body(t, retry_id="short", marks={"motion": "for"}), 400),
    "marks_not_object": (lambda t: _body(t, marks=["for"]), 400),
    "marks_bool": (lambda t: _body(t, marks=True), 400),
    "mark_not_string": (lambda t: _body(t, marks={"motion": 1}), 400),
    "unknown_candidate": (lambda t: _body(t, marks={"nobody": "for"}), 400),
    "unknown_mark": (lambda t: _body(t, marks={"motion": "yes"}), 400),
    "void_from_terminal": (lambda t: _body(t, marks={"motion": "void"}), 400),
    "too_large": (lambda t: _body(t, marks={"motion": "for"}, pad="x" * (65 * 1024)), 413),
}


@pytest.mark.parametrize("case", sorted(BAD_BODIES))
def test_bad_submission_is_refused_and_nothing_stored(app, api, client, case):
    s = setup_sitting(api, members=3)
    cred = s.creds[s.members[0]]
    ballot = get_ballot(api, cred)
    raw, expected = BAD_BODIES[case]
    data = raw if isinstance(raw, bytes) else json.dumps(raw(ballot)).encode()
    before = n_casts(app)
    r = client.post("/api/terminal/cast", data=data, content_type="application/json",
                    headers={"Authorization": f"Bearer {cred}"})
    assert r.status_code == expected, r.get_json()
    assert_error_shape(r.get_json())
    if expected == 413:
        assert r.get_json()["errors"][0]["errorType"] == "PayloadTooLarge"
    assert n_casts(app) == before == 0
    # The ballot is not burnt: the member can still cast it (with the same retry id too).
    status, ok = cast(api, cred, ballot, {"motion": "against"}, retry_id=R)
    assert status == 201, ok


def test_cast_endpoint_edge_cases_answer_in_the_api_error_shape(app, api, client, monkeypatch):
    """POST /api/terminal/cast is served in front of Flask (cast_endpoint.py): its edge cases
    answer as the rest of the API does, and store nothing."""
    s = setup_sitting(api, members=3)
    cred = s.creds[s.members[0]]
    ballot = get_ballot(api, cred)
    auth_header = {"Authorization": f"Bearer {cred}"}
    r = client.get("/api/terminal/cast", headers=auth_header)
    assert r.status == "405 Method Not Allowed" and r.headers["Allow"] == "POST"
    assert_error_shape(r.get_json(), "MethodNotAllowed")
    r = client.post("/api/terminal/cast", data=b'{"ballot": "\xff\xfe", "marks": {}}', content_type="application/json",
                    headers=auth_header)
    assert r.status_code == 400 and r.get_json()["errors"][0]["where"] == "body"
    # A chunked body (no Content-Length) over the limit is refused as well.
    big = json.dumps(_body(ballot, marks={"motion": "for"}, pad="x" * (70 * 1024))).encode()
    r = client.post("/api/terminal/cast", input_stream=io.BytesIO(big),
                    headers={**auth_header, "Transfer-Encoding": "chunked"})
    assert r.status_code == 413
    assert_error_shape(r.get_json(), "PayloadTooLarge")

    # An unexpected failure is a 500 in the same shape; nothing is stored and the ballot stays usable.
    def broken(*args, **kwargs):
        raise RuntimeError("disk on fire")

    monkeypatch.setattr(cast_endpoint.terminal_casts, "accept", broken)
    status, data = cast(api, cred, ballot, {"motion": "for"})
    assert status == 500
    assert_error_shape(data, "InternalServerError")
    monkeypatch.undo()
    assert n_casts(app) == 0
    status, ok = cast(api, cred, ballot, {"motion": "for"}, retry_id=R)
    assert status == 201, ok
    # The same JSON form as Flask's own answers (sorted keys, compact, a final newline).
    r = client.post("/api/terminal/cast", json=_body(ballot, marks={"motion": "for"}), headers=auth_header)
    assert r.status_code == 200 and r.content_type == "application/json"
    assert r.get_data() == (json.dumps(r.get_json(), sort_keys=True, separators=(",", ":")) + "\n").encode()
