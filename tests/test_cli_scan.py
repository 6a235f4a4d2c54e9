"""`ballot-service scan` reads a folder of scanned pages into a session through the station's
intake; `scan-images export` writes the kept images with their hashes; `scan-images discard`
drops them (refused while a page waits), leaving the hashes in the audit chain."""
from __future__ import annotations

import hashlib
import json

import cv2
import numpy as np
from click.testing import CliRunner
from helpers_live import setup_sitting
from sqlalchemy import select
from station_support import blank_pages, mark
from terminal_support import events, n_casts

from ballot_service.cli import main
from ballot_service.models import Cast


def run(settings_env, *args):
    result = CliRunner().invoke(main, list(args), env=settings_env, catch_exceptions=False)
    return result.exit_code, result.output


def test_scan_folder_export_and_discard(app, api, settings_env, tmp_path):
    s = setup_sitting(api, members=4, channel="paper")
    _, printed = api.call("POST", f"/api/admin/items/{s.item_id}/paper-ballots", {"count": 3})
    api.call("POST", "/api/station/hand-out", {"ballots": printed["ballots"]}, credential=s.station)
    rng = np.random.default_rng(11)
    blank = blank_pages(printed["ballots"], ("motion",))
    folder = tmp_path / "scanner"
    folder.mkdir()
    cv2.imwrite(str(folder / "p1.jpg"), mark(blank[0], ("motion",), {"motion": "for"}, rng))
    cv2.imwrite(str(folder / "p2.png"), mark(blank[1], ("motion",), {"motion": "abstain"}, rng, stray=True))
    (folder / "notes.txt").write_text("not a scan")          # other files are left alone
    code, out = run(settings_env, "scan", str(s.sitting_id), str(folder))
    assert code == 0, out
    assert "counted 1" in out and "queued 1" in out
    assert n_casts(app) == 1
    hashes = {json.loads(e.data)["sha256"] for e in events(app, "page_scanned")}

    code, out = run(settings_env, "scan-images", "export", str(s.sitting_id), str(tmp_path / "images"))
    assert code == 0 and "2 page images" in out
    manifest = json.loads((tmp_path / "images" / "manifest.json").read_text())
    assert {hashlib.sha256((tmp_path / "images" / f"{m['page_id']}.png").read_bytes()).hexdigest()
            for m in manifest} == hashes
    code, out = run(settings_env, "scan-images", "discard", str(s.sitting_id), "--yes")
    assert code == 2 and "wait for adjudication" in out            # a page still waits

    _, queue = api.call("GET", "/api/station/queue", credential=s.counter)
    pid = queue["pages"][0]["id"]
    for cred in (s.counter, s.scrutineer):
        api.call("POST", f"/api/station/pages/{pid}/decision", {"decision": {"marks": {"motion": "abstain"}}},
                 credential=cred)
    assert n_casts(app) == 2
    # 重新计票: the kept scans read again; the adjudicated page is still unclear to the reader
    code, out = run(settings_env, "recount", str(s.item_id))
    assert code == 0 and "same 1" in out and "unclear now 1" in out, out
    api.call("POST", f"/api/admin/items/{s.item_id}/close")  # casts in clear now (sealed while open)
    db = app.extensions["ballot_sessionmaker"]()
    cast = db.scalar(select(Cast).where(Cast.marks["motion"].as_string() == "for"))
    cast.marks = {"motion": "against"}                    # what a tampered count would look like
    db.commit()
    db.close()
    code, out = run(settings_env, "recount", str(s.item_id))
    assert code == 1 and "DIFFERENT" in out and "read now {'motion': 'for'}" in out, out
    code, out = run(settings_env, "scan-images", "discard", str(s.sitting_id), "--yes")
    assert code == 0 and "2 page images deleted" in out
    code, out = run(settings_env, "scan-images", "export", str(s.sitting_id), str(tmp_path / "again"))
    assert "0 page images" in out
    assert len(events(app, "scanned_images_discarded")) == 1


def test_scan_refuses_a_file_that_is_not_a_scan(app, api, settings_env, tmp_path):
    s = setup_sitting(api, members=2, channel="paper")
    bad = tmp_path / "x.pdf"
    bad.write_bytes(b"%PDF-1.4 nothing")
    code, out = run(settings_env, "scan", str(s.sitting_id), str(bad))
    assert code == 2 and "not a readable PDF" in out
