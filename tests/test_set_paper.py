"""A ballot set's paper sheet (issue 20): the set's elections printed on one A4 sheet, in the
set's order, under one QR code holding one signed ballot per election. The desk's hand-out of
a stack of sheets activates every election's ballot; the counting station reads a scanned sheet
section by section and sends each election its own cast through intake, so an over-selected
委员 section is invalid for that election only; nothing stored ties one election's cast to
another's from the same sheet (serials, signatures and receipts are each round's own)."""
from __future__ import annotations

import numpy as np
import pypdfium2 as pdfium
import pytest
from click.testing import CliRunner
from console_support import print_ballots
from helpers_live import Api, setup_sitting
from omr_synth import distort, draw_mark, print_and_rasterise
from sqlalchemy import func, select
from station_support import write_tiff
from terminal_support import query

from ballot_service.cli import main
from ballot_service.domain import print_jobs, scanning, set_sheets
from ballot_service.formats import ballot_layout as bl
from ballot_service.formats import set_sheet
from ballot_service.formats.ballots import BallotRefused
from ballot_service.models import Cast, Item, PaperBallot, ScannedPage
from ballot_service.scan.find_qr import find_qr

SET = "换届选举"
DPI = 200
ELECTIONS = (("zr", "principal", 1, "AB"), ("fzr", "vice", 1, "CD"), ("wy", "committee_member", 2, "EFG"))


