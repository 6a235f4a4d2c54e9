"""Issue #15 item 7: a record is signed only after the item's rounds are counted again from
the stored casts (or the confirmed tally sheet) with the tally's own code and found equal to
the stored `Round.result`; a result edited in the database is refused, never signed."""
from __future__ import annotations

import copy

from helpers_live import setup_sitting
from sqlalchemy import func, select
from terminal_support import assert_error_shape, cast, events, get_ballot, query

from ballot_service.models import Item, Record, Round


def _tallied(api, marks=("for", "for", "against", "for", "abstain")):
    s = setup_sitting(api, members=5)
    for no, mark in zip(s.members, marks):
        cast(api, s.creds[no], get_ballot(api, s.creds[no]), {"motion": mark}, expect=(201,))
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    _, result = api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    return s, result


def _edit_result(db, item_id, change):
    rnd = db.scalar(select(Round).where(Round.item_id == item_id))
    result = copy.deepcopy(rnd.result)
    change(result)
    rnd.result = result
    db.commit()


def test_an_edited_result_is_not_signed(app, api, db):
    """The attack: a result edited in the database was signed and shown as genuine on /verify."""
    s, result = _tallied(api)
    assert result["passed"] is True and result["candidates"][0]["for"] == 3

    def flip(r):
        r["candidates"][0]["for"], r["candidates"][0]["against"] = 1, 3
        r["candidates"][0]["passed"], r["passed"] = False, False

    _edit_result(db, s.item_id, flip)
    status, data = api.call("POST", f"/api/admin/items/{s.item_id}/record", expect=None)
    assert status == 409
    err = assert_error_shape(data, "Conflict")
    assert err["where"] == "result" and "candidates" in err["message"]
    assert query(app, select(func.count()).select_from(Record))[0][0] == 0
    assert events(app, "record_issued") == []


def test_an_edited_count_or_status_is_not_signed(app, api, db):
    s, _ = _tallied(api)
    _edit_result(db, s.item_id, lambda r: r.update(returned=r["returned"] + 1))
    assert api.call("POST", f"/api/admin/items/{s.item_id}/record", expect=None)[0] == 409
    s2, _ = _tallied(api)
    db.get(Item, s2.item_id).status = "void"
    db.commit()
    assert api.call("POST", f"/api/admin/items/{s2.item_id}/record", expect=None)[0] == 409
    assert query(app, select(func.count()).select_from(Record))[0][0] == 0


def test_an_unchanged_result_is_signed(app, api):
    s, _ = _tallied(api)
    status, rec = api.call("POST", f"/api/admin/items/{s.item_id}/record")
    assert status == 201 and rec["id"]


def test_an_edited_tally_sheet_result_is_not_signed(app, api, db):
    s = setup_sitting(api, members=5, channel="tally_sheet")
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    sheet = {"issued": 5, "returned": 5, "invalid": 0,
             "counts": {"motion": {"for": 2, "against": 3, "abstain": 0, "void": 0}}}
    for cred in (s.counter, s.scrutineer):
        api.call("POST", "/api/station/tally-sheet", {"item_id": s.item_id, "sheet": sheet}, credential=cred)
    api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    _edit_result(db, s.item_id, lambda r: r["candidates"][0].update({"for": 5, "against": 0}))
    assert api.call("POST", f"/api/admin/items/{s.item_id}/record", expect=None)[0] == 409
