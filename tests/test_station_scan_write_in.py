"""A scanned paper election ballot with a name written on its 另选他人 line (issue 20): the mark
reader cannot read handwriting, so the page goes to the adjudication queue with the reason;
the 计票人 and the 监票人 each transcribe the name ("write_in:<name>": "for"), and when they
agree it is counted through intake; the tally counts written-in persons by normalised name.
A ballot with an empty 另选 line is counted by the reader alone."""
from __future__ import annotations

import json

import numpy as np
from helpers_live import setup_sitting
from station_support import png_bytes, scan_write_in, write_in_election, write_in_pages, write_tiff
from terminal_support import events

W = "write_in:"


def _printed(api, s, item_id, n):
    _, printed = api.call("POST", f"/api/admin/items/{item_id}/paper-ballots", {"count": n})
    api.call("POST", "/api/station/hand-out", {"ballots": printed["ballots"]}, credential=s.station)
    return printed["ballots"]


def _upload(client, cred, body: bytes, ctype: str):
    r = client.post("/api/station/scans", data=body, headers={"Authorization": f"Bearer {cred}",
                                                              "Content-Type": ctype})
    return r.status_code, r.get_json()


def test_a_written_in_name_is_transcribed_by_two_tellers_and_tallied_by_normalised_name(app, api, client,
                                                                                       tmp_path):
    s = setup_sitting(api, members=5, open_vote=False, channel="paper")
    item_id = write_in_election(api, s.sitting_id)
    texts = _printed(api, s, item_id, 5)
    api.call("POST", f"/api/admin/items/{item_id}/open")
    rng = np.random.default_rng(11)
    blank = write_in_pages(texts)
    scans = [scan_write_in(blank[0], rng, marks=("A",)), scan_write_in(blank[1], rng, marks=("A",)),
             scan_write_in(blank[2], rng, name_on_line=True), scan_write_in(blank[3], rng, name_on_line=True),
             scan_write_in(blank[4], rng, marks=("B",), name_on_line=True)]   # 2 chosen for 1 seat: invalid
    status, out = _upload(client, s.counter, write_tiff(scans, tmp_path / "b.tif").read_bytes(), "image/tiff")
    assert status == 201, out
    assert [p["status"] for p in out["pages"]] == ["counted", "counted", "queued", "queued", "queued"], out
    _, queue = api.call("GET", "/api/station/queue", credential=s.counter)
    pages = queue["pages"]
    assert len(pages) == 3 and all(any("另选" in r for r in p["reasons"]) for p in pages), pages
    # no box is unclear, so no crops: the station page shows the tellers the whole page
    assert not any(p["crops"] for p in pages)
    image = client.get(f"/api/station/pages/{pages[0]['id']}/image", headers={"Authorization": f"Bearer {s.counter}"})
    assert image.status_code == 200 and image.data.startswith(b"\x89PNG")

    def transcribe(page, marks):
        for cred in (s.counter, s.scrutineer):
            _, done = api.call("POST", f"/api/station/pages/{page['id']}/decision", {"decision": {"marks": marks}},
                               credential=cred)
        return done["status"]

    # the same person written twice, once with blanks around the name: counted as one person
    assert transcribe(pages[0], {f"{W}张三": "for"}) == "counted"
    assert transcribe(pages[1], {f"{W} 张三 ": "for"}) == "counted"
    assert transcribe(pages[2], {"B": "for", f"{W}李四": "for"}) == "counted"
    api.call("POST", f"/api/admin/items/{item_id}/close")
    result = api.call("POST", f"/api/admin/items/{item_id}/tally")[1]
    assert (result["returned"], result["valid"], result["invalid"]) == (5, 4, 1)
    assert result["write_ins"] == [{"name": "张三", "for": 2, "elected": False}]
    assert {c["key"]: c["for"] for c in result["candidates"]} == {"A": 2, "B": 0}
    # the tellers' 计票结果报告单 names the written-in person with their votes
    r = client.post("/api/station/count-report", headers={"Authorization": f"Bearer {s.counter}"})
    assert r.status_code == 201, r.get_json()
    (row,) = [it for it in json.loads(events(app, "count_report_made")[0].data)["items"] if it["item_id"] == item_id]
    assert row["candidates_count"][-1] == {"title": "另选 张三", "counts": [["赞成", 2]]}
    # a rescan of a transcribed page is the same ballot again: not counted twice
    status, out = _upload(client, s.counter, png_bytes(scans[2]), "image/png")
    assert out["pages"][0]["status"] == "queued", out  # handwriting again: to the tellers again


