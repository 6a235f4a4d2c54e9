"""Issue #15, finding 3, as someone with a copy of the SQLite files: the WAL kept the order
of events (replaying it gave the hand-out order of paper ballots). Inspect the raw files of
a secret terminal vote, copied in the middle of the vote and after its close: every page of
the main file (freelist pages included) and every WAL frame.

What README ("Database copies") promises, and this checks:
- no page or frame holds a member's or terminal's identifier beside a serial or marks;
- after the close the WAL is empty (checkpoint-truncated) and the main file gives no order
  of arrival: serials sit in pages in an order unrelated to arrival (random cast ids, the
  serial index), and no freelist page keeps deleted content (secure_delete: the round's
  private key, cleared at close, is nowhere in the file);
- a copy taken during the vote does show, in its WAL, the order of the commits since the
  last checkpoint (like PostgreSQL's WAL): the limit README states.
"""
from __future__ import annotations

import random
import re
import shutil
import struct
from pathlib import Path

import pytest
from helpers_live import blind_ballot, setup_sitting
from sqlalchemy import select

from ballot_service.crypto import tablet
from ballot_service.models import Round

N = 10
MARKS = re.compile(rb'"motion": ?"(for|against|abstain)"')  # a stored cast's marks
CHOICES = ("for", "against", "abstain")


def _db_path(app) -> Path:
    url = app.config["SETTINGS"].database_url
    if not url.startswith("sqlite"):
        pytest.skip("raw database files are inspected on SQLite")
    return Path(url.split("sqlite:///", 1)[1])


def _copy(db: Path, to: Path) -> tuple[bytes, bytes]:
    """The database and its WAL as a file-level copy would take them (the server keeps running)."""
    to.mkdir()
    for suffix in ("", "-wal"):
        if Path(f"{db}{suffix}").exists():
            shutil.copyfile(f"{db}{suffix}", to / f"copy{suffix}")
    main = (to / "copy").read_bytes()
    wal = (to / "copy-wal").read_bytes() if (to / "copy-wal").exists() else b""
    return main, wal


def _pages(main: bytes) -> list[bytes]:
    size = struct.unpack(">H", main[16:18])[0] or 65536
    return [main[i:i + size] for i in range(0, len(main), size)]


def _freelist(main: bytes) -> list[int]:
    """Page numbers (1-based) of every freelist page: trunks and leaves."""
    pages = _pages(main)
    trunk, out = struct.unpack(">I", main[32:36])[0], []
    while trunk:
        page = pages[trunk - 1]
        out.append(trunk)
        n = struct.unpack(">I", page[4:8])[0]
        out += [struct.unpack(">I", page[8 + 4 * i:12 + 4 * i])[0] for i in range(n)]
        trunk = struct.unpack(">I", page[:4])[0]
    return out


def _frames(wal: bytes) -> list[bytes]:
    if len(wal) < 32:
        return []
    size = struct.unpack(">I", wal[8:12])[0]
    return [wal[i + 24:i + 24 + size] for i in range(32, len(wal) - 24 - size + 1, 24 + size)]


def _first_seen(chunks: list[bytes], serials: list[str]) -> list[tuple[int, int]]:
    """For each serial: (chunk index, offset) where it first appears, or (-1, -1)."""
    out = []
    for s in serials:
        hit = next(((i, c.find(s.encode())) for i, c in enumerate(chunks) if s.encode() in c), (-1, -1))
        out.append(hit)
    return out


@pytest.fixture
def vote_with_copies(app, api, tmp_path):
    db = _db_path(app)
    s = setup_sitting(api, members=N + 1, secret=True)
    rng = random.Random(15)
    order = []
    private_key = None

    def cast(no):
        ballot = blind_ballot(api, s.creds[no])
        api.call("POST", "/api/terminal/cast", {**ballot, "marks": {"motion": rng.choice(CHOICES)},
                                                "retry_id": tablet.new_retry_id()}, credential=s.creds[no])
        order.append(ballot["serial"])

    for no in s.members[:N // 2]:
        cast(no)
    with app.extensions["ballot_engine"].connect() as conn:
        private_key = conn.execute(select(Round.blind_private_key)).scalar()
    mid = _copy(db, tmp_path / "mid")
    for no in s.members[N // 2:N]:
        cast(no)
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    after = _copy(db, tmp_path / "after")
    identifiers = [x.encode() for no in s.members for x in (no, f"代表{no}", f"席位{no}", s.creds[no])]
    return order, mid, after, identifiers, private_key


def _no_member_beside_a_ballot(chunks: list[bytes], serials: list[str], identifiers: list[bytes], what: str):
    for i, chunk in enumerate(chunks):
        if any(s.encode() in chunk for s in serials) or MARKS.search(chunk):
            found = [x for x in identifiers if x in chunk]
            assert not found, f"{what} {i} holds a ballot and member/terminal identifiers {found[:3]}"


def test_after_close_the_files_keep_no_order_and_no_residue(vote_with_copies):
    order, _, (main, wal), identifiers, private_key = vote_with_copies
    assert wal == b""  # checkpoint(TRUNCATE) at close: no frames, no commit order
    pages = _pages(main)
    _no_member_beside_a_ballot(pages, order, identifiers, "page")
    seen = _first_seen(pages, order)
    assert all(p >= 0 for p, _ in seen)  # sanity: the search finds the stored serials
    assert sorted(range(N), key=lambda i: seen[i]) != list(range(N)), "serials stored in arrival order"
    assert private_key is not None and private_key not in main  # secure_delete: overwritten, not freed
    for pgno in _freelist(main):
        page = pages[pgno - 1]
        assert not any(s.encode() in page for s in order) and not MARKS.search(page)
        assert page[8:].strip(b"\0") == b"" or pgno == struct.unpack(">I", main[32:36])[0]


def test_a_mid_vote_copy_links_no_member_to_a_ballot(vote_with_copies):
    order, (main, wal), _, identifiers, _ = vote_with_copies
    half = order[:N // 2]
    _no_member_beside_a_ballot(_pages(main), half, identifiers, "page")
    _no_member_beside_a_ballot(_frames(wal), half, identifiers, "WAL frame")


def test_a_mid_vote_wal_keeps_commit_order_until_the_close(vote_with_copies):
    """The limit README states: during a vote, the WAL holds one frame per changed page per
    commit, so a copy of it shows in which order the casts since the last checkpoint were
    committed (not who cast them). The close truncates it (test above)."""
    order, (_, wal), _, _, _ = vote_with_copies
    seen = _first_seen(_frames(wal), order[:N // 2])
    assert all(f >= 0 for f, _ in seen)
    assert [f for f, _ in seen] == sorted(f for f, _ in seen)
