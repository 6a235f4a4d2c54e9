"""Issue #15, Done when: a copy of the SQLite files (.db, -wal, -shm, copied as a DBA would,
while the server runs) taken in the middle of a secret vote, while casts arrive in several
batches, links no member or terminal to a serial or marks and gives no order of arrival.

Each batch is as the server has it: the members take their blind-signed ballots (one commit
each, counting the issuance), then their casts are stored in one group commit. After every
batch the three files are copied and searched: every page of the main file, every WAL frame,
the -shm file's list of frame pages, and the byte offsets at which SQLite placed each cast
inside its pages (a page's cell area fills downwards, so offsets within a page keep the order
in which cells were inserted, until the page is rebuilt).
"""
from __future__ import annotations

import random
import re
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
import sqlite_pages as sp
from helpers_live import blind_ballot, setup_sitting
from test_intake_group_commit import _jobs, _outcome

from ballot_service.domain import intake

BATCHES, PER_BATCH = 4, 8
MARKS = re.compile(rb'"motion": ?"(for|against|abstain)"')
CHOICES = ("for", "against", "abstain")


def _copy(db: Path, to: Path) -> dict[str, bytes]:
    """The database, its WAL and its -shm as a file copy takes them, the server running."""
    to.mkdir()
    out = {}
    for suffix in ("", "-wal", "-shm"):
        src = Path(f"{db}{suffix}")
        if src.exists():
            shutil.copyfile(src, to / f"copy{suffix}")
        out[suffix] = (to / f"copy{suffix}").read_bytes() if src.exists() else b""
    return out


@pytest.fixture
def midvote(app, api, tmp_path):
    db = sp.db_path(app)
    s = setup_sitting(api, members=BATCHES * PER_BATCH + 1, secret=True)
    engine = app.extensions["ballot_engine"]
    rng = random.Random(15)
    arrival: list[str] = []  # serials in the order they were stored
    copies = []
    members = iter(s.members)
    for _ in range(BATCHES):
        ballots = [blind_ballot(api, s.creds[next(members)]) for _ in range(PER_BATCH)]
        jobs = _jobs(app, s, [(b, {"motion": rng.choice(CHOICES)}) for b in ballots])
        intake._run_batch(engine, jobs)
        assert all(isinstance(_outcome(j), intake.Receipt) for j in jobs)
        arrival += [b["serial"] for b in ballots]
        copies.append(_copy(db, tmp_path / f"after-batch-{len(copies) + 1}"))
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    copies.append(_copy(db, tmp_path / "after-close"))
    identifiers = [x.encode() for no in s.members for x in (no, f"代表{no}", f"席位{no}", s.creds[no])]
    return arrival, copies, identifiers


def _chunks(copy: dict[str, bytes]) -> list[tuple[str, bytes]]:
    main = [(f"page {i + 1}", p) for i, p in enumerate(sp.pages(copy[""]))]
    return main + [(f"WAL frame {i} (page {n})", p) for i, (n, p) in enumerate(sp.frames(copy["-wal"]))]


def test_no_page_or_frame_puts_a_member_beside_a_ballot(midvote):
    arrival, copies, identifiers = midvote
    for k, copy in enumerate(copies):
        for where, chunk in _chunks(copy):
            if any(s.encode() in chunk for s in arrival) or MARKS.search(chunk):
                found = [x for x in identifiers if x in chunk]
                assert not found, f"copy {k + 1}: {where} holds a ballot beside {found[:3]}"


def test_during_the_vote_the_wal_keeps_the_order_of_commits_and_the_close_clears_it(midvote):
    """The limit README states ("Database copies"): during a vote the WAL keeps one frame per
    changed page per commit, so a mid-vote copy orders the batches (and the blind signatures'
    issuance counts) — checkpointing after every secret commit removed that but halved casts/s
    and added ~10 ms per ballot handed out, while cells inside a page keep arrival order anyway
    (below). The close truncates it. If the mid-vote part starts failing, update the README."""
    arrival, copies, _ = midvote
    midway = copies[BATCHES - 2]
    listed = sp.shm_frame_pages(midway["-shm"])
    assert len(sp.frames(midway["-wal"])) > len(set(listed)) or len(listed) > len(set(listed))
    closed = copies[-1]
    assert closed["-wal"] == b"", f"after the close the WAL holds {len(sp.frames(closed['-wal']))} frames"