def test_a_ballot_read_by_eye_takes_its_written_in_names(api):
    """The read-by-eye form (USB QR scanner, marks clicked) carries the ballot's 另选他人 lines
    too (`write_ins`, names as written): ballot-info says how many lines the ballot prints and
    how many seats; the names are checked as a scanned page's are; more names than printed lines
    is refused, and a ballot choosing more persons than seats is taken as written (it counts
    invalid), the answer saying so."""
    s = setup_sitting(api, members=5, open_vote=False, channel="paper")
    item_id = write_in_election(api, s.sitting_id)
    texts = _printed(api, s, item_id, 3)
    api.call("POST", f"/api/admin/items/{item_id}/open")
    _, info = api.call("POST", "/api/station/ballot-info", {"ballot": texts[0]}, credential=s.counter)
    assert (info["places"], info["write_in_lines"]) == (1, 1), info

    def by_eye(cred, text, marks, write_ins, expect=(201,)):
        return api.call("POST", "/api/station/by-eye", {"ballot": text, "marks": marks, "write_ins": write_ins},
                        credential=cred, expect=expect)

    for bad, where in ((["张三", "李四"], "write_ins"), ([""], "write_ins.0"), (["张\u200b三"], "write_ins.0"),
                       (["张" * 200], "write_ins.0"), ("张三", "write_ins"), ([7], "write_ins.0")):
        status, err = by_eye(s.counter, texts[0], {}, bad, expect=None)
        assert status == 400 and err["errors"][0]["where"] == where, (bad, err)
        assert err["errors"][0]["message_zh"], err
    _, first = by_eye(s.counter, texts[0], {}, [" 张三 "])
    assert first["status"] == "queued" and first["over_selected"] is False
    _, done = api.call("POST", f"/api/station/pages/{first['id']}/decision",
                       {"decision": {"marks": {f"{W}张三": "for"}}}, credential=s.scrutineer)
    assert done["status"] == "counted"
    _, over = by_eye(s.counter, texts[1], {"A": "for"}, ["李四"])
    assert over["over_selected"] is True  # 2 persons for 1 seat: taken as written, counted invalid
    api.call("POST", f"/api/station/pages/{over['id']}/decision",
             {"decision": {"marks": {"A": "for", f"{W}李四": "for"}}}, credential=s.scrutineer)
    api.call("POST", f"/api/admin/items/{item_id}/close")
    result = api.call("POST", f"/api/admin/items/{item_id}/tally")[1]
    assert (result["returned"], result["valid"], result["invalid"]) == (2, 1, 1), result
    assert result["write_ins"] == [{"name": "张三", "for": 1, "elected": False}]


def test_no_written_in_names_on_a_ballot_without_another_person_lines(api):
    s = setup_sitting(api, members=3, open_vote=False, channel="paper")
    texts = _printed(api, s, s.item_id, 1)
    api.call("POST", f"/api/admin/items/{s.item_id}/open")
    _, info = api.call("POST", "/api/station/ballot-info", {"ballot": texts[0]}, credential=s.counter)
    assert info["write_in_lines"] == 0
    status, err = api.call("POST", "/api/station/by-eye", {"ballot": texts[0], "marks": {"motion": "for"},
                                                           "write_ins": ["张三"]}, credential=s.counter, expect=None)
    assert status == 400 and err["errors"][0]["where"] == "write_ins", err
