"""Casts of a secret round while it is open: sealed in `staged_casts`, written out at the close.

A copy of the database taken during a secret vote (its pages, WAL frames, freed pages) keeps
the order in which rows were written: one WAL frame per changed page per commit, and cells
placed in a page in insertion order. So while the round is open its accepted casts are not
stored in clear: intake (intake.py) stores each as one StagedCast row, the whole Cast row
sealed (crypto/cast_seal.py: AES-256-GCM under a key derived from the body's signing key,
padded to one length per round and channel) beside an HMAC tag of its serial (a repeat is found by it).
Those rows arrive in order too, but without the body's key nothing ties one to a serial, a
receipt or marks. At the close (`release`, voting.close_round) they are opened and written
as Cast rows sorted by their random ids, and deleted; secure_delete zeroes the freed cells
and the close truncates the WAL (db/wal.py). Named votes are stored in clear (bound to the
member anyway).

Reading while open (counts, the station's board, a recount, a bundle) opens the rows with the
body's key; a server that cannot unlock it does not start (body_keys.py), and a close that
cannot open a row is refused and changes nothing, so no acknowledged cast is lost.
"""
from __future__ import annotations

import functools
import secrets
from types import SimpleNamespace

from sqlalchemy import LargeBinary, String, bindparam, cast, func, literal, null, select, union_all
from sqlalchemy.orm import Session

from ballot_service import rules
from ballot_service.crypto import cast_seal, keys
from ballot_service.db import insert_rows, pg_batches
from ballot_service.errors import Conflict
from ballot_service.models import Cast, StagedCast

STAGED = StagedCast.__table__
_CASTS = Cast.__table__
COLUMNS = tuple(c.name for c in _CASTS.columns)  # the order of a sealed cast's values

_OF_TAG = select(STAGED).where(STAGED.c.tag == bindparam("tag"))


@functools.lru_cache(maxsize=256)
def widest_marks(candidate_keys: tuple, options: tuple | None) -> int:
    """The length of a round's widest marks (every candidate given its longest mark), sealed."""
    longest = max(len(m) for m in (*rules.MARKS, *(options or ())))
    return len(cast_seal.plaintext({k: "x" * longest for k in candidate_keys}))


def staged_row(body_key, facts, row: dict, tag: str | None = None) -> dict:
    """The StagedCast row holding `row` (a Cast row's values) of the round `facts` (`tag`: the
    serial's, if known). Padded as if its marks were the widest: every other value has one
    length per channel (serials, signatures, hashes), so a round's casts on a channel seal to
    one length."""
    tag = tag or cast_seal.tag(body_key, row["serial"])
    data = cast_seal.plaintext([row[c] for c in COLUMNS])
    width = len(data) - len(cast_seal.plaintext(row["marks"])) + widest_marks(facts.candidate_keys, facts.options)
    return {"id": secrets.randbits(62) + 1, "tag": tag, "round_id": facts.id,
            "sealed": cast_seal.seal(body_key, facts.id, tag, data, width)}


def _opened(body_key, staged) -> dict:
    try:
        return dict(zip(COLUMNS, cast_seal.unseal(body_key, staged.round_id, staged.tag, staged.sealed), strict=True))
    except cast_seal.UnsealError:
        raise Conflict(f"a sealed ballot of round {staged.round_id} does not open with the body's signing key "
                       "(was the key replaced during the vote?); nothing was changed", where="keys",
                       zh="本轮一张已密封的选票无法用本机关的签名密钥打开（表决期间是否更换了机关密钥？）；未作任何更改") from None


def _stored(serials_in, tags_in):
    """A batch's used serials, clear and sealed, in one statement (one round trip under the
    write lock); `serials_in(column)`, `tags_in(column)`: the batch's conditions."""
    return union_all(
        select(literal(False).label("sealed_row"), _CASTS.c.serial.label("key"), _CASTS.c.submission_digest,
               _CASTS.c.receipt, _CASTS.c.retry_hash, cast(null(), LargeBinary).label("sealed"),
               _CASTS.c.round_id).where(serials_in(_CASTS.c.serial)),
        select(literal(True), STAGED.c.tag, cast(null(), String), cast(null(), String), cast(null(), String),
               STAGED.c.sealed, STAGED.c.round_id).where(tags_in(STAGED.c.tag)))


