"""Printing paper ballots: sign a batch, render it, then record its serials (print_batch),
and the same as a background job whose progress is a JSON file any worker can read
(start_print_job, read_job)."""
from __future__ import annotations

import json
import secrets
import threading
from pathlib import Path
from typing import Callable

from sqlalchemy.orm import Session

from ballot_service.crypto.keys import body_signing_key
from ballot_service.domain.paper_ballots import record_paper_ballots, sign_paper_ballots
from ballot_service.domain.sittings import get_item, require_open
from ballot_service.errors import BallotError, Conflict, InvalidInput
from ballot_service.formats.ballots import MAX_PAPER_BATCH, serial_short, token_to_text
from ballot_service.models import Round
from ballot_service.render.fonts import find_font
from ballot_service.render.paper import BallotLayout, next_batch_prefix, write_ballot_pdfs


def print_batch(open_db, settings, item_id: int, count: int, out_dir: Path, *, round_no: int | None = None,
                processes: int | None = None, progress: Callable[[int], None] | None = None) -> dict:
    """Sign `count` new paper ballots for an item's round, render them, then record them.

    `open_db()` is a context manager giving a session that commits on success. Signing and
    rendering happen outside any transaction (SQLite would hold its write lock through the
    rendering); the serials are recorded afterwards, and if that fails the files are removed,
    so no printed ballot exists whose serial the database does not know. Used by the CLI and
    the console."""
    with open_db() as db:
        find_font()  # fail before signing anything
        item = get_item(db, item_id)
        require_open(db, item.sitting, "印制选票", "printing ballots")
        rounds = [r for r in item.rounds if round_no is None or r.number == round_no]
        if not rounds:
            raise Conflict(f"item {item_id} has no round {round_no}", where="round",
                           zh=f"表决事项 {item_id} 没有第 {round_no} 轮")
        round_ = rounds[-1]
        key = body_signing_key(settings, item.sitting.body_id)
        tokens = sign_paper_ballots(key, item, round_, count)
        layout = BallotLayout.from_item(item, round_, key_fingerprint=key.fingerprint)
        round_id, round_number = round_.id, round_.number
    pairs = [(token_to_text(t), serial_short(t["payload"]["serial"])) for t in tokens]
    prefix = next_batch_prefix(out_dir, item_id, round_number)
    paths = write_ballot_pdfs(layout, pairs, out_dir, prefix, processes=processes, progress=progress)
    recorded = False
    try:
        with open_db() as db:
            item = get_item(db, item_id)
            record_paper_ballots(db, key, item, db.get(Round, round_id), tokens)
        recorded = True
    finally:
        if not recorded:
            for p in paths:
                p.unlink(missing_ok=True)
    return {"paths": paths, "round": round_number, "fingerprint": key.fingerprint, "count": count}


def check_printable(db: Session, item_id: int, count: int) -> None:
    """Refuse a print job before it starts: a count out of range, or an item not voted on paper."""
    if not 1 <= count <= MAX_PAPER_BATCH:
        raise InvalidInput(f"count must be between 1 and {MAX_PAPER_BATCH}", where="count",
                           zh=f"张数须在 1 到 {MAX_PAPER_BATCH} 之间")
    if get_item(db, item_id).channel != "paper":
        raise InvalidInput("this item is not voted on paper", where="item", zh="该事项不使用纸质选票")


def _job_path(instance_path, job_id: str) -> Path:
    path = Path(instance_path) / "jobs"
    path.mkdir(parents=True, exist_ok=True)
    return path / f"{job_id}.json"


def _write_job(path: Path, **state) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(state, ensure_ascii=False))
    tmp.replace(path)  # readers in other workers never see half a file


def start_print_job(open_db, settings, item_id: int, count: int, lang: str) -> str:
    """Run print_batch in a background thread; returns the job's id for read_job. A failure
    is kept in the job's file, worded in `lang` (the thread has no request to ask)."""
    job_id = secrets.token_hex(8)
    path = _job_path(settings.instance_path, job_id)
    _write_job(path, state="running", done=0, total=count, item_id=item_id)

    def work():
        done = 0

        def progress(n):
            nonlocal done
            done += n
            _write_job(path, state="running", done=done, total=count, item_id=item_id)

        try:
            out = print_batch(open_db, settings, item_id, count, Path(settings.ballots_dir), progress=progress)
            _write_job(path, state="done", done=count, total=count, item_id=item_id,
                       files=[p.name for p in out["paths"]], fingerprint=out["fingerprint"])
        except Exception as exc:  # shown to the operator on the item page
            message = exc.text(lang) if isinstance(exc, BallotError) else f"{type(exc).__name__}: {exc}"
            _write_job(path, state="failed", done=done, total=count, item_id=item_id, error=message)

    threading.Thread(target=work, name=f"print-{job_id}", daemon=True).start()
    return job_id


def read_job(settings, job_id: str) -> str | None:
    """The job's state as JSON text, or None for an unknown job."""
    if not job_id.isalnum():
        return None
    path = _job_path(settings.instance_path, job_id)
    return path.read_text() if path.exists() else None
