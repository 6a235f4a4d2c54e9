"""Issue #15, Done when: a copy of the SQLite files (.db, -wal, -shm, copied as a DBA would,
while the server runs) taken in the middle of a secret vote, while casts arrive in several
batches, links no member or terminal to a serial or marks and gives no order of arrival.

Each batch is as the server has it: the members take their blind-signed ballots (one commit
each, counting the issuance), then their casts are stored in one group commit. After every
batch the three files are copied and searched, byte for byte: every page of the main file
(freelist pages included), every WAL frame, the -shm file. While the round is open its casts
are sealed (domain/cast_staging.py), so no serial, receipt, signature or marks of an accepted
cast is there in clear; the sealed rows still sit in the order they arrived (WAL frames, byte
offsets inside a page: a page's cell area fills downwards), but without the body's key
nothing ties a sealed row to a serial. The close writes the casts in clear sorted by their
random ids and deletes the sealed rows (secure_delete) and truncates the WAL.
"""
from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import sqlite3
from contextlib import closing
from pathlib import Path

import pytest
import sqlite_pages as sp
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from helpers_live import blind_ballot, setup_sitting
from sqlalchemy import func, select
from test_intake_group_commit import _jobs, _outcome

from ballot_service.crypto import cast_seal, keys, tablet
from ballot_service.domain import intake
from ballot_service.models import Cast, Item, StagedCast

BATCHES, PER_BATCH = 4, 8
MARKS = re.compile(rb'"motion": ?"(for|against|abstain)"')
CHOICES = ("for", "against", "abstain")
CAST_FIELDS = ("id", "serial", "signature", "msg_prefix", "retry_hash", "receipt", "submission_digest")


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


def _rows(copy: dict[str, bytes], where: Path, query: str) -> list[tuple]:
    """`query` on the copy as SQLite opens it (main file and WAL), in a folder of its own."""
    where.mkdir()
    for suffix, data in copy.items():
        (where / f"copy{suffix}").write_bytes(data)
    with closing(sqlite3.connect(where / "copy")) as conn:
        return conn.execute(query).fetchall()


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
    body_key = keys.body_signing_key(app.config["SETTINGS"], s.body_id)
    return arrival, copies, identifiers, body_key


def _chunks(copy: dict[str, bytes]) -> list[tuple[str, bytes]]:
    main = [(f"page {i + 1}", p) for i, p in enumerate(sp.pages(copy[""]))]
    return main + [(f"WAL frame {i} (page {n})", p) for i, (n, p) in enumerate(sp.frames(copy["-wal"]))]


def test_no_page_or_frame_puts_a_member_beside_a_ballot(midvote):
    arrival, copies, identifiers, _ = midvote
    for k, copy in enumerate(copies):
        for where, chunk in _chunks(copy):
            if any(s.encode() in chunk for s in arrival) or MARKS.search(chunk):
                found = [x for x in identifiers if x in chunk]
                assert not found, f"copy {k + 1}: {where} holds a ballot beside {found[:3]}"


def _accepted(midvote, tmp_path) -> list[dict]:
    """Every accepted cast's fields, as the close wrote them in clear."""
    arrival, copies, _, _ = midvote
    rows = _rows(copies[-1], tmp_path / "closed-rows", f"SELECT {', '.join(CAST_FIELDS)}, marks FROM casts")
    assert sorted(r[1] for r in rows) == sorted(arrival)
    return [dict(zip((*CAST_FIELDS, "marks"), r)) for r in rows]


def _where(copy: dict[str, bytes], value: bytes) -> list[str]:
    """Where in the copy `value` occurs: main-file pages (freelist ones named), WAL frames, -shm."""
    free = set(sp.freelist(copy[""]))
    out = [f"{'freelist ' if i + 1 in free else ''}page {i + 1}" for i, p in enumerate(sp.pages(copy[""]))
           if value in p]
    out += [f"WAL frame {i} (page {n})" for i, (n, p) in enumerate(sp.frames(copy["-wal"])) if value in p]
    return out + (["-shm"] if value in copy["-shm"] else [])


