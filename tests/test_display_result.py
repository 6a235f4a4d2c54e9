"""The presiding officer's screen (display.py) after a vote, through the Flask test client: the
counting state, a resolution's result with every figure the tally's own, the signed record with
its QR code of /verify/<id> (also behind a proxy), ranked projects with a runoff, an appointment
table, a vote without quorum; and the QR SVG itself."""
from __future__ import annotations

import dataclasses
import re

import qrcode
from display_support import CHOICE_KEYS, get_state, keys_in
from helpers_live import blind_ballot, publish, setup_sitting, vote

from ballot_service.render import qr


def test_resolution_result_and_record(api, screen, app):
    s = setup_sitting(api, members=6, present=5)
    for no, m in zip(s.present, ["for", "for", "against", "abstain"]):
        vote(api, s.creds[no], {"motion": m})
    blind_ballot(api, s.creds[s.present[4]])  # the 5th tablet takes its ballot but does not vote
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    st = get_state(screen, s.sitting_id)
    assert st["mode"] == "counting"  # closed, not yet tallied: no figures yet
    assert st["vote"]["voted"] == 4 and st["vote"]["issued"] == 5 and not keys_in(st) & CHOICE_KEYS

    _, tallied = api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    # Tallied, and even signed: the hall sees no figure until the secretariat publishes (公布).
    st = get_state(screen, s.sitting_id)
    assert st["mode"] == "awaiting" and st["vote"]["voted"] == 4 and not keys_in(st) & CHOICE_KEYS
    _, rec = api.call("POST", f"/api/admin/items/{s.item_id}/record")
    st = get_state(screen, s.sitting_id)
    assert st["mode"] == "awaiting" and not keys_in(st) & CHOICE_KEYS
    assert rec["id"] not in screen.get(f"/display/{s.sitting_id}").get_data(as_text=True)
    api.call("POST", f"/api/admin/items/{s.item_id}/publish")
    st = get_state(screen, s.sitting_id)
    assert st["mode"] == "result"
    r = st["result"]
    motion = tallied["candidates"][0]
    assert r["kind"] == "resolution" and r["status"] == "decided"
    assert (r["motion"]["for"], r["motion"]["against"], r["motion"]["abstain"]) == \
        (motion["for"], motion["against"], motion["abstain"]) == (2, 1, 1)
    # Every figure on the screen is the tally's own.
    for k in ("members", "present", "issued", "returned", "valid", "invalid", "refused", "not_voted"):
        assert r[k] == tallied[k], k
    assert r["not_voted"] == 1 and r["members"] == 6 and r["present"] == 5
    assert r["passed"] is tallied["passed"] is False  # 2*2 > 6 fails
    assert r["threshold_votes"] == tallied["threshold_votes"] == 4

    record = st["record"]
    assert record["id"] == rec["id"]
    assert record["key_fingerprint"] == rec["fingerprint"] and record["audit_head"] == rec["audit_head"]
    assert isinstance(record["audit_seq"], int)
    assert record["verify_url"] == f"http://localhost/verify/{rec['id']}"
    assert screen.get(record["verify_url"].replace("http://localhost", "")).status_code == 200
    assert record["qr_svg"].startswith("<svg") and 'viewBox="' in record["qr_svg"]
    assert qr_modules(record["qr_svg"]) == expected_modules(record["verify_url"])

    html = screen.get(f"/display/{s.sitting_id}").get_data(as_text=True)
    assert rec["fingerprint"] in html and rec["id"] in html

    # Behind a proxy, or reached at 127.0.0.1 by the operator: the QR names the public address.
    app.config["SETTINGS"] = dataclasses.replace(app.config["SETTINGS"], public_url="https://vote.example.gov.cn")
    record = get_state(screen, s.sitting_id)["record"]
    assert record["verify_url"] == f"https://vote.example.gov.cn/verify/{rec['id']}"
    assert qr_modules(record["qr_svg"]) == expected_modules(record["verify_url"])


def qr_modules(svg: str) -> set[tuple[int, int]]:
    """The dark modules of qrcode's SvgPathImage (one 'Mx,yH…' square each)."""
    return {(int(x), int(y)) for x, y in re.findall(r"M(\d+),(\d+)H", svg)}


def expected_modules(data: str) -> set[tuple[int, int]]:
    qr = qrcode.QRCode(error_correction=qrcode.constants.ERROR_CORRECT_M, border=2)
    qr.add_data(data)
    qr.make(fit=True)
    return {(x, y) for y, row in enumerate(qr.get_matrix()) for x, dark in enumerate(row) if dark}


