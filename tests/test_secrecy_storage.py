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
- a copy taken during the vote: test_secrecy_midvote.py (several batches, the -shm too, and
  where in its page each cast sits).
"""
from __future__ import annotations

import random
import re
import struct

import pytest
import sqlite_pages as sp
from helpers_live import blind_ballot, setup_sitting
from sqlalchemy import select

from ballot_service.crypto import tablet
from ballot_service.models import Round

N = 10
MARKS = re.compile(rb'"motion": ?"(for|against|abstain)"')  # a stored cast's marks
CHOICES = ("for", "against", "abstain")


def _first_seen(chunks: list[bytes], serials: list[str]) -> list[tuple[int, int]]:
    """For each serial: (chunk index, offset) where it first appears, or (-1, -1)."""
    out = []
    for s in serials:
        hit = next(((i, c.find(s.encode())) for i, c in enumerate(chunks) if s.encode() in c), (-1, -1))
        out.append(hit)
    return out


@pytest.fixture
def vote_with_copies(app, api, tmp_path):
    db = sp.db_path(app)
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
    mid = sp.copy_files(db, tmp_path / "mid")
    for no in s.members[N // 2:N]:
        cast(no)
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    after = sp.copy_files(db, tmp_path / "after")
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
    pages = sp.pages(main)
    _no_member_beside_a_ballot(pages, order, identifiers, "page")
    seen = _first_seen(pages, order)
    assert all(p >= 0 for p, _ in seen)  # sanity: the search finds the stored serials
    assert sorted(range(N), key=lambda i: seen[i]) != list(range(N)), "serials stored in arrival order"
    assert private_key is not None and private_key not in main  # secure_delete: overwritten, not freed
    for pgno in sp.freelist(main):
        page = pages[pgno - 1]
        assert not any(s.encode() in page for s in order) and not MARKS.search(page)
        assert page[8:].strip(b"\0") == b"" or pgno == struct.unpack(">I", main[32:36])[0]


def test_a_mid_vote_copy_links_no_member_to_a_ballot(vote_with_copies):
    order, (main, wal), _, identifiers, _ = vote_with_copies
    half = order[:N // 2]
    _no_member_beside_a_ballot(sp.pages(main), half, identifiers, "page")
    _no_member_beside_a_ballot([f for _, f in sp.frames(wal)], half, identifiers, "WAL frame")
