"""Issue #15 item 4: a hand count (tally sheet) is entered by one teller's counting-station
credential and confirmed by a different credential of the other role (计票人 / 监票人); the
teller is the credential's registered holder, never request text; the figures are bounded
(issued <= 实到; over-return recorded and void); the record names both tellers; and the audit
bundle refuses a sheet confirmed with the entering credential."""
from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from bundle_support import export_app_bundle
from helpers_live import COUNTER_NAME, SCRUTINEER_NAME, setup_sitting
from sqlalchemy import select, update
from terminal_support import assert_error_shape, events, query

from ballot_service.bundle.errors import BundleInvalid
from ballot_service.bundle.verify import verify_bundle
from ballot_service.domain import audit
from ballot_service.models import Record, TallySheet, Terminal
from ballot_service.render import record_pdf


def _sheet(issued, returned, invalid, for_, against, abstain=0):
    return {"issued": issued, "returned": returned, "invalid": invalid,
            "counts": {"motion": {"for": for_, "against": against, "abstain": abstain, "void": 0}}}


def _closed(api, members=5):
    s = setup_sitting(api, members=members, channel="tally_sheet")
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    return s


def _send(api, s, credential, sheet, **extra):
    return api.call("POST", "/api/station/tally-sheet", {"item_id": s.item_id, "sheet": sheet, **extra},
                    credential=credential, expect=None)


def test_one_credential_cannot_enter_and_confirm_under_two_names(app, api):
    """The attack: the teller's name was free text, so one credential entered as 甲 and
    confirmed as 乙. Now the name is not read; the same credential is refused."""
    s = _closed(api)
    sheet = _sheet(5, 5, 0, 4, 1)
    assert _send(api, s, s.counter, sheet, teller="甲") == (201, {"state": "entered"})
    status, data = _send(api, s, s.counter, sheet, teller="乙")
    assert status == 409 and assert_error_shape(data, "Conflict")["where"] == "teller"
    assert events(app, "tally_sheet_confirmed") == []
    status, data = api.call("POST", f"/api/admin/items/{s.item_id}/tally", expect=None)
    assert status == 409  # not confirmed, not tallied
    entered = json.loads(events(app, "tally_sheet_entered")[0].data)
    assert (entered["teller"], entered["teller_role"]) == (COUNTER_NAME, "counter")  # from the credential


def test_the_confirming_teller_holds_the_other_role(app, api):
    s = _closed(api)
    _, terms = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/terminals", {"terminals": [
        {"name": "计票站 2", "kind": "counting_station", "holder": "计票人丙", "teller_role": "counter"}]})
    second_counter = terms["terminals"][0]["credential"]
    sheet = _sheet(5, 5, 0, 4, 1)
    assert _send(api, s, s.counter, sheet)[0] == 201
    status, data = _send(api, s, second_counter, sheet)
    assert status == 409 and data["errors"][0]["where"] == "teller"
    assert _send(api, s, s.scrutineer, sheet) == (201, {"state": "confirmed"})
    with app.app_context():
        (row,) = query(app, select(TallySheet))[0]
        assert (row.entered_by, row.confirmed_by) == (COUNTER_NAME, SCRUTINEER_NAME)
        assert row.entered_terminal_id != row.confirmed_terminal_id


def test_a_station_without_a_registered_teller_cannot_send_a_sheet(app, api):
    s = _closed(api)
    status, data = _send(api, s, s.station, _sheet(5, 5, 0, 4, 1), teller="甲")
    assert status == 403 and assert_error_shape(data, "Forbidden")
    assert events(app, "tally_sheet_entered") == []


def test_registering_a_teller_needs_a_name_and_a_role(api):
    s = setup_sitting(api, members=3, open_vote=False)
    url = f"/api/admin/sessions/{s.sitting_id}/terminals"
    for spec in ({"holder": "甲"}, {"teller_role": "counter"}, {"holder": "甲", "teller_role": "boss"},
                 {"kind": "seat", "seat": "X1", "holder": "甲", "teller_role": "counter"}):
        status, _ = api.call("POST", url, {"terminals": [{"name": "t", "kind": "counting_station", **spec}]},
                             expect=None)
        assert status == 400, spec


