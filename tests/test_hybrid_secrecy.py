"""The secrecy of a lone paper ballot in a hybrid vote (issue #18 item 5 against issue #15): the
chain names the member the secretariat allowed paper (`ballot_replacement`), so if anything an
attacker holds tells the paper cast from the tablet casts, it gives that deputy's choices.

Eight deputies vote on their tablets and one, allowed paper by name, votes on paper. Then, as
someone holding the audit bundle (every file) or a copy of the SQLite files after the close
(every table through SQL, every page of the main file, the WAL), the paper cast must look like
any tablet cast: the same signature kind and shape on its line and in its row, no channel and
no paper serial stored with it; while the record still gives the split by channel as counts."""
from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import numpy as np
import sqlite_pages as sp
from bundle_support import export_app_bundle
from helpers_live import setup_sitting, vote
from sqlalchemy import select
from station_support import blank_pages, mark, png_bytes
from terminal_support import query

from ballot_service.bundle.verify import verify_bundle
from ballot_service.domain import scanning
from ballot_service.models import AuditEvent, ScannedPage

TABLETS = 8
CHOICES = ("for", "against", "abstain")


def _hybrid_round_with_one_paper_ballot(api) -> tuple:
    s = setup_sitting(api, members=TABLETS + 1, channel="hybrid")
    for n, no in enumerate(s.members[:TABLETS]):
        vote(api, s.creds[no], {"motion": CHOICES[n % 3]})
    paper_member = s.members[TABLETS]
    _, allowed = api.call("POST", f"/api/admin/items/{s.item_id}/replacement",
                          {"member": paper_member, "reason": "表决器故障", "channel": "paper"})
    text = allowed["ballot"]  # printed on demand: the QR text (and the PDF) only in this answer
    _, receipt = api.call("POST", "/api/station/paper", {"ballot": text, "marks": {"motion": "against"}},
                          credential=s.station, expect=(201,))
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    api.call("POST", f"/api/admin/items/{s.item_id}/tally")
    api.call("POST", f"/api/admin/items/{s.item_id}/record")
    return s, receipt["serial"]


def _serials(bundle: Path) -> list[str]:
    counts = json.loads((bundle / "counts.json").read_text("utf-8"))
    (rnd,) = counts["items"][0]["rounds"]
    return [json.loads(ln)["serial"] for ln in (bundle / rnd["ballots_file"]).read_text("utf-8").splitlines()]


def _line_shape(line: dict) -> tuple:
    return tuple(sorted((k, len(v) if isinstance(v, str) else type(v).__name__) for k, v in line.items()))


def test_the_bundle_does_not_tell_the_paper_ballot_from_the_tablet_ballots(api, app, tmp_path):
    s, paper = _hybrid_round_with_one_paper_ballot(api)
    b = export_app_bundle(app, tmp_path / "bundle")
    verify_bundle(b)  # every check still runs: each line against the round key, the split from counters
    counts = json.loads((b / "counts.json").read_text("utf-8"))
    (rnd,) = counts["items"][0]["rounds"]
    assert rnd["by_channel"] == {"issued": {"terminal": TABLETS, "paper": 1},
                                 "returned": {"terminal": TABLETS, "paper": 1}}
    lines = [json.loads(ln) for ln in (b / rnd["ballots_file"]).read_text("utf-8").splitlines()]
    serials = [ln["serial"] for ln in lines]
    assert len(lines) == TABLETS + 1 and paper in serials and serials == sorted(serials)
    shapes = {_line_shape(ln) for ln in lines}
    assert len(shapes) == 1, shapes  # same fields, same signature and prefix sizes on every line
    # every file of the bundle mentions the paper serial exactly as often as each tablet serial
    files = [p for p in sorted(b.rglob("*")) if p.is_file()]

    def mentions(serial: str) -> dict:
        return {p.relative_to(b).as_posix(): p.read_bytes().count(serial.encode()) for p in files}

    seen = mentions(paper)
    for serial in serials:
        assert mentions(serial) == seen, serial
    # the allowance names the member, never a serial
    for path in b.rglob("*.jsonl"):
        for ln in path.read_text("utf-8").splitlines():
            ev = json.loads(ln)
            if ev.get("kind") == "ballot_replacement":
                assert paper not in ln and s.members[TABLETS] in ln


