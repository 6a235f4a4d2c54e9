"""Issue #15 item 5: check-in belongs to the seat. A tablet at a roster seat checks in only
that seat's member; a spare tablet binds the first member it checks in until the secretariat
releases it, and never takes a member whose own seat has a live tablet; leave is changed only
by the secretariat. Paper ballots are never printed for an item voted on the tablets, and a
tablet's cast is refused for an item not voted on the tablets."""
from __future__ import annotations

from click.testing import CliRunner
from console_support import post
from helpers_live import Api, setup_sitting
from sqlalchemy import func, select
from terminal_support import assert_error_shape, n_casts, query

from ballot_service.cli import main
from ballot_service.config import Settings
from ballot_service.crypto import keys
from ballot_service.formats import ballots
from ballot_service.models import Issuance, Member, PaperBallot, Terminal


def checkin(api, credential, member):
    return api.call("POST", "/api/terminal/checkin", {"member": member}, credential=credential, expect=None)


def attendance(api, s):
    return api.call("GET", f"/api/admin/sessions/{s.sitting_id}/attendance")[1]


def test_a_seat_tablet_checks_in_only_its_own_member(api):
    s = setup_sitting(api, members=5, present=0, open_vote=False)
    status, data = checkin(api, s.creds["M0001"], "M0002")
    assert status == 403 and assert_error_shape(data, "Forbidden")["where"] == "member"
    assert attendance(api, s)["present"] == 0
    assert checkin(api, s.creds["M0001"], "M0001")[0] == 200
    assert attendance(api, s)["present"] == 1


def test_a_tablet_cannot_turn_a_member_on_leave_present(api):
    """The attack: tablets turned 请假 deputies present, inflating the quorum."""
    s = setup_sitting(api, members=5, present=0, open_vote=False)
    api.call("POST", f"/api/admin/sessions/{s.sitting_id}/attendance", {"members": ["M0003"], "status": "leave"})
    status, data = checkin(api, s.creds["M0003"], "M0003")
    assert status == 409 and assert_error_shape(data, "Conflict")
    state = attendance(api, s)
    assert (state["present"], state["leave"]) == (0, 1)
    # The secretariat can still record the member present (销假).
    api.call("POST", f"/api/admin/sessions/{s.sitting_id}/attendance", {"members": ["M0003"], "status": "present"})
    assert attendance(api, s)["present"] == 1


def _spare(api, s, name="备用表决器", seat=None):
    spec = {"name": name, "kind": "seat"}
    if seat:
        spec["seat"] = seat
    _, terms = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/terminals", {"terminals": [spec]})
    return terms["terminals"][0]


def test_a_spare_tablet_cannot_take_a_member_whose_seat_has_a_tablet(api):
    """The attack: a spare tablet took D005's place before D005's own seat could."""
    s = setup_sitting(api, members=5, present=0, open_vote=False)
    spare = _spare(api, s)
    status, data = checkin(api, spare["credential"], "M0005")
    assert status == 403 and assert_error_shape(data, "Forbidden")
    assert checkin(api, s.creds["M0005"], "M0005")[0] == 200
    assert attendance(api, s)["present"] == 1


def test_a_spare_tablet_binds_until_released(api):
    s = setup_sitting(api, members=5, present=0, open_vote=False)
    for no in ("M0004", "M0005"):  # their seat tablets broke
        api.call("POST", f"/api/admin/terminals/{s.terminal_ids[no]}/revoke")
    spare = _spare(api, s)  # no seat: a spare
    other = _spare(api, s, name="备用表决器 2")
    assert checkin(api, spare["credential"], "M0004")[0] == 200
    assert checkin(api, spare["credential"], "M0004")[0] == 200  # again (a reload): fine
    status, data = checkin(api, spare["credential"], "M0005")
    assert status == 409 and assert_error_shape(data, "Conflict")
    status, _ = checkin(api, other["credential"], "M0004")  # already at the first spare
    assert status == 409
    assert attendance(api, s)["present"] == 1
    api.call("POST", f"/api/admin/terminals/{spare['id']}/release")
    assert checkin(api, spare["credential"], "M0005")[0] == 200
    assert attendance(api, s)["present"] == 2


