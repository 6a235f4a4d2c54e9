"""The counting station's scanner and tellers over the API: a scanned batch of the service's
own ballots is read, clear ballots counted through intake, unclear ones queued with crops;
two tellers decide (the 总监票人 when they disagree); a rescan is counted apart; close and tally
wait while a page waits."""
from __future__ import annotations

import hashlib
import json

import numpy as np
import pypdfium2 as pdfium
from helpers_live import setup_sitting
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from station_support import blank_pages, mark, png_bytes, write_tiff
from terminal_support import events, n_casts, query, refusals

from ballot_service.bundle.export import export_bundle
from ballot_service.bundle.verify import verify_bundle
from ballot_service.domain import scanning
from ballot_service.models import Record
from ballot_service.render import record_pdf
from ballot_service.scan import omr

KEYS = ("motion",)


def _register_chief(api, s):
    _, terms = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/terminals", {"terminals": [
        {"name": "总监票人", "kind": "counting_station", "holder": "赵总监", "teller_role": "chief"}]})
    return terms["terminals"][0]["credential"]


def _printed(api, s, n):
    _, printed = api.call("POST", f"/api/admin/items/{s.item_id}/paper-ballots", {"count": n})
    texts = printed["ballots"]
    api.call("POST", "/api/station/hand-out", {"ballots": texts}, credential=s.station)
    return texts


def _upload(client, cred, body: bytes, ctype: str):
    r = client.post("/api/station/scans", data=body, headers={"Authorization": f"Bearer {cred}",
                                                              "Content-Type": ctype})
    return r.status_code, r.get_json()