def test_a_copy_during_the_vote_holds_no_accepted_ballot_in_clear(midvote, tmp_path):
    """After every batch: no serial, receipt, signature, message prefix, retry hash, submission
    digest or id of an accepted cast, and no marks, in any byte of the three files. The same
    search finds all of them in the copy taken after the close (they are published then)."""
    _, copies, _, _ = midvote
    accepted = _accepted(midvote, tmp_path)
    values = [(f"{name} of cast {c['serial'][:8]}", c[name].encode()) for c in accepted
              for name in CAST_FIELDS if c[name]]
    assert len(values) >= len(accepted) * 6
    for k, copy in enumerate(copies[:-1]):
        raw = copy[""] + b"\0" + copy["-wal"] + b"\0" + copy["-shm"]
        found = [(what, _where(copy, v)) for what, v in values if v in raw]
        assert not found, f"copy after batch {k + 1}: {found[:3]} in clear"
        marks = MARKS.search(raw)
        assert marks is None, f"copy after batch {k + 1}: marks {marks.group()!r} in clear"
    closed = copies[-1]
    raw = closed[""] + closed["-wal"]
    assert all(v in raw for _, v in values) and len(MARKS.findall(raw)) >= len(accepted)


def _staged(copy: dict[str, bytes], where: Path) -> list[tuple[str, int, bytes]]:
    return _rows(copy, where, "SELECT tag, round_id, sealed FROM staged_casts")


def test_the_sealed_rows_link_to_serials_only_through_the_body_key(midvote, tmp_path):
    """Mid-vote, the sealed rows are the casts that have arrived, but nothing in them leads to a
    serial or marks without the body's key: one length for all (not the marks' length), tags
    that are no digest of the serial anyone can compute and that another key does not give,
    and ciphertexts that open with the body's key only, in their own row only."""
    arrival, copies, _, body_key = midvote
    n = (BATCHES - 1) * PER_BATCH
    staged = _staged(copies[BATCHES - 2], tmp_path / "midway")
    assert len(staged) == n
    assert len({len(sealed) for _, _, sealed in staged}) == 1, "the sealed length varies with the ballot"
    tags = {tag for tag, _, _ in staged}
    unkeyed = {h(x).hexdigest() for s in arrival for x in (s.encode(), bytes.fromhex(s))
               for h in (hashlib.sha256, hashlib.sha384, hashlib.sha512, hashlib.sha1, hashlib.md5,
                         hashlib.blake2b, hashlib.sha3_256)}
    assert not tags & unkeyed
    other = keys.SigningKey("another", Ed25519PrivateKey.generate())
    assert not tags & {cast_seal.tag(other, s) for s in arrival}
    by_tag = {cast_seal.tag(body_key, s): s for s in arrival[:n]}
    assert tags == set(by_tag)  # the link is there, for the holder of the key
    (tag, round_id, sealed), (tag2, _, _) = staged[0], staged[1]
    assert by_tag[tag] in cast_seal.unseal(body_key, round_id, tag, sealed)
    for key, rid, row_tag in ((other, round_id, tag), (body_key, round_id + 1, tag), (body_key, round_id, tag2)):
        with pytest.raises(cast_seal.UnsealError):
            cast_seal.unseal(key, rid, row_tag, sealed)


