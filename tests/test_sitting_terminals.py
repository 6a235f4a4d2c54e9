"""Registering terminals from the console and the API: bad input is refused with a clear
message and changes nothing (issue #17 item 7)."""
from __future__ import annotations

from console_support import flashes, post
from helpers_live import Api, setup_sitting
from sqlalchemy import func, select
from terminal_support import assert_error_shape, query

from ballot_service.models import Item, Terminal


def n_terminals(app) -> int:
    return query(app, select(func.count()).select_from(Terminal))[0][0]


def test_a_terminal_for_a_seat_no_roster_row_has_is_refused(app, console):
    api = Api.flask(app.test_client())  # the console fixture made the operator
    s = setup_sitting(api, members=3, open_vote=False)
    before = n_terminals(app)
    r = post(console, f"/console/sessions/{s.sitting_id}/terminals", {"seat": "9排99座"}, follow_redirects=True)
    kind, text = flashes(r)[-1]
    assert kind == "error" and "名册中没有座位 9排99座" in text
    status, data = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/terminals",
                            {"terminals": [{"name": "席位 9排99座", "kind": "seat", "seat": "9排99座"}]}, expect=None)
    assert status == 400 and assert_error_shape(data, "InvalidInput")["where"] == "seat"
    assert n_terminals(app) == before


def test_an_empty_terminal_registration_is_refused(app, console):
    api = Api.flask(app.test_client())
    s = setup_sitting(api, members=3, open_vote=False)
    before = n_terminals(app)
    r = post(console, f"/console/sessions/{s.sitting_id}/terminals", {"stations": "0"}, follow_redirects=True)
    kind, text = flashes(r)[-1]
    assert kind == "error" and "没有要登记的终端" in text
    assert "/seat#credential=" not in r.get_data(as_text=True)
    assert n_terminals(app) == before


def test_a_spare_tablet_without_a_seat_is_still_registered(app, api):
    s = setup_sitting(api, members=3, open_vote=False)
    _, out = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/terminals",
                      {"terminals": [{"name": "备用表决器", "kind": "seat"}]})
    assert out["terminals"][0]["seat"] is None


def test_a_resolution_with_candidate_lines_is_refused_and_the_form_kept(app, console):
    api = Api.flask(app.test_client())
    s = setup_sitting(api, members=3, open_vote=False)
    r = post(console, f"/console/sessions/{s.sitting_id}/items", {
        "kind": "resolution", "title": "关于某事的决议", "secret": "1", "channel": "terminal",
        "candidates": "城区老旧小区改造 | 改造小区 32 个"})
    assert r.status_code == 400
    kind, text = flashes(r)[-1]
    assert kind == "error" and "决议表决只有一个表决事项" in text
    assert "城区老旧小区改造 | 改造小区 32 个" in r.get_data(as_text=True)
    assert [t for (t,) in query(app, select(Item.title))] == ["表决事项 item1"]