def test_issued_cannot_exceed_the_members_present(app, api):
    """The attack: with 300 present, issued = 5,000 and for = 5,000 was confirmed and passed."""
    s = _closed(api, members=5)
    status, data = _send(api, s, s.counter, _sheet(5000, 5000, 0, 5000, 0))
    assert status == 400 and data["errors"][0]["where"] == "sheet.issued"
    assert events(app, "tally_sheet_entered") == []


def test_over_return_is_recorded_and_the_vote_is_void(app, api):
    s = _closed(api, members=5)
    sheet = _sheet(5, 5000, 0, 5000, 0)
    assert _send(api, s, s.counter, sheet) == (201, {"state": "entered"})
    assert _send(api, s, s.scrutineer, sheet) == (201, {"state": "confirmed"})
    _, result = api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    assert result["status"] == "void" and result["returned"] == 5000 and result["issued"] == 5
    assert "passed" not in result or result["passed"] is False


@pytest.mark.parametrize("bad", [-1, 2.5, "3", True, None])
def test_every_figure_is_a_whole_number(api, bad):
    s = _closed(api, members=5)
    for field in ("issued", "returned", "invalid"):
        sheet = _sheet(5, 5, 0, 4, 1)
        sheet[field] = bad
        assert _send(api, s, s.counter, sheet)[0] == 400, (field, bad)
    sheet = _sheet(5, 5, 0, 4, 1)
    sheet["counts"]["motion"]["for"] = bad
    assert _send(api, s, s.counter, sheet)[0] == 400
    assert _send(api, s, s.counter, _sheet(5, 5, 0, 4, 2))[0] == 400  # 6 votes on 5 valid ballots


def _confirmed_and_recorded(app, api):
    s = _closed(api, members=5)
    sheet = _sheet(5, 5, 1, 3, 1)
    _send(api, s, s.counter, sheet)
    _send(api, s, s.scrutineer, sheet)
    api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    api.call("POST", f"/api/admin/items/{s.item_id}/record")
    return s


def test_the_record_names_both_tellers(app, api, tmp_path):
    _confirmed_and_recorded(app, api)
    (rec,) = query(app, select(Record))[0]
    content = json.loads(rec.body_json)
    assert content["rounds"][0]["tellers"] == {"counter": COUNTER_NAME, "scrutineer": SCRUTINEER_NAME}
    pdf = record_pdf.render(content, rec.signature)
    if shutil.which("pdftotext"):
        path = tmp_path / "r.pdf"
        path.write_bytes(pdf)
        text = subprocess.run(["pdftotext", "-enc", "UTF-8", str(path), "-"], check=True, capture_output=True,
                              text=True).stdout
        assert COUNTER_NAME in text and SCRUTINEER_NAME in text


def test_audit_verify_checks_two_different_credentials(app, api, settings_env, tmp_path):
    _confirmed_and_recorded(app, api)
    export_app_bundle(app, tmp_path / "good")
    verify_bundle(tmp_path / "good")


def test_audit_verify_refuses_a_sheet_confirmed_with_the_entering_credential(app, api, settings_env, tmp_path):
    """What the old code logged: entered and confirmed from one credential under two names."""
    s = _closed(api, members=5)
    sheet = _sheet(5, 5, 0, 4, 1)
    _send(api, s, s.counter, sheet)
    db = app.extensions["ballot_sessionmaker"]()
    try:
        counter = db.scalar(select(Terminal).where(Terminal.teller_role == "counter"))
        db.execute(update(TallySheet).values(confirmed_by="乙", confirmed_terminal_id=counter.id))
        audit.append(db, "tally_sheet_confirmed", {"item_id": s.item_id, "round": 1, "teller": "乙",
                                                   "teller_role": "scrutineer", "terminal_id": counter.id},
                     sitting_id=s.sitting_id)
        db.commit()
    finally:
        db.close()
    api.call("POST", f"/api/admin/items/{s.item_id}/tally")

    export_app_bundle(app, tmp_path / "bad")
    with pytest.raises(BundleInvalid, match="tally sheet"):
        verify_bundle(tmp_path / "bad")
    # …and the record is not signed either: its tellers are not a counter and a scrutineer.
    status, data = api.call("POST", f"/api/admin/items/{s.item_id}/record", expect=None)
    assert status == 409 and data["errors"][0]["where"] == "tally_sheet"