def _set_sitting(api, members=5):
    s = setup_sitting(api, members=members, open_vote=False, channel="paper")
    ids = []
    for key, office, places, cands in ELECTIONS:
        spec = {"key": key, "kind": "election", "title": f"选举{key}", "office": office, "places": places,
                "channel": "paper", "ballot_set": SET,
                "candidates": [{"key": c, "title": f"候选人{c}"} for c in cands]}
        ids.append(api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items", spec)[1]["id"])
    return s, ids


def _layout(app, item_id):
    db = app.extensions["ballot_sessionmaker"]()
    try:
        return set_sheets.plan(set_sheets.sheet_rounds(db, db.get(Item, item_id)))
    finally:
        db.close()


def _mark(page, layout, votes, rng):
    """Tick each section's candidates: `votes` a dict per section {candidate key: mark}."""
    img = page.copy()
    sections = layout.pages[0]
    geoms = set_sheet.sheet_geometry([(tuple(k for k in cands), bl.MARKS, lay.write_in_lines)
                                      for (_, _, _, cands), lay in zip(ELECTIONS, sections)])
    for geom, marks in zip(geoms, votes):
        for k, m in marks.items():
            draw_mark(img, geom.boxes[(k, m)], "tick", DPI / 25.4, rng)
    return distort(img, rng, dpi=DPI)


def test_a_set_prints_on_one_sheet_is_handed_out_once_and_each_election_counts_its_own_section(app, api, client,
                                                                                                tmp_path):
    s, (zr, fzr, wy) = _set_sitting(api)
    _, printed = api.call("POST", f"/api/admin/items/{fzr}/paper-ballots", {"count": 5})
    assert printed["pages"] == 1 and len(printed["ballots"]) == 5
    assert all(set_sheet.is_set_text(t) for t in printed["ballots"])
    tokens = [set_sheet.section_tokens(t) for t in printed["ballots"]]
    assert [[t["payload"]["item"] for t in sheet] for sheet in tokens] == [[zr, fzr, wy]] * 5   # the set's order
    serials = [t["payload"]["serial"] for sheet in tokens for t in sheet]
    assert len(set(serials)) == 15                              # each election's ballot its own serial
    assert len({t["sig"] for sheet in tokens for t in sheet}) == 15
    _, out = api.call("POST", "/api/station/hand-out", {"ballots": printed["ballots"]}, credential=s.station)
    assert out["handed_out"] == 5
    handed = dict(query(app, select(PaperBallot.round_id, func.count()).where(PaperBallot.handed_out.is_(True))
                        .group_by(PaperBallot.round_id)))
    assert sorted(handed.values()) == [5, 5, 5]                 # every election's ballot activated
    api.call("POST", f"/api/admin/items/{zr}/open")

    layout = _layout(app, zr)
    assert [s.item_title for s in layout.pages[0]] == ["选举zr", "选举fzr", "选举wy"]
    blank = print_and_rasterise(layout, [(t, "0") for t in printed["ballots"]], DPI)
    assert len(blank) == 5                                      # one A4 page a sheet
    rng = np.random.default_rng(20)
    votes = [({"A": "for"}, {"C": "for"}, {"E": "for", "F": "for"}),
             ({"A": "for"}, {"C": "for"}, {"E": "for", "G": "for"}),
             ({"A": "for"}, {"D": "for"}, {"E": "for", "F": "for", "G": "for"}),   # 委员 over-selected
             ({"B": "for"}, {"C": "for"}, {"F": "for"}),
             ({"B": "for"}, {"D": "for"}, {"E": "for", "F": "against"})]
    scans = [_mark(p, layout, v, rng) for p, v in zip(blank, votes)]
    r = client.post("/api/station/scans", data=write_tiff(scans, tmp_path / "sheets.tif").read_bytes(),
                    headers={"Authorization": f"Bearer {s.counter}", "Content-Type": "image/tiff"})
    assert r.status_code == 201, r.get_json()
    pages = r.get_json()["pages"]
    assert [p["status"] for p in pages] == ["counted"] * 15, pages   # three sections a sheet, each counted
    api.call("POST", f"/api/admin/items/{zr}/close")
    result = api.call("POST", f"/api/admin/items/{zr}/tally")[1]
    assert result["elected"] == ["A"] and (result["valid"], result["invalid"]) == (5, 0)
    assert result["ballot_set"]["fzr"]["elected"] == ["C"] and result["ballot_set"]["fzr"]["invalid"] == 0
    committee = result["ballot_set"]["wy"]
    assert (committee["valid"], committee["invalid"]) == (4, 1)      # only that election's ballot is void
    assert committee["elected"] == ["E"]
    got = {c["key"]: c["for"] for c in committee["candidates"]}
    assert got == {"E": 3, "F": 2, "G": 1}
    for i in (zr, fzr, wy):
        api.call("POST", f"/api/admin/items/{i}/record")
    # nothing pairs one election's cast with another's: serials and signatures are each round's own
    casts = query(app, select(Cast.serial, Cast.signature, Cast.receipt))
    assert len(casts) == 15 and len({c.signature for c in casts}) == 15 and len({c.receipt for c in casts}) == 15


def test_a_queued_section_shows_its_election_and_holds_back_only_that_election(app, api, client, tmp_path):
    s, (zr, fzr, wy) = _set_sitting(api, members=3)
    _, printed = api.call("POST", f"/api/admin/items/{zr}/paper-ballots", {"count": 1})
    api.call("POST", "/api/station/hand-out", {"ballots": printed["ballots"]}, credential=s.station)
    api.call("POST", f"/api/admin/items/{zr}/open")
    layout = _layout(app, zr)
    (blank,) = print_and_rasterise(layout, [(printed["ballots"][0], "0")], DPI)
    rng = np.random.default_rng(3)
    img = blank.copy()
    geoms = set_sheet.sheet_geometry([(tuple(c), bl.MARKS, lay.write_in_lines)
                                      for (_, _, _, c), lay in zip(ELECTIONS, layout.pages[0])])
    draw_mark(img, geoms[0].boxes[("A", "for")], "tick", DPI / 25.4, rng)
    draw_mark(img, geoms[1].boxes[("C", "for")], "tick", DPI / 25.4, rng)
    draw_mark(img, geoms[1].boxes[("C", "against")], "circle", DPI / 25.4, rng)   # two marks: unclear
    draw_mark(img, geoms[2].boxes[("E", "for")], "tick", DPI / 25.4, rng)
    r = client.post("/api/station/scans", data=write_tiff([distort(img, rng, dpi=DPI)], tmp_path / "s.tif").read_bytes(),
                    headers={"Authorization": f"Bearer {s.counter}", "Content-Type": "image/tiff"})
    assert [p["status"] for p in r.get_json()["pages"]] == ["counted", "queued", "counted"]
    _, queue = api.call("GET", "/api/station/queue", credential=s.counter)
    (page,) = queue["pages"]
    assert page["item_id"] == fzr and page["title"] == "选举fzr" and page["candidates"] == ["C", "D"]
    assert "section" in page["crops"]                            # the tellers see that election's part
    for cred in (s.counter, s.scrutineer):
        api.call("POST", f"/api/station/pages/{page['id']}/decision", {"decision": {"marks": {"C": "for"}}},
                 credential=cred)
    api.call("POST", f"/api/admin/items/{zr}/close")
    result = api.call("POST", f"/api/admin/items/{zr}/tally")[1]
    vice = result["ballot_set"]["fzr"]
    assert vice["valid"] == 1 and {c["key"]: c["for"] for c in vice["candidates"]} == {"C": 1, "D": 0}
    rows = query(app, select(ScannedPage.round_id, ScannedPage.sha256))
    assert len(rows) == 3 and len({r.round_id for r in rows}) == 3 and len({r.sha256 for r in rows}) == 1
    # once the kept image is discarded, no page row still names the sheet's ballots
    db = app.extensions["ballot_sessionmaker"]()
    try:
        assert scanning.discard_images(db, s.sitting_id) == 3
        db.commit()
    finally:
        db.close()
    kept = query(app, select(ScannedPage.qr_text, ScannedPage.outcome, ScannedPage.boxes, ScannedPage.decisions))
    assert all(k.qr_text is None and k.outcome is None and k.boxes == [] for k in kept)
    assert all("decision" not in d for k in kept for d in k.decisions)


def test_read_by_eye_lists_the_sheets_sections_and_a_sheet_is_not_taken_whole(app, api):
    s, (zr, fzr, wy) = _set_sitting(api, members=3)
    _, printed = api.call("POST", f"/api/admin/items/{zr}/paper-ballots", {"count": 1})
    api.call("POST", "/api/station/hand-out", {"ballots": printed["ballots"]}, credential=s.station)
    api.call("POST", f"/api/admin/items/{zr}/open")
    sheet = printed["ballots"][0]
    _, info = api.call("POST", "/api/station/ballot-info", {"ballot": sheet}, credential=s.counter)
    assert [x["item_id"] for x in info["sections"]] == [zr, fzr, wy]
    assert info["sections"][2]["ballot"] == printed["sections"][str(wy)][0]
    status, err = api.call("POST", "/api/station/by-eye", {"ballot": sheet, "marks": {}}, credential=s.counter,
                           expect=None)
    assert status == 400 and "逐项" in err["errors"][0]["message_zh"]
    _, out = api.call("POST", "/api/station/by-eye", {"ballot": info["sections"][2]["ballot"],
                                                       "marks": {"E": "for", "F": "for", "G": "for"}},
                      credential=s.counter)
    assert out["status"] == "queued"


def test_a_stack_mixing_a_sheet_with_a_single_ballot_or_sheets_of_two_sets_is_refused(app, api):
    s, (zr, fzr, wy) = _set_sitting(api, members=3)
    _, sheets = api.call("POST", f"/api/admin/items/{zr}/paper-ballots", {"count": 2})
    _, single = api.call("POST", f"/api/admin/items/{s.item_id}/paper-ballots", {"count": 1})
    status, _ = api.call("POST", "/api/station/hand-out", {"ballots": sheets["ballots"] + single["ballots"]},
                         credential=s.station, expect=None)
    assert status == 400
    assert query(app, select(func.count()).select_from(PaperBallot).where(PaperBallot.handed_out.is_(True)))[0][0] == 0


@pytest.mark.parametrize("text", ["BSS1.1.1", "BSS1.1.1.3~1~" + "a" * 32 + "~" + "A" * 85,
                                  "BSS1.01.1.3~1~" + "a" * 32 + "~" + "A" * 86,
                                  "BSS1.1.1." + ".".join(f"{i}~1~{'a' * 32}~{'A' * 86}" for i in (3, 3))])
def test_a_malformed_sheet_text_is_refused_as_malformed(text):
    with pytest.raises(BallotRefused) as exc:
        set_sheet.section_tokens(text)
    assert exc.value.reason == "malformed"


def test_sections_too_long_for_one_page_go_on_pages_of_whole_sections():
    assert set_sheet.paginate([2, 2, 5]) == [[0, 1, 2]]
    pages = set_sheet.paginate([24, 3, 3])
    assert pages == [[0], [1, 2]]
    with pytest.raises(ValueError):
        set_sheet.paginate([30])


def test_the_cli_prints_a_sets_sheets_verifies_and_hands_one_out_and_scan_counts_its_sections(app, api, settings_env,
                                                                                             tmp_path):
    s, (zr, fzr, wy) = _set_sitting(api, members=3)
    out = tmp_path / "printed"
    res = CliRunner().invoke(main, ["ballots", "print", str(wy), "--count", "2", "--out", str(out),
                                    "--processes", "1"], env=settings_env)
    assert res.exit_code == 0, res.output
    (pdf,) = sorted(out.glob("*.pdf"))
    doc = pdfium.PdfDocument(str(pdf))
    pages = [np.ascontiguousarray(doc[i].render(scale=DPI / 72, grayscale=True).to_numpy()) for i in range(len(doc))]
    doc.close()
    assert len(pages) == 2                                       # two sheets, one page each
    counts = dict(query(app, select(PaperBallot.round_id, func.count()).group_by(PaperBallot.round_id)))
    assert sorted(counts.values()) == [2, 2, 2]
    texts = [find_qr(p)[0] for p in pages]
    res = CliRunner().invoke(main, ["ballots", "verify", texts[0]], env=settings_env)
    assert res.exit_code == 1 and res.output.count("签名有效") == 1 and "spare" in res.output   # not handed out yet
    res = CliRunner().invoke(main, ["ballots", "hand-out", str(zr), texts[0]], env=settings_env)
    assert res.exit_code == 0, res.output
    res = CliRunner().invoke(main, ["ballots", "verify", texts[0]], env=settings_env)
    assert res.exit_code == 0 and res.output.count("签名有效") == 3, res.output
    api.call("POST", f"/api/admin/items/{zr}/open")
    layout = _layout(app, zr)
    scan = _mark(pages[0], layout, ({"A": "for"}, {"D": "for"}, {"F": "for", "G": "against"}),
                 np.random.default_rng(5))
    res = CliRunner().invoke(main, ["scan", str(s.sitting_id), str(write_tiff([scan], tmp_path / "one.tif"))],
                             env=settings_env)
    assert res.exit_code == 0 and "counted 3" in res.output, res.output


def test_the_consoles_print_job_prints_the_sets_sheets(app, console):
    api = Api.flask(app.test_client())
    s, (zr, fzr, wy) = _set_sitting(api, members=3)
    html = console.get(f"/console/items/{fzr}").get_data(as_text=True)
    assert 'id="set-sheet-note"' in html and SET in html
    state = print_ballots(console, fzr, 2)
    assert state["state"] == "done" and state["done"] == 2, state
    counts = dict(query(app, select(PaperBallot.round_id, func.count()).group_by(PaperBallot.round_id)))
    assert sorted(counts.values()) == [2, 2, 2]                 # 2 sheets: every election's ballot on each
    pdf = console.get(f"/console/items/{fzr}/ballots/{state['files'][0]}")
    assert pdf.status_code == 200
    doc = pdfium.PdfDocument(pdf.data)
    assert len(doc) == 2                                         # a page a sheet
    doc.close()
    pdf.close()


def test_a_sheet_whose_qr_code_is_unreadable_is_entered_by_eye_election_by_election(app, api, client, tmp_path):
    s, (zr, fzr, wy) = _set_sitting(api, members=3)
    _, printed = api.call("POST", f"/api/admin/items/{zr}/paper-ballots", {"count": 1})
    api.call("POST", "/api/station/hand-out", {"ballots": printed["ballots"]}, credential=s.station)
    api.call("POST", f"/api/admin/items/{zr}/open")
    (blank,) = print_and_rasterise(_layout(app, zr), [(printed["ballots"][0], "0")], DPI)
    q, ppm = bl.page_geometry(1).qr, DPI / 25.4
    blank[int(q.y * ppm):int(q.bottom * ppm), int(q.x * ppm):int(q.right * ppm)] = 255   # torn off
    r = client.post("/api/station/scans", data=write_tiff([blank], tmp_path / "torn.tif").read_bytes(),
                    headers={"Authorization": f"Bearer {s.counter}", "Content-Type": "image/tiff"})
    (page,) = r.get_json()["pages"]
    assert page["status"] == "queued" and "election" not in page
    status, err = api.call("POST", f"/api/station/pages/{page['id']}/decision",
                           {"decision": {"ballot": printed["ballots"][0], "marks": {}}}, credential=s.counter,
                           expect=None)
    assert status == 400 and "逐项录入" in err["errors"][0]["message_zh"]


def test_an_election_joining_the_set_while_its_sheets_print_voids_that_print(app, console, monkeypatch):
    """The attack: a print job of the set's sheets renders outside any transaction; an election
    saved into the set meanwhile (the set is still a draft) was then on no sheet of the batch
    recorded for the set. The job compares the set's elections and sheet at record time."""
    api = Api.flask(app.test_client())
    s, (zr, fzr, wy) = _set_sitting(api, members=3)
    real = print_jobs.write_ballot_pdfs

    def join_while_rendering(*args, **kw):
        api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items", {
            "key": "sj", "kind": "election", "title": "选举上一级人大代表", "office": "deputy_higher", "places": 1,
            "channel": "paper", "ballot_set": SET, "candidates": [{"key": c, "title": f"候选人{c}"} for c in "HI"]})
        return real(*args, **kw)

    monkeypatch.setattr(print_jobs, "write_ballot_pdfs", join_while_rendering)
    state = print_ballots(console, fzr, 2)
    assert state["state"] == "failed" and "印制期间" in state["error"], state
    assert query(app, select(func.count()).select_from(PaperBallot))[0][0] == 0
    monkeypatch.setattr(print_jobs, "write_ballot_pdfs", real)
    state = print_ballots(console, fzr, 2)  # again: every election of the set on each sheet
    assert state["state"] == "done", state
    counts = dict(query(app, select(PaperBallot.round_id, func.count()).group_by(PaperBallot.round_id)))
    assert sorted(counts.values()) == [2, 2, 2, 2]