def test_scan_adjudicate_rescan_and_tally(app, api, client, tmp_path):
    s = setup_sitting(api, members=6, channel="paper")
    chief = _register_chief(api, s)
    texts = _printed(api, s, 5)
    rng = np.random.default_rng(7)
    blank = blank_pages(texts, KEYS)
    scans = [mark(blank[0], KEYS, {"motion": "for"}, rng),
             mark(blank[1], KEYS, {"motion": "against"}, rng),
             mark(blank[2], KEYS, {"motion": "for"}, rng, stray=True),       # unclear: a stray mark
             mark(blank[3], KEYS, {"motion": "for"}, rng, stray=True),
             np.full_like(blank[4], 255)]                                     # not a ballot: no QR code
    tiff = write_tiff(scans, tmp_path / "batch.tif").read_bytes()
    status, out = _upload(client, s.counter, tiff, "image/tiff")
    assert status == 201, out
    got = [p["status"] for p in out["pages"]]
    assert got == ["counted", "counted", "queued", "queued", "queued"], out
    assert len(events(app, "page_scanned")) == 5

    _, board = api.call("GET", "/api/station/board", credential=s.counter)
    row = board["items"][0]
    # the page without a QR code names no vote: shown apart, and it holds every paper vote
    assert (row["issued"], row["returned"], row["read"], row["pending"]) == (5, 2, 4, 3)
    assert board["unread_pending"] == 1
    # close and tally wait while pages wait
    status, err = api.call("POST", f"/api/admin/items/{s.item_id}/close", expect=None)
    assert status == 409 and "adjudication" in err["errors"][0]["message"]

    _, queue = api.call("GET", "/api/station/queue", credential=s.counter)
    pages = {p["id"]: p for p in queue["pages"]}
    assert len(pages) == 3
    stray = [p for p in queue["pages"] if p["has_qr"]]
    blankp = next(p for p in queue["pages"] if not p["has_qr"])
    assert len(stray) == 2 and all("stray mark outside the boxes" in p["reasons"] for p in stray)

    def decide(cred, pid, decision, expect=(201,)):
        return api.call("POST", f"/api/station/pages/{pid}/decision", {"decision": decision}, credential=cred,
                        expect=expect)

    # two tellers agree: counted through intake
    assert decide(s.counter, stray[0]["id"], {"marks": {"motion": "for"}})[1]["status"] == "queued"
    status, err = decide(s.counter, stray[0]["id"], {"marks": {"motion": "for"}}, expect=None)
    assert status == 409 and err["errors"][0]["where"] == "teller"          # the same teller twice
    assert decide(chief, stray[0]["id"], {"marks": {"motion": "for"}}, expect=None)[0] == 409
    assert decide(s.scrutineer, stray[0]["id"], {"marks": {"motion": "for"}})[1]["status"] == "counted"
    # they disagree: the page waits for the 总监票人, and nothing is tallied meanwhile
    decide(s.counter, stray[1]["id"], {"marks": {"motion": "for"}})
    assert decide(s.scrutineer, stray[1]["id"], {"marks": {"motion": "void"}})[1]["status"] == "waiting"
    assert decide(s.counter, stray[1]["id"], {"marks": {"motion": "for"}}, expect=None)[0] == 409
    assert decide(chief, stray[1]["id"], {"marks": {"motion": "void"}})[1]["status"] == "counted"
    # the page without a QR code: the tellers reject it (not a ballot)
    assert decide(s.station, blankp["id"], {"reject": True}, expect=None)[0] == 403   # no teller
    decide(s.counter, blankp["id"], {"reject": True})
    assert decide(s.scrutineer, blankp["id"], {"reject": True})[1]["status"] == "rejected"
    steps = [e.data for e in events(app, "adjudication_decided")]
    assert len(steps) == 7

    # a rescan with the same marks: neither returned nor refused; other marks: refused and an alert
    status, out = _upload(client, s.counter, png_bytes(scans[0]), "image/png")
    assert "pages" in out, (status, out)
    assert out["pages"][0]["status"] == "rescanned", out
    other = mark(blank[0], KEYS, {"motion": "against"}, np.random.default_rng(3))
    status, out = _upload(client, s.counter, png_bytes(other), "image/png")
    assert out["pages"][0]["status"] == "refused" and out["pages"][0]["outcome"].startswith("reused")
    _, board = api.call("GET", "/api/station/board", credential=s.counter)
    row = board["items"][0]
    assert (row["returned"], row["pending"], row["rescanned"], row["refused"]) == (4, 0, 1, 1), row
    assert (row["valid"], row["invalid"]) == (4, 0)
    assert len(board["alerts"]) == 1
    assert refusals(app, s.item_id)["reused"] == 1

    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    _, result = api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    assert result["rescanned"] == 1 and result["refused"] == 1 and result["returned"] == 4, result
    # the record carries it, and the offline check recounts it from the chain's paper_rescanned
    _, record = api.call("POST", f"/api/admin/items/{s.item_id}/record")
    assert len(events(app, "paper_rescanned")) == 1
    ((row,),) = query(app, select(Record))
    content = json.loads(row.body_json)
    assert content["result"]["rescanned"] == 1
    doc = pdfium.PdfDocument(record_pdf.render(content, row.signature))
    text = doc[0].get_textpage().get_text_range()
    doc.close()
    assert "重复扫描1张" in text.replace(" ", "").replace("\r\n", "")
    db = app.extensions["ballot_sessionmaker"]()
    bundle = export_bundle(db, app.config["SETTINGS"], tmp_path / "bundle")
    db.close()
    summary = verify_bundle(bundle)
    assert summary["ok"] and summary["rounds_recounted"] >= 1
    # the bundle carries each kept page's hash, never the image (a separate export has those)
    files = [f.read_bytes() for f in bundle.rglob("*") if f.is_file()]
    for e in events(app, "page_scanned"):
        assert any(json.loads(e.data)["sha256"].encode() in f for f in files)
    assert not any(b"\x89PNG" in f or b"iVBORw0KGgo" in f for f in files)


def test_bad_uploads_and_decisions_change_nothing(app, api, client):
    s = setup_sitting(api, members=3, channel="paper")
    assert _upload(client, s.counter, b"%PDF-1.4 broken", "application/pdf")[0] == 400
    assert _upload(client, s.counter, b"hello", "text/plain")[0] == 400
    assert _upload(client, s.counter, b"", "image/png")[0] == 400
    status, _ = api.call("POST", "/api/station/pages/nosuchpage/decision", {"decision": {"reject": True}},
                         credential=s.counter, expect=None)
    assert status == 404
    assert events(app, "page_scanned") == []