PROJECTS = [{"key": k, "title": f"项目{k}"} for k in ("A", "B", "C", "D")]


def test_projects_ranked_with_runoff(api, screen):
    # 5 deputies, 2 places: A 4, B 3, C 3, D 0 -> A selected, B and C tied at the cut-off.
    s = setup_sitting(api, members=5, kind="livelihood_projects", candidates=PROJECTS, places=2)
    ballots = [{"A": "for", "B": "for"}, {"A": "for", "B": "for"}, {"A": "for", "C": "for"},
               {"A": "for", "C": "for"}, {"B": "for", "C": "for"}]
    for no, m in zip(s.members, ballots):
        vote(api, s.creds[no], m)
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    r = get_state(screen, s.sitting_id)["result"]  # a tie is shown at once: the hall votes again
    assert r["status"] == "runoff_pending" and r["tied_count"] == 2 and r["runoff_places"] == 1
    assert [(p["key"], p["rank"], p["selected"], p["tied"], p["for"]) for p in r["projects"]] == [
        ("A", 1, True, False, 4), ("B", None, False, True, 3), ("C", None, False, True, 3),
        ("D", None, False, False, 0)]

    api.call("POST", f"/api/admin/items/{s.item_id}/open")  # round 2 between B and C
    st = get_state(screen, s.sitting_id)
    assert st["mode"] == "voting" and st["vote"]["round"] == 2 and st["vote"]["places"] == 1
    assert st["vote"]["runoff_titles"] == ["项目B", "项目C"] and not keys_in(st) & CHOICE_KEYS
    for no, m in zip(s.members, ["B", "B", "B", "C", "C"]):
        vote(api, s.creds[no], {m: "for"})
    assert get_state(screen, s.sitting_id)["vote"]["voted"] == 5
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    publish(api, s.item_id)
    _, results = api.call("GET", f"/api/admin/sessions/{s.sitting_id}/results")
    r = get_state(screen, s.sitting_id)["result"]
    assert r["status"] == "decided" and r["rounds"] == 2 and r["selected_count"] == 2 and r["shortfall"] == 0
    assert [(p["key"], p["rank"], p["selected"], p["runoff_for"]) for p in r["projects"]] == [
        ("A", 1, True, None), ("B", 2, True, 3), ("C", None, False, 2), ("D", None, False, None)]
    entry = results["items"][0]
    assert [p["key"] for p in r["projects"] if p["selected"]] == entry["selected"]
    assert r["runoff"]["returned"] == entry["runoff"]["returned"] == 5


def test_appointment_table(api, screen):
    nominees = [{"key": "n1", "title": "任命张三为局长"}, {"key": "n2", "title": "任命李四为副局长"}]
    s = setup_sitting(api, members=5, kind="appointment", candidates=nominees, body_kind="standing_committee")
    for no, m in zip(s.members, [{"n1": "for", "n2": "against"}, {"n1": "for", "n2": "for"},
                                 {"n1": "for", "n2": "against"}, {"n1": "against"}]):
        vote(api, s.creds[no], m)
    blind_ballot(api, s.creds[s.members[4]])  # issued, never cast
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    _, tallied = api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    publish(api, s.item_id)
    r = get_state(screen, s.sitting_id)["result"]
    assert [(n["title"], n["for"], n["against"], n["abstain"], n["passed"]) for n in r["nominees"]] == [
        ("任命张三为局长", 3, 1, 0, True), ("任命李四为副局长", 1, 2, 1, False)]  # unmarked = 弃权
    assert r["not_voted"] == tallied["not_voted"] == 1


def test_quorum_failure_and_void_items_show_their_status(api, screen):
    s = setup_sitting(api, members=6, present=3, open_vote=False)
    api.call("POST", f"/api/admin/items/{s.item_id}/quorum-failed")
    assert get_state(screen, s.sitting_id)["mode"] == "awaiting"
    publish(api, s.item_id)
    r = get_state(screen, s.sitting_id)["result"]
    assert r["status"] == "quorum_not_met" and (r["members"], r["present"]) == (6, 3)


def test_qr_svg_is_inline_and_scalable():
    svg = qr.qr_svg("http://example.test/verify/abc")
    assert svg.startswith("<svg") and "<?xml" not in svg
    head = svg.split(">", 1)[0]
    assert "width=" not in head and "height=" not in head and 'class="qr"' in head