_STORED = _stored(lambda c: c.in_(bindparam("serials", expanding=True)),
                  lambda c: c.in_(bindparam("tags", expanding=True)))
# PostgreSQL: one array each, so one SQL text at every batch size (db/pg_batches.py)
_STORED_PG = _stored(lambda c: pg_batches.in_array(c, "serials"), lambda c: pg_batches.in_array(c, "tags"))


def stored_of(conn, serials: list[str], keyed_serials: list[tuple]) -> dict[str, tuple]:
    """{serial: (submission digest, receipt, retry hash)} of the casts stored with any of
    `serials` in clear, and of the staged casts among `keyed_serials` ((body's signing key,
    serial, its tag or None) triples)."""
    by_tag = {tag or cast_seal.tag(key, serial): (key, serial) for key, serial, tag in keyed_serials}
    if not serials and not by_tag:
        return {}
    out = {}
    stmt = _STORED if conn.dialect.name == "sqlite" else _STORED_PG
    for row in conn.execute(stmt, {"serials": serials, "tags": list(by_tag)}):
        if not row.sealed_row:
            out[row.key] = (row.submission_digest, row.receipt, row.retry_hash)
            continue
        key, serial = by_tag[row.key]
        fields = _opened(key, SimpleNamespace(round_id=row.round_id, tag=row.key, sealed=row.sealed))
        out[serial] = (fields["submission_digest"], fields["receipt"], fields["retry_hash"])
    return out


def stored_serial(conn, body_key, serial: str) -> dict | None:
    """The staged cast of `serial` (its Cast fields), or None."""
    staged = conn.execute(_OF_TAG, {"tag": cast_seal.tag(body_key, serial)}).first()
    return _opened(body_key, staged) if staged is not None else None


def returned(db: Session, round_id: int) -> int:
    """R so far: the round's casts, sealed or not (a count: no key needed)."""
    return sum(db.scalar(select(func.count()).select_from(t).where(t.c.round_id == round_id)) or 0
               for t in (_CASTS, STAGED))


def round_casts(db: Session, settings, body_id: int, round_id: int) -> list[SimpleNamespace]:
    """Every cast of the round with all its Cast fields (as attributes), the sealed ones opened
    with the body's key (loaded only if there are any), in no meaningful order."""
    out = [SimpleNamespace(**r._mapping) for r in db.execute(select(_CASTS).where(_CASTS.c.round_id == round_id))]
    staged = db.execute(select(STAGED).where(STAGED.c.round_id == round_id)).all()
    if staged:
        key = keys.body_signing_key(settings, body_id)
        out += [SimpleNamespace(**_opened(key, s)) for s in staged]
    return out


def release(db: Session, settings, body_id: int, round_id: int) -> int:
    """At the close, in its transaction: the round's sealed casts opened and, with any clear
    ones, (re)written as Cast rows sorted by id, so neither their pages nor their offsets
    follow arrival; the sealed rows deleted. Returns how many casts the round has."""
    conn = db.connection()
    staged = conn.execute(select(STAGED).where(STAGED.c.round_id == round_id)).all()
    rows = [dict(r._mapping) for r in conn.execute(select(_CASTS).where(_CASTS.c.round_id == round_id))]
    if staged:
        key = keys.body_signing_key(settings, body_id)
        rows += [_opened(key, s) for s in staged]
        conn.execute(STAGED.delete().where(STAGED.c.round_id == round_id))
    if rows:
        conn.execute(_CASTS.delete().where(_CASTS.c.round_id == round_id))
        rows.sort(key=lambda r: r["id"])
        insert_rows(conn, _CASTS, rows)
    return len(rows)
