"""Printing paper ballots: sign a batch, render it, then record its serials (print_batch),
and the same as a background job whose progress is a database row any worker or app node
can read (start_print_job, read_job)."""
from __future__ import annotations

import datetime as dt
import json
import secrets
import threading
import time
from pathlib import Path
from typing import Callable

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from ballot_service.crypto.keys import body_signing_key
from ballot_service.db import database_now, db_now
from ballot_service.domain import set_sheets, voting
from ballot_service.domain.ballot_sets import item_for_change
from ballot_service.domain.paper_ballots import record_paper_ballots, sign_paper_ballots
from ballot_service.domain.sittings import get_item, require_open
from ballot_service.errors import BallotError, Conflict, InvalidInput
from ballot_service.formats.ballots import MAX_PAPER_BATCH, serial_short, token_to_text
from ballot_service.models import PrintJob, Round
from ballot_service.render.fonts import find_font
from ballot_service.render.paper import PAGES_PER_FILE, BallotLayout, next_batch_prefix, write_ballot_pdfs
from ballot_service.vocab import PAPER_CHANNELS, SittingStatus


def print_batch(open_db, settings, item_id: int, count: int, out_dir: Path, *, round_no: int | None = None,
                processes: int | None = None, progress: Callable[[int], None] | None = None) -> dict:
    """Sign `count` new paper ballots for an item's round, render them, then record them.

    `open_db()` is a context manager giving a session that commits on success. Signing and
    rendering happen outside any transaction (SQLite would hold its write lock through the
    rendering); the serials are recorded afterwards, and if that fails the files are removed,
    so no printed ballot exists whose serial the database does not know. Nor one that prints
    what the item no longer says: an edit while rendering voids the batch. Used by the CLI and
    the console. An election of a ballot set prints the set's sheets (`count` sheets: set_sheets.py)."""
    with open_db() as db:
        find_font()  # fail before signing anything
        item = get_item(db, item_id)
        # Checked here without a lock (this transaction signs for seconds: a lock on the
        # sitting's row would hold up check-ins), and again under it when the batch is recorded.
        if item.sitting.status != SittingStatus.OPEN:
            require_open(db, item.sitting, "印制选票", "printing ballots")  # says so, with the close's time
        key = body_signing_key(settings, item.sitting.body_id)
        if item.ballot_set:  # one sheet for the set's elections (set_sheets.py)
            if round_no is not None and round_no != voting.current_round(item).number:
                raise Conflict("a ballot set's sheet is printed for its current rounds only", where="round",
                               zh="选举票组的合印选票只印制当前一轮")
            pairs = set_sheets.sheet_rounds(db, item)
            layout = set_sheets.plan(pairs, key.fingerprint)
            tokens, pages = set_sheets.sign_sheets(key, pairs, layout, count)
            round_ids = [r.id for _, r in pairs]
            round_number, per_file = pairs[0][1].number, PAGES_PER_FILE // len(layout.pages) * len(layout.pages)
        else:
            rounds = [r for r in item.rounds if round_no is None or r.number == round_no]
            if not rounds:
                raise Conflict(f"item {item_id} has no round {round_no}", where="round",
                               zh=f"表决事项 {item_id} 没有第 {round_no} 轮")
            round_ = rounds[-1]
            tokens = sign_paper_ballots(key, item, round_, count)
            layout = BallotLayout.from_item(item, round_, key_fingerprint=key.fingerprint)
            round_ids, round_number, per_file = [round_.id], round_.number, PAGES_PER_FILE
            pages = [(token_to_text(t), serial_short(t["payload"]["serial"])) for t in tokens]
    channel = item.channel
    prefix = next_batch_prefix(out_dir, item_id, round_number)
    paths = write_ballot_pdfs(layout, pages, out_dir, prefix, processes=processes, pages_per_file=per_file,
                              progress=progress and (lambda n: progress(n * count // len(pages))))
    recorded = False
    try:
        with open_db() as db:
            item = item_for_change(db, item_id)  # an edit meanwhile has committed, or waits for this
            require_open(db, item.sitting, "印制选票", "printing ballots")  # not closed while it rendered
            rounds = [db.get(Round, rid) for rid in round_ids]
            now = set_sheets.sheet_rounds(db, item) if item.ballot_set else [(item, rounds[0])]
            printed = set_sheets.plan(now, key.fingerprint) if item.ballot_set \
                else BallotLayout.from_item(item, rounds[0], key_fingerprint=key.fingerprint)
            # Edited while rendering (it had no printed ballot yet, so it could be): what it
            # prints, the set's elections, or its channel.
            if printed != layout or [r.id for _, r in now] != round_ids or item.channel != channel:
                raise Conflict(f"{item.title} was changed while its ballots were printed: this batch is void "
                               f"(its files are removed); print again", where="item",
                               zh=f"印制期间《{item.title}》被修改：这批选票已作废（文件已删除），请重新印制")
            if item.ballot_set:
                set_sheets.record_sheets(db, key, [(r.item, r) for r in rounds], tokens)
            else:
                record_paper_ballots(db, key, item, rounds[0], tokens)
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
    if get_item(db, item_id).channel not in PAPER_CHANNELS:
        raise InvalidInput("this item is not voted on paper", where="item", zh="该事项不使用纸质选票")


# A running job not updated for this long was on an app node that stopped (its thread with
# it): read_job reports it failed. Progress is written at least every few seconds while
# rendering, and a chunk of pages renders in well under this.
STALE_AFTER = dt.timedelta(minutes=5)
_PROGRESS_EVERY_S = 1.0  # progress rows at most this often (each is a write transaction)


def _save(open_db, job_id: str, **state) -> None:
    with open_db() as db:
        db.execute(update(PrintJob).where(PrintJob.id == job_id).values(updated_at=db_now(), **state))


def start_print_job(open_db, settings, item_id: int, count: int, lang: str) -> str:
    """Run print_batch in a background thread; returns the job's id for read_job. The job's
    progress is a database row (models.PrintJob), so the console's poll may reach any app
    node; the PDFs go to settings.ballots_dir (shared storage when there are several nodes,
    README "Production layout"). A failure is kept in the row, worded in `lang` (the thread
    has no request to ask)."""
    job_id = secrets.token_hex(8)
    with open_db() as db:
        db.add(PrintJob(id=job_id, item_id=item_id, state="running", done=0, total=count,
                        updated_at=database_now(db)))

    def work():
        done, last = 0, time.monotonic()

        def progress(n):
            nonlocal done, last
            done += n
            if time.monotonic() - last >= _PROGRESS_EVERY_S:
                _save(open_db, job_id, done=done)
                last = time.monotonic()

        try:
            out = print_batch(open_db, settings, item_id, count, Path(settings.ballots_dir), progress=progress)
            _save(open_db, job_id, state="done", done=count, files=[p.name for p in out["paths"]],
                  fingerprint=out["fingerprint"])
        except Exception as exc:  # shown to the operator on the item page
            message = exc.text(lang) if isinstance(exc, BallotError) else f"{type(exc).__name__}: {exc}"
            _save(open_db, job_id, state="failed", done=done, error=message)

    threading.Thread(target=work, name=f"print-{job_id}", daemon=True).start()
    return job_id


def read_job(db: Session, job_id: str) -> str | None:
    """The job's state as JSON text ({state, done, total, item_id}, and files and fingerprint
    when done, error when failed), or None for an unknown job."""
    if not job_id.isalnum():
        return None
    job = db.execute(select(PrintJob, db_now()).where(PrintJob.id == job_id)).first()
    if job is None:
        return None
    job, now = job
    state = {"state": job.state, "done": job.done, "total": job.total, "item_id": job.item_id}
    if job.state == "running" and now - job.updated_at > STALE_AFTER:
        state.update(state="failed", error="打印此批选票的服务器已停止，请重新打印 the server printing this batch "
                                           "stopped; print it again")
    elif job.state == "done":
        state.update(files=job.files, fingerprint=job.fingerprint)
    elif job.state == "failed":
        state["error"] = job.error
    return json.dumps(state, ensure_ascii=False)