def test_during_the_vote_the_sealed_rows_keep_their_arrival_order(midvote):
    """The limit README states ("Database copies"): during the vote the WAL keeps one frame per
    changed page per commit, and a page's cells keep the order they were inserted in, so a
    mid-vote copy still orders the batches (and the blind signatures' issuance counts) and the
    sealed rows on a page; only with the body's key can a sealed row be tied to its serial
    (above). Checkpointing after every secret commit halved casts/s. The close truncates the
    WAL. If the mid-vote part starts failing, update the README."""
    arrival, copies, _, body_key = midvote
    midway = copies[BATCHES - 2]
    listed = sp.shm_frame_pages(midway["-shm"])
    assert len(sp.frames(midway["-wal"])) > len(set(listed)) or len(listed) > len(set(listed))
    tags = [cast_seal.tag(body_key, s) for s in arrival[:(BATCHES - 1) * PER_BATCH]]
    batch = [i // PER_BATCH for i in range(len(tags))]
    agree, total = sp.offset_order_agreement(sp.placed(sp.current_pages(midway[""], midway["-wal"]), tags), batch)
    assert total > 50 and agree > 0.75 * total
    closed = copies[-1]
    assert closed["-wal"] == b"", f"after the close the WAL holds {len(sp.frames(closed['-wal']))} frames"


def test_the_close_leaves_no_sealed_row(midvote, tmp_path):
    """The close deletes the sealed rows (secure_delete zeroes them): no tag or ciphertext of
    the vote is left in the closed copy's pages."""
    _, copies, _, _ = midvote
    staged = _staged(copies[BATCHES - 1], tmp_path / "last-batch")
    assert len(staged) == BATCHES * PER_BATCH
    closed = copies[-1]
    assert _staged(closed, tmp_path / "closed") == []
    raw = closed[""] + closed["-wal"]
    left = [tag for tag, _, sealed in staged if tag.encode() in raw or bytes(sealed)[-32:] in raw]
    assert not left, f"{len(left)} sealed rows still in the closed copy"


def _agreement(copy: dict[str, bytes], arrival: list[str]) -> tuple[int, int]:
    batch = [i // PER_BATCH for i in range(len(arrival))]
    return sp.offset_order_agreement(sp.placed(sp.current_pages(copy[""], copy["-wal"]), arrival), batch)


def test_after_the_close_casts_sit_in_their_pages_by_key(midvote, tmp_path):
    """The close writes the round's casts in key order: on every page holding them (the table,
    its serial and round indexes), their cells sit in the order of their random ids, so their
    offsets say nothing of arrival."""
    arrival, copies, _, _ = midvote
    closed = copies[-1]
    assert closed["-wal"] == b""
    ids = sorted(r[0] for r in _rows(closed, tmp_path / "closed-ids", "SELECT id FROM casts"))
    assert len(ids) == len(arrival)
    groups = sp.placed(sp.current_pages(closed[""], closed["-wal"]), ids)
    assert len(groups) >= 3  # the table, the serial index, the round index
    by_id, pairs = sp.offset_order_agreement(groups, list(range(len(ids))))
    assert by_id > 0.9 * pairs, f"{by_id} of {pairs} pairs on one page in the order of their ids"
    agree, total = _agreement(closed, arrival)
    assert total > 100 and agree < 0.75 * total, f"{agree} of {total} pairs still in arrival order"


def test_a_cast_without_the_body_key_is_refused_and_none_acknowledged_is_lost(app, api, tmp_path):
    """A node whose body key cannot be unlocked (key file gone, wrong passphrase) mid-vote: a
    cast is refused with a KeyFileError saying so, before anything is stored; the close is
    refused too and changes nothing. With the key back (a restarted node: nothing cached),
    the close writes every acknowledged cast."""
    s = setup_sitting(api, members=4, secret=True)
    ballots = [blind_ballot(api, s.creds[no]) for no in s.members]
    cast = lambda b: api.call("POST", "/api/terminal/cast", {**b, "marks": {"motion": "for"},  # noqa: E731
                                                             "retry_id": tablet.new_retry_id()}, expect=None)
    assert cast(ballots[0])[0] == 201
    key_file = keys.private_path(app.config["SETTINGS"].keys_dir, keys.body_key_name(s.body_id))
    os.replace(key_file, tmp_path / "away")
    try:
        status, body = cast(ballots[1])
        assert status == 500 and "KeyFileError" in json.dumps(body), body
        status, body = api.call("POST", f"/api/admin/items/{s.item_id}/close", expect=None)
        assert status == 500 and "KeyFileError" in json.dumps(body), body
        assert _stored(app, s.item_id) == ("open", 0, 1)
    finally:
        os.replace(tmp_path / "away", key_file)
    keys.clear_cache()
    assert cast(ballots[1])[0] == 201
    api.call("POST", f"/api/admin/items/{s.item_id}/close")
    assert _stored(app, s.item_id) == ("closed", 2, 0)


def _stored(app, item_id: int) -> tuple[str, int, int]:
    """The item's status, its casts in clear and its sealed casts."""
    with app.extensions["ballot_sessionmaker"]() as db:
        return (db.get(Item, item_id).status, db.scalar(select(func.count()).select_from(Cast)),
                db.scalar(select(func.count()).select_from(StagedCast)))