def test_the_console_releases_a_spare_tablet(app, console):
    api = Api.flask(app.test_client())  # the console fixture made the operator

    s = setup_sitting(api, members=3, present=0, open_vote=False)
    api.call("POST", f"/api/admin/terminals/{s.terminal_ids['M0003']}/revoke")
    spare = _spare(api, s)
    assert checkin(api, spare["credential"], "M0003")[0] == 200
    page = console.get(f"/console/sessions/{s.sitting_id}").get_data(as_text=True)
    assert f"/console/terminals/{spare['id']}/release" in page
    r = post(console, f"/console/terminals/{spare['id']}/release")
    assert r.status_code == 302
    (bound,) = query(app, select(Terminal.bound_member_id).where(Terminal.id == spare["id"]))[0]
    assert bound is None


def test_the_console_registers_a_tellers_station(app, console):
    api = Api.flask(app.test_client())

    s = setup_sitting(api, members=3, open_vote=False)
    r = post(console, f"/console/sessions/{s.sitting_id}/terminals",
             {"holder": "王计票", "teller_role": "scrutineer", "stations": "0"})
    assert r.status_code == 200, r.get_data(as_text=True)[:500]
    rows = query(app, select(Terminal.holder, Terminal.teller_role).where(Terminal.holder == "王计票"))
    assert [tuple(x) for x in rows] == [("王计票", "scrutineer")]


def test_no_paper_ballots_for_a_tablet_item_from_the_cli(app, api, settings_env):
    """The attack: `ballot-service ballots print` printed paper ballots for a terminal item
    (a printed ballot could then be cast from any tablet as an extra vote)."""
    s = setup_sitting(api, members=3, open_vote=False)
    result = CliRunner().invoke(main, ["ballots", "print", str(s.item_id), "--count", "2"], env=settings_env)
    assert result.exit_code != 0 and ("电子表决器" in result.output or "seat tablets" in result.output), result.output
    assert query(app, select(func.count()).select_from(PaperBallot))[0][0] == 0
    status, _ = api.call("POST", f"/api/admin/items/{s.item_id}/paper-ballots", {"count": 2}, expect=None)
    assert status == 400


def test_a_tablet_cast_is_refused_for_an_item_not_voted_on_tablets(app, api, settings_env):
    """A tally-sheet (or paper) item has no round key: a tablet gets no ballot for it, and a
    paper ballot's QR text sent as a tablet cast is refused, nothing stored."""
    s = setup_sitting(api, members=3, channel="tally_sheet")
    _, state = api.call("GET", "/api/terminal/state", credential=s.creds["M0001"])
    assert not (state["vote"] or {}).get("round_ref")
    api.call("GET", "/api/terminal/round-key", credential=s.creds["M0001"], expect=(404,))
    keys.clear_cache()

    key = keys.body_signing_key(Settings.from_env(settings_env), s.body_id)
    token = ballots.make_token(key, s.body_id, s.sitting_id, s.item_id, 1)
    status, data = api.call("POST", "/api/terminal/cast", {"ballot": ballots.token_to_text(token),
                                                           "marks": {"motion": "for"}},
                            credential=s.creds["M0001"], expect=(400, 403, 404, 409))
    assert status >= 400 and assert_error_shape(data)
    assert n_casts(app) == 0


def test_a_refusal_at_a_seat_names_no_deputy(api):
    """A tablet must not map numbers to names: typing another seat's number says only that the
    number is not this seat's (#17 follow-up), in English too; nor does any other refusal."""
    s = setup_sitting(api, members=5, present=0, open_vote=False)
    status, data = checkin(api, s.creds["M0001"], "M0002")
    err = assert_error_shape(data, "Forbidden")
    assert status == 403 and "不属于本座位" in err["message_zh"] and "M0001" in err["message_zh"]
    for no in ("M0001", "M0002"):
        assert f"代表{no}" not in err["message_zh"] + err["message"]  # the roster names of helpers_live
    assert "M0001" not in err["message"].replace("seat M0001", "")  # the seat label only, no holder's number
    api.call("POST", f"/api/admin/sessions/{s.sitting_id}/attendance", {"members": ["M0003"], "status": "leave"})
    status, data = checkin(api, s.creds["M0003"], "M0003")
    assert status == 409 and "代表M0003" not in assert_error_shape(data)["message_zh"]


def test_an_overlong_number_gets_a_short_error_that_does_not_echo_it(api):
    s = setup_sitting(api, members=3, present=0, open_vote=False)
    for bad in ("9" * 5000, "M0001\u202e", ""):
        status, data = checkin(api, s.creds["M0001"], bad)
        err = assert_error_shape(data, "InvalidInput")
        assert status == 400 and err["where"] == "member"
        assert "9" * 20 not in err["message"] + err["message_zh"] and len(err["message_zh"]) < 60, err
    assert attendance(api, s)["present"] == 0