def test_count_report_names_the_tellers_and_is_in_the_chain(app, api):
    s = setup_sitting(api, members=3, channel="paper")
    r = app.test_client().post("/api/station/count-report", headers={"Authorization": f"Bearer {s.counter}"})
    assert r.status_code == 201 and r.data.startswith(b"%PDF")
    (ev,) = events(app, "count_report_made")
    data = json.loads(ev.data)
    assert data["pdf_sha256"] == hashlib.sha256(r.data).hexdigest()
    assert data["tellers"]["counter"] and data["tellers"]["scrutineer"]
    assert data["items"][0]["issued"] == 0


def test_only_the_asked_for_circle_counts_when_the_item_says_so(app, api, client):
    s = setup_sitting(api, members=4, channel="paper", open_vote=False)
    _, item = api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items",
                       {"key": "circle", "kind": "resolution", "title": "只认划圈的决议", "channel": "paper",
                        "mark_rule": "circle"})
    assert api.call("POST", f"/api/admin/sessions/{s.sitting_id}/items",
                    {"key": "bad", "kind": "resolution", "title": "x", "mark_rule": "tick"}, expect=None)[0] == 400
    api.call("POST", f"/api/admin/items/{item['id']}/open")
    _, printed = api.call("POST", f"/api/admin/items/{item['id']}/paper-ballots", {"count": 2})
    api.call("POST", "/api/station/hand-out", {"ballots": printed["ballots"]}, credential=s.station)
    rng = np.random.default_rng(2)
    blank = blank_pages(printed["ballots"], KEYS)
    circle = mark(blank[0], KEYS, {"motion": "for"}, rng, style="circle")
    tick = mark(blank[1], KEYS, {"motion": "for"}, rng, style="tick")
    assert _upload(client, s.counter, png_bytes(circle), "image/png")[1]["pages"][0]["status"] == "counted"
    page = _upload(client, s.counter, png_bytes(tick), "image/png")[1]["pages"][0]
    assert page["status"] == "queued" and page["reasons"] == ["not the asked-for mark ○"]


@given(st.lists(st.tuples(st.sampled_from(["marked", "empty"]), st.floats(0, 30)), min_size=1, max_size=12),
       st.sampled_from(["any", "circle"]))
def test_mark_rule_never_lets_another_symbol_through(boxes, rule):
    reading = omr.PageReading(source="", page=1, status="readable", qr_text="x",
                              boxes=[omr.BoxReading(f"c{i}", "for", state, 0, 0, 0, 0, centre)
                                     for i, (state, centre) in enumerate(boxes)],
                              marks={f"c{i}": ("for" if state == "marked" else None)
                                     for i, (state, _) in enumerate(boxes)})
    scanning.apply_mark_rule(reading, rule)
    odd = any(state == "marked" and centre > scanning.CENTRE_MAX for state, centre in boxes)
    assert reading.readable == (rule == "any" or not odd)
    if not reading.readable:
        assert reading.marks == {} and scanning.NOT_ASKED_MARK in reading.reasons


def test_a_ballot_read_by_eye_counts_once_the_other_teller_confirms(app, api):
    s = setup_sitting(api, members=3, channel="paper")
    texts = _printed(api, s, 2)
    status, info = api.call("POST", "/api/station/ballot-info", {"ballot": texts[0]}, credential=s.counter)
    assert [c["key"] for c in info["candidates"]] == ["motion"]
    assert api.call("POST", "/api/station/by-eye", {"ballot": texts[0], "marks": {"motion": "for"}},
                    credential=s.station, expect=None)[0] == 403            # not a teller's station
    _, page = api.call("POST", "/api/station/by-eye", {"ballot": texts[0], "marks": {"motion": "for"}},
                       credential=s.counter)
    assert page["status"] == "queued" and n_casts(app) == 0
    assert api.call("POST", f"/api/station/pages/{page['id']}/decision", {"decision": {"marks": {"motion": "for"}}},
                    credential=s.counter, expect=None)[0] == 409           # the same teller cannot confirm
    assert api.call("POST", f"/api/station/pages/{page['id']}/decision",
                    {"decision": {"marks": {"motion": "for"}, "ballot": texts[1]}},
                    credential=s.scrutineer, expect=None)[0] == 400        # another ballot than the page's
    _, done = api.call("POST", f"/api/station/pages/{page['id']}/decision", {"decision": {"marks": {"motion": "for"}}},
                       credential=s.scrutineer)
    assert done["status"] == "counted" and n_casts(app) == 1