def _agreement(copy: dict[str, bytes], arrival: list[str]) -> tuple[int, int]:
    batch = [i // PER_BATCH for i in range(len(arrival))]
    return sp.offset_order_agreement(sp.placed(sp.current_pages(copy[""], copy["-wal"]), arrival), batch)


def test_after_the_close_casts_sit_in_their_pages_by_key(midvote, tmp_path):
    """The close rewrites the round's casts in key order: on every page holding them (the table,
    its serial and round indexes), their cells sit in the order of their random ids, so their
    offsets say nothing of arrival. Before, ~95% of pairs of cells on one page sat in
    arrival order."""
    arrival, copies, _ = midvote
    closed = copies[-1]
    assert closed["-wal"] == b""
    (tmp_path / "closed.db").write_bytes(closed[""])
    with closing(sqlite3.connect(tmp_path / "closed.db")) as conn:
        ids = sorted(r[0] for r in conn.execute("SELECT id FROM casts"))
    assert len(ids) == len(arrival)
    groups = sp.placed(sp.current_pages(closed[""], closed["-wal"]), ids)
    assert len(groups) >= 3  # the table, the serial index, the round index
    by_id, pairs = sp.offset_order_agreement(groups, list(range(len(ids))))
    assert by_id > 0.9 * pairs, f"{by_id} of {pairs} pairs on one page in the order of their ids"
    agree, total = _agreement(closed, arrival)
    assert total > 100 and agree < 0.75 * total, f"{agree} of {total} pairs still in arrival order"


def test_during_the_vote_offsets_within_a_page_follow_arrival(midvote):
    """The limit README states ("Database copies"): during the vote, cells added to a page since
    it was last rebuilt sit below the earlier ones, so a copy orders the casts that share a
    page (not who cast them). Rewriting a round's casts after every batch would remove it, at
    ~80 ms per 3,000 casts per batch. If this starts failing, update the README."""
    arrival, copies, _ = midvote
    midway = copies[BATCHES - 2]  # after batch 3 of 4, before the close
    agree, total = _agreement(midway, arrival[:(BATCHES - 1) * PER_BATCH])
    assert total > 50 and agree > 0.75 * total


def test_handing_out_paper_ballots_leaves_no_order_of_the_stacks(app, api, tmp_path):
    """Finding 3 as found: replaying the WAL gave the order in which the desk handed out paper
    ballots. A desk handing them out one at a time (a stack of one per deputy): after each
    stack the WAL is empty, so a copy holds no order of the stacks (the rows change in place:
    handed_out 0 -> 1)."""
    db = sp.db_path(app)
    s = setup_sitting(api, members=4, channel="paper", secret=True)
    _, printed = api.call("POST", f"/api/admin/items/{s.item_id}/paper-ballots", {"count": 4})
    for k, text in enumerate(printed["ballots"][:3]):
        api.call("POST", "/api/station/hand-out", {"ballots": [text]}, credential=s.station)
        copy = _copy(db, tmp_path / f"after-stack-{k + 1}")
        assert copy["-wal"] == b"", f"stack {k + 1}: the WAL holds {len(sp.frames(copy['-wal']))} frames"
        assert sp.shm_max_frame(copy["-shm"]) == 0
        if k:  # the -shm lists the pages of the commits since the last one that emptied the WAL
            listed = sp.shm_frame_pages(copy["-shm"])
            assert len(listed) == len(set(listed)), f"stack {k + 1}: the -shm lists frames of several commits"