def _row_shape(row: sqlite3.Row, keep: set[str]) -> tuple:
    return tuple((k, row[k] if k in keep else (None if row[k] is None else (type(row[k]).__name__,
                                                                             len(str(row[k])))))
                 for k in row.keys() if k not in ("id", "serial", "marks"))


def test_a_database_copy_after_the_close_does_not_tell_the_paper_cast(api, app, tmp_path):
    path = sp.db_path(app)
    _, paper = _hybrid_round_with_one_paper_ballot(api)
    main, wal = sp.copy_files(path, tmp_path / "copy")
    conn = sqlite3.connect(tmp_path / "copy" / "copy")
    conn.row_factory = sqlite3.Row
    try:
        casts = conn.execute("SELECT * FROM casts").fetchall()
        serials = [c["serial"] for c in casts]
        assert paper in serials and len(casts) == TABLETS + 1
        # the cast rows: one shape (channel and round as values; every other column's kind and length)
        shapes = {_row_shape(c, {"channel", "round_id", "member_id"}) for c in casts}
        assert len(shapes) == 1, shapes
        # no other table holds a serial, a signature or a prefix of any cast: so none tells paper apart
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        needles = {c["serial"]: [c["serial"], c["serial"][:8], c["signature"], c["msg_prefix"] or c["serial"]]
                   for c in casts}
        for table in tables:
            if table == "casts":
                continue
            for row in conn.execute(f'SELECT * FROM "{table}"'):
                text = " ".join(str(v) for v in row)
                for serial, found in needles.items():
                    assert not any(n in text for n in found), (table, "paper" if serial == paper else "tablet")
    finally:
        conn.close()
    # the raw files: each serial as often as any other, in the current pages and in every page and
    # frame of the files (freelist pages and WAL frames of the tally and record included)
    current = b"".join(page for _, page in sp.current_pages(main, wal))
    for data in (current, main + b"".join(frame for _, frame in sp.frames(wal))):
        times = {s: data.count(s.encode()) for s in serials}
        assert len(set(times.values())) == 1, {("paper" if s == paper else "tablet"): n for s, n in times.items()}


def test_the_station_names_no_serial_and_no_marks_of_a_hybrid_paper_ballot_in_the_chain(api, app, client):
    """Scanned with a stray mark, the paper ballot goes to the tellers; their decisions are in the
    chain (who decided, when they agreed) without its QR text, serial or marks, which stay with
    the page (README, "Hybrid votes": what remains)."""
    s = setup_sitting(api, members=3, channel="hybrid")
    vote(api, s.creds[s.members[0]], {"motion": "for"})
    text = api.call("POST", f"/api/admin/items/{s.item_id}/replacement",
                    {"member": s.members[1], "reason": "表决器故障", "channel": "paper"})[1]["ballot"]
    serial = text.split(".")[6]
    page = mark(blank_pages([text], ("motion",))[0], ("motion",), {"motion": "against"},
                np.random.default_rng(5), stray=True)
    r = client.post("/api/station/scans", data=png_bytes(page),
                    headers={"Authorization": f"Bearer {s.counter}", "Content-Type": "image/png"})
    assert r.status_code == 201 and r.get_json()["pages"][0]["status"] == "queued", r.get_json()
    pid = r.get_json()["pages"][0]["id"]
    for cred in (s.counter, s.scrutineer):
        api.call("POST", f"/api/station/pages/{pid}/decision", {"decision": {"marks": {"motion": "against"}}},
                 credential=cred, expect=(201,))
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    chain = [row[0].data for row in query(app, select(AuditEvent))]
    decided = [json.loads(d) for d in chain if '"step"' in d]
    assert len(decided) == 2 and all("decision" not in d for d in decided)
    for data in chain:
        assert serial not in data and serial[:8] not in data and "against" not in data, data
    _, closed = api.call("GET", "/api/station/board", credential=s.counter)
    assert closed["items"][0]["returned_by_channel"] == {"terminal": 1, "paper": 1}
    # kept for recounts until the retention period ends; then the page keeps nothing of the ballot
    db = app.extensions["ballot_sessionmaker"]()
    try:
        (kept,) = db.scalars(select(ScannedPage)).all()
        assert kept.qr_text == text and kept.decisions
        assert scanning.discard_images(db, s.sitting_id) == 1
        db.commit()
        db.refresh(kept)
        assert (kept.image, kept.qr_text, kept.boxes, kept.decisions) == (None, None, [], [])
    finally:
        db.close()