def test_a_member_with_no_seat_is_issued_no_ballot_on_a_spare_tablet_they_never_used(app, api):
    """A member with no seat in the roster, recorded present by the secretariat, gets no
    tablet ballot at the opening merely because a spare (seatless) tablet exists: only the
    tablet they checked in at, or their seat's, is theirs (tablet_setup.seat_plan). The
    opening's readiness already said so (无表决器); the eligibility now agrees with it."""
    s = setup_sitting(api, members=3, present=3, open_vote=False)
    roster = [{"id": no, "name": f"代表{no}", "seat": no} for no in s.members] + [{"id": "M0009", "name": "代表M0009"}]
    api.call("POST", f"/api/admin/bodies/{s.body_id}/roster", {"members": roster})
    api.call("POST", f"/api/admin/sessions/{s.sitting_id}/attendance", {"members": ["M0009"], "status": "present"})
    spare = _spare(api, s)
    status, data = api.call("POST", f"/api/admin/items/{s.item_id}/open", {"override_reason": "M0009 votes on paper"},
                            expect=None)
    assert status == 200, data
    rows = query(app, select(Member.member_no, Issuance.terminal_id, Issuance.allowed)
                 .join(Member, Member.id == Issuance.member_id))
    by_member = {no: (tid, allowed) for no, tid, allowed in rows}
    assert by_member["M0009"] == (None, 0)
    assert spare["id"] not in {tid for tid, _ in by_member.values()}
    assert sorted(by_member[no] for no in s.members) == sorted((s.terminal_ids[no], 1) for no in s.members)


def _issued_terminals(app) -> dict:
    rows = query(app, select(Member.member_no, Issuance.terminal_id).join(Member, Member.id == Issuance.member_id))
    return dict(rows)


def test_members_checked_in_at_two_spare_tablets_are_each_issued_their_ballot(app, api):
    """Two seats' tablets broke; their members checked in at two spares. Each spare is issued
    its own member's ballot (before 81aa7f3 the spares, having no seat, collapsed into one and
    one of the two members got none)."""
    s = setup_sitting(api, members=4, present=2, open_vote=False)
    for no in ("M0003", "M0004"):
        api.call("POST", f"/api/admin/terminals/{s.terminal_ids[no]}/revoke")
    spares = {no: _spare(api, s, name=f"备用表决器 {no}") for no in ("M0003", "M0004")}
    for no, spare in spares.items():
        assert checkin(api, spare["credential"], no)[0] == 200
    status, data = api.call("POST", f"/api/admin/items/{s.item_id}/open", {"override_reason": "spares"}, expect=None)
    assert status == 200, data
    issued = _issued_terminals(app)
    assert issued["M0003"] == spares["M0003"]["id"] and issued["M0004"] == spares["M0004"]["id"]
    assert issued["M0001"] == s.terminal_ids["M0001"] and issued["M0002"] == s.terminal_ids["M0002"]


def test_a_spare_released_and_checked_in_at_again_serves_the_member_it_is_bound_to(app, api):
    """M0002 checked in at a spare, the secretariat released it, M0003 checked in there: both
    members' attendance names that tablet. It serves M0003, to whom it is bound now (before
    81aa7f3 the first row read took it, and M0003's ballot went nowhere); M0002 has none, and
    the opening's readiness says who has the tablet."""
    s = setup_sitting(api, members=3, present=1, open_vote=False)
    for no in ("M0002", "M0003"):
        api.call("POST", f"/api/admin/terminals/{s.terminal_ids[no]}/revoke")
    spare = _spare(api, s)
    assert checkin(api, spare["credential"], "M0002")[0] == 200
    api.call("POST", f"/api/admin/terminals/{spare['id']}/release")
    assert checkin(api, spare["credential"], "M0003")[0] == 200
    status, data = api.call("POST", f"/api/admin/items/{s.item_id}/open", expect=None)
    assert status == 409 and "表决器由代表M0003使用" in assert_error_shape(data, "Conflict")["message_zh"]
    status, data = api.call("POST", f"/api/admin/items/{s.item_id}/open", {"override_reason": "M0002 on paper"},
                            expect=None)
    assert status == 200, data
    issued = _issued_terminals(app)
    assert issued["M0003"] == spare["id"] and issued["M0002"] is None and issued["M0001"] == s.terminal_ids["M0001"]
